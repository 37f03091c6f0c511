"""Jump to date: GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event (MSC3030).
Complement: TestJumpToDateEndpoint (room_timestamp_to_event_test.go). Complement's subtests that need
timestamp massaging (`?ts=` for application services) are not here."""

import asyncio

from helpers import assert_status, q

V1 = "/_matrix/client/v1"


async def jump(user, room, ts, direction):
    return await user.req("GET", f"{V1}/rooms/{q(room)}/timestamp_to_event", params={"ts": ts, "dir": direction})


async def event_ts(user, room, eid):
    return (await user.ok("GET", f"/_matrix/client/v3/rooms/{q(room)}/event/{q(eid)}"))["origin_server_ts"]


async def two_messages(alice):
    room = await alice.create_room(preset="public_chat")
    first = await alice.send_text(room, "message 1")
    await asyncio.sleep(0.02)
    second = await alice.send_text(room, "message 2")
    return room, (first, await event_ts(alice, room, first)), (second, await event_ts(alice, room, second))


async def test_TestJumpToDateEndpoint_should_find_event_after_given_timestamp(alice):
    """Complement: TestJumpToDateEndpoint/parallel/should_find_event_after_given_timestmap"""
    room, (first, ts1), (second, ts2) = await two_messages(alice)
    r = await jump(alice, room, ts1 + 1, "f")
    assert_status(r, 200)
    assert (r.body["event_id"], r.body["origin_server_ts"]) == (second, ts2)


async def test_TestJumpToDateEndpoint_should_find_event_before_given_timestamp(alice):
    """Complement: TestJumpToDateEndpoint/parallel/should_find_event_before_given_timestmap"""
    room, (first, ts1), (second, ts2) = await two_messages(alice)
    r = await jump(alice, room, ts2 - 1, "b")
    assert_status(r, 200)
    assert (r.body["event_id"], r.body["origin_server_ts"]) == (first, ts1)


async def test_TestJumpToDateEndpoint_should_find_nothing_before_the_earliest_timestamp(alice):
    """Complement: TestJumpToDateEndpoint/parallel/should_find_nothing_before_the_earliest_timestmap"""
    room = await alice.create_room(preset="public_chat")
    assert_status(await jump(alice, room, 1, "b"), 404, "M_NOT_FOUND")


async def test_TestJumpToDateEndpoint_should_find_nothing_after_the_latest_timestamp(alice):
    """Complement: TestJumpToDateEndpoint/parallel/should_find_nothing_after_the_latest_timestmap"""
    room, _, (_, ts2) = await two_messages(alice)
    assert_status(await jump(alice, room, ts2 + 60_000, "f"), 404, "M_NOT_FOUND")


async def test_TestJumpToDateEndpoint_should_not_be_able_to_query_a_private_room_you_are_not_a_member_of(alice, bob):
    """Complement: TestJumpToDateEndpoint/parallel/should_not_be_able_to_query_a_private_room_you_are_not_a_member_of"""
    room = await alice.create_room(preset="private_chat")
    eid = await alice.send_text(room, "secret")
    assert_status(await jump(bob, room, await event_ts(alice, room, eid), "b"), 403, "M_FORBIDDEN")


async def test_TestJumpToDateEndpoint_should_not_be_able_to_query_a_public_room_you_are_not_a_member_of(alice, bob):
    """Complement: TestJumpToDateEndpoint/parallel/should_not_be_able_to_query_a_public_room_you_are_not_a_member_of"""
    room, _, (_, ts2) = await two_messages(alice)
    assert_status(await jump(bob, room, ts2, "b"), 403, "M_FORBIDDEN")


async def test_TestJumpToDateEndpoint_should_be_able_to_query_a_world_readable_room_you_are_not_a_member_of(alice, bob):
    """Complement: TestJumpToDateEndpoint/parallel/should_be_able_to_query_a_public_(world_readable)_room_you_are_not_a_member_of"""
    room = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}],
    )
    eid = await alice.send_text(room, "for everyone")
    r = await jump(bob, room, await event_ts(alice, room, eid), "b")
    assert_status(r, 200)
    assert r.body["event_id"] == eid
    # The event found can be read with /context (what clients do next).
    ctx = await alice.ok("GET", f"/_matrix/client/v3/rooms/{q(room)}/context/{q(eid)}", params={"limit": 2})
    assert ctx["event"]["event_id"] == eid and ctx["events_after"] == []
