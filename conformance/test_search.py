"""Server-side search: POST /search (category room_events).
Complement: TestSearch (apidoc_search_test.go); like Complement, every search names its room in
filter.rooms, so tests sharing the server never see each other's messages."""

import pytest

from helpers import CS, assert_status, q


async def search(user, room, criteria, next_batch=None):
    criteria = {**criteria, "filter": {**criteria.get("filter", {}), "rooms": [room]}}
    params = {"next_batch": next_batch} if next_batch else None
    body = await user.ok("POST", f"{CS}/search", json={"search_categories": {"room_events": criteria}}, params=params)
    return body["search_categories"]["room_events"]


async def test_TestSearch_can_search_for_an_event_by_body(alice):
    """Complement: TestSearch/parallel/Can_search_for_an_event_by_body
    sytest: Can search for an event by body"""
    room = await alice.create_room(preset="private_chat")
    eid = await alice.send_text(room, "hello, world")
    await alice.send_text(room, "something else")
    found = await search(alice, room, {"search_term": "hello", "keys": ["content.body"]})
    assert found["count"] == 1, found
    assert len(found["results"]) == 1
    result = found["results"][0]["result"]
    assert result["event_id"] == eid
    assert result["room_id"] == room
    assert result["content"]["body"] == "hello, world"
    assert "hello" in found["highlights"]


async def test_TestSearch_can_get_context_around_search_results(alice):
    """Complement: TestSearch/parallel/Can_get_context_around_search_results
    sytest: Can get context around search results"""
    room = await alice.create_room(preset="private_chat")
    for i in range(1, 7):
        await alice.send_text(room, f"Message number {i}")
    found = await search(alice, room, {
        "search_term": "Message number 4",
        "order_by": "recent",
        "event_context": {"before_limit": 1, "after_limit": 1},
    })
    # Every word must match: only "Message number 4" has all three ("4" as a prefix matches only "4").
    assert found["count"] == 1, found
    context = found["results"][0]["context"]
    assert [e["content"]["body"] for e in context["events_before"]] == ["Message number 3"]
    assert [e["content"]["body"] for e in context["events_after"]] == ["Message number 5"]
    assert isinstance(context["start"], str) and isinstance(context["end"], str)
    # The tokens paginate the room further with /messages.
    page = await alice.messages(room, dir="b", limit=1, **{"from": context["start"]})
    assert page["chunk"][0]["content"]["body"] == "Message number 2"


async def test_TestSearch_can_back_paginate_search_results(alice):
    """Complement: TestSearch/parallel/Can_back-paginate_search_results
    sytest: Can back-paginate search results"""
    room = await alice.create_room(preset="private_chat")
    for i in range(20):
        await alice.send_text(room, f"Message number {i}")
    seen, next_batch, pages = [], None, 0
    while True:
        found = await search(alice, room, {"search_term": "Message", "order_by": "rank", "filter": {"limit": 3}}, next_batch)
        assert found["count"] == 20
        seen += [r["result"]["content"]["body"] for r in found["results"]]
        pages += 1
        next_batch = found.get("next_batch")
        if not next_batch:
            break
        assert pages < 10
    assert seen == [f"Message number {i}" for i in reversed(range(20))]
    assert pages == 7


@pytest.mark.parametrize("ordering", ["rank", "recent"])
async def test_TestSearch_search_results_do_not_include_redacted_events(alice, ordering):
    """Complement: TestSearch/parallel/Search_results_with_$ordering_type_ordering_do_not_include_redacted_events
    sytest: Search results with rank ordering do not include redacted events
    sytest: Search results with recent ordering do not include redacted events
    (redacted with nio.AsyncClient.room_redact)"""
    room = await alice.create_room(preset="private_chat")
    redacted = await alice.send_text(room, "This message will be redacted")
    kept = await alice.send_text(room, "This message will not be redacted")
    resp = await alice.nio.room_redact(room, redacted)
    assert getattr(resp, "event_id", None), resp
    found = await search(alice, room, {"search_term": "redacted", "order_by": ordering})
    assert [r["result"]["event_id"] for r in found["results"]] == [kept], found
    assert found["count"] == 1


async def test_search_is_limited_to_what_the_user_may_see(alice, bob):
    """A room the user never joined is not searched, even when the filter names it; in a
    `joined` room only what was sent while the user was there is found."""
    private = await alice.create_room(preset="private_chat")
    await alice.send_text(private, "private quarterly numbers")
    assert (await search(bob, private, {"search_term": "quarterly"}))["count"] == 0
    room = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}],
    )
    await alice.send_text(room, "quarterly report before bob")
    await bob.join(room)
    after = await alice.send_text(room, "quarterly report with bob")
    found = await search(bob, room, {"search_term": "quarterly report"})
    assert [r["result"]["event_id"] for r in found["results"]] == [after], found


async def test_search_errors(alice):
    """Bad input: 400 with the spec's error codes."""
    r = await alice.req("POST", f"{CS}/search", json={"search_categories": {"room_events": {"search_term": "x"}}}, params={"next_batch": "garbage"})
    assert_status(r, 400, "M_INVALID_PARAM")
    r = await alice.req("POST", f"{CS}/search", json={"search_categories": {"room_events": {"search_term": "x", "order_by": "sideways"}}})
    assert_status(r, 400, "M_INVALID_PARAM")
    r = await alice.req("POST", f"{CS}/search", json={"search_categories": {"room_events": {}}})
    assert_status(r, 400, "M_BAD_JSON")
    r = await alice.req("POST", f"{CS}/search", json={"search_categories": {"unknown_category": {"search_term": "x"}}})
    assert_status(r, 400, "M_BAD_JSON")
    r = await alice.req("POST", f"{CS}/search", json={"search_categories": {"room_events": {"search_term": "x"}}}, token=None)
    assert_status(r, 401, "M_MISSING_TOKEN")
