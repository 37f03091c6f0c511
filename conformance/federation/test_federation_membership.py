"""Restricted joins and space hierarchies between two homeservers (room version 10).

A (pair.a) creates the rooms, B (pair.b) is the remote side. Docstrings name the matching Complement
tests, one per line (as in ../README.md).
"""

from __future__ import annotations

from fedhelpers import (
    FED_WAIT_S,
    is_member,
    is_text,
    join_remote,
    poll,
    send_and_see,
    since_now,
    tag,
    wait_invite,
    wait_timeline,
)
from helpers import CS, User, q

VERSION = "10"


def join_rules(rule: str, allowed: list[str]) -> dict:
    return {
        "type": "m.room.join_rules",
        "state_key": "",
        "content": {"join_rule": rule, "allow": [{"type": "m.room_membership", "room_id": r} for r in allowed]},
    }


async def test_TestRestrictedRoomsRemoteJoin(pair, make_user):
    """Complement: TestRestrictedRoomsRemoteJoin
    Complement: TestRestrictedRoomsRemoteJoinLocalUser (the resident side)
    A user of B may join a restricted room of A only once it is in the allowed room: A (the resident)
    fills `join_authorised_via_users_server` with its own member and signs the join; both sides then
    share the room."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    allowed = await alice.create_room(room_version=VERSION, preset="public_chat")
    room = await alice.create_room(
        room_version=VERSION, preset="private_chat", initial_state=[join_rules("restricted", [allowed])]
    )

    # Not in the allowed room yet: refused.
    r = await bob.req("POST", f"{CS}/join/{q(room)}", params={"server_name": pair.a.server_name}, json={})
    assert r.status == 403, r

    a_since = await since_now(alice)
    await join_remote(bob, allowed, pair.a.server_name)
    await wait_timeline(alice, allowed, is_member(bob.user_id, "join"), a_since, "bob's join of the allowed room on A")

    a_since = await since_now(alice)
    b_since = await since_now(bob)
    await join_remote(bob, room, pair.a.server_name)
    authorised = is_member(bob.user_id, "join", join_authorised_via_users_server=alice.user_id)
    await wait_timeline(alice, room, authorised, a_since, "bob's restricted join on A, authorised by alice")
    await wait_timeline(bob, room, authorised, b_since, "bob's restricted join on B, authorised by alice")
    await send_and_see(bob, alice, room)
    await send_and_see(alice, bob, room)


async def test_TestRestrictedRoomsLocalJoinAfterRemoteMembership(pair, make_user):
    """Complement: TestRestrictedRoomsLocalJoin (allowed room of the other server)
    A restricted room of B allows the members of a room of A that B also follows: a user of A who is in
    that room joins B's restricted room through B."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    allowed = await alice.create_room(room_version=VERSION, preset="public_chat")
    await join_remote(bob, allowed, pair.a.server_name)
    room = await bob.create_room(
        room_version=VERSION, preset="private_chat", initial_state=[join_rules("restricted", [allowed])]
    )
    b_since = await since_now(bob)
    await join_remote(alice, room, pair.b.server_name)
    authorised = is_member(alice.user_id, "join", join_authorised_via_users_server=bob.user_id)
    await wait_timeline(bob, room, authorised, b_since, "alice's restricted join on B, authorised by bob")
    await send_and_see(alice, bob, room)


async def test_TestClientSpacesSummary(pair, make_user):
    """Complement: TestClientSpacesSummary
    Complement: TestFederatedClientSpaces
    A space of A has a public child on A, a private child on A and a public child on B: A's user sees the
    space and the two public children (B's asked over federation), in the children's order, not the
    private one; suggested_only keeps the suggested child; B's user, in the space, gets A's child from A."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    carol = await make_user(pair.a)
    space = await alice.create_room(
        room_version=VERSION, preset="public_chat", name=tag("space"), creation_content={"type": "m.space"}
    )
    a_child = await alice.create_room(room_version=VERSION, preset="public_chat", name="a child")
    private = await alice.create_room(room_version=VERSION, preset="private_chat", name="private")
    b_child = await bob.create_room(room_version=VERSION, preset="public_chat", name="b child")
    children = ((b_child, pair.b.server_name, "a", False), (a_child, pair.a.server_name, "b", True),
                (private, pair.a.server_name, "c", False))
    for child, via, order, suggested in children:
        await alice.put_state(space, "m.space.child", {"via": [via], "order": order, "suggested": suggested}, child)
    await carol.join(space)

    async def rooms_of(user, **params):
        r = await user.req("GET", f"/_matrix/client/v1/rooms/{q(space)}/hierarchy", params=params)
        assert r.status == 200, r
        return [room["room_id"] for room in r.body["rooms"]], r.body

    ids, body = await rooms_of(carol)
    assert ids == [space, b_child, a_child], body
    by_id = {room["room_id"]: room for room in body["rooms"]}
    assert by_id[b_child].get("name") == "b child", body
    assert by_id[space].get("room_type") == "m.space", body
    assert len(by_id[space]["children_state"]) == 3, body
    ids, body = await rooms_of(carol, suggested_only="true")
    assert ids == [space, a_child], body

    # Paginated one by one, the same rooms.
    seen, params = [], {"limit": "1"}
    for _ in range(5):
        page_ids, page = await rooms_of(carol, **params)
        seen += page_ids
        if "next_batch" not in page:
            break
        params = {"limit": "1", "from": page["next_batch"]}
    assert seen == [space, b_child, a_child], seen

    # B's user joins the space: B follows its children, asking A for A's.
    await join_remote(bob, space, pair.a.server_name)

    async def bobs_view():
        ids, body = await rooms_of(bob)
        return ids == [space, b_child, a_child] and body

    await poll(bobs_view, FED_WAIT_S, "the space's hierarchy as B's user sees it")


async def test_TestRestrictedRoomsRemoteJoinLocalUser(pair, make_user):
    """Complement: TestRestrictedRoomsRemoteJoinLocalUser
    A is in a restricted room but none of its users may invite any more (alice stepped down; bob of B
    may): a user of A, in the allowed room, joins through B, which authorises the join."""
    alice = await make_user(pair.a)
    erin = await make_user(pair.a)
    bob = await make_user(pair.b)
    allowed = await alice.create_room(room_version=VERSION, preset="public_chat")
    await join_remote(bob, allowed, pair.a.server_name)
    room = await alice.create_room(
        room_version=VERSION,
        preset="private_chat",
        initial_state=[join_rules("restricted", [allowed])],
        power_level_content_override={"invite": 50, "users": {alice.user_id: 100, bob.user_id: 100}},
    )
    await join_remote(bob, room, pair.a.server_name)
    levels = await alice.state_content(room, "m.room.power_levels")
    levels["users"][alice.user_id] = 0
    b_since = await since_now(bob)
    await alice.put_state(room, "m.room.power_levels", levels)

    def demoted(ev):
        return ev.get("type") == "m.room.power_levels" and ev["content"]["users"].get(alice.user_id) == 0

    await wait_timeline(bob, room, demoted, b_since, "alice's step down on B")
    b_since = await since_now(bob)
    await erin.join(allowed)
    await wait_timeline(bob, allowed, is_member(erin.user_id, "join"), b_since, "erin's join of the allowed room on B")
    b_since = await since_now(bob)
    r = await erin.req("POST", f"{CS}/join/{q(room)}", params={"server_name": pair.b.server_name}, json={})
    assert r.status == 200, r
    authorised = is_member(erin.user_id, "join", join_authorised_via_users_server=bob.user_id)
    await wait_timeline(bob, room, authorised, b_since, "erin's join on B, authorised by bob")


async def left_room_moving_on(pair, alice: User, bob: User) -> str:
    """A public room of A that bob (of B, its only user there) joined and left; then A goes on without B:
    messages and a new name that B never receives."""
    room = await alice.create_room(room_version=VERSION, preset="public_chat", name="before")
    await join_remote(bob, room, pair.a.server_name)
    await send_and_see(alice, bob, room)
    await send_and_see(bob, alice, room)
    a_since = await since_now(alice)
    b_since = await since_now(bob)
    await bob.leave(room)
    await wait_timeline(alice, room, is_member(bob.user_id, "leave"), a_since, "bob's leave on A")
    await wait_timeline(bob, room, is_member(bob.user_id, "leave"), b_since, "bob's leave on B", section="leave")
    for _ in range(3):
        await alice.send_text(room, tag("while-away"))
    await alice.put_state(room, "m.room.name", {"name": "after"})
    return room


async def check_back_in(pair, alice: User, bob: User, room: str, a_since: str, b_since: str) -> None:
    """bob's join seen on both sides, B's state is A's, messages both ways in both /syncs."""
    await wait_timeline(alice, room, is_member(bob.user_id, "join"), a_since, "bob's rejoin on A")
    await wait_timeline(bob, room, is_member(bob.user_id, "join"), b_since, "bob's rejoin in B's /sync (join section)")
    name = await bob.state_content(room, "m.room.name")
    assert name.get("name") == "after", name
    await send_and_see(alice, bob, room)
    await send_and_see(bob, alice, room)
    body = tag("back")
    await alice.send_text(room, body)
    await wait_timeline(bob, room, is_text(body, alice.user_id), b_since, "A's message in B's /sync since before the rejoin")


async def test_remote_rejoin_after_last_local_member_left(pair, make_user):
    """Complement: TestCumulativeJoinLeaveJoinSync (over federation: join, leave, join again)
    A user of B, the only one of B in A's room, leaves; A goes on (messages, a new name); the user joins
    again through A: B takes A's current state (a fresh join, not an append to its stale copy), messages
    flow both ways and B's /sync shows the room joined."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room = await left_room_moving_on(pair, alice, bob)
    a_since = await since_now(alice)
    b_since = await since_now(bob)
    await join_remote(bob, room, pair.a.server_name)
    await check_back_in(pair, alice, bob, room, a_since, b_since)


async def test_remote_reinvite_after_last_local_member_left(pair, make_user):
    """Complement: TestTentativeEventualJoiningAfterRejecting (over federation, in a room B has left)
    A user of B, the only one of B in A's room, leaves; A goes on; A invites the user again: B shows the
    invite (with A's current name), the user rejects it (through A), is invited once more and joins;
    messages flow both ways."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room = await left_room_moving_on(pair, alice, bob)

    b_since = await since_now(bob)
    await alice.invite(room, bob.user_id)
    state = await wait_invite(bob, room, since=b_since)
    assert any(e.get("type") == "m.room.name" and e.get("content", {}).get("name") == "after" for e in state), state
    a_since = await since_now(alice)
    await bob.leave(room)
    await wait_timeline(alice, room, is_member(bob.user_id, "leave"), a_since, "bob's rejection on A")

    b_since = await since_now(bob)
    await alice.invite(room, bob.user_id)
    await wait_invite(bob, room, since=b_since)
    a_since = await since_now(alice)
    b_since = await since_now(bob)
    await join_remote(bob, room, pair.a.server_name)
    await check_back_in(pair, alice, bob, room, a_since, b_since)
