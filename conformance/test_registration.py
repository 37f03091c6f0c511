"""Account registration: m.login.dummy UIA, /register/available, username rules.
Complement: TestRegistration (tests/csapi/apidoc_register_test.go)."""

import pytest

from helpers import CS, assert_status, rand_localpart


async def register_raw(http, body):
    """Run the register UIA as a client would: first request, then m.login.dummy with the session."""
    r = await http.request("POST", f"{CS}/register", json=body)
    if r.status == 401 and isinstance(r.body, dict) and "session" in r.body:
        body = dict(body, auth={"type": "m.login.dummy", "session": r.body["session"]})
        r = await http.request("POST", f"{CS}/register", json=body)
    return r


async def test_TestRegistration_dummy_flow(http, server, make_user):
    """Complement: TestRegistration/POST /register can create a user
    sytest: POST /register can create a user
    The first POST returns 401 with flows (one is [m.login.dummy]) and a session; the second completes it."""
    u = await make_user()
    assert u.user_id == f"@{u.localpart}:{server.server_name}"
    assert u.access_token and u.device_id
    who = await u.ok("GET", f"{CS}/account/whoami")
    assert who["user_id"] == u.user_id
    assert who["device_id"] == u.device_id


async def test_register_uia_401_shape(http):
    """sytest: GET /register yields a set of flows
    The UIA 401 carries flows (list of {stages}), params (object) and session."""
    r = await http.request("POST", f"{CS}/register", json={"username": rand_localpart(), "password": "sUp3rs3kr1t"})
    assert_status(r, 401)
    assert isinstance(r.body["flows"], list) and all(isinstance(f["stages"], list) for f in r.body["flows"])
    assert isinstance(r.body.get("params", {}), dict)
    assert isinstance(r.body["session"], str)


async def test_register_with_password_then_login(http, make_user):
    """sytest: POST /register can create a user (password is then usable for m.login.password)"""
    u = await make_user(password="correct horse battery staple")
    r = await http.request(
        "POST",
        f"{CS}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": u.localpart},
            "password": "correct horse battery staple",
        },
    )
    assert_status(r, 200)
    assert r.body["user_id"] == u.user_id


async def test_TestRegistration_downcases_capitals(http, server):
    """Complement: TestRegistration/POST /register downcases capitals in usernames
    sytest: POST /register downcases capitals in usernames"""
    lp = rand_localpart("User")
    r = await register_raw(http, {"username": lp.upper(), "password": "sUp3rs3kr1t"})
    assert_status(r, 200)
    assert r.body["user_id"] == f"@{lp.upper().lower()}:{server.server_name}"


async def test_TestRegistration_same_device_id(http):
    """Complement: TestRegistration/POST /register returns the same device_id as that in the request
    sytest: POST /register returns the same device_id as that in the request"""
    r = await register_raw(http, {"username": rand_localpart(), "password": "sUp3rs3kr1t", "device_id": "MYDEVICEID"})
    assert_status(r, 200)
    assert r.body["device_id"] == "MYDEVICEID"


@pytest.mark.parametrize("ch", list("!\":?\\@[]{|}£é\n'"))
async def test_TestRegistration_rejects_bad_usernames(http, ch):
    """Complement: TestRegistration/POST /register rejects registration of usernames with '<ch>'
    sytest: POST /register rejects registration of usernames with '<ch>'"""
    r = await register_raw(http, {"username": "user-" + ch + "-x", "password": "sUp3rs3kr1t"})
    assert_status(r, 400, "M_INVALID_USERNAME")


async def test_register_user_in_use(http, make_user):
    """sytest: POST /register rejects registration of an existing username (M_USER_IN_USE)"""
    u = await make_user()
    r = await register_raw(http, {"username": u.localpart, "password": "another-pass"})
    assert_status(r, 400, "M_USER_IN_USE")
    # The rejected request changed nothing: the original password still works.
    r = await http.request(
        "POST",
        f"{CS}/login",
        json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": u.localpart}, "password": u.password},
    )
    assert_status(r, 200)


async def test_register_available(http, make_user):
    """Complement: TestRegistration/GET /register/available returns available for unregistered user name
    Complement: TestRegistration/GET /register/available returns M_USER_IN_USE for registered user name
    Complement: TestRegistration/GET /register/available returns M_INVALID_USERNAME for invalid user name"""
    free = rand_localpart()
    r = assert_status(await http.request("GET", f"{CS}/register/available", params={"username": free}), 200)
    assert r.body == {"available": True}
    u = await make_user()
    r = await http.request("GET", f"{CS}/register/available", params={"username": u.localpart})
    assert_status(r, 400, "M_USER_IN_USE")
    r = await http.request("GET", f"{CS}/register/available", params={"username": "not valid!"})
    assert_status(r, 400, "M_INVALID_USERNAME")


async def test_register_without_username_generates_one(http, server):
    """sytest: POST /register with no username generates a user ID"""
    r = await register_raw(http, {"password": "sUp3rs3kr1t"})
    assert_status(r, 200)
    assert r.body["user_id"].startswith("@") and r.body["user_id"].endswith(":" + server.server_name)
    who = await http.request("GET", f"{CS}/account/whoami", token=r.body["access_token"])
    assert_status(who, 200)
    assert who.body["user_id"] == r.body["user_id"]


async def test_register_inhibit_login(http, server):
    """sytest: Register with inhibit_login returns no access token"""
    lp = rand_localpart()
    r = await register_raw(http, {"username": lp, "password": "sUp3rs3kr1t", "inhibit_login": True})
    assert_status(r, 200)
    assert r.body["user_id"] == f"@{lp}:{server.server_name}"
    assert "access_token" not in r.body and "device_id" not in r.body, r


async def test_register_uia_session_required_stage(http):
    """UIA: completing m.login.dummy with an unknown session does not register anyone."""
    lp = rand_localpart()
    r = await http.request(
        "POST",
        f"{CS}/register",
        json={"username": lp, "password": "sUp3rs3kr1t", "auth": {"type": "m.login.dummy", "session": "no-such-session"}},
    )
    assert r.status in (400, 401), r
    assert isinstance(r.body, dict) and (r.status == 401 or r.errcode), r
    r = assert_status(await http.request("GET", f"{CS}/register/available", params={"username": lp}), 200)
    assert r.body == {"available": True}
