"""Partial-state ("faster") joins (MSC3706/MSC3902) between two homeservers.

A hosts a public, named room with MEMBERS joined members (env PARTIAL_STATE_MEMBERS, default 60 so that the
suite stays short; bench/federation_join.py measures 1,000 and 10,000); a user of B joins it. A joining
Parvis asks `send_join` with `omit_members=true` and answers `/join` before it knows the members (a joining
Synapse does the same), so with either server on either side: the joiner sends and receives at once,
including from a member it does not know yet, and lists the whole membership after the resync.
"""

from __future__ import annotations

import os

from fedhelpers import FED_WAIT_S, is_member, join_remote, poll, send_and_see, since_now, wait_timeline
from helpers import CS, q

MEMBERS = int(os.environ.get("PARTIAL_STATE_MEMBERS", "60"))


async def joined_count(user, room_id: str) -> int:
    r = await user.req("GET", f"{CS}/rooms/{q(room_id)}/joined_members")
    if r.status != 200:
        return 0
    return len(r.body.get("joined", {}))


async def test_TestPartialStateJoin(pair, make_user):
    """Complement: TestPartialStateJoin
    Complement: TestSendJoinPartialStateResponse (the resident side, when B is the joiner that asks it)
    B's user joins A's big room: the join is answered, B's user and A's members talk at once (a member B
    has not heard of speaks first), and B lists every member once the full state has arrived."""
    alice = await make_user(pair.a)
    room = await alice.create_room(room_version="10", preset="public_chat", name="company-wide")
    members = []
    for _ in range(MEMBERS):
        m = await make_user(pair.a)
        await m.ok("POST", f"{CS}/join/{q(room)}", json={})
        members.append(m)
    bob = await make_user(pair.b)

    a_since = await since_now(alice)
    await join_remote(bob, room, pair.a.server_name)
    await wait_timeline(alice, room, is_member(bob.user_id, "join"), a_since, "bob's join on A")
    # A member whose membership B was not sent speaks; then bob.
    await send_and_see(members[MEMBERS // 2], bob, room)
    await send_and_see(bob, alice, room)
    # The whole membership once B has the full state: alice, the members and bob.
    await poll(
        lambda: _has(bob, room, MEMBERS + 2),
        FED_WAIT_S * 4,
        f"{MEMBERS + 2} joined members on B",
    )
    # Still talking both ways after the resync.
    await send_and_see(members[0], bob, room)
    await send_and_see(bob, members[-1], room)


async def _has(user, room_id: str, want: int) -> bool:
    return await joined_count(user, room_id) == want
