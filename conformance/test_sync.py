"""/sync: initial, incremental, long-poll, filters, sections, limited timelines, full_state.
Complement: TestSync, TestSyncFilter, TestSyncLeaveSection, TestGappedSyncLeaveSection, TestSyncTimelineGap,
TestLeaveEventVisibility, TestRoomSummary, TestArchivedRoomsHistory."""

import asyncio
import time

from nio import RoomMessageText, SyncResponse, UploadFilterResponse

from helpers import CS, assert_status, invited, joined, left, q, timeline, timeline_has


async def test_TestSync_initial(alice):
    """Complement: TestSync
    sytest: Can sync a joined room (nio.AsyncClient.sync)"""
    room = await alice.create_room(name="initial")
    await alice.send_text(room, "hello sync")
    resp = await alice.nio.sync(timeout=0, full_state=True)
    assert isinstance(resp, SyncResponse), resp
    assert room in resp.rooms.join
    texts = [e.body for e in resp.rooms.join[room].timeline.events if isinstance(e, RoomMessageText)]
    assert "hello sync" in texts
    assert resp.next_batch
    raw = await alice.sync()
    assert isinstance(raw["next_batch"], str)


async def test_TestSync_incremental(alice):
    """Complement: TestSync
    sytest: A message sent after an initial sync appears in the timeline of an incremental sync."""
    room = await alice.create_room()
    first = await alice.sync()
    eid = await alice.send_text(room, "after initial")
    body, ev = await alice.sync_until(timeline_has(room, lambda e: e["event_id"] == eid), since=first["next_batch"])
    assert ev["content"]["body"] == "after initial"
    assert body["next_batch"] != first["next_batch"]
    # Nothing new: an incremental sync with timeout 0 has no events for the room.
    again = await alice.sync(since=body["next_batch"])
    assert timeline(again, room) == []


async def test_sync_long_poll_wakes_on_event(alice):
    """sytest: Sync can be polled for updates; a long-poll returns promptly when an event arrives."""
    room = await alice.create_room()
    since = (await alice.sync())["next_batch"]

    async def send_later():
        await asyncio.sleep(0.3)
        return await alice.send_text(room, "wake up")

    t0 = time.monotonic()
    sender = asyncio.create_task(send_later())
    body = await alice.sync(since=since, timeout=20000)
    elapsed = time.monotonic() - t0
    eid = await sender
    if eid not in [e["event_id"] for e in timeline(body, room)]:
        # The first wake-up may be for something else (e.g. presence); the next one must carry the message.
        body = await alice.sync(since=body["next_batch"], timeout=20000)
        elapsed = time.monotonic() - t0
    assert eid in [e["event_id"] for e in timeline(body, room)], body
    assert elapsed < 5, f"long-poll took {elapsed:.2f}s to return after an event"


async def test_sync_long_poll_times_out(alice):
    """sytest: A long-poll with nothing to report returns after about `timeout` ms."""
    await alice.create_room()
    since = (await alice.sync())["next_batch"]
    # Drain anything pending (own presence etc.) first.
    for _ in range(3):
        b = await alice.sync(since=since, timeout=0)
        since = b["next_batch"]
    t0 = time.monotonic()
    body = await alice.sync(since=since, timeout=700)
    elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 5, elapsed
    assert not body.get("rooms", {}).get("join"), body


async def test_TestSyncTimelineGap(alice):
    """Complement: TestSyncTimelineGap
    sytest: Can sync a room with a message with a limited timeline / prev_batch can be used with /messages"""
    room = await alice.create_room()
    ids = [await alice.send_text(room, f"g{i}") for i in range(6)]
    flt = {"room": {"timeline": {"limit": 2}}}
    body = await alice.sync(filter=flt)
    tl = joined(body, room)["timeline"]
    assert [e["event_id"] for e in tl["events"]] == ids[-2:]
    assert tl["limited"] is True
    page = await alice.messages(room, **{"from": tl["prev_batch"]}, limit=4)
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(ids[:4]))


async def test_sync_incremental_limited(alice):
    """sytest: An incremental sync with more events than the limit is limited with a usable prev_batch"""
    room = await alice.create_room()
    flt = {"room": {"timeline": {"limit": 3}}}
    since = (await alice.sync(filter=flt))["next_batch"]
    ids = [await alice.send_text(room, f"i{i}") for i in range(6)]
    body = await alice.sync(since=since, filter=flt)
    tl = joined(body, room)["timeline"]
    assert [e["event_id"] for e in tl["events"]] == ids[-3:]
    assert tl["limited"] is True
    page = await alice.messages(room, **{"from": tl["prev_batch"]}, limit=3)
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(ids[:3]))
    # Not limited when everything fits.
    since = body["next_batch"]
    one = await alice.send_text(room, "just one")
    body = await alice.sync(since=since, filter=flt)
    tl = joined(body, room)["timeline"]
    assert [e["event_id"] for e in tl["events"]] == [one]
    assert tl.get("limited", False) is False


async def test_TestSyncFilter_types(alice):
    """Complement: TestSyncFilter
    sytest: Can filter timeline by types / not_types"""
    room = await alice.create_room()
    await alice.send(room, "com.example.keep", {"a": 1})
    await alice.send(room, "com.example.drop", {"a": 2})
    await alice.send_text(room, "text")
    body = await alice.sync(filter={"room": {"timeline": {"types": ["com.example.*"], "not_types": ["com.example.drop"]}}})
    types = [e["type"] for e in timeline(body, room)]
    assert types == ["com.example.keep"], types


async def test_TestSyncFilter_uploaded(alice):
    """Complement: TestSyncFilter/Can create filter
    Complement: TestSyncFilter/Can download filter
    sytest: Can create filter; Can download filter; filter_id usable in /sync (nio.AsyncClient.upload_filter)"""
    room = await alice.create_room()
    await alice.send(room, "com.example.only", {})
    await alice.send_text(room, "not me")
    resp = await alice.nio.upload_filter(room={"timeline": {"types": ["com.example.only"]}})
    assert isinstance(resp, UploadFilterResponse), resp
    got = await alice.ok("GET", f"{CS}/user/{q(alice.user_id)}/filter/{q(resp.filter_id)}")
    assert got["room"]["timeline"]["types"] == ["com.example.only"]
    body = await alice.sync(filter=resp.filter_id)
    assert [e["type"] for e in timeline(body, room)] == ["com.example.only"]


async def test_sync_filter_rooms(alice):
    """sytest: Filtered /sync includes only the listed rooms (room.rooms / not_rooms)"""
    r1 = await alice.create_room()
    r2 = await alice.create_room()
    body = await alice.sync(filter={"room": {"rooms": [r1]}})
    assert joined(body, r1) is not None, body
    assert joined(body, r2) is None, body
    body = await alice.sync(filter={"room": {"not_rooms": [r1]}})
    assert joined(body, r1) is None, body
    assert joined(body, r2) is not None, body


async def test_sync_lazy_loaded_members(alice, bob, charlie):
    """sytest: The only membership state included in an initial sync is for all the senders in the timeline
    (lazy_load_members)"""
    room = await alice.create_room(preset="public_chat", name="named, so no heroes are needed")
    await bob.join(room)
    await charlie.join(room)
    for i in range(3):
        await alice.send_text(room, f"filler{i}")
    await bob.send_text(room, "last word")
    flt = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    body = await alice.sync(filter=flt)
    r = joined(body, room)
    assert [e["sender"] for e in r["timeline"]["events"]] == [bob.user_id]
    members = {e["state_key"] for e in r["state"]["events"] if e["type"] == "m.room.member"}
    members |= {e["state_key"] for e in r["timeline"]["events"] if e["type"] == "m.room.member"}
    assert bob.user_id in members
    # Heroes' member events may be included (the spec asks for them when lazy-loading); nobody else's.
    heroes = r.get("summary", {}).get("m.heroes", [])
    assert charlie.user_id in heroes or charlie.user_id not in members, (members, heroes)


async def test_TestRoomSummary(alice, bob, charlie):
    """Complement: TestRoomSummary
    sytest: Room summary counts change when membership changes"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.invite(room, charlie.user_id)
    body = await alice.sync(filter={"room": {"state": {"lazy_load_members": True}}})
    summary = joined(body, room)["summary"]
    assert summary["m.joined_member_count"] == 2
    assert summary["m.invited_member_count"] == 1


async def test_TestSyncLeaveSection(alice, bob):
    """Complement: TestSyncLeaveSection
    sytest: Left rooms appear in the leave section of sync
    sytest: Newly left rooms appear in the leave section of incremental sync"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    since = (await bob.sync())["next_batch"]
    await bob.leave(room)
    body, _ = await bob.sync_until(lambda b: left(b, room), since=since, what="room in leave section")
    evs = timeline(body, room, "leave")
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id and e["content"]["membership"] == "leave" for e in evs), evs
    assert joined(body, room) is None
    full = await bob.sync(filter={"room": {"include_leave": True}})
    assert left(full, room) is not None
    plain = await bob.sync()
    assert left(plain, room) is None, "without include_leave an initial sync omits left rooms"


async def test_TestGappedSyncLeaveSection(alice, bob):
    """Complement: TestGappedSyncLeaveSection
    sytest: Newly left rooms appear in the leave section of gapped sync"""
    room = await alice.create_room(preset="public_chat")
    other = await bob.create_room()
    await bob.join(room)
    flt = {"room": {"timeline": {"limit": 1}}}
    since = (await bob.sync(filter=flt))["next_batch"]
    await bob.leave(room)
    for i in range(5):
        await bob.send_text(other, f"gap{i}")
    body = await bob.sync(since=since, filter=flt)
    assert left(body, room) is not None, body


async def test_TestLeaveEventVisibility(alice, bob):
    """Complement: TestLeaveEventVisibility
    Events after a user leaves are not sent to them."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    since = (await bob.sync())["next_batch"]
    await bob.leave(room)
    after = await alice.send_text(room, "after bob left")
    body, _ = await bob.sync_until(lambda b: left(b, room), since=since, what="leave")
    assert after not in [e["event_id"] for e in timeline(body, room, "leave")]
    later = await bob.sync(since=body["next_batch"])
    assert left(later, room) is None and joined(later, room) is None


async def test_sync_invite_section(alice, bob):
    """sytest: Invited rooms appear in the invite section of incremental sync"""
    room = await alice.create_room(preset="private_chat")
    since = (await bob.sync())["next_batch"]
    await alice.invite(room, bob.user_id)
    body, _ = await bob.sync_until(lambda b: invited(b, room), since=since, what="invite")
    events = invited(body, room)["invite_state"]["events"]
    me = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert me and me[0]["content"]["membership"] == "invite" and me[0]["sender"] == alice.user_id
    # After joining, the room moves to the join section.
    await bob.join(room)
    await bob.sync_until(lambda b: joined(b, room), since=body["next_batch"], what="join after invite")


async def test_sync_full_state(alice):
    """sytest: A full_state incremental update returns all state
    sytest: A full_state incremental update returns only recent timeline"""
    room = await alice.create_room(name="fs")
    flt = {"room": {"timeline": {"limit": 1}}}
    since = (await alice.sync(filter=flt))["next_batch"]
    eid = await alice.send_text(room, "recent")
    body = await alice.sync(since=since, filter=flt, full_state=True)
    r = joined(body, room)
    state_keys = {(e["type"], e["state_key"]) for e in r["state"]["events"]}
    assert ("m.room.create", "") in state_keys and ("m.room.name", "") in state_keys, state_keys
    assert [e["event_id"] for e in r["timeline"]["events"]] == [eid]


async def test_sync_state_changes_in_incremental(alice, bob):
    """sytest: Newly joined room is included in an incremental sync; member events arrive in the timeline"""
    room = await alice.create_room(preset="public_chat")
    since = (await alice.sync())["next_batch"]
    await bob.join(room)
    _, ev = await alice.sync_until(
        timeline_has(room, lambda e: e["type"] == "m.room.member" and e["state_key"] == bob.user_id),
        since=since,
        what="bob's join",
    )
    assert ev["content"]["membership"] == "join"
    bsince = None
    body, _ = await bob.sync_until(lambda b: joined(b, room), since=bsince, what="room in bob's sync")


async def test_sync_requires_auth(http):
    """sytest: /sync without an access token is 401 M_MISSING_TOKEN"""
    r = await http.request("GET", f"{CS}/sync")
    assert_status(r, 401, "M_MISSING_TOKEN")
