"""Retention with a Synapse server in the room: a room on Parvis whose `m.room.retention` makes events
expire after 10 s. Parvis's clients stop seeing the expired messages (Synapse's and its own), its purge job
(every 2 s in this suite, see homeservers.py) deletes them, and the room keeps working both ways afterwards:
new events from Synapse arrive (their prev_events are purged skeletons on Parvis) and Parvis's new events reach
Synapse. Synapse itself has no retention configured here, so it keeps its copies.
"""

from __future__ import annotations

import asyncio

import pytest

from fedhelpers import create_and_join, message_bodies, send_and_see, tag
from helpers import q

LIFETIME_MS = 10_000


async def test_retention_purge_keeps_the_room_working_with_synapse(pair, make_user):
    parvis, synapse = (pair.a, pair.b) if pair.a.kind == "parvis" else (pair.b, pair.a)
    if parvis.kind != "parvis" or synapse.kind != "synapse":
        pytest.skip("needs a Parvis and a Synapse server")
    alice = await make_user(parvis)
    bob = await make_user(synapse)
    # alice's server creates the room when it is server A; either way alice sets the policy.
    if pair.a is parvis:
        room_id = await create_and_join(alice, bob, "12")
    else:
        room_id = await create_and_join(bob, alice, "12")
        await bob.ok(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.power_levels/",
            json={"users": {alice.user_id: 100}},  # room version 12: the creator is not listed
        )
        await asyncio.sleep(1)
    await alice.ok(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.retention/",
        json={"max_lifetime": LIFETIME_MS},
    )
    old_from_synapse, old_from_parvis = tag("old-synapse"), tag("old-parvis")
    await send_and_see(bob, alice, room_id, old_from_synapse)
    await send_and_see(alice, bob, room_id, old_from_parvis)
    assert {old_from_synapse, old_from_parvis} <= set(await message_bodies(alice, room_id))

    # Expired (and purged by the jobs running every 2 s).
    await asyncio.sleep(LIFETIME_MS / 1000 + 4)
    seen = set(await message_bodies(alice, room_id))
    assert not {old_from_synapse, old_from_parvis} & seen, seen

    # The room keeps working both ways.
    await send_and_see(bob, alice, room_id, tag("new-synapse"))
    await send_and_see(alice, bob, room_id, tag("new-parvis"))
    # Synapse keeps its own copies (its retention is off).
    assert old_from_parvis in set(await message_bodies(bob, room_id, limit=100))
