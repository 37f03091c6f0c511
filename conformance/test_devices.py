"""Device management. Complement: TestDeviceManagement (apidoc_device_management_test.go)."""

from nio import DevicesResponse, UpdateDeviceResponse

from helpers import CS, assert_status, q


def pw_auth(user, password, session):
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": password,
        "session": session,
    }


async def test_TestDeviceManagement_get_device(make_user):
    """Complement: TestDeviceManagement/GET /device/{deviceId}
    sytest: GET /device/{deviceId}"""
    alice = await make_user(device_id="ALICEDEV", device_name="my phone")
    body = await alice.ok("GET", f"{CS}/devices/ALICEDEV")
    assert body["device_id"] == "ALICEDEV"
    assert body["display_name"] == "my phone"


async def test_TestDeviceManagement_get_unknown_device(alice):
    """Complement: TestDeviceManagement/GET /device/{deviceId} gives a 404 for unknown devices
    sytest: GET /device/{deviceId} gives a 404 for unknown devices"""
    r = await alice.req("GET", f"{CS}/devices/UNKNOWNDEV")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestDeviceManagement_list_devices(make_user):
    """Complement: TestDeviceManagement/GET /devices
    sytest: GET /devices (nio.AsyncClient.devices)"""
    alice = await make_user()
    second = await make_user.login(alice)
    resp = await alice.nio.devices()
    assert isinstance(resp, DevicesResponse), resp
    ids = {d.id for d in resp.devices}
    assert ids == {alice.device_id, second.device_id}
    raw = await alice.ok("GET", f"{CS}/devices")
    for d in raw["devices"]:
        assert isinstance(d["device_id"], str)


async def test_TestDeviceManagement_update_device(alice):
    """Complement: TestDeviceManagement/PUT /device/{deviceId} updates device fields
    sytest: PUT /device/{deviceId} updates device fields (nio.AsyncClient.update_device)"""
    resp = await alice.nio.update_device(alice.device_id, {"display_name": "renamed"})
    assert isinstance(resp, UpdateDeviceResponse), resp
    body = await alice.ok("GET", f"{CS}/devices/{q(alice.device_id)}")
    assert body["display_name"] == "renamed"


async def test_TestDeviceManagement_update_unknown_device(alice):
    """Complement: TestDeviceManagement/PUT /device/{deviceId} gives a 404 for unknown devices
    sytest: PUT /device/{deviceId} gives a 404 for unknown devices"""
    r = await alice.req("PUT", f"{CS}/devices/UNKNOWNDEV", json={"display_name": "x"})
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestDeviceManagement_delete_device(make_user, http):
    """Complement: TestDeviceManagement/DELETE /device/{deviceId}
    sytest: DELETE /device/{deviceId}
    sytest: DELETE /device/{deviceId} with no body gives a 401"""
    alice = await make_user(password="pw-delete")
    second = await make_user.login(alice)
    r = await alice.req("DELETE", f"{CS}/devices/{q(second.device_id)}")
    assert_status(r, 401)
    session = r.body["session"]
    assert any("m.login.password" in f["stages"] for f in r.body["flows"]), r
    # Wrong password: nothing is deleted.
    r = await alice.req(
        "DELETE", f"{CS}/devices/{q(second.device_id)}", json={"auth": pw_auth(alice, "nope", session)}
    )
    assert_status(r, 401, "M_FORBIDDEN")
    assert (await second.ok("GET", f"{CS}/account/whoami"))["device_id"] == second.device_id
    r = await alice.req("DELETE", f"{CS}/devices/{q(second.device_id)}", json={})
    session = r.body["session"]
    await alice.ok("DELETE", f"{CS}/devices/{q(second.device_id)}", json={"auth": pw_auth(alice, "pw-delete", session)})
    assert_status(await alice.req("GET", f"{CS}/devices/{q(second.device_id)}"), 404, "M_NOT_FOUND")
    assert_status(await second.req("GET", f"{CS}/account/whoami"), 401, "M_UNKNOWN_TOKEN")
    assert (await alice.ok("GET", f"{CS}/account/whoami"))["device_id"] == alice.device_id


async def test_TestDeviceManagement_delete_requires_matching_user(make_user):
    """Complement: TestDeviceManagement/DELETE /device/{deviceId} requires UI auth user to match device owner
    sytest: DELETE /device/{deviceId} requires UI auth user to match device owner"""
    alice = await make_user(password="alice-pw")
    second = await make_user.login(alice)
    bob = await make_user(password="bob-pw")
    r = await alice.req("DELETE", f"{CS}/devices/{q(second.device_id)}", json={})
    session = r.body["session"]
    r = await alice.req(
        "DELETE", f"{CS}/devices/{q(second.device_id)}", json={"auth": pw_auth(bob, "bob-pw", session)}
    )
    assert_status(r, 403, "M_FORBIDDEN")
    assert (await second.ok("GET", f"{CS}/account/whoami"))["device_id"] == second.device_id


async def test_TestDeviceManagement_delete_devices_bulk(make_user, http):
    """sytest: POST /delete_devices
    (nio.AsyncClient.delete_devices with UIA)"""
    alice = await make_user(password="bulk-pw")
    d2 = await make_user.login(alice)
    d3 = await make_user.login(alice)
    resp = await alice.nio.delete_devices([d2.device_id, d3.device_id])
    # Without auth nio gets the UIA 401 back as a DeleteDevicesAuthResponse carrying the session.
    session = resp.session
    assert session, resp
    await alice.ok(
        "POST",
        f"{CS}/delete_devices",
        json={"devices": [d2.device_id, d3.device_id], "auth": pw_auth(alice, "bulk-pw", session)},
    )
    for u in (d2, d3):
        assert_status(await u.req("GET", f"{CS}/account/whoami"), 401, "M_UNKNOWN_TOKEN")
    ids = [d["device_id"] for d in (await alice.ok("GET", f"{CS}/devices"))["devices"]]
    assert ids == [alice.device_id]


async def test_other_users_device_is_not_visible(make_user):
    """Devices are per user: another user's device ID is 404 for GET and PUT, and stays unchanged.
    sytest: GET /device/{deviceId} gives a 404 for unknown devices (another user's device)"""
    alice = await make_user()
    bob = await make_user(device_name="bob's laptop")
    assert_status(await alice.req("GET", f"{CS}/devices/{q(bob.device_id)}"), 404, "M_NOT_FOUND")
    assert_status(
        await alice.req("PUT", f"{CS}/devices/{q(bob.device_id)}", json={"display_name": "hijacked"}), 404, "M_NOT_FOUND"
    )
    body = await bob.ok("GET", f"{CS}/devices/{q(bob.device_id)}")
    assert body["display_name"] == "bob's laptop"
