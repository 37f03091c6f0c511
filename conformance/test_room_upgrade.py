"""Room upgrades: POST /rooms/{roomId}/upgrade, the tombstone and the predecessor, what the new
room takes from the old one, the old room's power levels, the errors, and a client following the
tombstone (nio's RoomUpgradeEvent in its sync).
sytest: tests/30rooms/60version_upgrade.pl; Complement: TestMSC4291RoomIDAsHashOfCreateEvent_UpgradedRooms,
TestMSC4289PrivilegedRoomCreators_Upgrades."""

from nio import RoomUpgradeEvent, SyncResponse

from helpers import CS, assert_status, q, rand_localpart, timeline, wait_for

NEW_VERSION = "11"


async def upgrade(user, room, new_version=NEW_VERSION, **extra):
    return await user.req("POST", f"{CS}/rooms/{q(room)}/upgrade", json={"new_version": new_version, **extra})


async def upgraded(user, room, new_version=NEW_VERSION, **extra) -> str:
    r = await upgrade(user, room, new_version, **extra)
    assert r.status == 200, r
    assert isinstance(r.body.get("replacement_room"), str), r.body
    return r.body["replacement_room"]


async def state_event(user, room, event_type, state_key=""):
    return await user.ok("GET", f"{CS}/rooms/{q(room)}/state/{q(event_type)}/{q(state_key)}", params={"format": "event"})


async def test_TestRoomUpgrade_creates_a_new_room(alice):
    """sytest: /upgrade creates a new room
    The sync after the upgrade: the new room starts with its create event (new version, predecessor
    naming the tombstone); the old room's timeline starts with the tombstone (nio RoomUpgradeEvent)."""
    old = await alice.create_room(room_version="10")
    first = await alice.nio.sync(timeout=0)
    assert isinstance(first, SyncResponse), first
    new = await upgraded(alice, old)
    resp = await alice.nio.sync(timeout=0, since=first.next_batch)
    assert isinstance(resp, SyncResponse), resp
    tombstone = resp.rooms.join[old].timeline.events[0]
    assert isinstance(tombstone, RoomUpgradeEvent), tombstone
    assert tombstone.replacement_room == new
    create = resp.rooms.join[new].timeline.events[0].source
    assert create["type"] == "m.room.create"
    assert create["content"]["room_version"] == NEW_VERSION
    assert create["content"]["predecessor"] == {"room_id": old, "event_id": tombstone.event_id}
    # nio's room model follows the upgrade.
    assert alice.nio.rooms[old].replacement_room == new


async def test_TestRoomUpgrade_preserves_room_visibility(alice):
    """sytest: /upgrade should preserve room visibility for public rooms
    sytest: /upgrade should preserve room visibility for private rooms"""
    for vis in ("public", "private"):
        room = await alice.create_room()
        await alice.ok("PUT", f"{CS}/directory/list/room/{q(room)}", json={"visibility": vis})
        new = await upgraded(alice, room)
        assert (await alice.ok("GET", f"{CS}/directory/list/room/{q(new)}"))["visibility"] == vis
        assert (await alice.ok("GET", f"{CS}/directory/list/room/{q(room)}"))["visibility"] == "private"


async def test_TestRoomUpgrade_copies_the_power_levels(alice):
    """sytest: /upgrade copies the power levels to the new room
    sytest: /upgrade preserves the power level of the upgrading user in old and new rooms"""
    room = await alice.create_room(room_version="10")
    pl = await alice.state_content(room, "m.room.power_levels")
    pl["users"]["@test:xyz"] = 40
    await alice.put_state(room, "m.room.power_levels", pl)
    new = await upgraded(alice, room)
    assert await alice.state_content(new, "m.room.power_levels") == pl
    assert (await alice.state_content(room, "m.room.power_levels"))["users"][alice.user_id] == 100


async def test_TestRoomUpgrade_copies_important_state(alice):
    """sytest: /upgrade copies important state to the new room
    The upgrader's level is below what the copied events need: the state is set up before the
    real levels are copied (alice keeps the tombstone and power levels rights to upgrade)."""
    room = await alice.create_room(room_version="10")
    wanted = {
        "m.room.topic": {"topic": "topic"},
        "m.room.name": {"name": "name"},
        "m.room.join_rules": {"join_rule": "public"},
        "m.room.guest_access": {"guest_access": "forbidden"},
        "m.room.history_visibility": {"history_visibility": "joined"},
        "m.room.avatar": {"url": "mxc://example.org/something"},
        "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
        "m.room.server_acl": {"allow": ["*"], "allow_ip_literals": False, "deny": ["*.evil.com", "evil.com"]},
    }
    for kind, content in wanted.items():
        await alice.put_state(room, kind, content)
    pl = await alice.state_content(room, "m.room.power_levels")
    for kind in wanted:
        pl["events"][kind] = 80
    pl["events"]["m.room.tombstone"] = 50
    pl["events"]["m.room.power_levels"] = 50
    pl["users"][alice.user_id] = 50
    await alice.put_state(room, "m.room.power_levels", pl)
    new = await upgraded(alice, room)
    for kind, content in wanted.items():
        assert await alice.state_content(new, kind) == content, kind
    assert await alice.state_content(new, "m.room.power_levels") == pl


async def test_TestRoomUpgrade_copies_ban_events(alice):
    """sytest: /upgrade copies ban events to the new room"""
    room = await alice.create_room()
    await alice.put_state(room, "m.room.member", {"membership": "ban"}, state_key="@bob:matrix.org")
    new = await upgraded(alice, room)
    assert await alice.state_content(new, "m.room.member", "@bob:matrix.org") == {"membership": "ban"}


async def test_TestRoomUpgrade_moves_aliases(alice, server):
    """sytest: /upgrade moves aliases to the new room
    The aliases resolve to the new room, the canonical alias moves (the old room's loses it)."""
    room = await alice.create_room()
    a1 = f"#{rand_localpart('a')}:{server.server_name}"
    a2 = f"#{rand_localpart('a')}:{server.server_name}"
    for a in (a1, a2):
        await alice.ok("PUT", f"{CS}/directory/room/{q(a)}", json={"room_id": room})
    await alice.put_state(room, "m.room.canonical_alias", {"alias": a1})
    new = await upgraded(alice, room)
    assert await alice.state_content(room, "m.room.canonical_alias") == {}
    assert await alice.state_content(new, "m.room.canonical_alias") == {"alias": a1}
    for a in (a1, a2):
        assert (await alice.ok("GET", f"{CS}/directory/room/{q(a)}"))["room_id"] == new
    assert sorted((await alice.ok("GET", f"{CS}/rooms/{q(new)}/aliases"))["aliases"]) == sorted([a1, a2])


async def test_TestRoomUpgrade_preserves_federation_ability(alice):
    """sytest: /upgrade preserves room federation ability"""
    room = await alice.create_room(creation_content={"m.federate": False})
    new = await upgraded(alice, room)
    assert (await alice.state_content(new, "m.room.create"))["m.federate"] is False


async def test_TestRoomUpgrade_restricts_power_levels_in_the_old_room(alice, bob):
    """sytest: /upgrade restricts power levels in the old room
    A member can no longer talk in the old room."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await upgraded(alice, room)
    pl = await alice.state_content(room, "m.room.power_levels")
    assert (pl["events_default"], pl["invite"]) == (50, 50)
    r = await bob.req("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/late", json={"msgtype": "m.text", "body": "x"})
    assert_status(r, 403, "M_FORBIDDEN")


async def test_TestRoomUpgrade_restricts_unusual_power_levels(alice):
    """sytest: /upgrade restricts power levels in the old room when the old PLs are unusual"""
    room = await alice.create_room()
    pl = await alice.state_content(room, "m.room.power_levels")
    pl["users_default"] = 80
    await alice.put_state(room, "m.room.power_levels", pl)
    await upgraded(alice, room)
    pl = await alice.state_content(room, "m.room.power_levels")
    assert (pl["events_default"], pl["invite"]) == (81, 81)


async def test_TestRoomUpgrade_unknown_version_is_rejected(alice):
    """sytest: /upgrade to an unknown version is rejected"""
    room = await alice.create_room()
    assert_status(await upgrade(alice, room, "my_bad_version"), 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert (await alice.get_state(room, "m.room.tombstone")).status == 404


async def test_TestRoomUpgrade_rejected_if_the_user_cant_send_state_events(alice, bob, charlie):
    """sytest: /upgrade is rejected if the user can't send state events
    A member without the tombstone's level: 403; a user not in the room: 403."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    assert_status(await upgrade(bob, room), 403, "M_FORBIDDEN")
    assert_status(await upgrade(charlie, room), 403, "M_FORBIDDEN")
    assert (await alice.get_state(room, "m.room.tombstone")).status == 404


async def test_TestRoomUpgrade_of_a_bogus_room_fails_gracefully(alice):
    """sytest: /upgrade of a bogus room fails gracefully"""
    assert_status(await upgrade(alice, "!fail:unknown"), 404, "M_NOT_FOUND")


async def test_TestMSC4291RoomIDAsHashOfCreateEvent_UpgradedRooms(alice, bob):
    """Complement: TestMSC4291RoomIDAsHashOfCreateEvent_UpgradedRooms
    Upgrades from 12, 11 and 10 to 12 make a room whose id is its create event's hash; the
    predecessor names the old room and no event."""
    for version in ("12", "11", "10"):
        old = await alice.create_room(room_version=version, preset="public_chat")
        await bob.join(old)
        new = await upgraded(alice, old, "12")
        create = await state_event(alice, new, "m.room.create")
        assert new == "!" + create["event_id"][1:], (new, create)
        assert (await alice.state_content(old, "m.room.tombstone"))["replacement_room"] == new
        assert create["content"]["predecessor"] == {"room_id": old}


async def test_TestMSC4289PrivilegedRoomCreators_Upgrades(alice, bob, charlie):
    """Complement: TestMSC4289PrivilegedRoomCreators_Upgrades
    Non-creator admins upgrade v11 and v12 rooms to v12, with and without additional creators;
    creators are left out of the new room's power levels."""
    a, b, c = alice.user_id, bob.user_id, charlie.user_id
    cases = [
        # (initial version, user levels, upgrader, additional creators, wanted creators, wanted users)
        ("11", {b: 100}, bob, None, [], {}),
        ("11", {b: 100, c: 100}, bob, None, [], {c: 100}),
        ("12", {b: 150}, bob, [c], [c], {}),
        ("12", {b: 150, c: 50}, bob, [c], [c], {}),
        ("11", {a: 100, b: 100}, alice, [b], [b], {}),
        ("11", {a: 100, b: 100, c: 50}, alice, [b], [b], {c: 50}),
    ]
    for version, levels, upgrader, extra, want_creators, want_users in cases:
        room = await alice.create_room(room_version=version, preset="public_chat")
        await bob.join(room)
        await charlie.join(room)
        await alice.put_state(room, "m.room.power_levels", {"users": levels})
        body = {} if extra is None else {"additional_creators": extra}
        new = await upgraded(upgrader, room, "12", **body)
        create = await upgrader.state_content(new, "m.room.create")
        assert create["room_version"] == "12"
        assert create.get("additional_creators", []) == want_creators, create
        pl = await upgrader.state_content(new, "m.room.power_levels")
        assert pl.get("users", {}) == want_users, (version, levels, pl)


async def test_TestRoomUpgrade_invites_members_of_a_private_room(alice, bob, charlie):
    """Parvis: upgrading a room that is not public invites its joined and invited members (they
    could not join otherwise); a public room's members join by following the tombstone."""
    room = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    await bob.join(room)
    await alice.invite(room, charlie.user_id)
    new = await upgraded(alice, room)
    for user in (bob, charlie):
        assert (await alice.state_content(new, "m.room.member", user.user_id))["membership"] == "invite"
    resp = await bob.nio.sync(timeout=0)
    assert new in resp.rooms.invite, resp
    await bob.join(new)
    await bob.send_text(new, "here")

    public = await alice.create_room(preset="public_chat")
    await bob.join(public)
    new_public = await upgraded(alice, public)
    assert (await alice.get_state(new_public, "m.room.member", bob.user_id)).status == 404


async def test_TestRoomUpgrade_member_follows_the_tombstone(alice, bob):
    """A member sees the tombstone in /sync (nio RoomUpgradeEvent), joins the replacement room and
    talks there; both rooms stay joined until the old one is left."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    first = await bob.nio.sync(timeout=0)
    new = await upgraded(alice, room)

    async def tombstone():
        resp = await bob.nio.sync(timeout=0, since=first.next_batch)
        events = resp.rooms.join[room].timeline.events if room in resp.rooms.join else []
        return next((e for e in events if isinstance(e, RoomUpgradeEvent)), None)

    event = await wait_for(tombstone, what="the tombstone in bob's sync")
    assert event.replacement_room == new
    await bob.join(event.replacement_room)
    joined = (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"]
    assert sorted(joined) == sorted([room, new])
    await bob.send_text(new, "followed")
    body = await alice.sync()
    assert "followed" in [e["content"].get("body") for e in timeline(body, new)]
    await bob.leave(room)
    assert (await bob.ok("GET", f"{CS}/joined_rooms"))["joined_rooms"] == [new]


async def test_TestRoomUpgrade_copies_push_rules(alice):
    """sytest: /upgrade copies push rules to the new room"""
    room = await alice.create_room()
    await alice.ok("PUT", f"{CS}/pushrules/global/room/{q(room)}", json={"actions": ["notify"]})
    new = await upgraded(alice, room)
    rules = await alice.ok("GET", f"{CS}/pushrules/")
    assert new in [r["rule_id"] for r in rules["global"]["room"]], rules


async def test_TestRoomUpgrade_preserves_direct_room_state(alice):
    """sytest: /upgrade preserves direct room state"""
    room = await alice.create_room()
    path = f"{CS}/user/{q(alice.user_id)}/account_data/m.direct"
    await alice.ok("PUT", path, json={alice.user_id: [room]})
    new = await upgraded(alice, room)
    assert new in (await alice.ok("GET", path))[alice.user_id]


async def test_TestPushRuleRoomUpgrade(alice, bob):
    """Complement: TestPushRuleRoomUpgrade
    A local member's push rules for the old room are copied when they join the upgraded room."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await bob.ok("PUT", f"{CS}/pushrules/global/room/{q(room)}", json={"actions": ["dont_notify"]})
    new = await upgraded(alice, room)
    await bob.join(new)
    rule = await bob.ok("GET", f"{CS}/pushrules/global/room/{q(new)}")
    assert rule["actions"] == ["dont_notify"], rule


async def test_TestRoomUpgrade_tombstone_cannot_point_to_the_same_room(alice):
    """sytest: Cannot send tombstone event that points to the same room"""
    room = await alice.create_room()
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/state/m.room.tombstone/", json={"replacement_room": room, "body": "x"})
    assert_status(r, 400)
    assert (await alice.get_state(room, "m.room.tombstone")).status == 404
