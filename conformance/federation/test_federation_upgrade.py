"""Room upgrades with a member on the other server: A (pair.a) creates and upgrades the room, B's user
sees the tombstone, follows it into the replacement room and talks there.
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md).
"""

from __future__ import annotations

import pytest

from fedhelpers import (
    FED_WAIT_S,
    create_and_join,
    is_member,
    join_remote,
    poll,
    send_and_see,
    since_now,
    tag,
    wait_invite,
    wait_timeline,
)
from helpers import CS, q

# (old version, new version): a replacement with a server-chosen room id, and one whose id is its
# create event's hash (v12).
UPGRADES = [("10", "11"), ("11", "12")]


def is_tombstone(ev: dict) -> bool:
    return ev.get("type") == "m.room.tombstone" and ev.get("state_key") == ""


async def upgrade(user, room_id: str, new_version: str) -> str:
    b = await user.ok("POST", f"{CS}/rooms/{q(room_id)}/upgrade", json={"new_version": new_version})
    assert isinstance(b.get("replacement_room"), str), b
    return b["replacement_room"]


async def follow(alice, bob, old: str, new_version: str) -> str:
    """alice upgrades old; bob's server delivers the tombstone; returns the replacement room."""
    b_since = await since_now(bob)
    new = await upgrade(alice, old, new_version)
    tombstone = await wait_timeline(bob, old, is_tombstone, b_since, "the tombstone on B")
    assert tombstone["content"]["replacement_room"] == new, tombstone
    assert tombstone["sender"] == alice.user_id, tombstone
    return new


async def test_TestRoomUpgrade_remote_member_follows_the_tombstone(pair, make_user):
    """sytest: /upgrade preserves room federation ability
    A public room with a member on B: after the upgrade B's user sees the tombstone, joins the
    replacement room through A (its create event names the old room), both talk there, and both
    rooms stay joined on B until the old one is left; the old room no longer takes B's messages.
    A Parvis user joins the replacement room by its id alone (the tombstone's sender's server)."""
    for old_version, new_version in UPGRADES:
        alice = await make_user(pair.a)
        bob = await make_user(pair.b)
        name = tag("room")
        old = await create_and_join(alice, bob, old_version, preset="public_chat", name=name)
        new = await follow(alice, bob, old, new_version)

        a_since = await since_now(alice)
        if pair.b.kind == "parvis":
            # No server given: Parvis asks the server of the tombstone's sender (a v12 id names none).
            await bob.join(new)
        else:
            await join_remote(bob, new, pair.a.server_name)
        await wait_timeline(alice, new, is_member(bob.user_id, "join"), a_since, "bob's join of the new room on A")
        create = await bob.state_content(new, "m.room.create")
        assert create["room_version"] == new_version, create
        assert create["predecessor"]["room_id"] == old, create
        assert (await bob.state_content(new, "m.room.name"))["name"] == name
        await send_and_see(alice, bob, new)
        await send_and_see(bob, alice, new)

        joined = (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
        assert sorted(joined) == sorted([old, new]), joined
        # The old room's levels were raised: ordinary members may no longer talk there.
        async def restricted():
            pl = await bob.state_content(old, "m.room.power_levels")
            return pl.get("events_default", 0) >= 50
        await poll(restricted, FED_WAIT_S, "the old room's restricted levels on B")
        r = await bob.req("PUT", f"{CS}/rooms/{q(old)}/send/m.room.message/{tag('t')}", json={"msgtype": "m.text", "body": "late"})
        assert r.status == 403, r
        await bob.leave(old)
        assert (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"] == [new]


async def test_TestRoomUpgrade_remote_member_of_a_private_room_is_invited(pair, make_user):
    """Parvis: upgrading a room that is not public invites its members, those of the other server
    included (over federation): B's user accepts the invite to the replacement room and talks there."""
    if pair.a.kind == "synapse":
        pytest.skip("Synapse invites nobody on upgrade (its clients offer to); Parvis does for rooms that are not public")
    for old_version, new_version in UPGRADES:
        alice = await make_user(pair.a)
        bob = await make_user(pair.b)
        old = await create_and_join(alice, bob, old_version, preset="private_chat")
        b_since = await since_now(bob)
        new = await follow(alice, bob, old, new_version)
        stripped = await wait_invite(bob, new, b_since)
        assert any(e.get("type") == "m.room.create" for e in stripped), stripped
        await join_remote(bob, new, pair.a.server_name)
        await send_and_see(bob, alice, new)
        await send_and_see(alice, bob, new)
