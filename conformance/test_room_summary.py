"""Room previews and finding rooms: the room summary (MSC3266 / spec v1.15 GET /room_summary/{roomIdOrAlias}),
mutual rooms (MSC2666), and the empty lists Synapse always sends (/search, /pushrules).
Complement: TestRoomSummaryAllowedRoomIDs (room_summary_test.go); TestSearch for the empty search."""

from helpers import CS, assert_status, q

V1 = "/_matrix/client/v1"


async def test_TestRoomSummaryAllowedRoomIDs(alice, bob):
    """Complement: TestRoomSummaryAllowedRoomIDs: allowed_room_ids for a restricted room, absent otherwise."""
    space = await alice.create_room(preset="public_chat", creation_content={"type": "m.space"})
    restricted = await alice.create_room(
        preset="public_chat",
        initial_state=[{
            "type": "m.room.join_rules", "state_key": "",
            "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]},
        }],
    )
    await bob.join(space)
    summary = await bob.ok("GET", f"{V1}/room_summary/{q(restricted)}")
    assert summary["join_rule"] == "restricted", summary
    assert summary["allowed_room_ids"] == [space]
    assert summary["membership"] == "leave"
    public = await bob.ok("GET", f"{V1}/room_summary/{q(space)}")
    assert "allowed_room_ids" not in public
    assert public["room_type"] == "m.space" and public["membership"] == "join"


async def test_room_summary_private_rooms_are_hidden(alice, bob, http):
    """MSC3266: a private room is 404 to strangers and to anonymous callers, visible once invited."""
    room = await alice.create_room(preset="private_chat", name="Hidden")
    assert_status(await bob.req("GET", f"{V1}/room_summary/{q(room)}"), 404, "M_NOT_FOUND")
    assert_status(await http.request("GET", f"{V1}/room_summary/{q(room)}"), 404, "M_NOT_FOUND")
    await alice.invite(room, bob.user_id)
    summary = await bob.ok("GET", f"/_matrix/client/unstable/im.nheko.summary/rooms/{q(room)}/summary")
    assert (summary["name"], summary["membership"]) == ("Hidden", "invite")


async def test_mutual_rooms(alice, bob):
    """MSC2666: the rooms both users are joined to."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    body = await alice.ok("GET", f"{V1}/mutual_rooms", params={"user_id": bob.user_id})
    assert body["joined"] == [room] and body["count"] == 1
    body = await bob.ok("GET", "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms", params={"user_id": alice.user_id})
    assert room in body["joined"]


async def test_TestSearch_empty_results_still_have_results_count_and_highlights(alice):
    """Complement: TestSearch (a search that matches nothing): Synapse always sends results, count, highlights."""
    room = await alice.create_room(preset="private_chat")
    await alice.send_text(room, "hello")
    body = await alice.ok("POST", f"{CS}/search", json={"search_categories": {"room_events": {
        "search_term": "nothingmatchesthis", "filter": {"rooms": [room]}}}})
    events = body["search_categories"]["room_events"]
    assert (events["results"], events["count"], events["highlights"]) == ([], 0, [])


async def test_pushrules_have_every_kind_even_empty(alice):
    """sytest: Can fetch a user's pushrules: every kind is a list, `room` and `sender` included."""
    for path, rules in [(f"{CS}/pushrules/", lambda b: b["global"]), (f"{CS}/pushrules/global/", lambda b: b)]:
        body = rules(await alice.ok("GET", path))
        for kind in ["override", "content", "room", "sender", "underride"]:
            assert isinstance(body[kind], list), (path, kind, body)
