"""Error handling: malformed bodies, auth errors, unknown endpoints, size limits, CORS.
Complement: TestRequestEncodingFails, TestJson, TestEvent, TestUnknownEndpoints."""

import pytest

from helpers import CS, assert_status, q, rand_localpart, txn_id


async def test_TestRequestEncodingFails(alice, http):
    """Complement: TestRequestEncodingFails
    sytest: POST rejects invalid utf-8 in JSON"""
    r = await alice.req("POST", f"{CS}/createRoom", data=b'{"name": "\xff\xfe"}')
    assert_status(r, 400, "M_NOT_JSON")
    r = await http.request("POST", f"{CS}/register", data=b'{"username": "\xff"}')
    assert_status(r, 400, "M_NOT_JSON")


async def test_not_json(alice):
    """sytest: Non-JSON bodies are rejected with 400 M_NOT_JSON; nothing is created."""
    before = (await alice.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
    for body in (b"this is not json", b"{", b'{"a": 1,}', b"{'single': 'quotes'}"):
        r = await alice.req("POST", f"{CS}/createRoom", data=body)
        assert_status(r, 400, "M_NOT_JSON", what=repr(body))
    assert (await alice.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"] == before


async def test_bad_json(alice, http):
    """sytest: JSON of the wrong shape is rejected with 400 M_BAD_JSON"""
    r = await alice.req("POST", f"{CS}/createRoom", json={"invite": "not-a-list"})
    assert_status(r, 400, "M_BAD_JSON")
    r = await alice.req("POST", f"{CS}/createRoom", json=["an", "array"])
    assert_status(r, 400, "M_BAD_JSON")
    r = await http.request("POST", f"{CS}/login", json={"type": "m.login.password", "identifier": "not-an-object", "password": 5})
    assert_status(r, 400, "M_BAD_JSON")
    room = await alice.create_room()
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/{txn_id()}", json=["not", "an", "object"])
    assert_status(r, 400, "M_BAD_JSON")


@pytest.mark.parametrize("raw", [b'{"body": 9007199254740992}', b'{"body": -9007199254740992}', b'{"body": 1.1}'])
async def test_TestJson_invalid_numerical_values(alice, raw):
    """Complement: TestJson/Parallel/Invalid numerical values
    sytest: Invalid JSON integers; Invalid JSON floats"""
    room = await alice.create_room()
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/send/complement.dummy/{txn_id()}", data=raw)
    assert_status(r, 400, "M_BAD_JSON")


@pytest.mark.parametrize("raw", [b'{"body": Infinity}', b'{"body": -Infinity}', b'{"body": NaN}'])
async def test_TestJson_invalid_special_values(alice, raw):
    """Complement: TestJson/Parallel/Invalid JSON special values
    sytest: Invalid JSON special values"""
    room = await alice.create_room()
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/send/complement.dummy/{txn_id()}", data=raw)
    assert_status(r, 400, "M_NOT_JSON")


async def test_TestEvent_large_event(alice):
    """Complement: TestEvent/Parallel/Large Event
    sytest: Event size limits
    An event over 65,536 bytes is 413 M_TOO_LARGE and is not stored."""
    room = await alice.create_room()
    r = await alice.req(
        "PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/{txn_id()}", json={"msgtype": "m.text", "body": "x" * 70000}
    )
    assert_status(r, 413, "M_TOO_LARGE")
    chunk = (await alice.messages(room, limit=5))["chunk"]
    assert all(len(e.get("content", {}).get("body", "")) < 70000 for e in chunk)


async def test_TestEvent_large_state_event(alice):
    """Complement: TestEvent/Parallel/Large State Event"""
    room = await alice.create_room()
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/state/com.example.big/", json={"data": "y" * 70000})
    assert_status(r, 413, "M_TOO_LARGE")
    assert_status(await alice.get_state(room, "com.example.big"), 404, "M_NOT_FOUND")


async def test_event_just_under_limit(alice):
    """sytest: An event whose content is well under the 64 KiB limit is accepted"""
    room = await alice.create_room()
    await alice.send(room, "m.room.message", {"msgtype": "m.text", "body": "z" * 50000})


async def test_missing_and_unknown_token(http, alice):
    """sytest: Missing access token is 401 M_MISSING_TOKEN; unknown is 401 M_UNKNOWN_TOKEN"""
    for method, path in [("GET", f"{CS}/account/whoami"), ("GET", f"{CS}/joined_rooms"), ("POST", f"{CS}/createRoom")]:
        r = await http.request(method, path, **({"json": {}} if method == "POST" else {}))
        assert_status(r, 401, "M_MISSING_TOKEN", what=f"{method} {path}")
        r = await http.request(method, path, token="syt_bogus_token", **({"json": {}} if method == "POST" else {}))
        assert_status(r, 401, "M_UNKNOWN_TOKEN", what=f"{method} {path}")
    r = await http.request("GET", f"{CS}/account/whoami", params={"access_token": alice.access_token})
    assert_status(r, 200)


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/unknown",
        "/_matrix/client/r0/unknown",
        "/_matrix/client/unstable/unknown",
        "/_matrix/client/v3/rooms/!x:y/unknown_action",
        "/_matrix/media/v3/unknown",
        "/_matrix/unknown",
    ],
)
async def test_TestUnknownEndpoints(alice, path):
    """Complement: TestUnknownEndpoints
    sytest: Unknown endpoints return 404 M_UNRECOGNIZED"""
    r = await alice.req("GET", path)
    assert_status(r, 404, "M_UNRECOGNIZED")


async def test_wrong_method(alice):
    """sytest: A known endpoint with the wrong method is 405 M_UNRECOGNIZED"""
    r = await alice.req("PATCH", f"{CS}/createRoom", json={})
    assert_status(r, 405, "M_UNRECOGNIZED")


async def test_cors_preflight(http):
    """sytest: CORS headers are present on an OPTIONS preflight"""
    r = await http.request(
        "OPTIONS",
        f"{CS}/sync",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status in (200, 204), r
    h = r.headers
    assert h.get("Access-Control-Allow-Origin") == "*", dict(h)
    methods = {m.strip().upper() for m in h.get("Access-Control-Allow-Methods", "").split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods, dict(h)
    allowed = {x.strip().lower() for x in h.get("Access-Control-Allow-Headers", "").split(",")}
    assert "*" in allowed or {"authorization", "content-type"} <= allowed, dict(h)


async def test_cors_on_responses(http, alice):
    """sytest: CORS headers are present on normal and error responses"""
    hdr = {"Origin": "https://app.example"}
    r = await http.request("GET", "/_matrix/client/versions", headers=hdr)
    assert r.headers.get("Access-Control-Allow-Origin") == "*", dict(r.headers)
    r = await alice.req("GET", f"{CS}/account/whoami", headers=hdr)
    assert r.status == 200 and r.headers.get("Access-Control-Allow-Origin") == "*", dict(r.headers)
    r = await http.request("GET", f"{CS}/account/whoami", headers=hdr)
    assert r.status == 401 and r.headers.get("Access-Control-Allow-Origin") == "*", dict(r.headers)


GARBAGE = [b"", b"{", b"[]", b"null", b"42", b'"string"', b'{"a":', b"\xff\xfe\x00", b'{"user_id": {}, "room_id": [], "visibility": 1, "presence": null, "displayname": [], "typing": "yes"}']


ENDPOINTS = [
    ("POST", "/register", False),
    ("POST", "/login", False),
    ("POST", "/createRoom", True),
    ("PUT", "/rooms/{room}/send/m.room.message/{txn}", True),
    ("PUT", "/rooms/{room}/state/m.room.topic/", True),
    ("POST", "/rooms/{room}/invite", True),
    ("POST", "/rooms/{room}/kick", True),
    ("POST", "/rooms/{room}/ban", True),
    ("POST", "/rooms/{room}/unban", True),
    ("POST", "/rooms/{room}/join", True),
    ("PUT", "/rooms/{room}/typing/{user}", True),
    ("POST", "/rooms/{room}/read_markers", True),
    ("PUT", "/rooms/{room}/redact/{event}/{txn}", True),
    ("POST", "/user/{user}/filter", True),
    ("PUT", "/user/{user}/account_data/com.example.fuzz", True),
    ("PUT", "/user/{user}/rooms/{room}/account_data/com.example.fuzz", True),
    ("PUT", "/user/{user}/rooms/{room}/tags/u.fuzz", True),
    ("PUT", "/profile/{user}/displayname", True),
    ("PUT", "/profile/{user}/avatar_url", True),
    ("PUT", "/presence/{user}/status", True),
    ("PUT", "/directory/room/{alias}", True),
    ("PUT", "/directory/list/room/{room}", True),
    ("POST", "/publicRooms", True),
    ("POST", "/user_directory/search", True),
    ("POST", "/search", True),
    ("POST", "/account/password", True),
    ("POST", "/account/deactivate", True),
    ("PUT", "/devices/{device}", True),
    ("POST", "/delete_devices", True),
]


@pytest.mark.parametrize("method,template,auth", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
async def test_malformed_body_never_500(make_user, server, method, template, auth):
    """sytest: Malformed request bodies get a 4xx JSON error, never a 500 (and the server keeps serving)."""
    alice = await make_user()
    room = await alice.create_room()
    event = await alice.send_text(room, "target")
    for body in GARBAGE:
        path = CS + template.format(
            room=q(room),
            txn=txn_id(),
            user=q(alice.user_id),
            event=q(event),
            alias=q(f"#{rand_localpart('fz')}:{server.server_name}"),
            device=q(alice.device_id),
        )
        r = await alice.req(method, path, data=body, token=alice.access_token if auth else None)
        assert r.status < 500, f"{method} {path} body={body!r}: {r!r}"
        if r.status >= 400 and not (r.status == 401 and isinstance(r.body, dict) and "flows" in r.body):
            assert isinstance(r.body, dict) and isinstance(r.body.get("errcode"), str), f"{method} {path} body={body!r}: {r!r}"
    # still alive and the account still usable (unless the fuzzed endpoint was a successful deactivation, which
    # garbage can never authorise)
    assert (await alice.ok("GET", f"{CS}/account/whoami"))["user_id"] == alice.user_id


async def test_rejected_send_changes_nothing(alice, bob):
    """A forbidden send by a non-member leaves the room unchanged."""
    room = await alice.create_room(preset="private_chat")
    before = [e["event_id"] for e in (await alice.messages(room, limit=50))["chunk"]]
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/{txn_id()}", json={"msgtype": "m.text", "body": "intruder"})
    assert_status(r, 403, "M_FORBIDDEN")
    after = [e["event_id"] for e in (await alice.messages(room, limit=50))["chunk"]]
    assert before == after
