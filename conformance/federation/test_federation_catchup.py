"""Catch-up: server B is stopped while A keeps talking in a shared room; after B restarts, B's user sees the
missed messages (pushed again by A, with the gap filled through get_missing_events or backfill) within a
bounded time. This module has its own pair of servers, since it stops and restarts them.

A's sending side must keep a per-destination queue across B's absence (and across its own restart),
back off while B is down, and retry when B is back; B must fill the gap in the room graph.
"""

from __future__ import annotations

import time

import pytest

from fedhelpers import (
    CATCHUP_WAIT_S,
    create_and_join,
    is_text,
    message_bodies,
    poll,
    send_and_see,
    since_now,
    tag,
    wait_timeline,
)

MISSED = 5
NUDGE_EVERY_S = 3.0
ROOM_VERSION = "12"


@pytest.fixture(autouse=True)
def _both_running(pair):
    """A failed test may leave a server stopped: every test starts with both up."""
    for hs in pair:
        if not hs.running():
            hs.start()
    yield


def contains_in_order(bodies: list[str], wanted: list[str]) -> bool:
    idx = [bodies.index(w) for w in wanted if w in bodies]
    return len(idx) == len(wanted) and idx == sorted(idx)


async def _room_with_b_stopped(pair, make_user):
    """alice@A and bob@B share a room; B is then stopped and alice sends MISSED messages."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, ROOM_VERSION)
    await send_and_see(alice, bob, room_id)
    await send_and_see(bob, alice, room_id)
    b_since = await since_now(bob)

    pair.b.stop()
    missed = [f"missed-{i}-{tag()}" for i in range(MISSED)]
    for body in missed:
        await alice.send_text(room_id, body)
    return alice, bob, room_id, missed, b_since


async def _bob_sees(bob, room_id, wanted: list[str], timeout_s: float, before=None):
    """Poll B's /messages (which may backfill from A) until every wanted body is there, in order."""

    async def check():
        if before is not None:
            await before()
        bodies = await message_bodies(bob, room_id, limit=100)
        return contains_in_order(bodies, wanted) and bodies

    return await poll(check, timeout_s, f"{bob.user_id} on B to see {wanted} in order", interval_s=0.5)


async def test_catchup_origin_keeps_sending(pair, make_user):
    """Complement: TestNetworkPartitionOrdering (partition healed by restarting the remote server)
    sytest: Outbound federation can backfill events
    B is down while A's user keeps sending; after B restarts, A keeps sending (a message every few seconds,
    as in a live room) and nothing comes from B: A's retries must reach B, and B must fill the gap."""
    alice, bob, room_id, missed, b_since = await _room_with_b_stopped(pair, make_user)
    pair.b.start()
    t0 = time.monotonic()

    nudges: list[str] = []
    last_nudge = [0.0]

    async def nudge():
        if time.monotonic() - last_nudge[0] >= NUDGE_EVERY_S:
            body = f"nudge-{len(nudges)}-{tag()}"
            await alice.send_text(room_id, body)
            nudges.append(body)
            last_nudge[0] = time.monotonic()

    await _bob_sees(bob, room_id, missed, CATCHUP_WAIT_S, before=nudge)
    caught_up_s = time.monotonic() - t0
    # The live part arrives through /sync too, and B can still talk to A.
    await wait_timeline(bob, room_id, is_text(nudges[-1], alice.user_id), b_since, "the last nudge in B's /sync")
    await send_and_see(bob, alice, room_id)
    print(f"B caught up {MISSED} missed messages {caught_up_s:.1f}s after restart ({len(nudges)} nudges)")


async def test_catchup_restarted_server_talks_first(pair, make_user):
    """Complement: TestNetworkPartitionOrdering (partition healed by restarting the remote server)
    sytest: Outbound federation can backfill events
    B is down while A's user sends; after B restarts, only B's user talks. A must notice that B is back
    (an incoming request from B resets A's backoff), send what B missed, and B must fill the gap."""
    alice, bob, room_id, missed, b_since = await _room_with_b_stopped(pair, make_user)
    pair.b.start()
    t0 = time.monotonic()

    back = tag("back")
    a_since = await since_now(alice)
    await bob.send_text(room_id, back)
    await wait_timeline(alice, room_id, is_text(back, bob.user_id), a_since, "B's first message after restart on A")
    await _bob_sees(bob, room_id, missed, CATCHUP_WAIT_S)
    print(f"B caught up {MISSED} missed messages {time.monotonic() - t0:.1f}s after restart")


async def test_catchup_across_sender_restart(pair, make_user):
    """(no Complement/sytest equivalent: the outgoing queue survives a restart of the sender)
    B is down while A's user sends; then A itself restarts before B comes back. After B is up and talks,
    B must still get the messages A queued before its restart."""
    alice, bob, room_id, missed, b_since = await _room_with_b_stopped(pair, make_user)
    pair.a.restart()
    pair.b.start()
    t0 = time.monotonic()

    back = tag("back")
    a_since = await since_now(alice)
    await bob.send_text(room_id, back)
    await wait_timeline(alice, room_id, is_text(back, bob.user_id), a_since, "B's first message after restart on A")
    await _bob_sees(bob, room_id, missed, CATCHUP_WAIT_S)
    await send_and_see(alice, bob, room_id)
    print(f"B caught up {MISSED} missed messages {time.monotonic() - t0:.1f}s after restart")


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_remote_restart_keeps_room(pair, make_user, how):
    """sytest: Remote room members can get room messages (after the remote server restarted)
    B restarts (clean or crash) with nothing missed: the room, its members and its history are intact on B,
    and messages flow both ways again."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, ROOM_VERSION)
    first = await send_and_see(alice, bob, room_id)
    if how == "sigterm":
        pair.b.restart()
    else:
        pair.b.kill()
        pair.b.start()
    bodies = await message_bodies(bob, room_id)
    assert first["content"]["body"] in bodies, bodies
    await send_and_see(bob, alice, room_id)
    await send_and_see(alice, bob, room_id)
