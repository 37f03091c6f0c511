"""The admin API (`/_synapse/admin/...`, spec/admin-api.md) against the live binary, raw HTTP.
An admin is made with the CLI (`parvis make-admin @user:server`) while the server is stopped.
Complement and sytest have no admin API tests (it is Synapse's own API), so names follow the spec."""

import subprocess

from helpers import CS, assert_status, q

ADMIN = "/_synapse/admin"


def make_admin(srv, user_id):
    return subprocess.run(
        [srv.binary, "make-admin", user_id], env=srv.env(), capture_output=True, text=True, timeout=60
    )


async def test_admin_api_end_to_end(make_user, own_server):
    root = await make_user(server=own_server, password="root-pass")
    bob = await make_user(server=own_server, password="bob-pass")

    # Not an admin yet: refused; no token at all: 401 as the client API.
    assert_status(await root.req("GET", f"{ADMIN}/v2/users"), 403, "M_FORBIDDEN")
    assert_status(await root.req("GET", f"{ADMIN}/v2/users", token=None), 401, "M_MISSING_TOKEN")
    assert_status(await root.req("GET", f"{ADMIN}/v2/users", token="bogus"), 401, "M_UNKNOWN_TOKEN")

    # make-admin refuses a running server (its database is locked), works on a stopped one. In a
    # group of processes (PARVIS_TEST_CLUSTER), it joins the running group as one more process.
    running = make_admin(own_server, root.user_id)
    assert (running.returncode == 0) == bool(own_server.cluster), running
    own_server.stop()
    unknown = make_admin(own_server, f"@nobody:{own_server.server_name}")
    assert unknown.returncode != 0, unknown
    done = make_admin(own_server, root.user_id)
    assert done.returncode == 0, done
    assert "admin" in done.stdout
    own_server.start()

    version = await root.ok("GET", f"{ADMIN}/v1/server_version")
    assert version["server_version"].startswith("Parvis ")
    assert (await root.ok("GET", f"{ADMIN}/v1/users/{q(root.user_id)}/admin")) == {"admin": True}
    assert_status(await bob.req("GET", f"{ADMIN}/v1/rooms"), 403, "M_FORBIDDEN")

    # Users: the list pages; a new user is created (201) and logs in; a password reset logs out.
    users = await root.ok("GET", f"{ADMIN}/v2/users", params={"limit": 1})
    # root, bob and the integration user (webhooks), an account of the server.
    assert users["total"] == 3 and len(users["users"]) == 1 and users["next_token"] == "1"
    rest = await root.ok("GET", f"{ADMIN}/v2/users", params={"limit": 2, "from": users["next_token"]})
    assert "next_token" not in rest
    integrations = f"@integrations:{own_server.server_name}"
    assert {u["name"] for u in users["users"] + rest["users"]} == {root.user_id, bob.user_id, integrations}
    carol = f"@carol:{own_server.server_name}"
    r = await root.req("PUT", f"{ADMIN}/v2/users/{q(carol)}", json={"password": "carol-pass", "displayname": "Carol"})
    assert_status(r, 201)
    assert r.body["name"] == carol and r.body["displayname"] == "Carol" and r.body["admin"] is False
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"}, "password": "carol-pass"}
    r = await root.req("POST", f"{CS}/login", json=login, token=None)
    assert_status(r, 200)
    carol_token = r.body["access_token"]
    await root.ok("POST", f"{ADMIN}/v1/reset_password/{q(carol)}", json={"new_password": "carol-new"})
    assert_status(await root.req("GET", f"{CS}/account/whoami", token=carol_token), 401, "M_UNKNOWN_TOKEN")
    assert_status(await root.req("POST", f"{CS}/login", json=login, token=None), 403, "M_FORBIDDEN")
    assert_status(await root.req("GET", f"{ADMIN}/v2/users/{q('@x:elsewhere.example')}"), 400)
    assert_status(await root.req("GET", f"{ADMIN}/v2/users/{q('@ghost:' + own_server.server_name)}"), 404, "M_NOT_FOUND")

    # Devices and whois.
    devices = await root.ok("GET", f"{ADMIN}/v2/users/{q(bob.user_id)}/devices")
    assert [d["device_id"] for d in devices["devices"]] == [bob.device_id]
    whois = await root.ok("GET", f"{ADMIN}/v1/whois/{q(bob.user_id)}")
    assert whois["user_id"] == bob.user_id

    # Rooms: list, details, members, state; an admin join; deletion.
    room = await bob.create_room(preset="public_chat", name="Town hall", room_alias_name="townhall", visibility="public")
    rooms = await root.ok("GET", f"{ADMIN}/v1/rooms", params={"search_term": "town"})
    assert [r["room_id"] for r in rooms["rooms"]] == [room] and rooms["total_rooms"] == 1
    details = await root.ok("GET", f"{ADMIN}/v1/rooms/{q(room)}")
    assert details["name"] == "Town hall" and details["joined_local_members"] == 1 and details["public"] is True
    await root.ok("POST", f"{ADMIN}/v1/join/{q('#townhall:' + own_server.server_name)}", json={"user_id": carol})
    members = await root.ok("GET", f"{ADMIN}/v1/rooms/{q(room)}/members")
    assert sorted(members["members"]) == sorted([bob.user_id, carol]) and members["total"] == 2
    state = await root.ok("GET", f"{ADMIN}/v1/rooms/{q(room)}/state")
    assert any(e["type"] == "m.room.name" for e in state["state"])
    joined = await root.ok("GET", f"{ADMIN}/v1/users/{q(carol)}/joined_rooms")
    assert joined["joined_rooms"] == [room]

    deleted = await root.ok("DELETE", f"{ADMIN}/v2/rooms/{q(room)}", json={"purge": False})
    status = await root.ok("GET", f"{ADMIN}/v2/rooms/{q(room)}/delete_status")
    result = status["results"][0]
    assert result["delete_id"] == deleted["delete_id"] and result["status"] == "complete"
    assert sorted(result["shutdown_room"]["kicked_users"]) == sorted([bob.user_id, carol])
    assert room not in (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
    public = await bob.ok("GET", f"{CS}/publicRooms")
    assert all(r["room_id"] != room for r in public["chunk"])
    assert_status(await bob.req("GET", f"{CS}/directory/room/{q('#townhall:' + own_server.server_name)}"), 404, "M_NOT_FOUND")

    # Deactivation: the user cannot log in afterwards; the admin flag survives a restart.
    await root.ok("POST", f"{ADMIN}/v1/deactivate/{q(bob.user_id)}", json={})
    bob_login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": bob.user_id}, "password": "bob-pass"}
    assert_status(await root.req("POST", f"{CS}/login", json=bob_login, token=None), 403, "M_USER_DEACTIVATED")
    own_server.restart()
    assert (await root.ok("GET", f"{ADMIN}/v2/users/{q(bob.user_id)}"))["deactivated"] is True
    assert (await root.ok("GET", f"{ADMIN}/v1/users/{q(root.user_id)}/admin")) == {"admin": True}
