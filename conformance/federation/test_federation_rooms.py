"""Rooms shared between two homeservers: invite, join, messages, typing, receipts, profile, alias, leave, ban.

A (pair.a) creates the rooms, B (pair.b) is the remote server; room versions 10, 11 and 12.
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md).
"""

from __future__ import annotations

import pytest

from fedhelpers import (
    FED_WAIT_S,
    ROOM_VERSIONS,
    create_and_join,
    is_member,
    is_text,
    join_remote,
    message_bodies,
    poll,
    send_and_see,
    since_now,
    tag,
    wait_invite,
    wait_timeline,
)
from helpers import CS, ephemeral_has, q

pytestmark = pytest.mark.parametrize("room_version", ROOM_VERSIONS, ids=[f"v{v}" for v in ROOM_VERSIONS])


async def test_TestFederationRoomsInvite(pair, make_user, room_version):
    """Complement: TestFederationRoomsInvite/Parallel/Remote invited user can see room metadata
    Complement: TestJoinViaRoomIDAndServerName
    sytest: User can invite remote user to room with version N
    sytest: remote user can join room with version N
    sytest: Remote invited user can see room metadata
    A user of A creates a room and invites a user of B: the invite (with its stripped state) reaches B's
    /sync, the remote user joins by room id + server_name, both servers see the join."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    a_since = await since_now(alice)
    name = tag("room")
    room_id = await alice.create_room(room_version=room_version, preset="private_chat", name=name)

    await alice.invite(room_id, bob.user_id)
    stripped = await wait_invite(bob, room_id)
    mine = [e for e in stripped if e.get("type") == "m.room.member" and e.get("state_key") == bob.user_id]
    assert mine and mine[0]["content"]["membership"] == "invite" and mine[0]["sender"] == alice.user_id, stripped
    by_type = {e.get("type"): e for e in stripped}
    assert "m.room.create" in by_type, f"invite_state lacks m.room.create: {stripped}"
    assert by_type.get("m.room.name", {}).get("content", {}).get("name") == name, stripped
    assert by_type.get("m.room.join_rules", {}).get("content", {}).get("join_rule") == "invite", stripped

    b_since = await since_now(bob)
    await join_remote(bob, room_id, pair.a.server_name)
    await wait_timeline(alice, room_id, is_member(bob.user_id, "join"), a_since, "bob's join on A")
    await wait_timeline(bob, room_id, is_member(bob.user_id, "join"), b_since, "bob's own join on B")

    create = await bob.state_content(room_id, "m.room.create")
    assert create.get("room_version") == room_version, create
    members_b = await bob.ok("GET", f"{CS}/rooms/{q(room_id)}/joined_members")
    assert set(members_b["joined"]) == {alice.user_id, bob.user_id}, members_b
    members_a = await alice.ok("GET", f"{CS}/rooms/{q(room_id)}/joined_members")
    assert set(members_a["joined"]) == {alice.user_id, bob.user_id}, members_a


async def test_TestOutboundFederationSend(pair, make_user, room_version):
    """Complement: TestOutboundFederationSend
    Complement: TestMessagesOverFederation
    sytest: Remote room members also see posted message events
    sytest: Remote room members can get room messages
    Messages cross both ways and are seen through /sync within seconds; a burst keeps its order on the
    other side (/messages)."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, room_version)

    await send_and_see(alice, bob, room_id)
    await send_and_see(bob, alice, room_id)

    burst_a = [tag("a") for _ in range(5)]
    burst_b = [tag("b") for _ in range(5)]
    for body in burst_a:
        await alice.send_text(room_id, body)
    for body in burst_b:
        await bob.send_text(room_id, body)

    def in_order(bodies: list[str], wanted: list[str]) -> bool:
        idx = [bodies.index(w) for w in wanted if w in bodies]
        return len(idx) == len(wanted) and idx == sorted(idx)

    async def both_bursts(user):
        bodies = await message_bodies(user, room_id)
        return in_order(bodies, burst_a) and in_order(bodies, burst_b) and bodies

    await poll(lambda: both_bursts(bob), FED_WAIT_S, "both bursts, in order, in B's /messages")
    await poll(lambda: both_bursts(alice), FED_WAIT_S, "both bursts, in order, in A's /messages")


async def test_TestRemoteTyping(pair, make_user, room_version):
    """Complement: TestRemoteTyping
    sytest: Typing notifications also sent to remote room members
    Typing notifications (m.typing EDUs) cross both ways and show in the ephemeral section of /sync."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, room_version)

    for typer, watcher in ((bob, alice), (alice, bob)):
        since = await since_now(watcher)
        await typer.ok(
            "PUT",
            f"{CS}/rooms/{q(room_id)}/typing/{q(typer.user_id)}",
            json={"typing": True, "timeout": 30000},
        )
        await watcher.sync_until(
            ephemeral_has(room_id, lambda e: e["type"] == "m.typing" and typer.user_id in e["content"]["user_ids"]),
            since=since,
            timeout_s=FED_WAIT_S,
            what=f"{typer.user_id} typing, seen by {watcher.user_id}",
        )
        since = await since_now(watcher)
        await typer.ok("PUT", f"{CS}/rooms/{q(room_id)}/typing/{q(typer.user_id)}", json={"typing": False})
        await watcher.sync_until(
            ephemeral_has(
                room_id, lambda e: e["type"] == "m.typing" and typer.user_id not in e["content"]["user_ids"]
            ),
            since=since,
            timeout_s=FED_WAIT_S,
            what=f"{typer.user_id} stopped typing, seen by {watcher.user_id}",
        )


async def test_remote_read_receipts(pair, make_user, room_version):
    """sytest: Outbound federation sends receipts
    Complement: TestACLsForEDUs (receipt half, without an ACL)
    m.read receipts (m.receipt EDUs) cross both ways and show in the ephemeral section of /sync."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, room_version)

    for author, reader in ((alice, bob), (bob, alice)):
        ev = await send_and_see(author, reader, room_id)
        since = await since_now(author)
        await reader.ok("POST", f"{CS}/rooms/{q(room_id)}/receipt/m.read/{q(ev['event_id'])}", json={})

        def has_receipt(e, event_id=ev["event_id"], user_id=reader.user_id):
            return e["type"] == "m.receipt" and user_id in e["content"].get(event_id, {}).get("m.read", {})

        await author.sync_until(
            ephemeral_has(room_id, has_receipt),
            since=since,
            timeout_s=FED_WAIT_S,
            what=f"{reader.user_id}'s read receipt, seen by {author.user_id}",
        )


async def test_TestOutboundFederationProfile(pair, make_user, room_version):
    """Complement: TestOutboundFederationProfile
    Complement: TestInboundFederationProfile
    sytest: Outbound federation can query profile data
    sytest: Inbound federation can query profile data
    A display name change on one server becomes a new m.room.member event on the other; the profile of a
    remote user can be read (GET /profile through query/profile)."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, room_version)

    for changer, watcher in ((bob, alice), (alice, bob)):
        name = f"Name {tag()}"
        since = await since_now(watcher)
        await changer.ok("PUT", f"{CS}/profile/{q(changer.user_id)}/displayname", json={"displayname": name})
        await wait_timeline(
            watcher,
            room_id,
            is_member(changer.user_id, "join", displayname=name),
            since,
            f"{changer.user_id}'s member event with displayname {name!r}",
        )
        member = await watcher.state_content(room_id, "m.room.member", changer.user_id)
        assert member.get("displayname") == name, member

        async def remote_profile(name=name, changer=changer, watcher=watcher):
            r = await watcher.req("GET", f"{CS}/profile/{q(changer.user_id)}")
            return r.status == 200 and r.body.get("displayname") == name and r.body

        await poll(remote_profile, FED_WAIT_S, f"GET /profile/{changer.user_id} on the other server")


async def test_TestRemoteAliasRequestsUnderstandUnicode(pair, make_user, room_version):
    """Complement: TestRemoteAliasRequestsUnderstandUnicode
    sytest: Remote room alias queries can handle Unicode
    sytest: Outbound federation can query room alias directory
    sytest: Inbound federation can query room alias directory
    An alias of A (with non-ASCII characters) resolves from B: GET /directory/room/{alias} on B answers
    with A's room id and A in the servers list (query/directory)."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await alice.create_room(room_version=room_version, preset="public_chat")
    alias = f"#ünicode-é-{tag('alias')}:{pair.a.server_name}"
    await alice.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": room_id})

    b = await bob.ok("GET", f"{CS}/directory/room/{q(alias)}")
    assert b.get("room_id") == room_id, b
    assert pair.a.server_name in b.get("servers", []), b

    missing = f"#missing-{tag()}:{pair.a.server_name}"
    r = await bob.req("GET", f"{CS}/directory/room/{q(missing)}")
    assert r.status == 404 and r.errcode == "M_NOT_FOUND", r


async def test_join_remote_room_by_alias(pair, make_user, room_version):
    """sytest: Remote users can join room by alias
    Complement: TestJoinViaRoomIDAndServerName (the alias form)
    A user of B joins a public room of A by its alias (query/directory, then make_join/send_join without an
    invite); messages then cross both ways."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await alice.create_room(room_version=room_version, preset="public_chat")
    alias = f"#{tag('pub')}:{pair.a.server_name}"
    await alice.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": room_id})
    a_since = await since_now(alice)

    b = await bob.ok("POST", f"{CS}/join/{q(alias)}", json={})
    assert b.get("room_id") == room_id, b
    await wait_timeline(alice, room_id, is_member(bob.user_id, "join"), a_since, "bob's join on A")
    await send_and_see(bob, alice, room_id)
    await send_and_see(alice, bob, room_id)


async def test_remote_leave(pair, make_user, room_version):
    """(no Complement/sytest equivalent: a joined remote user leaves)
    A joined user of B leaves: A sees the leave; B's /sync moves the room to the leave section; later
    messages from A are not delivered to the user who left."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, room_version)
    await send_and_see(alice, bob, room_id)

    a_since = await since_now(alice)
    b_since = await since_now(bob)
    await bob.leave(room_id)
    await wait_timeline(alice, room_id, is_member(bob.user_id, "leave"), a_since, "bob's leave on A")
    await wait_timeline(bob, room_id, is_member(bob.user_id, "leave"), b_since, "bob's leave on B", section="leave")

    members = await alice.ok("GET", f"{CS}/rooms/{q(room_id)}/joined_members")
    assert set(members["joined"]) == {alice.user_id}, members

    after = tag("after-leave")
    await alice.send_text(room_id, after)
    r = await bob.req("GET", f"{CS}/rooms/{q(room_id)}/messages", params={"dir": "b", "limit": 50})
    if r.status == 200:
        assert after not in [e.get("content", {}).get("body") for e in r.body.get("chunk", [])], r


async def test_TestFederationRejectInvite(pair, make_user, room_version):
    """Complement: TestFederationRoomsInvite/Parallel/Invited user can reject invite over federation
    Complement: TestFederationRejectInvite
    sytest: Invited user can reject invite over federation
    sytest: Can reject invites over federation for rooms with version N
    A user of B rejects an invite from A while B is not in the room: B uses make_leave/send_leave and A
    sees the rejection (membership leave)."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    a_since = await since_now(alice)
    room_id = await alice.create_room(room_version=room_version, preset="private_chat")
    await alice.invite(room_id, bob.user_id)
    await wait_invite(bob, room_id)

    b_since = await since_now(bob)
    await bob.leave(room_id)
    await wait_timeline(alice, room_id, is_member(bob.user_id, "leave"), a_since, "bob's rejection on A")
    _, _ = await bob.sync_until(
        lambda body: room_id in body.get("rooms", {}).get("leave", {}),
        since=b_since,
        timeout_s=FED_WAIT_S,
        what="the rejected room in B's leave section",
    )
    member = await alice.state_content(room_id, "m.room.member", bob.user_id)
    assert member.get("membership") == "leave", member


async def test_remote_banned_user_cannot_post(pair, make_user, room_version):
    """Complement: TestBannedUserCannotSendJoin (from the client side)
    Complement: TestFederationRoomsInvite/Parallel/Remote invited user can join the room when homeserver is already participating in the room
    sytest: Remote banned user is kicked and may not rejoin until unbanned
    A bans a user of B. B learns of the ban; the banned user's sends from B fail (or, if B accepted one, A
    never shows it: a later message from another user of B arrives on A without it); the banned user cannot
    rejoin."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    charlie = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, room_version, also=[charlie])
    await send_and_see(bob, alice, room_id)

    b_since = await since_now(bob)
    c_since = await since_now(charlie)
    await alice.ok("POST", f"{CS}/rooms/{q(room_id)}/ban", json={"user_id": bob.user_id, "reason": "test"})
    await wait_timeline(bob, room_id, is_member(bob.user_id, "ban"), b_since, "bob's ban on B", section="leave")
    await wait_timeline(charlie, room_id, is_member(bob.user_id, "ban"), c_since, "bob's ban seen by charlie on B")

    forbidden = tag("banned-post")
    r = await bob.req(
        "PUT",
        f"{CS}/rooms/{q(room_id)}/send/m.room.message/{tag('txn')}",
        json={"msgtype": "m.text", "body": forbidden},
    )
    # Either B refuses (Synapse: 403 M_FORBIDDEN), or B accepts and A must reject the event.
    if r.status != 200:
        assert r.status == 403 and r.errcode == "M_FORBIDDEN", r

    # The marker from charlie (same server, sent after) arrives on A; the banned message never does.
    marker = await send_and_see(charlie, alice, room_id)
    bodies = await message_bodies(alice, room_id)
    assert marker["content"]["body"] in bodies and forbidden not in bodies, bodies

    r = await bob.req("POST", f"{CS}/join/{q(room_id)}", params={"server_name": pair.a.server_name}, json={})
    assert r.status == 403, f"a banned user's rejoin must fail with 403: {r!r}"
    member = await alice.state_content(room_id, "m.room.member", bob.user_id)
    assert member.get("membership") == "ban", member
