"""Login, logout, whoami, refresh tokens, login tokens. Complement: TestLogin, TestLogout,
TestTxnIdWithRefreshToken."""

from nio import LoginError, LoginResponse, LogoutResponse, WhoamiResponse

from helpers import CS, assert_status


def pw_login(user, password, **extra):
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    body.update(extra)
    return body


async def test_TestLogin_flows(http):
    """Complement: TestLogin/GET /login yields a set of flows
    sytest: GET /login yields a set of flows"""
    r = assert_status(await http.request("GET", f"{CS}/login"), 200)
    types = [f["type"] for f in r.body["flows"]]
    assert "m.login.password" in types, r


async def test_TestLogin_localpart(make_user):
    """Complement: TestLogin/POST /login can log in as a user with just the local part of the id
    sytest: POST /login can log in as a user with just the local part of the id
    (nio.AsyncClient.login with the bare localpart)"""
    alice = await make_user()
    second = await make_user.login(alice)
    assert second.user_id == alice.user_id
    assert second.device_id != alice.device_id
    assert second.access_token != alice.access_token
    resp = await second.nio.whoami()
    assert isinstance(resp, WhoamiResponse), resp
    assert resp.user_id == alice.user_id


async def test_TestLogin_full_user_id(http, alice):
    """Complement: TestLogin/POST /login can login as user
    sytest: POST /login can log in as a user"""
    r = assert_status(await http.request("POST", f"{CS}/login", json=pw_login(alice.user_id, alice.password)), 200)
    assert r.body["user_id"] == alice.user_id
    assert isinstance(r.body["access_token"], str) and isinstance(r.body["device_id"], str)


async def test_TestLogin_same_device_id(http, alice):
    """Complement: TestLogin/POST /login returns the same device_id as that in the request
    sytest: POST /login returns the same device_id as that in the request"""
    r = await http.request("POST", f"{CS}/login", json=pw_login(alice.localpart, alice.password, device_id="SPECIFIC"))
    assert_status(r, 200)
    assert r.body["device_id"] == "SPECIFIC"
    who = assert_status(await http.request("GET", f"{CS}/account/whoami", token=r.body["access_token"]), 200)
    assert who.body["device_id"] == "SPECIFIC"


async def test_TestLogin_wrong_password(http, alice):
    """Complement: TestLogin/POST /login wrong password is rejected
    sytest: POST /login wrong password is rejected"""
    r = await http.request("POST", f"{CS}/login", json=pw_login(alice.localpart, alice.password + "x"))
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestLogin_nonexistent_user(http):
    """Complement: TestLogin/POST /login as non-existing user is rejected
    sytest: POST /login as non-existing user is rejected"""
    r = await http.request("POST", f"{CS}/login", json=pw_login("doesnotexist0000", "whatever"))
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestLogin_uppercase_username(http, alice):
    """Complement: TestLogin/Login with uppercase username works and GET /whoami afterwards also"""
    r = await http.request("POST", f"{CS}/login", json=pw_login(alice.localpart.upper(), alice.password))
    assert_status(r, 200)
    who = assert_status(await http.request("GET", f"{CS}/account/whoami", token=r.body["access_token"]), 200)
    assert who.body["user_id"] == alice.user_id


async def test_login_unknown_type(http, alice):
    """sytest: POST /login with an unsupported login type is rejected (400 M_UNKNOWN)"""
    r = await http.request(
        "POST", f"{CS}/login", json={"type": "m.login.nonsense", "identifier": {"type": "m.id.user", "user": alice.localpart}}
    )
    assert_status(r, 400, "M_UNKNOWN")


async def test_nio_login_wrong_password(server, alice):
    """nio.AsyncClient.login reports a LoginError for a wrong password."""
    from nio import AsyncClient

    from helpers import nio_config

    c = AsyncClient(server.base_url, user=alice.localpart, config=nio_config())
    try:
        resp = await c.login(password="wrong")
        assert isinstance(resp, LoginError), resp
        assert resp.status_code == "M_FORBIDDEN"
    finally:
        await c.close()


async def test_whoami(alice):
    """sytest: GET /account/whoami returns the user and device"""
    resp = await alice.nio.whoami()
    assert isinstance(resp, WhoamiResponse), resp
    assert resp.user_id == alice.user_id
    assert resp.device_id == alice.device_id
    body = await alice.ok("GET", f"{CS}/account/whoami")
    assert body.get("is_guest", False) is False


async def test_TestLogout(make_user, http):
    """Complement: TestLogout/Can logout current device
    sytest: Can logout current device
    The token stops working (401 M_UNKNOWN_TOKEN); another device's token keeps working."""
    a1 = await make_user()
    a2 = await make_user.login(a1)
    resp = await a1.nio.logout()
    assert isinstance(resp, LogoutResponse), resp
    r = await http.request("GET", f"{CS}/account/whoami", token=a1.access_token)
    assert_status(r, 401, "M_UNKNOWN_TOKEN")
    assert (await a2.ok("GET", f"{CS}/account/whoami"))["user_id"] == a1.user_id
    devices = [d["device_id"] for d in (await a2.ok("GET", f"{CS}/devices"))["devices"]]
    assert a1.device_id not in devices, "logout deletes the device"
    assert a2.device_id in devices


async def test_TestLogout_all(make_user, http, bob):
    """Complement: TestLogout/Can logout all devices
    sytest: Can logout all devices"""
    a1 = await make_user()
    a2 = await make_user.login(a1)
    body = await a1.ok("POST", f"{CS}/logout/all", json={})
    assert body == {}
    for tok in (a1.access_token, a2.access_token):
        r = await http.request("GET", f"{CS}/account/whoami", token=tok)
        assert_status(r, 401, "M_UNKNOWN_TOKEN")
    # Other users are not affected.
    assert (await bob.ok("GET", f"{CS}/account/whoami"))["user_id"] == bob.user_id
    # The account still exists: log in again.
    a3 = await make_user.login(a1)
    assert a3.user_id == a1.user_id


async def test_TestLogout_deleted_token_on_request_after(make_user, http):
    """Complement: TestLogout/Request to logout with invalid an access token is rejected
    sytest: Request to logout with invalid an access token is rejected"""
    r = await http.request("POST", f"{CS}/logout", json={}, token="not-a-real-token")
    assert_status(r, 401, "M_UNKNOWN_TOKEN")
    r = await http.request("POST", f"{CS}/logout", json={})
    assert_status(r, 401, "M_MISSING_TOKEN")


async def test_TestTxnIdWithRefreshToken(http, alice):
    """Complement: TestTxnIdWithRefreshToken: a refreshed access token keeps the device, so a
    transaction id sent again after the refresh gives the same event."""
    r = assert_status(await http.request("POST", f"{CS}/login", json=pw_login(alice.user_id, alice.password, refresh_token=True)), 200)
    assert "refresh_token" in r.body and r.body["expires_in_ms"] > 0, r
    token, device = r.body["access_token"], r.body["device_id"]
    room = await alice.create_room()
    path = f"{CS}/rooms/{room}/send/m.room.message/refresh-txn"
    first = assert_status(await http.request("PUT", path, json={"msgtype": "m.text", "body": "once"}, token=token), 200)
    refreshed = assert_status(await http.request("POST", f"{CS}/refresh", json={"refresh_token": r.body["refresh_token"]}), 200)
    new_token = refreshed.body["access_token"]
    assert new_token != token and refreshed.body["refresh_token"] != r.body["refresh_token"], refreshed
    me = assert_status(await http.request("GET", f"{CS}/account/whoami", token=new_token), 200)
    assert me.body["device_id"] == device, me
    again = assert_status(await http.request("PUT", path, json={"msgtype": "m.text", "body": "once"}, token=new_token), 200)
    assert again.body["event_id"] == first.body["event_id"], (first, again)
    old = await http.request("GET", f"{CS}/account/whoami", token=token)
    assert old.status == 401 and old.errcode == "M_UNKNOWN_TOKEN", old


async def test_login_via_existing_session(http, alice):
    """Login with another device (spec v1.7): `POST /login/get_token` after the password stage,
    then `m.login.token` once (the conformance server enables it)."""
    flows = assert_status(await http.request("GET", f"{CS}/login"), 200).body["flows"]
    assert {"type": "m.login.token", "get_login_token": True} in flows, flows
    path = "/_matrix/client/v1/login/get_token"
    uia = await alice.req("POST", path, json={})
    assert uia.status == 401 and uia.body["flows"] == [{"stages": ["m.login.password"]}], uia
    auth = pw_login(alice.user_id, alice.password, session=uia.body["session"])
    made = await alice.ok("POST", path, json={"auth": auth})
    login = {"type": "m.login.token", "token": made["login_token"]}
    r = assert_status(await http.request("POST", f"{CS}/login", json=login), 200)
    assert r.body["user_id"] == alice.user_id and r.body["device_id"] != alice.device_id, r
    again = await http.request("POST", f"{CS}/login", json=login)
    assert again.status == 403 and again.errcode == "M_FORBIDDEN", again
