"""Sending and fetching events: send/txn idempotency, /messages, /context, /event, redaction.
Complement: TestSendAndFetchMessage, TestSendMessageWithTxn, TestTxnIdempotency, TestTxnIdempotencyScopedToDevice,
TestTxnInEvent, TestFetchMessagesFromNonExistentRoom, TestRoomMessagesLazyLoading, TestRedact, TestFetchEvent."""

from nio import (
    MessageDirection,
    RoomContextResponse,
    RoomGetEventResponse,
    RoomMessagesResponse,
    RoomRedactResponse,
    RoomSendResponse,
)

from helpers import CS, assert_status, bodies, joined, q, timeline, timeline_has, txn_id


async def room_with_messages(user, n, prefix="m"):
    room = await user.create_room(preset="public_chat")
    ids = [await user.send_text(room, f"{prefix}{i}") for i in range(n)]
    return room, ids


async def test_TestSendAndFetchMessage(alice):
    """Complement: TestSendAndFetchMessage
    sytest: POST /rooms/:room_id/send/:event_type sends a message; GET /rooms/:room_id/messages returns a message
    (nio.AsyncClient.room_send / room_messages)"""
    room = await alice.create_room()
    resp = await alice.nio.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hello nio"})
    assert isinstance(resp, RoomSendResponse), resp
    msgs = await alice.nio.room_messages(room, start=None, direction=MessageDirection.back, limit=10)
    assert isinstance(msgs, RoomMessagesResponse), msgs
    assert msgs.chunk[0].event_id == resp.event_id
    assert msgs.chunk[0].body == "hello nio"
    raw = await alice.messages(room, limit=1)
    ev = raw["chunk"][0]
    assert ev["event_id"] == resp.event_id
    assert ev["sender"] == alice.user_id and ev["room_id"] == room and ev["type"] == "m.room.message"
    assert isinstance(ev["origin_server_ts"], int)


async def test_TestSendMessageWithTxn(alice):
    """Complement: TestSendMessageWithTxn
    Complement: TestTxnIdempotency
    sytest: PUT /rooms/:room_id/send/:event_type/:txn_id deduplicates the same txn id"""
    room = await alice.create_room()
    txn = txn_id()
    e1 = await alice.send(room, "m.room.message", {"msgtype": "m.text", "body": "once"}, txn=txn)
    e2 = await alice.send(room, "m.room.message", {"msgtype": "m.text", "body": "once"}, txn=txn)
    assert e1 == e2
    chunk = (await alice.messages(room, limit=10))["chunk"]
    assert bodies(chunk).count("once") == 1
    # nio with an explicit tx_id also lands on the same event
    resp = await alice.nio.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "once"}, tx_id=txn)
    assert isinstance(resp, RoomSendResponse) and resp.event_id == e1, resp


async def test_TestTxnIdempotencyScopedToDevice(make_user):
    """Complement: TestTxnIdempotencyScopedToDevice
    The same txn id from another device (or another room) is a new event."""
    alice = await make_user()
    alice2 = await make_user.login(alice)
    room = await alice.create_room()
    room2 = await alice.create_room()
    txn = txn_id()
    content = {"msgtype": "m.text", "body": "scoped"}
    e1 = await alice.send(room, "m.room.message", content, txn=txn)
    e2 = await alice2.send(room, "m.room.message", content, txn=txn)
    e3 = await alice.send(room2, "m.room.message", content, txn=txn)
    assert len({e1, e2, e3}) == 3


async def test_TestTxnInEvent(make_user, bob):
    """Complement: TestTxnInEvent
    sytest: Transaction ID is present in /sync for the sending device only"""
    alice = await make_user()
    alice2 = await make_user.login(alice)
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    txn = txn_id()
    eid = await alice.send(room, "m.room.message", {"msgtype": "m.text", "body": "with txn"}, txn=txn)
    _, ev = await alice.sync_until(timeline_has(room, lambda e: e["event_id"] == eid), what="own event")
    assert ev.get("unsigned", {}).get("transaction_id") == txn, ev
    _, ev = await alice2.sync_until(timeline_has(room, lambda e: e["event_id"] == eid), what="event on other device")
    assert "transaction_id" not in ev.get("unsigned", {}), ev
    _, ev = await bob.sync_until(timeline_has(room, lambda e: e["event_id"] == eid), what="event for bob")
    assert "transaction_id" not in ev.get("unsigned", {}), ev


async def test_TestFetchMessagesFromNonExistentRoom(alice, server):
    """Complement: TestFetchMessagesFromNonExistentRoom"""
    r = await alice.req("GET", f"{CS}/rooms/{q('!doesnotexist:' + server.server_name)}/messages", params={"dir": "b"})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_messages_backwards_pagination(alice):
    """sytest: GET /rooms/:room_id/messages lazy loads... / paginates backwards with limit and end tokens"""
    room, ids = await room_with_messages(alice, 7)
    seen = []
    token = None
    for _ in range(10):
        params = {"dir": "b", "limit": 3, "filter": {"types": ["m.room.message"]}}
        if token:
            params["from"] = token
        page = await alice.ok("GET", f"{CS}/rooms/{q(room)}/messages", params=params)
        assert len(page["chunk"]) <= 3
        seen += [e["event_id"] for e in page["chunk"]]
        assert isinstance(page["start"], str)
        if "end" not in page or not page["chunk"]:
            break
        token = page["end"]
    assert seen == list(reversed(ids)), "backwards pagination returns newest first, every message once"


async def test_messages_forwards_pagination(alice):
    """sytest: GET /rooms/:room_id/messages with dir=f paginates forwards from a token"""
    room, ids = await room_with_messages(alice, 5)
    back = await alice.messages(room, limit=5, filter={"types": ["m.room.message"]})
    assert [e["event_id"] for e in back["chunk"]] == list(reversed(ids))
    oldest_token = back["end"]
    fwd = await alice.messages(room, dir="f", **{"from": oldest_token}, limit=10, filter={"types": ["m.room.message"]})
    assert [e["event_id"] for e in fwd["chunk"]] == ids
    # From the beginning (no from, dir=f): the create event comes first.
    first = await alice.messages(room, dir="f", limit=1)
    assert first["chunk"][0]["type"] == "m.room.create"


async def test_messages_to_token(alice):
    """sytest: GET /rooms/:room_id/messages stops at the `to` token"""
    room = await alice.create_room()
    await alice.send_text(room, "old")
    mid = (await alice.sync(filter={"room": {"timeline": {"limit": 1}}}))["next_batch"]
    new_ids = [await alice.send_text(room, f"new{i}") for i in range(3)]
    page = await alice.messages(room, limit=20, to=mid)
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(new_ids))


async def test_messages_filter(alice, bob):
    """sytest: GET /rooms/:room_id/messages with a filter (types, not_types, senders)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.send(room, "com.example.a", {"n": 1})
    await bob.send(room, "com.example.b", {"n": 2})
    await alice.send_text(room, "text")
    chunk = (await alice.messages(room, limit=20, filter={"types": ["com.example.a", "com.example.b"]}))["chunk"]
    assert [e["type"] for e in chunk] == ["com.example.b", "com.example.a"]
    chunk = (await alice.messages(room, limit=20, filter={"not_types": ["m.room.*"]}))["chunk"]
    assert [e["type"] for e in chunk] == ["com.example.b", "com.example.a"]
    chunk = (await alice.messages(room, limit=20, filter={"senders": [bob.user_id]}))["chunk"]
    assert {e["sender"] for e in chunk} == {bob.user_id} and "com.example.b" in [e["type"] for e in chunk]
    chunk = (await alice.messages(room, limit=2))["chunk"]
    assert len(chunk) == 2


async def test_TestRoomMessagesLazyLoading(alice, bob, charlie):
    """Complement: TestRoomMessagesLazyLoading
    sytest: GET /rooms/:room_id/messages lazy loads members correctly
    With lazy_load_members the response carries the member events of the chunk's senders."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await charlie.join(room)
    await bob.send_text(room, "from bob")
    page = await alice.messages(room, limit=1, filter={"lazy_load_members": True})
    assert page["chunk"][0]["sender"] == bob.user_id
    members = {e["state_key"] for e in page.get("state", []) if e["type"] == "m.room.member"}
    assert bob.user_id in members
    assert charlie.user_id not in members


async def test_messages_bad_dir(alice):
    """sytest: GET /rooms/:room_id/messages with an invalid dir is 400"""
    room = await alice.create_room()
    r = await alice.req("GET", f"{CS}/rooms/{q(room)}/messages", params={"dir": "sideways"})
    assert r.status == 400 and r.errcode in ("M_INVALID_PARAM", "M_BAD_JSON", "M_UNKNOWN"), r


async def test_messages_limit_respected_and_default(alice):
    """sytest: GET /rooms/:room_id/messages limit is respected"""
    room, ids = await room_with_messages(alice, 12)
    page = await alice.messages(room, limit=4)
    assert len(page["chunk"]) == 4
    page = await alice.messages(room)
    assert len(page["chunk"]) >= 10, "default limit is 10"


async def test_TestFetchEvent(alice):
    """Complement: TestFetchEvent
    sytest: /event/ on joined room works (nio.AsyncClient.room_get_event)"""
    room = await alice.create_room()
    eid = await alice.send_text(room, "fetch me")
    resp = await alice.nio.room_get_event(room, eid)
    assert isinstance(resp, RoomGetEventResponse), resp
    assert resp.event.event_id == eid
    raw = await alice.ok("GET", f"{CS}/rooms/{q(room)}/event/{q(eid)}")
    assert raw["content"] == {"msgtype": "m.text", "body": "fetch me"}
    assert raw["room_id"] == room and raw["sender"] == alice.user_id


async def test_event_not_found(alice):
    """sytest: /event/ with an unknown event id is 404 M_NOT_FOUND"""
    room = await alice.create_room()
    r = await alice.req("GET", f"{CS}/rooms/{q(room)}/event/{q('$doesnotexist')}")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_context(alice):
    """sytest: /context/ on joined room works (nio.AsyncClient.room_context)"""
    room, ids = await room_with_messages(alice, 7)
    resp = await alice.nio.room_context(room, ids[3], limit=4)
    assert isinstance(resp, RoomContextResponse), resp
    body = await alice.ok("GET", f"{CS}/rooms/{q(room)}/context/{q(ids[3])}", params={"limit": 4})
    assert body["event"]["event_id"] == ids[3]
    before = [e["event_id"] for e in body["events_before"]]
    after = [e["event_id"] for e in body["events_after"]]
    assert before[:2] == [ids[2], ids[1]], "events_before is in reverse chronological order"
    assert after[:2] == [ids[4], ids[5]]
    assert len(before) + len(after) <= 4
    assert isinstance(body["start"], str) and isinstance(body["end"], str)
    state_types = {e["type"] for e in body.get("state", [])}
    assert "m.room.create" in state_types or "m.room.member" in state_types
    # the tokens paginate onwards
    more = await alice.messages(room, dir="f", **{"from": body["end"]}, limit=10)
    assert ids[6] in [e["event_id"] for e in more["chunk"]]


async def test_context_unknown_event(alice):
    """sytest: /context/ with an unknown event id is 404 M_NOT_FOUND"""
    room = await alice.create_room()
    r = await alice.req("GET", f"{CS}/rooms/{q(room)}/context/{q('$nope')}")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestRedact_sender(alice, bob):
    """Complement: TestRedact
    sytest: POST /rooms/:room_id/redact/:event_id as original message sender redacts message
    (nio.AsyncClient.room_redact)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    eid = await bob.send_text(room, "oops")
    resp = await bob.nio.room_redact(room, eid, reason="typo")
    assert isinstance(resp, RoomRedactResponse), resp
    ev = await alice.ok("GET", f"{CS}/rooms/{q(room)}/event/{q(eid)}")
    assert ev["content"] == {}
    rb = ev["unsigned"]["redacted_because"]
    assert rb["type"] == "m.room.redaction" and rb["event_id"] == resp.event_id
    assert rb["content"].get("reason") == "typo"
    page = await alice.messages(room, limit=5)
    in_page = {e["event_id"]: e for e in page["chunk"]}
    assert in_page[eid]["content"] == {}
    assert in_page[resp.event_id]["type"] == "m.room.redaction"


async def test_TestRedact_power_user(alice, bob):
    """sytest: POST /rooms/:room_id/redact/:event_id as power user redacts message"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    eid = await bob.send_text(room, "bad")
    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/redact/{q(eid)}/{txn_id()}", json={})
    ev = await bob.ok("GET", f"{CS}/rooms/{q(room)}/event/{q(eid)}")
    assert ev["content"] == {}


async def test_TestRedact_random_user_forbidden(alice, bob):
    """sytest: POST /rooms/:room_id/redact/:event_id as random user does not redact message"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    eid = await alice.send_text(room, "keep")
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/redact/{q(eid)}/{txn_id()}", json={"reason": "no"})
    assert_status(r, 403, "M_FORBIDDEN")
    ev = await bob.ok("GET", f"{CS}/rooms/{q(room)}/event/{q(eid)}")
    assert ev["content"]["body"] == "keep"


async def test_redact_txn_idempotent(alice):
    """sytest: PUT /rooms/:room_id/redact with the same txn id is idempotent"""
    room = await alice.create_room()
    eid = await alice.send_text(room, "x")
    txn = txn_id()
    a = await alice.ok("PUT", f"{CS}/rooms/{q(room)}/redact/{q(eid)}/{txn}", json={})
    b = await alice.ok("PUT", f"{CS}/rooms/{q(room)}/redact/{q(eid)}/{txn}", json={})
    assert a["event_id"] == b["event_id"]


async def test_redaction_in_sync(alice):
    """sytest: Redaction appears in incremental /sync and the redacted event is pruned"""
    room = await alice.create_room()
    eid = await alice.send_text(room, "secret")
    since = (await alice.sync())["next_batch"]
    red = (await alice.ok("PUT", f"{CS}/rooms/{q(room)}/redact/{q(eid)}/{txn_id()}", json={}))["event_id"]
    _, ev = await alice.sync_until(timeline_has(room, lambda e: e["event_id"] == red), since=since, what="redaction")
    assert ev["type"] == "m.room.redaction"
    assert ev.get("redacts", ev["content"].get("redacts")) == eid
    body = await alice.sync(filter={"room": {"timeline": {"limit": 10}}})
    orig = [e for e in timeline(body, room) if e["event_id"] == eid]
    assert orig and orig[0]["content"] == {}, orig
