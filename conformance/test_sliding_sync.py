"""Simplified sliding sync (MSC4186, `org.matrix.simplified_msc3575`) over raw HTTP (matrix-nio has no
sliding sync). Complement has no MSC4186 tests in the checklist (only MSC4308's thread subscriptions
extension, not supported), so the tests are named after what they check. They follow what Element X
(matrix-rust-sdk) sends: a "room-list" connection with lists and a separate "encryption" connection
with the to_device and e2ee extensions."""

import asyncio

from helpers import CS, assert_status, q

SSS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

ROOM_LIST = {
    "conn_id": "room-list",
    "lists": {
        "all_rooms": {
            "ranges": [[0, 19]],
            "timeline_limit": 1,
            "required_state": [
                ["m.room.name", ""],
                ["m.room.encryption", ""],
                ["m.room.member", "$LAZY"],
                ["m.room.member", "$ME"],
            ],
        },
        "dms": {"ranges": [[0, 19]], "timeline_limit": 1, "filters": {"is_dm": True}},
    },
    "extensions": {
        "account_data": {"enabled": True},
        "receipts": {"enabled": True, "rooms": ["*"], "lists": ["*"]},
        "typing": {"enabled": True},
    },
}


async def sss(user, body, pos=None, timeout=None):
    params = {}
    if pos is not None:
        params["pos"] = pos
    if timeout is not None:
        params["timeout"] = timeout
    return await user.ok("POST", SSS, json=body, params=params or None)


def bodies(room):
    return [e["content"].get("body") for e in room.get("timeline", []) if e["type"] == "m.room.message"]


async def counted(user, room_id: str) -> dict:
    """A fresh room-list answer once `room_id`'s last message is counted: push counts are computed
    just after the commit, and their change would otherwise wake or fill the next incremental answer."""
    for _ in range(100):
        answer = await sss(user, ROOM_LIST)
        if answer["rooms"].get(room_id, {}).get("notification_count") == 1:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{room_id} was never counted: {answer}")


async def test_versions_advertise_simplified_sliding_sync(alice):
    """/versions carries unstable_features["org.matrix.simplified_msc3575"] = true, what Element X looks for."""
    body = await alice.ok("GET", "/_matrix/client/versions")
    assert body["unstable_features"].get("org.matrix.simplified_msc3575") is True, body


async def test_sliding_sync_room_list_order_and_incremental(alice, bob):
    """A list sorted by recency: count, rooms in range with timeline, name, counts; a message
    moves a room to the top and comes back incrementally with its new event only."""
    quiet = await alice.create_room(name="quiet")
    busy = await alice.create_room(name="busy", preset="public_chat")
    await bob.join(busy)
    await bob.send_text(busy, "hi alice")
    first = await counted(alice, busy)
    assert first["lists"]["all_rooms"]["count"] == 2, first
    rooms = first["rooms"]
    assert rooms[busy]["bump_stamp"] > rooms[quiet]["bump_stamp"], first
    assert rooms[busy]["name"] == "busy" and rooms[busy]["initial"] is True
    assert rooms[busy]["joined_count"] == 2
    assert bodies(rooms[busy]) == ["hi alice"]
    lazy = {e["state_key"] for e in rooms[busy]["required_state"] if e["type"] == "m.room.member"}
    assert lazy == {alice.user_id, bob.user_id}, rooms[busy]["required_state"]
    # The global account data of a new connection carries the push rules.
    assert any(e["type"] == "m.push_rules" for e in first["extensions"]["account_data"]["global"]), first

    await alice.send_text(quiet, "now I am newer")
    second = await sss(alice, ROOM_LIST, pos=first["pos"], timeout=0)
    assert quiet in second["rooms"], second
    assert bodies(second["rooms"][quiet]) == ["now I am newer"]
    assert "initial" not in second["rooms"][quiet]
    assert busy not in second.get("rooms", {}), second
    assert second["rooms"][quiet]["bump_stamp"] > rooms[busy]["bump_stamp"]


async def test_sliding_sync_long_poll_wakes_on_typing_and_receipts(alice, bob):
    """A long poll with pos wakes on bob's typing; receipts of rooms in range come in the receipts extension."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    event = await bob.send_text(room, "read me")
    first = await counted(alice, room)

    async def type_later():
        await asyncio.sleep(0.3)
        await bob.ok("PUT", f"{CS}/rooms/{q(room)}/typing/{q(bob.user_id)}", json={"typing": True, "timeout": 30000})

    task = asyncio.create_task(type_later())
    # The poll may also wake for another change of the room (counts, read markers): poll again with
    # the new pos until the typing arrives. A poll that did not wake on typing would hold 20 s.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    pos = first["pos"]
    while True:
        woke = await sss(alice, ROOM_LIST, pos=pos, timeout=20000)
        pos = woke["pos"]
        if room in woke.get("extensions", {}).get("typing", {}).get("rooms", {}):
            break
        assert loop.time() < deadline, f"no typing within 10 s: {woke}"
    await task
    typing = woke["extensions"]["typing"]["rooms"][room]
    assert bob.user_id in typing["content"]["user_ids"], woke

    await bob.ok("POST", f"{CS}/rooms/{q(room)}/receipt/m.read/{q(event)}", json={})
    third = await sss(alice, ROOM_LIST, pos=woke["pos"], timeout=10000)
    receipt = third["extensions"]["receipts"]["rooms"][room]["content"]
    assert bob.user_id in receipt[event]["m.read"], third


async def test_sliding_sync_dm_filter_and_invites(alice, bob):
    """is_dm follows m.direct; an invite comes with invite_state, and leaving a room sent on the
    connection shows the leave once."""
    dm = await alice.create_room(is_direct=True)
    await alice.ok("PUT", f"{CS}/user/{q(alice.user_id)}/account_data/m.direct", json={bob.user_id: [dm]})
    other = await alice.create_room()
    first = await sss(alice, ROOM_LIST)
    assert first["lists"]["dms"]["count"] == 1, first
    assert first["rooms"][dm]["is_dm"] is True and first["rooms"][other]["is_dm"] is False

    party = await bob.create_room(name="party")
    await bob.invite(party, alice.user_id)
    second = await sss(alice, ROOM_LIST, pos=first["pos"], timeout=10000)
    invite = second["rooms"][party]
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "party" for e in invite["invite_state"]), invite
    assert second["lists"]["all_rooms"]["count"] == 3

    await alice.leave(other)
    third = await sss(alice, ROOM_LIST, pos=second["pos"], timeout=10000)
    left = third["rooms"][other]
    assert left["timeline"][-1]["type"] == "m.room.member" and left["timeline"][-1]["content"]["membership"] == "leave", third
    assert third["lists"]["all_rooms"]["count"] == 2


async def test_sliding_sync_encryption_connection(alice, bob):
    """The "encryption" connection: to-device messages until acknowledged with the extension's
    since, one-time key counts, and device list changes of a user who starts sharing a room."""
    body = {"conn_id": "encryption", "extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True}}}
    await alice.ok("POST", f"{CS}/keys/upload", json={"one_time_keys": {"signed_curve25519:K1": {"key": "a2V5", "signatures": {}}}})
    first = await sss(alice, body)
    assert first["extensions"]["e2ee"]["device_one_time_keys_count"]["signed_curve25519"] == 1, first
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.ok("PUT", f"{CS}/sendToDevice/m.test/t1", json={"messages": {alice.user_id: {alice.device_id: {"n": 1}}}})
    body["extensions"]["to_device"]["since"] = first["extensions"]["to_device"]["next_batch"]
    second = await sss(alice, body, pos=first["pos"], timeout=10000)
    events = second["extensions"]["to_device"]["events"]
    assert [e["content"] for e in events] == [{"n": 1}], second
    assert bob.user_id in second["extensions"]["e2ee"]["device_lists"]["changed"], second
    body["extensions"]["to_device"]["since"] = second["extensions"]["to_device"]["next_batch"]
    third = await sss(alice, body, pos=second["pos"], timeout=0)
    assert not third.get("extensions", {}).get("to_device", {}).get("events"), third


async def test_sliding_sync_unknown_pos(alice):
    """An unknown or expired pos is 400 M_UNKNOWN_POS (the client then starts over without pos)."""
    r = await alice.req("POST", SSS, json={}, params={"pos": "1_1"})
    assert_status(r, 400, "M_UNKNOWN_POS")
    first = await sss(alice, {"conn_id": "a"})
    r = await alice.req("POST", SSS, json={"conn_id": "b"}, params={"pos": first["pos"]})
    assert_status(r, 400, "M_UNKNOWN_POS")


async def test_sliding_sync_history_visibility(alice, bob):
    """With history_visibility "joined", the timeline of a newly joined room starts at the join."""
    room = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}],
    )
    await alice.send_text(room, "secret")
    await bob.join(room)
    await alice.send_text(room, "public")
    body = {"lists": {"l": {"ranges": [[0, 9]], "timeline_limit": 10}}}
    answer = await sss(bob, body)
    assert bodies(answer["rooms"][room]) == ["public"], answer
