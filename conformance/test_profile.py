"""Profile: displayname, avatar_url, member events in joined rooms.
Complement: TestProfileDisplayName, TestProfileAvatarURL, TestDisplayNameUpdate, TestAvatarUrlUpdate."""

from nio import ProfileGetAvatarResponse, ProfileGetDisplayNameResponse, ProfileGetResponse

from helpers import CS, assert_status, q, timeline_has, wait_for


async def member_if(viewer, room, user_id, key, value):
    """The member event content if its `key` has `value` yet (profile changes may propagate asynchronously)."""
    member = await viewer.state_content(room, "m.room.member", user_id)
    return member if member.get(key) == value else None


async def test_TestProfileDisplayName(alice):
    """Complement: TestProfileDisplayName
    sytest: PUT /profile/:user_id/displayname sets my name
    sytest: GET /profile/:user_id/displayname publicly accessible
    (nio.AsyncClient.set_displayname / get_displayname)"""
    await alice.nio.set_displayname("Alice Liddell")
    resp = await alice.nio.get_displayname(alice.user_id)
    assert isinstance(resp, ProfileGetDisplayNameResponse), resp
    assert resp.displayname == "Alice Liddell"
    r = await alice.http.request("GET", f"{CS}/profile/{q(alice.user_id)}/displayname")
    assert_status(r, 200)
    assert r.body == {"displayname": "Alice Liddell"}


async def test_TestProfileAvatarURL(alice):
    """Complement: TestProfileAvatarURL
    sytest: PUT /profile/:user_id/avatar_url sets my avatar
    sytest: GET /profile/:user_id/avatar_url publicly accessible"""
    await alice.nio.set_avatar("mxc://example.org/avatar1")
    resp = await alice.nio.get_avatar(alice.user_id)
    assert isinstance(resp, ProfileGetAvatarResponse), resp
    assert resp.avatar_url == "mxc://example.org/avatar1"
    r = await alice.http.request("GET", f"{CS}/profile/{q(alice.user_id)}/avatar_url")
    assert_status(r, 200)
    assert r.body == {"avatar_url": "mxc://example.org/avatar1"}


async def test_profile_full(alice, bob):
    """sytest: GET /profile/:user_id returns displayname and avatar_url (nio.AsyncClient.get_profile)"""
    await alice.ok("PUT", f"{CS}/profile/{q(alice.user_id)}/displayname", json={"displayname": "Full A"})
    await alice.ok("PUT", f"{CS}/profile/{q(alice.user_id)}/avatar_url", json={"avatar_url": "mxc://example.org/full"})
    resp = await bob.nio.get_profile(alice.user_id)
    assert isinstance(resp, ProfileGetResponse), resp
    assert resp.displayname == "Full A" and resp.avatar_url == "mxc://example.org/full"


async def test_profile_default_displayname(alice):
    """sytest: a new user's displayname defaults to the localpart"""
    r = await alice.http.request("GET", f"{CS}/profile/{q(alice.user_id)}")
    assert_status(r, 200)
    assert r.body.get("displayname") == alice.localpart


async def test_profile_other_user_forbidden(alice, bob):
    """sytest: PUT /profile/:user_id/displayname of another user is 403 M_FORBIDDEN; nothing changes."""
    await bob.ok("PUT", f"{CS}/profile/{q(bob.user_id)}/displayname", json={"displayname": "Bob"})
    r = await alice.req("PUT", f"{CS}/profile/{q(bob.user_id)}/displayname", json={"displayname": "Not Bob"})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await alice.req("PUT", f"{CS}/profile/{q(bob.user_id)}/avatar_url", json={"avatar_url": "mxc://x/y"})
    assert_status(r, 403, "M_FORBIDDEN")
    got = await alice.ok("GET", f"{CS}/profile/{q(bob.user_id)}")
    assert got.get("displayname") == "Bob" and "avatar_url" not in got


async def test_profile_unknown_user(alice, server):
    """sytest: GET /profile of an unknown user is 404 M_NOT_FOUND"""
    r = await alice.req("GET", f"{CS}/profile/{q('@nobody-here:' + server.server_name)}")
    assert_status(r, 404, "M_NOT_FOUND")
    r = await alice.req("GET", f"{CS}/profile/{q('@nobody-here:' + server.server_name)}/displayname")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestDisplayNameUpdate(alice, bob):
    """Complement: TestDisplayNameUpdate
    sytest: A change to displayname should appear in incremental /sync
    The member event in every joined room is updated."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    since = (await bob.sync())["next_batch"]
    await alice.ok("PUT", f"{CS}/profile/{q(alice.user_id)}/displayname", json={"displayname": "New Name"})
    member = await wait_for(
        lambda: member_if(bob, room, alice.user_id, "displayname", "New Name"), what="member event update"
    )
    assert member["membership"] == "join"
    await bob.sync_until(
        timeline_has(
            room,
            lambda e: e["type"] == "m.room.member"
            and e["state_key"] == alice.user_id
            and e["content"].get("displayname") == "New Name",
        ),
        since=since,
        what="displayname change in sync",
    )
    jm = await bob.ok("GET", f"{CS}/rooms/{q(room)}/joined_members")
    assert jm["joined"][alice.user_id]["display_name"] == "New Name"


async def test_TestAvatarUrlUpdate(alice, bob):
    """Complement: TestAvatarUrlUpdate"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.ok("PUT", f"{CS}/profile/{q(alice.user_id)}/avatar_url", json={"avatar_url": "mxc://example.org/new"})
    member = await wait_for(
        lambda: member_if(bob, room, alice.user_id, "avatar_url", "mxc://example.org/new"), what="member event update"
    )
    assert member["membership"] == "join"


async def test_displayname_in_new_joins(alice, bob):
    """sytest: Joining a room uses the current profile for the member event"""
    await bob.ok("PUT", f"{CS}/profile/{q(bob.user_id)}/displayname", json={"displayname": "Bobby"})
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    assert (await alice.state_content(room, "m.room.member", bob.user_id))["displayname"] == "Bobby"
