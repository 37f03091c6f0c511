"""History from before a join: the joining server backfills it from the room's server.

A (pair.a) creates a room and talks before B's user joins; B's /messages pages back through it. With
Parvis as B this exercises Parvis's backfill (`GET /backfill` to A, checks, storage under the timeline);
with Parvis as A, Parvis's `/backfill` endpoint serving Synapse.
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md).
"""

from __future__ import annotations

import pytest

from fedhelpers import FED_WAIT_S, ROOM_VERSIONS, is_text, join_remote, since_now, tag, wait_timeline

pytestmark = pytest.mark.parametrize("room_version", ROOM_VERSIONS, ids=[f"v{v}" for v in ROOM_VERSIONS])

HISTORY = 20


async def page_back(user, room_id: str, limit: int) -> list[dict]:
    """Every event /messages gives backwards from now, chaining `end` until it is gone (or pages stay empty)."""
    events: list[dict] = []
    frm = None
    empty = 0
    for _ in range(100):
        params = {"dir": "b", "limit": limit}
        if frm:
            params["from"] = frm
        page = await user.messages(room_id, **params)
        chunk = page.get("chunk", [])
        events.extend(chunk)
        empty = 0 if chunk else empty + 1
        if "end" not in page or empty >= 3:
            return events
        assert page["end"] != frm, page
        frm = page["end"]
    raise AssertionError("pagination did not end")


async def test_TestMessagesOverFederation_history_before_join(pair, make_user, room_version):
    """Complement: TestMessagesOverFederation
    sytest: Remote room members can get room messages
    A user of A creates a public room (history_visibility shared) and sends 20 messages before any user
    of B is in it; a user of B joins by room id and pages /messages backwards (5 at a time): all 20, newest
    first, then the room's creation. A later incremental /sync on B has A's new message and none of the
    history."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await alice.create_room(
        room_version=room_version,
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}],
    )
    history = [tag("h") for _ in range(HISTORY)]
    for body in history:
        await alice.send_text(room_id, body)

    await join_remote(bob, room_id, pair.a.server_name)
    events = await page_back(bob, room_id, 5)
    bodies = [e["content"]["body"] for e in events if e.get("type") == "m.room.message" and "body" in e.get("content", {})]
    assert bodies == list(reversed(history)), f"B's /messages: {bodies}"
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event came twice"
    types = [e.get("type") for e in events]
    assert "m.room.create" in types, f"the room's creation is reached: {types}"
    first_message = types.index("m.room.message")
    assert types.index("m.room.create") > first_message, types

    since = await since_now(bob)
    late = tag("late")
    await alice.send_text(room_id, late)
    body, _ = await bob.sync_until(
        lambda b: late in str(b.get("rooms", {})), since=since, timeout_s=FED_WAIT_S, what="A's late message on B"
    )
    seen = str(body.get("rooms", {}))
    assert not [h for h in history if h in seen], "history came down /sync"
    await wait_timeline(bob, room_id, is_text(late, alice.user_id), since, "the late message in B's timeline")
