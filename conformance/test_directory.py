"""Room aliases, the public room directory, directory visibility and the user directory.
Complement: TestRoomAlias, TestRoomDeleteAlias, TestRoomCanonicalAlias, TestPublicRooms."""

from nio import (
    RoomDeleteAliasResponse,
    RoomPutAliasResponse,
    RoomResolveAliasResponse,
)

from nio.responses import PublicRoomsResponse

from helpers import CS, assert_status, q, rand_localpart, wait_for


def alias_for(server, prefix="a"):
    return f"#{rand_localpart(prefix)}:{server.server_name}"


async def test_TestRoomAlias_create_resolve(alice, server):
    """Complement: TestRoomAlias/PUT /directory/room/:room_alias creates alias
    Complement: TestRoomAlias/GET /directory/room/:room_alias yields room ID
    (nio.AsyncClient.room_put_alias / room_resolve_alias)"""
    room = await alice.create_room()
    alias = alias_for(server)
    resp = await alice.nio.room_put_alias(alias, room)
    assert isinstance(resp, RoomPutAliasResponse), resp
    resp = await alice.nio.room_resolve_alias(alias)
    assert isinstance(resp, RoomResolveAliasResponse), resp
    assert resp.room_id == room
    assert server.server_name in resp.servers


async def test_TestRoomAlias_list(alice, bob, server):
    """Complement: TestRoomAlias/GET /rooms/:room_id/aliases lists aliases
    Complement: TestRoomAlias/Only room members can list aliases of a room"""
    room = await alice.create_room(preset="private_chat")
    assert (await alice.ok("GET", f"{CS}/rooms/{q(room)}/aliases"))["aliases"] == []
    a1, a2 = alias_for(server), alias_for(server)
    for a in (a1, a2):
        await alice.ok("PUT", f"{CS}/directory/room/{q(a)}", json={"room_id": room})
    assert sorted((await alice.ok("GET", f"{CS}/rooms/{q(room)}/aliases"))["aliases"]) == sorted([a1, a2])
    r = await bob.req("GET", f"{CS}/rooms/{q(room)}/aliases")
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestRoomAlias_conflict(alice, server):
    """sytest: PUT /directory/room/:room_alias of an existing alias is 409; the mapping is unchanged."""
    r1 = await alice.create_room()
    r2 = await alice.create_room()
    alias = alias_for(server)
    await alice.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": r1})
    r = await alice.req("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": r2})
    assert_status(r, 409)
    assert (await alice.ok("GET", f"{CS}/directory/room/{q(alias)}"))["room_id"] == r1


async def test_alias_unknown(alice, server):
    """sytest: GET /directory/room/:room_alias of an unknown alias is 404 M_NOT_FOUND"""
    r = await alice.req("GET", f"{CS}/directory/room/{q(alias_for(server, 'none'))}")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_alias_invalid(alice):
    """sytest: PUT /directory/room with an invalid alias is 400 M_INVALID_PARAM"""
    room = await alice.create_room()
    r = await alice.req("PUT", f"{CS}/directory/room/{q('not-an-alias')}", json={"room_id": room})
    assert_status(r, 400, "M_INVALID_PARAM")


async def test_TestRoomDeleteAlias_creator(alice, server):
    """Complement: TestRoomDeleteAlias/Alias creators can delete alias with no ops
    Complement: TestRoomDeleteAlias/Deleting a non-existent alias should return a 404
    (nio.AsyncClient.room_delete_alias)"""
    room = await alice.create_room(preset="public_chat")
    alias = alias_for(server)
    await alice.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": room})
    resp = await alice.nio.room_delete_alias(alias)
    assert isinstance(resp, RoomDeleteAliasResponse), resp
    assert_status(await alice.req("GET", f"{CS}/directory/room/{q(alias)}"), 404, "M_NOT_FOUND")
    assert_status(await alice.req("DELETE", f"{CS}/directory/room/{q(alias)}"), 404, "M_NOT_FOUND")


async def test_TestRoomDeleteAlias_others_forbidden(alice, bob, server):
    """Complement: TestRoomDeleteAlias/Users can't delete other's aliases
    Complement: TestRoomDeleteAlias/Users with sufficient power-level can delete other's aliases"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    alias = alias_for(server)
    await bob.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": room})
    other = alias_for(server)
    await alice.ok("PUT", f"{CS}/directory/room/{q(other)}", json={"room_id": room})
    r = await bob.req("DELETE", f"{CS}/directory/room/{q(other)}")
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await bob.ok("GET", f"{CS}/directory/room/{q(other)}"))["room_id"] == room
    # alice is the room admin: she can delete bob's alias
    await alice.ok("DELETE", f"{CS}/directory/room/{q(alias)}")
    assert_status(await alice.req("GET", f"{CS}/directory/room/{q(alias)}"), 404, "M_NOT_FOUND")


async def test_TestRoomCanonicalAlias(alice, server):
    """Complement: TestRoomCanonicalAlias/m.room.canonical_alias accepts present aliases
    Complement: TestRoomCanonicalAlias/m.room.canonical_alias rejects missing aliases
    Complement: TestRoomCanonicalAlias/m.room.canonical_alias rejects invalid aliases"""
    room = await alice.create_room()
    alias = alias_for(server)
    await alice.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": room})
    await alice.put_state(room, "m.room.canonical_alias", {"alias": alias})
    assert (await alice.state_content(room, "m.room.canonical_alias"))["alias"] == alias
    r = await alice.req(
        "PUT", f"{CS}/rooms/{q(room)}/state/m.room.canonical_alias/", json={"alias": alias_for(server, "missing")}
    )
    assert_status(r, 400, "M_BAD_ALIAS")
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/state/m.room.canonical_alias/", json={"alias": "%invalid:x"})
    assert r.status == 400 and r.errcode in ("M_INVALID_PARAM", "M_BAD_ALIAS"), r
    assert (await alice.state_content(room, "m.room.canonical_alias"))["alias"] == alias


async def test_TestPublicRooms_listed(alice, server):
    """Complement: TestPublicRooms
    sytest: GET /publicRooms lists newly-created room (nio.AsyncClient.list_public_rooms)"""
    name = rand_localpart("Pub")
    room = await alice.create_room(visibility="public", preset="public_chat", name=name, topic="a topic", room_alias_name=name.lower())
    resp = await alice.nio.list_public_rooms(limit=100, filter_generic_search_term=name)
    assert isinstance(resp, PublicRoomsResponse), resp
    assert [r.room_id for r in resp.public_rooms] == [room]
    body = await alice.ok("POST", f"{CS}/publicRooms", json={"filter": {"generic_search_term": name}})
    (entry,) = body["chunk"]
    assert entry["room_id"] == room and entry["name"] == name and entry["topic"] == "a topic"
    assert entry["num_joined_members"] == 1
    assert entry["canonical_alias"] == f"#{name.lower()}:{server.server_name}"
    assert entry["world_readable"] is False and entry["guest_can_join"] is False
    assert entry.get("join_rule", "public") == "public"
    all_rooms = await alice.ok("GET", f"{CS}/publicRooms", params={"limit": 500})
    assert room in [r["room_id"] for r in all_rooms["chunk"]]


async def test_TestPublicRooms_pagination(alice):
    """Complement: TestPublicRooms
    sytest: Can paginate public room list (limit, since, next_batch, prev_batch)"""
    tag = rand_localpart("Page")
    rooms = {await alice.create_room(visibility="public", name=f"{tag} {i}") for i in range(3)}
    seen = []
    since = None
    for page_no in range(5):
        req = {"limit": 1, "filter": {"generic_search_term": tag}}
        if since:
            req["since"] = since
        body = await alice.ok("POST", f"{CS}/publicRooms", json=req)
        assert len(body["chunk"]) <= 1
        seen += [r["room_id"] for r in body["chunk"]]
        if page_no > 0:
            assert "prev_batch" in body, body
        since = body.get("next_batch")
        if not since:
            break
    assert sorted(seen) == sorted(rooms)


async def test_directory_visibility(alice, bob):
    """sytest: Can set the directory visibility of a room; only privileged members may (403)"""
    tag = rand_localpart("Vis")
    room = await alice.create_room(preset="public_chat", name=tag)
    assert (await alice.ok("GET", f"{CS}/directory/list/room/{q(room)}"))["visibility"] == "private"
    await alice.ok("PUT", f"{CS}/directory/list/room/{q(room)}", json={"visibility": "public"})
    assert (await bob.ok("GET", f"{CS}/directory/list/room/{q(room)}"))["visibility"] == "public"
    body = await bob.ok("POST", f"{CS}/publicRooms", json={"filter": {"generic_search_term": tag}})
    assert [r["room_id"] for r in body["chunk"]] == [room]
    await bob.join(room)
    r = await bob.req("PUT", f"{CS}/directory/list/room/{q(room)}", json={"visibility": "private"})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await bob.ok("GET", f"{CS}/directory/list/room/{q(room)}"))["visibility"] == "public"
    await alice.ok("PUT", f"{CS}/directory/list/room/{q(room)}", json={"visibility": "private"})
    body = await bob.ok("POST", f"{CS}/publicRooms", json={"filter": {"generic_search_term": tag}})
    assert body["chunk"] == []


async def test_directory_visibility_unknown_room(alice, server):
    """sytest: GET /directory/list/room of an unknown room is 404 M_NOT_FOUND"""
    r = await alice.req("GET", f"{CS}/directory/list/room/{q('!unknown:' + server.server_name)}")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_user_directory_search(alice, bob):
    """sytest: User directory finds users who share a room (by display name and by user ID)"""
    tag = rand_localpart("Zeb")
    await bob.ok("PUT", f"{CS}/profile/{q(bob.user_id)}/displayname", json={"displayname": tag})
    room = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    await bob.join(room)

    async def found():
        body = await alice.ok("POST", f"{CS}/user_directory/search", json={"search_term": tag, "limit": 10})
        assert isinstance(body["limited"], bool)
        return [r for r in body["results"] if r["user_id"] == bob.user_id]

    (hit,) = await wait_for(found, what="bob in the user directory")
    assert hit["display_name"] == tag

    async def found_by_id():
        body = await alice.ok("POST", f"{CS}/user_directory/search", json={"search_term": bob.localpart})
        return [r for r in body["results"] if r["user_id"] == bob.user_id]

    await wait_for(found_by_id, what="bob by localpart")


async def test_user_directory_requires_auth(http):
    """sytest: /user_directory/search needs an access token"""
    r = await http.request("POST", f"{CS}/user_directory/search", json={"search_term": "x"})
    assert_status(r, 401, "M_MISSING_TOKEN")
