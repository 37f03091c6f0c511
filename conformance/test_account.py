"""Password change and deactivation through UIA m.login.password.
Complement: TestChangePassword, TestDeactivateAccount."""

from helpers import CS, assert_status, wait_for


def pw_auth(user, password, session=None):
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id}, "password": password}
    if session:
        auth["session"] = session
    return auth


async def login_status(http, user, password):
    r = await http.request(
        "POST",
        f"{CS}/login",
        json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.localpart}, "password": password},
    )
    return r


async def uia_start(user, method, path, body):
    r = await user.req(method, path, json=body)
    assert_status(r, 401, what=f"{method} {path} without auth must start UIA:")
    assert any("m.login.password" in f["stages"] for f in r.body["flows"]), r
    return r.body.get("session")


async def test_TestChangePassword(make_user, http):
    """Complement: TestChangePassword
    sytest: After changing password, can't log in with old password
    sytest: After changing password, can log in with new password
    sytest: After changing password, existing session still works
    sytest: After changing password, a different session no longer works by default"""
    alice = await make_user(password="old-password-1")
    other = await make_user.login(alice)
    session = await uia_start(alice, "POST", f"{CS}/account/password", {"new_password": "new-password-2"})
    await alice.ok(
        "POST",
        f"{CS}/account/password",
        json={"new_password": "new-password-2", "auth": pw_auth(alice, "old-password-1", session)},
    )
    assert_status(await login_status(http, alice, "old-password-1"), 403, "M_FORBIDDEN")
    assert_status(await login_status(http, alice, "new-password-2"), 200)
    assert (await alice.ok("GET", f"{CS}/account/whoami"))["user_id"] == alice.user_id
    r = await other.req("GET", f"{CS}/account/whoami")
    assert_status(r, 401, "M_UNKNOWN_TOKEN")


async def test_TestChangePassword_keep_other_devices(make_user, http):
    """Complement: TestChangePassword/After changing password, different sessions can optionally be kept
    sytest: After changing password, different sessions can optionally be kept"""
    alice = await make_user(password="old-password-1")
    other = await make_user.login(alice)
    session = await uia_start(alice, "POST", f"{CS}/account/password", {"new_password": "new-password-2"})
    await alice.ok(
        "POST",
        f"{CS}/account/password",
        json={"new_password": "new-password-2", "logout_devices": False, "auth": pw_auth(alice, "old-password-1", session)},
    )
    assert (await other.ok("GET", f"{CS}/account/whoami"))["user_id"] == alice.user_id


async def test_change_password_wrong_old_password(make_user, http):
    """sytest: Changing password with the wrong old password fails (UIA 401 M_FORBIDDEN); nothing changes."""
    alice = await make_user(password="old-password-1")
    session = await uia_start(alice, "POST", f"{CS}/account/password", {"new_password": "new-password-2"})
    r = await alice.req(
        "POST",
        f"{CS}/account/password",
        json={"new_password": "new-password-2", "auth": pw_auth(alice, "WRONG", session)},
    )
    assert_status(r, 401, "M_FORBIDDEN")
    assert "flows" in r.body, "a failed UIA stage answers with the flows again"
    assert_status(await login_status(http, alice, "old-password-1"), 200)
    assert_status(await login_status(http, alice, "new-password-2"), 403, "M_FORBIDDEN")


async def test_change_password_requires_auth(http):
    """sytest: Change password requires an access token or UIA (no token, no auth: 401)."""
    r = await http.request("POST", f"{CS}/account/password", json={"new_password": "x"})
    assert r.status == 401, r


async def test_TestDeactivateAccount(make_user, http):
    """Complement: TestDeactivateAccount
    sytest: Can deactivate account
    sytest: Can't deactivate account with wrong password
    sytest: After deactivating account, can't log in with password"""
    alice = await make_user(password="deactivate-me")
    other = await make_user.login(alice)
    session = await uia_start(alice, "POST", f"{CS}/account/deactivate", {})
    # Wrong password: refused, account intact.
    r = await alice.req("POST", f"{CS}/account/deactivate", json={"auth": pw_auth(alice, "wrong", session)})
    assert_status(r, 401, "M_FORBIDDEN")
    assert (await alice.ok("GET", f"{CS}/account/whoami"))["user_id"] == alice.user_id
    # Right password.
    session = await uia_start(alice, "POST", f"{CS}/account/deactivate", {})
    body = await alice.ok("POST", f"{CS}/account/deactivate", json={"auth": pw_auth(alice, "deactivate-me", session)})
    assert body.get("id_server_unbind_result") in ("success", "no-support"), body
    r = await login_status(http, alice, "deactivate-me")
    assert r.status == 403 and r.errcode in ("M_USER_DEACTIVATED", "M_FORBIDDEN"), r
    for u in (alice, other):
        assert_status(await u.req("GET", f"{CS}/account/whoami"), 401, "M_UNKNOWN_TOKEN")
    # The user ID is not given out again.
    r = await http.request("GET", f"{CS}/register/available", params={"username": alice.localpart})
    assert_status(r, 400, "M_USER_IN_USE")


async def test_deactivate_leaves_rooms(make_user):
    """sytest: Deactivated user leaves joined rooms (membership becomes leave)"""
    alice = await make_user(password="deactivate-me")
    bob = await make_user()
    room = await bob.create_room(preset="public_chat")
    await alice.join(room)
    session = await uia_start(alice, "POST", f"{CS}/account/deactivate", {})
    await alice.ok("POST", f"{CS}/account/deactivate", json={"auth": pw_auth(alice, "deactivate-me", session)})

    async def left():
        return (await bob.state_content(room, "m.room.member", alice.user_id))["membership"] == "leave"

    await wait_for(left, what="the deactivated user's membership to become leave")
