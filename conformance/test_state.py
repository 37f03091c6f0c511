"""Room state get/put. Complement: TestRoomState, TestPowerLevels, TestRoomCreationReportsEventsToMyself."""

from nio import RoomGetStateEventResponse, RoomGetStateResponse, RoomPutStateResponse

from helpers import CS, assert_status, q


async def test_TestRoomState_member(alice):
    """Complement: TestRoomState/GET /rooms/:room_id/state/m.room.member/:user_id fetches my membership
    sytest: GET /rooms/:room_id/state/m.room.member/:user_id fetches my membership"""
    room = await alice.create_room()
    body = await alice.state_content(room, "m.room.member", alice.user_id)
    assert body["membership"] == "join"


async def test_TestRoomState_member_event_format(alice):
    """Complement: TestRoomState/GET /rooms/:room_id/state/m.room.member/:user_id?format=event fetches my membership event"""
    room = await alice.create_room()
    r = await alice.req(
        "GET", f"{CS}/rooms/{q(room)}/state/m.room.member/{q(alice.user_id)}", params={"format": "event"}
    )
    assert_status(r, 200)
    assert r.body["type"] == "m.room.member" and r.body["state_key"] == alice.user_id
    assert r.body["content"]["membership"] == "join" and r.body["event_id"].startswith("$")


async def test_TestRoomState_power_levels(alice):
    """Complement: TestRoomState/GET /rooms/:room_id/state/m.room.power_levels fetches powerlevels
    sytest: GET /rooms/:room_id/state/m.room.power_levels fetches powerlevels (nio.AsyncClient.room_get_state_event)"""
    room = await alice.create_room()
    resp = await alice.nio.room_get_state_event(room, "m.room.power_levels")
    assert isinstance(resp, RoomGetStateEventResponse), resp
    for key in ("ban", "kick", "redact", "state_default", "events_default", "users_default", "events", "users"):
        assert key in resp.content, resp.content


async def test_TestRoomState_full_state(alice):
    """Complement: TestRoomState/GET /rooms/:room_id/state fetches entire room state
    sytest: GET /rooms/:room_id/state fetches entire room state (nio.AsyncClient.room_get_state)"""
    room = await alice.create_room(name="full", topic="t")
    resp = await alice.nio.room_get_state(room)
    assert isinstance(resp, RoomGetStateResponse), resp
    raw = await alice.ok("GET", f"{CS}/rooms/{q(room)}/state")
    keys = {(e["type"], e["state_key"]) for e in raw}
    for k in [
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
    ]:
        assert k in keys, (k, keys)
    assert len(keys) == len(raw), "one event per (type, state_key)"


async def test_TestRoomState_set_topic(alice):
    """Complement: TestRoomState/PUT /rooms/:room_id/state/m.room.topic sets topic
    Complement: TestRoomState/GET /rooms/:room_id/state/m.room.topic gets topic
    sytest: PUT /rooms/:room_id/state/m.room.topic sets topic (nio.AsyncClient.room_put_state)"""
    room = await alice.create_room()
    resp = await alice.nio.room_put_state(room, "m.room.topic", {"topic": "Testing"})
    assert isinstance(resp, RoomPutStateResponse), resp
    assert resp.event_id.startswith("$")
    assert await alice.state_content(room, "m.room.topic") == {"topic": "Testing"}


async def test_TestRoomState_set_name_trailing_slash(alice):
    """Complement: TestRoomState/PUT /rooms/:room_id/state/m.room.name/ sets name
    sytest: GET /rooms/:room_id/state/m.room.name gets name
    The empty state key can be given with a trailing slash or omitted."""
    room = await alice.create_room()
    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/state/m.room.name/", json={"name": "Slashed"})
    assert (await alice.ok("GET", f"{CS}/rooms/{q(room)}/state/m.room.name"))["name"] == "Slashed"
    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/state/m.room.name", json={"name": "NoSlash"})
    assert (await alice.ok("GET", f"{CS}/rooms/{q(room)}/state/m.room.name/"))["name"] == "NoSlash"


async def test_state_with_state_key(alice):
    """sytest: PUT/GET custom state events with a state key; the latest wins"""
    room = await alice.create_room()
    await alice.put_state(room, "com.example.state", {"v": 1}, state_key="k/with spaces")
    await alice.put_state(room, "com.example.state", {"v": 2}, state_key="k/with spaces")
    await alice.put_state(room, "com.example.state", {"other": True}, state_key="")
    assert await alice.state_content(room, "com.example.state", "k/with spaces") == {"v": 2}
    assert await alice.state_content(room, "com.example.state", "") == {"other": True}


async def test_state_setting_twice_is_idempotent(alice):
    """Complement: TestRoomCreationReportsEventsToMyself/Setting state twice is idempotent
    sytest: Setting state twice is idempotent"""
    room = await alice.create_room()
    e1 = await alice.put_state(room, "com.example.same", {"a": 1})
    e2 = await alice.put_state(room, "com.example.same", {"a": 1})
    assert e1 == e2


async def test_state_not_found(alice):
    """sytest: GET /rooms/:room_id/state/:type for unset state is 404 M_NOT_FOUND"""
    room = await alice.create_room()
    r = await alice.get_state(room, "com.example.unset", "")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_state_non_member_forbidden(alice, bob):
    """sytest: A non-member cannot read or set state in a private room (403); state unchanged."""
    room = await alice.create_room(preset="private_chat", topic="original")
    r = await bob.get_state(room, "m.room.topic")
    assert_status(r, 403, "M_FORBIDDEN")
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/state/m.room.topic/", json={"topic": "hacked"})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/state")
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.topic"))["topic"] == "original"


async def test_TestPowerLevels_insufficient(alice, bob):
    """Complement: TestPowerLevels
    sytest: Users cannot set ban powerlevel higher than their own / cannot set state without power
    A rejected state change leaves the state unchanged."""
    room = await alice.create_room(preset="public_chat", name="Stable")
    await bob.join(room)
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/state/m.room.name/", json={"name": "Changed"})
    assert_status(r, 403, "M_FORBIDDEN")
    pl = await bob.state_content(room, "m.room.power_levels")
    evil = dict(pl, users=dict(pl.get("users", {}), **{bob.user_id: 100}))
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/state/m.room.power_levels/", json=evil)
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await alice.state_content(room, "m.room.name"))["name"] == "Stable"
    assert await alice.state_content(room, "m.room.power_levels") == pl


async def test_TestPowerLevels_set_levels(alice, bob):
    """Complement: TestPowerLevels/PUT /rooms/:room_id/state/m.room.power_levels can set levels
    sytest: PUT /rooms/:room_id/state/m.room.power_levels can set levels"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    pl = await alice.state_content(room, "m.room.power_levels")
    pl.setdefault("users", {})[bob.user_id] = 50
    pl.setdefault("events", {})["m.room.name"] = 50
    await alice.put_state(room, "m.room.power_levels", pl)
    got = await bob.state_content(room, "m.room.power_levels")
    assert got["users"][bob.user_id] == 50
    await bob.put_state(room, "m.room.name", {"name": "bob can"})
    assert (await alice.state_content(room, "m.room.name"))["name"] == "bob can"


async def test_state_event_in_send_path(alice):
    """sytest: Events sent with /send are not state; /state does not list them"""
    room = await alice.create_room()
    await alice.send(room, "com.example.notstate", {"x": 1})
    r = await alice.get_state(room, "com.example.notstate", "")
    assert_status(r, 404, "M_NOT_FOUND")
