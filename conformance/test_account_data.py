"""Account data (global and per room), tags, filters.
Complement: TestAddAccountData, TestWriteMDirectAccountData, TestFilter, TestSyncFilter."""

from nio import UploadFilterResponse

from helpers import CS, assert_status, joined, q


def ad_path(user_id, typ, room=None):
    if room:
        return f"{CS}/user/{q(user_id)}/rooms/{q(room)}/account_data/{q(typ)}"
    return f"{CS}/user/{q(user_id)}/account_data/{q(typ)}"


def find(events, typ):
    return [e for e in events if e["type"] == typ]


async def test_TestAddAccountData_global(alice):
    """Complement: TestAddAccountData/Can add global account data
    sytest: Can add account data; Can get account data without syncing"""
    await alice.ok("PUT", ad_path(alice.user_id, "com.example.global"), json={"k": "v1"})
    assert await alice.ok("GET", ad_path(alice.user_id, "com.example.global")) == {"k": "v1"}
    await alice.ok("PUT", ad_path(alice.user_id, "com.example.global"), json={"k": "v2"})
    assert await alice.ok("GET", ad_path(alice.user_id, "com.example.global")) == {"k": "v2"}
    body = await alice.sync()
    evs = find(body["account_data"]["events"], "com.example.global")
    assert evs and evs[0]["content"] == {"k": "v2"}


async def test_TestAddAccountData_room(alice):
    """Complement: TestAddAccountData/Can add room account data
    sytest: Can add account data to room; Can get room account data without syncing"""
    room = await alice.create_room()
    await alice.ok("PUT", ad_path(alice.user_id, "com.example.room", room), json={"r": 1})
    assert await alice.ok("GET", ad_path(alice.user_id, "com.example.room", room)) == {"r": 1}
    r = await alice.req("GET", ad_path(alice.user_id, "com.example.room"))
    assert_status(r, 404, "M_NOT_FOUND")
    body = await alice.sync()
    evs = find(joined(body, room)["account_data"]["events"], "com.example.room")
    assert evs and evs[0]["content"] == {"r": 1}


async def test_account_data_incremental_sync(alice):
    """sytest: Latest account data comes down in /sync / in incremental sync"""
    since = (await alice.sync())["next_batch"]
    await alice.ok("PUT", ad_path(alice.user_id, "com.example.incr"), json={"n": 1})
    await alice.sync_until(
        lambda b: find(b.get("account_data", {}).get("events", []), "com.example.incr"),
        since=since,
        what="account data in incremental sync",
    )


async def test_account_data_not_found(alice):
    """sytest: GET unknown account data is 404 M_NOT_FOUND"""
    r = await alice.req("GET", ad_path(alice.user_id, "com.example.never"))
    assert_status(r, 404, "M_NOT_FOUND")


async def test_account_data_other_user_forbidden(alice, bob):
    """sytest: Cannot read or write another user's account data (403 M_FORBIDDEN)"""
    await bob.ok("PUT", ad_path(bob.user_id, "com.example.private"), json={"secret": True})
    r = await alice.req("GET", ad_path(bob.user_id, "com.example.private"))
    assert_status(r, 403, "M_FORBIDDEN")
    r = await alice.req("PUT", ad_path(bob.user_id, "com.example.private"), json={"secret": False})
    assert_status(r, 403, "M_FORBIDDEN")
    room = await bob.create_room()
    r = await alice.req("PUT", ad_path(bob.user_id, "com.example.private", room), json={})
    assert_status(r, 403, "M_FORBIDDEN")
    assert await bob.ok("GET", ad_path(bob.user_id, "com.example.private")) == {"secret": True}


async def test_account_data_server_managed_types(alice):
    """sytest: m.fully_read cannot be set through the account data API (405 M_BAD_JSON)"""
    room = await alice.create_room()
    eid = await alice.send_text(room, "x")
    r = await alice.req("PUT", ad_path(alice.user_id, "m.fully_read", room), json={"event_id": eid})
    assert_status(r, 405, "M_BAD_JSON")


async def test_account_data_not_object(alice):
    """sytest: Account data content must be a JSON object (400 M_BAD_JSON or M_NOT_JSON)"""
    r = await alice.req("PUT", ad_path(alice.user_id, "com.example.bad"), data=b"[1,2]")
    assert r.status == 400 and r.errcode in ("M_BAD_JSON", "M_NOT_JSON"), r
    r = await alice.req("GET", ad_path(alice.user_id, "com.example.bad"))
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestWriteMDirectAccountData(alice, bob):
    """Complement: TestWriteMDirectAccountData"""
    room = await alice.create_room(is_direct=True, invite=[bob.user_id])
    await alice.ok("PUT", ad_path(alice.user_id, "m.direct"), json={bob.user_id: [room]})
    body, _ = await alice.sync_until(
        lambda b: find(b.get("account_data", {}).get("events", []), "m.direct"), what="m.direct"
    )
    assert find(body["account_data"]["events"], "m.direct")[0]["content"] == {bob.user_id: [room]}


async def test_tags(alice):
    """sytest: Can add tag; Can remove tag; Can list tags for a room; Tags appear in an initial v2 /sync"""
    room = await alice.create_room()
    base = f"{CS}/user/{q(alice.user_id)}/rooms/{q(room)}/tags"
    await alice.ok("PUT", f"{base}/m.favourite", json={"order": 0.25})
    await alice.ok("PUT", f"{base}/u.work", json={})
    tags = (await alice.ok("GET", base))["tags"]
    assert tags["m.favourite"] == {"order": 0.25} and "u.work" in tags
    body = await alice.sync()
    tag_ev = find(joined(body, room)["account_data"]["events"], "m.tag")
    assert tag_ev and set(tag_ev[0]["content"]["tags"]) == {"m.favourite", "u.work"}
    since = body["next_batch"]
    await alice.ok("DELETE", f"{base}/u.work")
    assert set((await alice.ok("GET", base))["tags"]) == {"m.favourite"}
    await alice.sync_until(
        lambda b: any(
            set(e["content"]["tags"]) == {"m.favourite"}
            for e in find((joined(b, room) or {}).get("account_data", {}).get("events", []), "m.tag")
        ),
        since=since,
        what="tag removal in incremental sync",
    )


async def test_tags_other_user_forbidden(alice, bob):
    """sytest: Cannot set tags for another user (403)"""
    room = await bob.create_room()
    r = await alice.req("PUT", f"{CS}/user/{q(bob.user_id)}/rooms/{q(room)}/tags/u.x", json={})
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await bob.ok("GET", f"{CS}/user/{q(bob.user_id)}/rooms/{q(room)}/tags"))["tags"] == {}


async def test_TestFilter_create_and_get(alice):
    """Complement: TestSyncFilter/Can create filter
    Complement: TestSyncFilter/Can download filter
    sytest: Can create filter; Can download filter"""
    flt = {"room": {"timeline": {"limit": 10, "types": ["m.room.message"]}}, "presence": {"not_types": ["*"]}}
    resp = await alice.nio.upload_filter(room=flt["room"], presence=flt["presence"])
    assert isinstance(resp, UploadFilterResponse), resp
    got = await alice.ok("GET", f"{CS}/user/{q(alice.user_id)}/filter/{q(resp.filter_id)}")
    assert got["room"]["timeline"]["limit"] == 10
    assert got["room"]["timeline"]["types"] == ["m.room.message"]
    assert got["presence"]["not_types"] == ["*"]


async def test_TestFilter_unknown_and_forbidden(alice, bob):
    """Complement: TestFilter
    sytest: Cannot create a filter for another user (403); unknown filter is 404"""
    r = await alice.req("GET", f"{CS}/user/{q(alice.user_id)}/filter/999999999")
    assert_status(r, 404, "M_NOT_FOUND")
    r = await alice.req("POST", f"{CS}/user/{q(bob.user_id)}/filter", json={"room": {}})
    assert_status(r, 403, "M_FORBIDDEN")
    fid = (await bob.ok("POST", f"{CS}/user/{q(bob.user_id)}/filter", json={"room": {"timeline": {"limit": 1}}}))["filter_id"]
    r = await alice.req("GET", f"{CS}/user/{q(bob.user_id)}/filter/{q(fid)}")
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestFilter_invalid(alice):
    """Complement: TestFilter
    sytest: Check creating invalid filters returns 4xx"""
    for bad in ({"room": {"timeline": {"limit": "ten"}}}, {"event_format": "wrong"}, {"room": {"rooms": "!notalist"}}):
        r = await alice.req("POST", f"{CS}/user/{q(alice.user_id)}/filter", json=bad)
        assert r.status == 400 and r.errcode in ("M_BAD_JSON", "M_INVALID_PARAM"), (bad, r)
