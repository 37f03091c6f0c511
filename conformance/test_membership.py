"""Join, invite, leave, forget, kick, ban, unban; members lists.
Complement: TestRoomsInvite, TestRoomForget, TestCannotKickNonPresentUser, TestCannotKickLeftUser,
TestNotPresentUserCannotBanOthers, TestGetRoomMembers, TestGetRoomMembersAtPoint, TestGetFilteredRoomMembers,
TestMembersLocal, TestJoinViaRoomIDAndServerName (local part)."""

from nio import (
    JoinedMembersResponse,
    JoinedRoomsResponse,
    JoinResponse,
    RoomBanResponse,
    RoomForgetResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomUnbanResponse,
)

from helpers import CS, assert_status, invited, joined, left, q, rand_localpart, timeline


def membership_of(events, user_id):
    for e in events:
        if e["type"] == "m.room.member" and e["state_key"] == user_id:
            return e["content"]["membership"]
    return None


async def test_join_by_room_id(alice, bob):
    """sytest: POST /rooms/:room_id/join can join a room (nio.AsyncClient.join)"""
    room = await alice.create_room(preset="public_chat")
    resp = await bob.nio.join(room)
    assert isinstance(resp, JoinResponse), resp
    assert resp.room_id == room
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "join"


async def test_join_by_room_id_path(alice, bob):
    """sytest: POST /rooms/:room_id/join can join a room (the /rooms/{roomId}/join form)"""
    room = await alice.create_room(preset="public_chat")
    body = await bob.ok("POST", f"{CS}/rooms/{q(room)}/join", json={})
    assert body["room_id"] == room
    assert room in (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]


async def test_join_by_alias(alice, bob, server):
    """sytest: POST /join/:room_alias can join a room"""
    name = rand_localpart("join")
    room = await alice.create_room(preset="public_chat", room_alias_name=name)
    resp = await bob.nio.join(f"#{name}:{server.server_name}")
    assert isinstance(resp, JoinResponse), resp
    assert resp.room_id == room
    assert (await bob.state_content(room, "m.room.member", bob.user_id))["membership"] == "join"


async def test_join_unknown_alias(bob, server):
    """sytest: POST /join/:room_alias with an unknown alias is 404"""
    r = await bob.req("POST", f"{CS}/join/{q('#nope-' + rand_localpart() + ':' + server.server_name)}", json={})
    assert_status(r, 404, "M_NOT_FOUND")


async def test_join_twice_is_idempotent(alice, bob):
    """Complement: TestRoomCreationReportsEventsToMyself/Joining room twice is idempotent
    sytest: Joining room twice is idempotent"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    ev1 = (await bob.ok("GET", f"{CS}/rooms/{q(room)}/state"))
    m1 = [e for e in ev1 if e["type"] == "m.room.member" and e["state_key"] == bob.user_id][0]
    await bob.join(room)
    ev2 = (await bob.ok("GET", f"{CS}/rooms/{q(room)}/state"))
    m2 = [e for e in ev2 if e["type"] == "m.room.member" and e["state_key"] == bob.user_id][0]
    assert m2["content"]["membership"] == "join"
    assert m1["event_id"] == m2["event_id"], "a second identical join creates no new member event"


async def test_TestRoomsInvite_invite_only(alice, bob):
    """Complement: TestRoomsInvite/Can invite users to invite-only rooms
    sytest: Can invite users to invite-only rooms"""
    room = await alice.create_room(preset="private_chat")
    resp = await alice.nio.room_invite(room, bob.user_id)
    assert isinstance(resp, RoomInviteResponse), resp
    await bob.sync_until(lambda b: invited(b, room), what="invite")
    await bob.join(room)
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "join"


async def test_TestRoomsInvite_uninvited_cannot_join(alice, bob):
    """Complement: TestRoomsInvite/Uninvited users cannot join the room
    sytest: Uninvited users cannot join the room"""
    room = await alice.create_room(preset="private_chat")
    r = await bob.req("POST", f"{CS}/join/{q(room)}", json={})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await alice.get_state(room, "m.room.member", bob.user_id)
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestRoomsInvite_reject(alice, bob):
    """Complement: TestRoomsInvite/Invited user can reject invite
    Complement: TestLeaveEventInviteRejection
    sytest: Invited user can reject invite"""
    room = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    body, _ = await bob.sync_until(lambda b: invited(b, room), what="invite")
    resp = await bob.nio.room_leave(room)
    assert isinstance(resp, RoomLeaveResponse), resp
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "leave"
    await bob.sync_until(lambda b: left(b, room), since=body["next_batch"], what="rejected invite in leave section")


async def test_TestRoomsInvite_see_room_metadata(alice, bob):
    """Complement: TestRoomsInvite/Invited user can see room metadata
    sytest: Invited user can see room metadata
    invite_state carries stripped state (m.room.name, m.room.join_rules, the invite) for the invitee."""
    room = await alice.create_room(preset="private_chat", name="Invite Meta")
    await alice.invite(room, bob.user_id)
    body, _ = await bob.sync_until(lambda b: invited(b, room), what="invite")
    events = invited(body, room)["invite_state"]["events"]
    by_type = {e["type"]: e for e in events}
    assert by_type["m.room.name"]["content"]["name"] == "Invite Meta"
    assert by_type["m.room.join_rules"]["content"]["join_rule"] == "invite"
    assert membership_of(events, bob.user_id) == "invite"
    for e in events:
        assert set(e) >= {"type", "state_key", "content", "sender"}, e


async def test_invite_non_member_forbidden(alice, bob, charlie):
    """sytest: Non-members cannot invite (403 M_FORBIDDEN); nothing changes."""
    room = await alice.create_room(preset="private_chat")
    r = await bob.req("POST", f"{CS}/rooms/{q(room)}/invite", json={"user_id": charlie.user_id})
    assert_status(r, 403, "M_FORBIDDEN")
    assert_status(await alice.get_state(room, "m.room.member", charlie.user_id), 404, "M_NOT_FOUND")


async def test_invite_already_joined(alice, bob):
    """sytest: Inviting a user already in the room is 403 M_FORBIDDEN"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    r = await alice.req("POST", f"{CS}/rooms/{q(room)}/invite", json={"user_id": bob.user_id})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "join"


async def test_leave_room(alice, bob):
    """sytest: Can leave a room; a left user cannot send (403)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.leave(room)
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "leave"
    assert room not in (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/t1", json={"msgtype": "m.text", "body": "x"})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestRoomForget_cannot_forget_joined(alice):
    """Complement: TestRoomForget/Can't forget room you're still in
    sytest: Can't forget room you're still in"""
    room = await alice.create_room()
    r = await alice.req("POST", f"{CS}/rooms/{q(room)}/forget", json={})
    assert_status(r, 400, "M_UNKNOWN")


async def test_TestRoomForget_forgotten_not_in_sync(alice, bob):
    """Complement: TestRoomForget/Forgotten room messages cannot be paginated
    Complement: TestRoomForget/Forgetting room does not show up in v2 initial /sync
    sytest: Forgotten room messages cannot be paginated
    sytest: Forgetting room does not show up in v2 /sync"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.send_text(room, "before forget")
    await bob.leave(room)
    flt = {"room": {"include_leave": True}}
    body = await bob.sync(filter=flt)
    assert left(body, room) is not None, "left room appears in initial sync with include_leave"
    resp = await bob.nio.room_forget(room)
    assert isinstance(resp, RoomForgetResponse), resp
    # (a different filter than the first sync, so no server-side response cache can answer)
    body = await bob.sync(filter={"room": {"include_leave": True, "timeline": {"limit": 3}}})
    assert left(body, room) is None and joined(body, room) is None
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/messages", params={"dir": "b"})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestRoomForget_rejoin(alice, bob):
    """Complement: TestRoomForget/Can re-join room if re-invited
    sytest: Can re-join room if re-invited"""
    room = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    await bob.join(room)
    await bob.leave(room)
    await bob.ok("POST", f"{CS}/rooms/{q(room)}/forget", json={})
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    await alice.send_text(room, "welcome back")
    chunk = (await bob.messages(room, limit=5))["chunk"]
    assert any(e.get("content", {}).get("body") == "welcome back" for e in chunk)


async def test_kick(alice, bob):
    """sytest: Can kick a user; the kicked user sees the leave with the reason (nio.AsyncClient.room_kick)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    since = (await bob.sync())["next_batch"]
    resp = await alice.nio.room_kick(room, bob.user_id, reason="bye")
    assert isinstance(resp, RoomKickResponse), resp
    member = await alice.state_content(room, "m.room.member", bob.user_id)
    assert member["membership"] == "leave" and member.get("reason") == "bye"
    body, _ = await bob.sync_until(lambda b: left(b, room), since=since, what="kick in leave section")
    evs = timeline(body, room, "leave")
    assert membership_of(evs, bob.user_id) == "leave", evs


async def test_kick_requires_power(alice, bob, charlie):
    """sytest: A user without power cannot kick (403); membership unchanged."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await charlie.join(room)
    r = await bob.req("POST", f"{CS}/rooms/{q(room)}/kick", json={"user_id": charlie.user_id})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.member", charlie.user_id))["membership"] == "join"


async def test_TestCannotKickNonPresentUser(alice, bob):
    """Complement: TestCannotKickNonPresentUser
    sytest: Can't kick a user that isn't in the room"""
    room = await alice.create_room(preset="public_chat")
    r = await alice.req("POST", f"{CS}/rooms/{q(room)}/kick", json={"user_id": bob.user_id, "reason": "x"})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestCannotKickLeftUser(alice, bob):
    """Complement: TestCannotKickLeftUser"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.leave(room)
    r = await alice.req("POST", f"{CS}/rooms/{q(room)}/kick", json={"user_id": bob.user_id, "reason": "x"})
    assert_status(r, 403, "M_FORBIDDEN")
    member = await alice.state_content(room, "m.room.member", bob.user_id)
    assert member["membership"] == "leave" and "reason" not in member


async def test_ban_unban(alice, bob):
    """sytest: Banned user is kicked and may not rejoin until unbanned
    (nio.AsyncClient.room_ban / room_unban)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    resp = await alice.nio.room_ban(room, bob.user_id, reason="spam")
    assert isinstance(resp, RoomBanResponse), resp
    member = await alice.state_content(room, "m.room.member", bob.user_id)
    assert member["membership"] == "ban" and member.get("reason") == "spam"
    r = await bob.req("POST", f"{CS}/join/{q(room)}", json={})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await alice.req("POST", f"{CS}/rooms/{q(room)}/invite", json={"user_id": bob.user_id})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "ban"
    resp = await alice.nio.room_unban(room, bob.user_id)
    assert isinstance(resp, RoomUnbanResponse), resp
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "leave"
    await bob.join(room)


async def test_ban_non_member(alice, bob):
    """sytest: Can ban a user who is not in the room"""
    room = await alice.create_room(preset="public_chat")
    await alice.ok("POST", f"{CS}/rooms/{q(room)}/ban", json={"user_id": bob.user_id})
    r = await bob.req("POST", f"{CS}/join/{q(room)}", json={})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestNotPresentUserCannotBanOthers(alice, bob, charlie):
    """Complement: TestNotPresentUserCannotBanOthers"""
    room = await alice.create_room(preset="public_chat")
    await charlie.join(room)
    # bob gets power in the room but never joins
    pl = await alice.state_content(room, "m.room.power_levels")
    pl.setdefault("users", {})[bob.user_id] = 100
    await alice.put_state(room, "m.room.power_levels", pl)
    r = await bob.req("POST", f"{CS}/rooms/{q(room)}/ban", json={"user_id": charlie.user_id})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.member", charlie.user_id))["membership"] == "join"


async def test_unban_requires_power(alice, bob, charlie):
    """sytest: A user without ban power cannot unban (403)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.ok("POST", f"{CS}/rooms/{q(room)}/ban", json={"user_id": charlie.user_id})
    r = await bob.req("POST", f"{CS}/rooms/{q(room)}/unban", json={"user_id": charlie.user_id})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.member", charlie.user_id))["membership"] == "ban"


async def test_TestGetRoomMembers(alice, bob):
    """Complement: TestGetRoomMembers
    sytest: GET /rooms/:room_id/members fetches the room members"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    body = await alice.ok("GET", f"{CS}/rooms/{q(room)}/members")
    members = {e["state_key"]: e["content"]["membership"] for e in body["chunk"]}
    assert members == {alice.user_id: "join", bob.user_id: "join"}
    for e in body["chunk"]:
        assert e["type"] == "m.room.member" and e["room_id"] == room and e["event_id"].startswith("$")


async def test_TestGetRoomMembersAtPoint(alice, bob):
    """Complement: TestGetRoomMembersAtPoint
    sytest: Can get rooms/{roomId}/members at a given point"""
    room = await alice.create_room(preset="public_chat")
    await alice.send_text(room, "before bob")
    body = await alice.sync(filter={"room": {"timeline": {"limit": 1}}})
    token = joined(body, room)["timeline"]["prev_batch"]
    await bob.join(room)
    await bob.send_text(room, "bob here")
    at = await alice.ok("GET", f"{CS}/rooms/{q(room)}/members", params={"at": token})
    assert {e["state_key"] for e in at["chunk"]} == {alice.user_id}
    now = await alice.ok("GET", f"{CS}/rooms/{q(room)}/members")
    assert {e["state_key"] for e in now["chunk"]} == {alice.user_id, bob.user_id}


async def test_TestGetFilteredRoomMembers(alice, bob, charlie):
    """Complement: TestGetFilteredRoomMembers/membership/join
    Complement: TestGetFilteredRoomMembers/membership/leave
    Complement: TestGetFilteredRoomMembers/not_membership
    sytest: Can filter rooms/{roomId}/members"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await charlie.join(room)
    await charlie.leave(room)
    path = f"{CS}/rooms/{q(room)}/members"
    j = await alice.ok("GET", path, params={"membership": "join"})
    assert {e["state_key"] for e in j["chunk"]} == {alice.user_id, bob.user_id}
    lv = await alice.ok("GET", path, params={"membership": "leave"})
    assert {e["state_key"] for e in lv["chunk"]} == {charlie.user_id}
    nl = await alice.ok("GET", path, params={"not_membership": "leave"})
    assert {e["state_key"] for e in nl["chunk"]} == {alice.user_id, bob.user_id}
    nj = await alice.ok("GET", path, params={"not_membership": "join"})
    assert {e["state_key"] for e in nj["chunk"]} == {charlie.user_id}


async def test_members_non_member_forbidden(alice, bob):
    """sytest: /members of a room the user was never in is 403 M_FORBIDDEN"""
    room = await alice.create_room(preset="private_chat")
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/members")
    assert_status(r, 403, "M_FORBIDDEN")


async def test_joined_members(alice, bob):
    """sytest: /joined_members return joined members (nio.AsyncClient.joined_members)"""
    await alice.ok("PUT", f"{CS}/profile/{q(alice.user_id)}/displayname", json={"displayname": "Alice J"})
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    resp = await alice.nio.joined_members(room)
    assert isinstance(resp, JoinedMembersResponse), resp
    assert {m.user_id for m in resp.members} == {alice.user_id, bob.user_id}
    raw = await alice.ok("GET", f"{CS}/rooms/{q(room)}/joined_members")
    assert raw["joined"][alice.user_id]["display_name"] == "Alice J"
    await bob.leave(room)
    raw = await alice.ok("GET", f"{CS}/rooms/{q(room)}/joined_members")
    assert set(raw["joined"]) == {alice.user_id}


async def test_joined_rooms(alice, bob):
    """sytest: /joined_rooms returns only joined rooms (nio.AsyncClient.joined_rooms)"""
    r1 = await alice.create_room(preset="public_chat")
    r2 = await bob.create_room(preset="private_chat", invite=[alice.user_id])
    r3 = await bob.create_room(preset="public_chat")
    await alice.join(r3)
    await alice.leave(r3)
    resp = await alice.nio.joined_rooms()
    assert isinstance(resp, JoinedRoomsResponse), resp
    assert set(resp.rooms) == {r1}
    assert r2 not in resp.rooms
