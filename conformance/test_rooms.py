"""Room creation. Complement: TestRoomCreate, TestRoomCreationReportsEventsToMyself, TestIsDirectFlagLocal."""

import pytest
from nio import RoomCreateResponse, RoomPreset, RoomVisibility

from helpers import CS, assert_status, joined, power_of, q, rand_localpart, timeline


async def test_TestRoomCreate_public_room(alice):
    """Complement: TestRoomCreate/POST /createRoom makes a public room
    sytest: POST /createRoom makes a public room (nio.AsyncClient.room_create)"""
    resp = await alice.nio.room_create(visibility=RoomVisibility.public, name="pub")
    assert isinstance(resp, RoomCreateResponse), resp
    room = resp.room_id
    vis = await alice.ok("GET", f"{CS}/directory/list/room/{q(room)}")
    assert vis["visibility"] == "public"
    # visibility public without preset means public_chat
    assert (await alice.state_content(room, "m.room.join_rules"))["join_rule"] == "public"


async def test_TestRoomCreate_private_room(alice):
    """Complement: TestRoomCreate/POST /createRoom makes a private room
    sytest: POST /createRoom makes a private room"""
    resp = await alice.nio.room_create(visibility=RoomVisibility.private)
    assert isinstance(resp, RoomCreateResponse), resp
    vis = await alice.ok("GET", f"{CS}/directory/list/room/{q(resp.room_id)}")
    assert vis["visibility"] == "private"
    assert (await alice.state_content(resp.room_id, "m.room.join_rules"))["join_rule"] == "invite"


async def test_TestRoomCreate_with_topic_and_name(alice):
    """Complement: TestRoomCreate/POST /createRoom makes a room with a topic
    Complement: TestRoomCreate/POST /createRoom makes a room with a name
    sytest: POST /createRoom makes a room with a name
    sytest: POST /createRoom makes a room with a topic"""
    resp = await alice.nio.room_create(name="Room Name", topic="Room Topic")
    assert isinstance(resp, RoomCreateResponse), resp
    assert (await alice.state_content(resp.room_id, "m.room.name"))["name"] == "Room Name"
    assert (await alice.state_content(resp.room_id, "m.room.topic"))["topic"] == "Room Topic"


async def test_TestRoomCreate_preset_private_chat(alice, bob):
    """Complement: TestRoomCreate (preset private_chat)
    private_chat: join_rules invite, history_visibility shared, guest_access can_join."""
    room = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    assert (await alice.state_content(room, "m.room.join_rules"))["join_rule"] == "invite"
    assert (await alice.state_content(room, "m.room.history_visibility"))["history_visibility"] == "shared"
    assert (await alice.state_content(room, "m.room.guest_access"))["guest_access"] == "can_join"
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "invite"
    pl = await alice.state_content(room, "m.room.power_levels")
    assert await power_of(alice, room, alice.user_id) >= 100
    assert await power_of(alice, room, bob.user_id) == pl.get("users_default", 0)


async def test_TestRoomCreate_preset_trusted_private_chat(alice, bob):
    """Complement: TestRoomCreate (preset trusted_private_chat)
    trusted_private_chat: like private_chat, and every invitee gets the creator's power level."""
    resp = await alice.nio.room_create(preset=RoomPreset.trusted_private_chat, invite=[bob.user_id])
    assert isinstance(resp, RoomCreateResponse), resp
    room = resp.room_id
    assert (await alice.state_content(room, "m.room.join_rules"))["join_rule"] == "invite"
    assert (await alice.state_content(room, "m.room.history_visibility"))["history_visibility"] == "shared"
    creator = await power_of(alice, room, alice.user_id)
    assert creator >= 100
    assert await power_of(alice, room, bob.user_id) == creator


async def test_TestRoomCreate_preset_public_chat(alice):
    """Complement: TestRoomCreate (preset public_chat)
    public_chat: join_rules public, history_visibility shared, no guest access."""
    room = await alice.create_room(preset="public_chat")
    assert (await alice.state_content(room, "m.room.join_rules"))["join_rule"] == "public"
    assert (await alice.state_content(room, "m.room.history_visibility"))["history_visibility"] == "shared"
    r = await alice.get_state(room, "m.room.guest_access")
    if r.status == 200:
        assert r.body["guest_access"] == "forbidden", r
    else:
        assert_status(r, 404, "M_NOT_FOUND")
    # preset without visibility: not in the directory
    vis = await alice.ok("GET", f"{CS}/directory/list/room/{q(room)}")
    assert vis["visibility"] == "private"


async def test_TestRoomCreate_initial_state(alice):
    """sytest: POST /createRoom with initial_state sets that state"""
    room = await alice.create_room(
        preset="private_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}},
            {"type": "com.example.custom", "state_key": "k1", "content": {"v": 1}},
        ],
    )
    assert (await alice.state_content(room, "m.room.history_visibility"))["history_visibility"] == "joined"
    assert await alice.state_content(room, "com.example.custom", "k1") == {"v": 1}


async def test_TestRoomCreate_power_level_content_override(alice, bob):
    """sytest: POST /createRoom with power_level_content_override
    The override is applied on top of the generated content (shallow merge)."""
    room = await alice.create_room(
        preset="public_chat",
        power_level_content_override={"users_default": 7, "events": {"m.room.topic": 99}},
    )
    pl = await alice.state_content(room, "m.room.power_levels")
    assert pl["users_default"] == 7
    assert pl["events"] == {"m.room.topic": 99}
    await bob.join(room)
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/state/m.room.topic/", json={"topic": "bob's"})
    assert_status(r, 403, "M_FORBIDDEN")
    await alice.put_state(room, "m.room.topic", {"topic": "alice's"})
    assert (await bob.state_content(room, "m.room.topic"))["topic"] == "alice's"


async def test_TestRoomCreate_creation_content(alice):
    """Complement: TestRoomCreate/POST /createRoom with creation content
    sytest: POST /createRoom with creation content"""
    room = await alice.create_room(creation_content={"m.federate": False, "com.example.extra": "x"})
    create = await alice.state_content(room, "m.room.create")
    assert create["m.federate"] is False
    assert create["com.example.extra"] == "x"
    assert isinstance(create["room_version"], str)


async def test_TestRoomCreate_room_version(alice):
    """Complement: TestRoomCreate/POST /createRoom creates a room with the given version
    sytest: POST /createRoom creates a room with the given version"""
    caps = (await alice.ok("GET", f"{CS}/capabilities"))["capabilities"]["m.room_versions"]
    stable = [v for v, s in caps["available"].items() if s == "stable"]
    version = next((v for v in stable if v != caps["default"]), caps["default"])
    room = await alice.create_room(room_version=version)
    assert (await alice.state_content(room, "m.room.create"))["room_version"] == version


async def test_TestRoomCreate_unknown_version(alice):
    """Complement: TestRoomCreate/POST /createRoom rejects attempts to create rooms with unknown versions
    sytest: POST /createRoom rejects attempts to create rooms with unknown versions"""
    r = await alice.req("POST", f"{CS}/createRoom", json={"room_version": "ahfgwjyerhgiuveisbruvybseyrugvi"})
    assert_status(r, 400, "M_UNSUPPORTED_ROOM_VERSION")


async def test_TestRoomCreate_numeric_version(alice):
    """Complement: TestRoomCreate/POST /createRoom rejects attempts to create rooms with numeric versions
    sytest: POST /createRoom rejects attempts to create rooms with numeric versions"""
    r = await alice.req("POST", f"{CS}/createRoom", json={"room_version": 1})
    assert_status(r, 400, "M_BAD_JSON")


async def test_TestRoomCreate_ignores_version_in_creation_content(alice):
    """Complement: TestRoomCreate/POST /createRoom ignores attempts to set the room version via creation_content
    sytest: POST /createRoom ignores attempts to set the room version via creation_content"""
    room = await alice.create_room(creation_content={"test": "azerty", "room_version": "abcdef"})
    create = await alice.state_content(room, "m.room.create")
    assert create["room_version"] != "abcdef"
    assert create["test"] == "azerty"


async def test_TestRoomCreate_with_alias(alice, server):
    """sytest: POST /createRoom with room_alias_name creates the alias and canonical alias"""
    name = rand_localpart("alias")
    room = await alice.create_room(room_alias_name=name)
    alias = f"#{name}:{server.server_name}"
    assert (await alice.state_content(room, "m.room.canonical_alias"))["alias"] == alias
    assert (await alice.ok("GET", f"{CS}/directory/room/{q(alias)}"))["room_id"] == room
    r = await alice.req("POST", f"{CS}/createRoom", json={"room_alias_name": name})
    assert_status(r, 400, "M_ROOM_IN_USE")


async def test_TestRoomCreate_with_invites(alice, bob):
    """Complement: TestRoomCreate/POST /createRoom makes a private room with invites
    sytest: POST /createRoom makes a private room with invites"""
    room = await alice.create_room(visibility="private", invite=[bob.user_id])
    _, ev = await bob.sync_until(lambda b: bool(b.get("rooms", {}).get("invite", {}).get(room)), what="invite")
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["membership"] == "invite"


async def test_TestIsDirectFlagLocal(alice, bob):
    """Complement: TestIsDirectFlagLocal
    is_direct puts is_direct: true on the invite member event the invitee sees."""
    resp = await alice.nio.room_create(is_direct=True, invite=[bob.user_id], preset=RoomPreset.trusted_private_chat)
    assert isinstance(resp, RoomCreateResponse), resp
    room = resp.room_id
    body, _ = await bob.sync_until(lambda b: room in b.get("rooms", {}).get("invite", {}), what="invite")
    events = body["rooms"]["invite"][room]["invite_state"]["events"]
    me = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert me and me[0]["content"]["membership"] == "invite" and me[0]["content"].get("is_direct") is True, events


async def test_TestRoomCreate_can_sync(alice):
    """Complement: TestRoomCreate/Can /sync newly created room
    Complement: TestRoomCreationReportsEventsToMyself
    sytest: Room creation reports m.room.create to myself
    sytest: Room creation reports m.room.member to myself"""
    room = await alice.create_room(name="synced")
    body, _ = await alice.sync_until(lambda b: joined(b, room), what="room in join section")
    r = joined(body, room)
    evs = timeline(body, room) + r.get("state", {}).get("events", [])
    types = {(e["type"], e.get("state_key")) for e in evs}
    assert ("m.room.create", "") in types, types
    assert ("m.room.member", alice.user_id) in types, types
    assert ("m.room.name", "") in types, types


async def test_TestRoomCreationReportsEventsToMyself_topic(alice):
    """Complement: TestRoomCreationReportsEventsToMyself/Setting room topic reports m.room.topic to myself
    sytest: Setting room topic reports m.room.topic to myself"""
    room = await alice.create_room()
    first = await alice.sync()
    await alice.put_state(room, "m.room.topic", {"topic": "new topic"})
    await alice.sync_until(
        lambda b: any(e["type"] == "m.room.topic" and e["content"].get("topic") == "new topic" for e in timeline(b, room)),
        since=first["next_batch"],
        what="m.room.topic in timeline",
    )


async def test_create_room_bad_invite_id(alice):
    """sytest: POST /createRoom with an invalid user ID in invite is rejected (400), no room is left joined."""
    before = (await alice.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
    r = await alice.req("POST", f"{CS}/createRoom", json={"invite": ["not-a-user-id"]})
    assert r.status == 400, r
    assert r.errcode in ("M_INVALID_PARAM", "M_BAD_JSON"), r
    after = (await alice.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
    assert sorted(before) == sorted(after)
