"""Finding rooms and dates across servers: another server's room directory through our client API
(`/publicRooms?server=`), jump to date asking the room's other servers (`timestamp_to_event`), and the
room summary of a room we are not in (federation `hierarchy`).
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md).
"""

from __future__ import annotations

import asyncio

import pytest

from fedhelpers import join_remote, tag
from helpers import CS, assert_status, q


async def test_TestPublicRooms_of_another_server(pair, make_user):
    """sytest: Can get remote public room list
    sytest: Can paginate public room list (over federation, POST with a filter)
    A user of A publishes a room in A's directory; a user of B lists A's directory through B (GET, and POST
    with a search term that matches and one that does not)."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    name = tag("Directory room")
    room_id = await alice.create_room(preset="public_chat", visibility="public", name=name)
    server = pair.a.server_name

    listing = await bob.ok("GET", f"{CS}/publicRooms", params={"server": server, "limit": 50})
    assert room_id in [r["room_id"] for r in listing["chunk"]], listing
    entry = next(r for r in listing["chunk"] if r["room_id"] == room_id)
    assert entry["name"] == name and entry["num_joined_members"] == 1
    found = await bob.ok("POST", f"{CS}/publicRooms", params={"server": server}, json={"filter": {"generic_search_term": name}, "limit": 10})
    assert [r["room_id"] for r in found["chunk"]] == [room_id], found
    nothing = await bob.ok("POST", f"{CS}/publicRooms", params={"server": server}, json={"filter": {"generic_search_term": tag("nomatch")}})
    assert nothing["chunk"] == [], nothing


async def test_TestPublicRooms_of_an_unreachable_server(pair, make_user):
    """A server that cannot be reached: 502 (Synapse and Parvis alike), not our own list."""
    bob = await make_user(pair.b)
    r = await bob.req("GET", f"{CS}/publicRooms", params={"server": "unreachable.invalid"})
    assert r.status == 502, r


async def test_TestJumpToDateEndpoint_federation_looks_for_event_after_joining_room(pair, make_user):
    """Complement: TestJumpToDateEndpoint/parallel/federation/looking_forwards,_should_be_able_to_find_event_that_was_sent_before_we_joined
    Complement: TestJumpToDateEndpoint/parallel/federation/looking_backwards,_should_be_able_to_find_event_that_was_sent_before_we_joined
    A user of A talks in a public room before any user of B is in it; B's user, once joined, jumps to the time
    of the first message: B's local history starts at the join, so B asks A."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}],
    )
    first = await alice.send_text(room_id, tag("before 1"))
    await asyncio.sleep(0.05)
    second = await alice.send_text(room_id, tag("before 2"))
    ts1 = (await alice.ok("GET", f"{CS}/rooms/{q(room_id)}/event/{q(first)}"))["origin_server_ts"]
    ts2 = (await alice.ok("GET", f"{CS}/rooms/{q(room_id)}/event/{q(second)}"))["origin_server_ts"]
    await asyncio.sleep(0.05)
    await join_remote(bob, room_id, pair.a.server_name)

    path = f"/_matrix/client/v1/rooms/{q(room_id)}/timestamp_to_event"
    # Backwards first: B has no event at or before ts2 at all (the room's state came as outliers).
    backward = await bob.req("GET", path, params={"ts": ts2, "dir": "b"})
    assert_status(backward, 200)
    assert backward.body["event_id"] == second, (backward.body, first, second)
    forward = await bob.req("GET", path, params={"ts": ts1, "dir": "f"})
    assert_status(forward, 200)
    assert forward.body["event_id"] == first, (forward.body, first, second)


async def test_room_summary_of_a_room_on_another_server(pair, make_user):
    """MSC3266 / spec v1.15 room summary of a public room that no user of B is in, through B (Parvis as B:
    asked of A with the federation space hierarchy API); a private room of A is 404."""
    if pair.b.kind != "parvis":
        pytest.skip("the stable room summary path is Parvis's client API here")
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    name = tag("Summary room")
    room_id = await alice.create_room(preset="public_chat", name=name, topic="preview me")
    summary = await bob.ok("GET", f"/_matrix/client/v1/room_summary/{q(room_id)}", params={"via": pair.a.server_name})
    assert (summary["room_id"], summary["name"], summary["topic"]) == (room_id, name, "preview me"), summary
    assert summary["join_rule"] == "public" and summary["num_joined_members"] == 1
    assert summary["membership"] == "leave"
    private = await alice.create_room(preset="private_chat")
    r = await bob.req("GET", f"/_matrix/client/v1/room_summary/{q(private)}", params={"via": pair.a.server_name})
    assert_status(r, 404, "M_NOT_FOUND")
