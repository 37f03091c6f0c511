"""History visibility on /messages, /context, /event, /sync.
Complement: TestFetchEvent*, TestFetchHistorical* (apidoc_room_history_visibility_test.go)."""

from helpers import CS, assert_status, q


async def make_room(alice, visibility, preset="public_chat"):
    return await alice.create_room(
        preset=preset,
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": visibility}}],
    )


async def can_see_event(user, room, eid):
    r = await user.req("GET", f"{CS}/rooms/{q(room)}/event/{q(eid)}")
    if r.status == 200:
        return True
    assert_status(r, 404, "M_NOT_FOUND")
    return False


async def visible_in_messages(user, room, eid):
    page = await user.ok("GET", f"{CS}/rooms/{q(room)}/messages", params={"dir": "b", "limit": 50})
    return eid in [e["event_id"] for e in page["chunk"]]


async def test_TestFetchEventNonWorldReadable(alice, bob):
    """Complement: TestFetchEventNonWorldReadable
    sytest: /event/ on non world readable room does not work"""
    room = await make_room(alice, "shared")
    eid = await alice.send_text(room, "members only")
    assert not await can_see_event(bob, room, eid)
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/messages", params={"dir": "b"})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/context/{q(eid)}")
    assert r.status in (403, 404) and r.errcode in ("M_FORBIDDEN", "M_NOT_FOUND"), r


async def test_TestFetchEventWorldReadable(alice, bob):
    """Complement: TestFetchEventWorldReadable
    sytest: /event/ on world readable room works; non-members may read /messages"""
    room = await make_room(alice, "world_readable")
    eid = await alice.send_text(room, "for everyone")
    assert await can_see_event(bob, room, eid)
    assert await visible_in_messages(bob, room, eid)
    body = await bob.ok("GET", f"{CS}/rooms/{q(room)}/context/{q(eid)}")
    assert body["event"]["event_id"] == eid


async def test_TestFetchHistoricalSharedEvent(alice, bob):
    """Complement: TestFetchHistoricalSharedEvent
    shared: after joining, events from before the join are visible."""
    room = await make_room(alice, "shared")
    eid = await alice.send_text(room, "before bob")
    await bob.join(room)
    assert await can_see_event(bob, room, eid)
    assert await visible_in_messages(bob, room, eid)
    body = await bob.ok("GET", f"{CS}/rooms/{q(room)}/context/{q(eid)}")
    assert body["event"]["event_id"] == eid


async def test_TestFetchHistoricalInvitedEventFromBeforeInvite(alice, bob):
    """Complement: TestFetchHistoricalInvitedEventFromBeforeInvite
    invited: events before the invite are hidden."""
    room = await make_room(alice, "invited", preset="private_chat")
    eid = await alice.send_text(room, "before invite")
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    assert not await can_see_event(bob, room, eid)
    assert not await visible_in_messages(bob, room, eid)


async def test_TestFetchHistoricalInvitedEventFromBetweenInvite(alice, bob):
    """Complement: TestFetchHistoricalInvitedEventFromBetweenInvite
    invited: events between invite and join are visible."""
    room = await make_room(alice, "invited", preset="private_chat")
    await alice.invite(room, bob.user_id)
    eid = await alice.send_text(room, "between invite and join")
    await bob.join(room)
    assert await can_see_event(bob, room, eid)
    assert await visible_in_messages(bob, room, eid)


async def test_TestFetchHistoricalJoinedEventDenied(alice, bob):
    """Complement: TestFetchHistoricalJoinedEventDenied
    sytest: /event/ does not allow access to events before the user joined
    joined: events before the join are hidden, events after it are visible."""
    room = await make_room(alice, "joined")
    before = await alice.send_text(room, "before join")
    await bob.join(room)
    after = await alice.send_text(room, "after join")
    assert not await can_see_event(bob, room, before)
    assert not await visible_in_messages(bob, room, before)
    assert await can_see_event(bob, room, after)
    assert await visible_in_messages(bob, room, after)
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/context/{q(before)}")
    assert r.status in (403, 404) and r.errcode in ("M_FORBIDDEN", "M_NOT_FOUND"), r


async def test_history_after_leave_hidden(alice, bob):
    """sytest: Events sent after a user leaves are not visible to them (any history_visibility but world_readable)"""
    room = await make_room(alice, "shared")
    await bob.join(room)
    while_in = await alice.send_text(room, "while bob in")
    await bob.leave(room)
    after = await alice.send_text(room, "after bob left")
    assert await can_see_event(bob, room, while_in)
    assert not await can_see_event(bob, room, after)
    page = await bob.ok("GET", f"{CS}/rooms/{q(room)}/messages", params={"dir": "b", "limit": 50})
    ids = [e["event_id"] for e in page["chunk"]]
    assert while_in in ids and after not in ids


async def test_history_visibility_in_sync_joined(alice, bob):
    """sytest: joined history_visibility hides earlier events from the joiner's initial /sync"""
    room = await make_room(alice, "joined")
    before = await alice.send_text(room, "secret before")
    await bob.join(room)
    body = await bob.sync(filter={"room": {"timeline": {"limit": 20}}})
    ids = [e["event_id"] for e in body["rooms"]["join"][room]["timeline"]["events"]]
    assert before not in ids
