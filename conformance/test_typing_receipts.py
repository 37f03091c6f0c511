"""Typing notifications, receipts, read markers, presence.
Complement: TestTyping, TestLeakyTyping, TestRoomReceipts, TestRoomReadMarkers, TestPresence."""

from nio import PresenceGetResponse, PresenceSetResponse, RoomReadMarkersResponse, RoomTypingResponse, UpdateReceiptMarkerResponse

from helpers import CS, assert_status, ephemeral_has, joined, q, wait_for


async def shared_room(alice, bob):
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    return room


async def test_TestTyping(alice, bob):
    """Complement: TestTyping
    sytest: Typing notification sent to local room members; Typing can be explicitly stopped
    (nio.AsyncClient.room_typing)"""
    room = await shared_room(alice, bob)
    since = (await bob.sync())["next_batch"]
    resp = await alice.nio.room_typing(room, True, timeout=30000)
    assert isinstance(resp, RoomTypingResponse), resp
    body, ev = await bob.sync_until(
        ephemeral_has(room, lambda e: e["type"] == "m.typing" and alice.user_id in e["content"]["user_ids"]),
        since=since,
        what="alice typing",
    )
    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/typing/{q(alice.user_id)}", json={"typing": False})
    await bob.sync_until(
        ephemeral_has(room, lambda e: e["type"] == "m.typing" and alice.user_id not in e["content"]["user_ids"]),
        since=body["next_batch"],
        what="alice stopped typing",
    )


async def test_TestLeakyTyping(alice, bob, charlie):
    """Complement: TestLeakyTyping
    Typing notifications do not leak to users outside the room."""
    room = await shared_room(alice, bob)
    since = (await charlie.sync())["next_batch"]
    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/typing/{q(alice.user_id)}", json={"typing": True, "timeout": 30000})
    await bob.sync_until(ephemeral_has(room, lambda e: e["type"] == "m.typing" and e["content"]["user_ids"]), what="typing for bob")
    body = await charlie.sync(since=since, timeout=300)
    assert joined(body, room) is None


async def test_typing_other_user_forbidden(alice, bob):
    """sytest: Cannot set typing for another user (403 M_FORBIDDEN); non-members cannot type (403)"""
    room = await alice.create_room(preset="public_chat")
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/typing/{q(bob.user_id)}", json={"typing": True, "timeout": 1000})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/typing/{q(bob.user_id)}", json={"typing": True, "timeout": 1000})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestRoomReceipts(alice, bob):
    """Complement: TestRoomReceipts
    sytest: Read receipts are visible to /initialSync / sent as ephemeral events in /sync
    (nio.AsyncClient.update_receipt_marker)"""
    room = await shared_room(alice, bob)
    eid = await alice.send_text(room, "read me")
    resp = await bob.nio.update_receipt_marker(room, eid)
    assert isinstance(resp, UpdateReceiptMarkerResponse), resp

    def has_receipt(e):
        return e["type"] == "m.receipt" and bob.user_id in e["content"].get(eid, {}).get("m.read", {})

    _, ev = await alice.sync_until(ephemeral_has(room, has_receipt), what="bob's m.read receipt")
    assert isinstance(ev["content"][eid]["m.read"][bob.user_id]["ts"], int)


async def test_private_receipt(alice, bob):
    """sytest: m.read.private receipts are only sent to their owner"""
    room = await shared_room(alice, bob)
    eid = await alice.send_text(room, "private")
    since = (await alice.sync())["next_batch"]
    await bob.ok("POST", f"{CS}/rooms/{q(room)}/receipt/m.read.private/{q(eid)}", json={})

    def priv(e):
        return e["type"] == "m.receipt" and bob.user_id in e["content"].get(eid, {}).get("m.read.private", {})

    await bob.sync_until(ephemeral_has(room, priv), what="own private receipt")
    # a public receipt after it makes alice wake up; the private one must never be in her sync
    eid2 = await bob.send_text(room, "marker")
    await bob.ok("POST", f"{CS}/rooms/{q(room)}/receipt/m.read/{q(eid2)}", json={})

    def pub(e):
        return e["type"] == "m.receipt" and bob.user_id in e["content"].get(eid2, {}).get("m.read", {})

    body = await alice.sync(filter={"room": {"timeline": {"limit": 50}}})
    for e in (joined(body, room) or {}).get("ephemeral", {}).get("events", []):
        assert not any("m.read.private" in v for v in e.get("content", {}).values()), e
    await alice.sync_until(ephemeral_has(room, pub), since=since, what="bob's public receipt")


async def test_receipt_unknown_type(alice):
    """sytest: POST /receipt with an unknown receipt type is 400"""
    room = await alice.create_room()
    eid = await alice.send_text(room, "x")
    r = await alice.req("POST", f"{CS}/rooms/{q(room)}/receipt/m.bogus/{q(eid)}", json={})
    # The spec fixes no errcode for an unknown receipt type; it is a client error, never a success.
    assert_status(r, 400)


async def test_TestRoomReadMarkers(alice, bob):
    """Complement: TestRoomReadMarkers
    sytest: POST /rooms/:room_id/read_markers can create read marker
    (nio.AsyncClient.room_read_markers)"""
    room = await shared_room(alice, bob)
    eid = await alice.send_text(room, "marker")
    resp = await bob.nio.room_read_markers(room, fully_read_event=eid, read_event=eid)
    assert isinstance(resp, RoomReadMarkersResponse), resp
    fr = await bob.ok("GET", f"{CS}/user/{q(bob.user_id)}/rooms/{q(room)}/account_data/m.fully_read")
    assert fr == {"event_id": eid}
    body, _ = await bob.sync_until(
        lambda b: any(
            e["type"] == "m.fully_read" and e["content"]["event_id"] == eid
            for e in (joined(b, room) or {}).get("account_data", {}).get("events", [])
        ),
        what="m.fully_read in room account data",
    )
    await alice.sync_until(
        ephemeral_has(room, lambda e: e["type"] == "m.receipt" and bob.user_id in e["content"].get(eid, {}).get("m.read", {})),
        what="m.read from read_markers",
    )


async def test_TestPresence(alice, bob):
    """Complement: TestPresence
    sytest: GET /presence/:user_id/status fetches initial status
    sytest: PUT /presence/:user_id/status updates my presence
    (nio.AsyncClient.set_presence / get_presence)"""
    await shared_room(alice, bob)  # presence is visible to users who share a room
    resp = await alice.nio.set_presence("online", "busy coding")
    assert isinstance(resp, PresenceSetResponse), resp
    resp = await bob.nio.get_presence(alice.user_id)
    assert isinstance(resp, PresenceGetResponse), resp
    assert resp.presence == "online" and resp.status_msg == "busy coding"
    raw = await bob.ok("GET", f"{CS}/presence/{q(alice.user_id)}/status")
    assert raw["presence"] == "online"
    await alice.ok("PUT", f"{CS}/presence/{q(alice.user_id)}/status", json={"presence": "unavailable"})
    raw = await alice.ok("GET", f"{CS}/presence/{q(alice.user_id)}/status")
    assert raw["presence"] == "unavailable"


async def test_presence_other_user_forbidden(alice, bob):
    """sytest: Cannot set another user's presence (403 M_FORBIDDEN); it stays unchanged"""
    await bob.ok("PUT", f"{CS}/presence/{q(bob.user_id)}/status", json={"presence": "online", "status_msg": "bob's"})
    r = await alice.req("PUT", f"{CS}/presence/{q(bob.user_id)}/status", json={"presence": "offline"})
    assert_status(r, 403, "M_FORBIDDEN")
    raw = await bob.ok("GET", f"{CS}/presence/{q(bob.user_id)}/status")
    assert raw["presence"] == "online" and raw.get("status_msg") == "bob's"


async def test_presence_invalid_state(alice):
    """sytest: PUT /presence with an invalid presence state is 400"""
    await alice.ok("PUT", f"{CS}/presence/{q(alice.user_id)}/status", json={"presence": "online"})
    r = await alice.req("PUT", f"{CS}/presence/{q(alice.user_id)}/status", json={"presence": "dancing"})
    assert_status(r, 400)
    assert r.errcode in ("M_INVALID_PARAM", "M_BAD_JSON", "M_UNKNOWN"), r
    assert (await alice.ok("GET", f"{CS}/presence/{q(alice.user_id)}/status"))["presence"] == "online"


async def test_presence_in_sync(alice, bob):
    """Complement: TestPresenceSyncDifferentRooms (local)
    sytest: Presence changes are reported to local room members"""
    await shared_room(alice, bob)
    since = (await alice.sync())["next_batch"]
    await bob.ok("PUT", f"{CS}/presence/{q(bob.user_id)}/status", json={"presence": "online", "status_msg": "hi alice"})

    def check(b):
        return [
            e for e in b.get("presence", {}).get("events", [])
            if e["sender"] == bob.user_id and e["content"].get("status_msg") == "hi alice"
        ]

    _, evs = await alice.sync_until(check, since=since, what="bob's presence")
    assert evs[0]["type"] == "m.presence" and evs[0]["content"]["presence"] == "online"


async def test_sync_set_presence(alice):
    """sytest: Presence can be set from sync (set_presence=unavailable)"""
    await alice.sync(set_presence="unavailable")

    async def state():
        raw = await alice.ok("GET", f"{CS}/presence/{q(alice.user_id)}/status")
        return raw["presence"] == "unavailable"

    await wait_for(state, what="presence set by /sync?set_presence")
