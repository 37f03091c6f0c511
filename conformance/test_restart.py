"""Durability: a graceful restart (SIGTERM) and a crash (SIGKILL) keep everything that was acknowledged.
These tests run on a private server (own_server) so restarting it does not disturb other tests.
sytest/Complement have no direct equivalent (Complement restarts deployments in e.g. TestPartialStateJoin);
the end-to-end scenario mirrors what a real client does."""

from nio import (
    JoinResponse,
    MessageDirection,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from helpers import CS, assert_status, invited, joined, q, timeline


async def chat_scenario(make_user, srv):
    """alice registers, creates a room, invites bob; bob joins; both chat. Returns (alice, bob, room, bodies)."""
    alice = await make_user(server=srv, password="alice-pass")
    bob = await make_user(server=srv, password="bob-pass")
    resp = await alice.nio.room_create(name="Durable", topic="survives restarts")
    assert isinstance(resp, RoomCreateResponse), resp
    room = resp.room_id
    resp = await alice.nio.room_invite(room, bob.user_id)
    assert isinstance(resp, RoomInviteResponse), resp
    await bob.sync_until(lambda b: invited(b, room), what="invite")
    resp = await bob.nio.join(room)
    assert isinstance(resp, JoinResponse), resp
    sent = []
    for i in range(6):
        who = alice if i % 2 == 0 else bob
        text = f"{'alice' if who is alice else 'bob'} says {i}"
        resp = await who.nio.room_send(room, "m.room.message", {"msgtype": "m.text", "body": text})
        assert isinstance(resp, RoomSendResponse), resp
        sent.append((resp.event_id, text))
    # bob sees alice's last message through sync (nio)
    resp = await bob.nio.sync(timeout=0, full_state=True)
    assert isinstance(resp, SyncResponse), resp
    return alice, bob, room, sent


async def assert_history(user, room, sent):
    """/messages (nio and raw) returns every acknowledged message, in order."""
    resp = await user.nio.room_messages(room, start=None, direction=MessageDirection.back, limit=50)
    assert isinstance(resp, RoomMessagesResponse), resp
    texts = [e.body for e in reversed(resp.chunk) if isinstance(e, RoomMessageText)]
    assert texts == [t for _, t in sent], texts
    raw = await user.messages(room, limit=50, filter={"types": ["m.room.message"]})
    assert [e["event_id"] for e in reversed(raw["chunk"])] == [eid for eid, _ in sent]
    fwd = await user.messages(room, dir="f", limit=100)
    assert fwd["chunk"][0]["type"] == "m.room.create"


async def assert_sync_history(user, room, sent):
    body = await user.sync(filter={"room": {"timeline": {"limit": 50}}})
    ids = [e["event_id"] for e in timeline(body, room) if e["type"] == "m.room.message"]
    assert ids == [eid for eid, _ in sent], ids
    state = {(e["type"], e["state_key"]): e for e in joined(body, room)["state"]["events"] + timeline(body, room) if "state_key" in e}
    assert state[("m.room.name", "")]["content"]["name"] == "Durable"
    return body


async def test_end_to_end_restart(make_user, own_server):
    """End-to-end: register, create a room, invite, join, chat, graceful restart (SIGTERM): history is intact
    in /messages and /sync, tokens and passwords still work, sync tokens from before the restart still work."""
    alice, bob, room, sent = await chat_scenario(make_user, own_server)
    before = await bob.sync()
    own_server.restart()
    for u in (alice, bob):
        resp = await u.nio.whoami()
        assert isinstance(resp, WhoamiResponse) and resp.user_id == u.user_id, resp
    await assert_history(alice, room, sent)
    await assert_history(bob, room, sent)
    await assert_sync_history(bob, room, sent)
    # a pre-restart sync token keeps working and delivers only what is new
    resp = await alice.nio.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "after restart"})
    assert isinstance(resp, RoomSendResponse), resp
    body, _ = await bob.sync_until(
        lambda b: resp.event_id in [e["event_id"] for e in timeline(b, room)], since=before["next_batch"], what="new message"
    )
    ids = [e["event_id"] for e in timeline(body, room)]
    assert not set(ids) & {eid for eid, _ in sent}, ("an incremental sync does not repeat old events", before["next_batch"], body)
    sent.append((resp.event_id, "after restart"))
    await assert_history(bob, room, sent)
    # password login still works
    again = await make_user.login(alice)
    assert again.user_id == alice.user_id
    members = await alice.ok("GET", f"{CS}/rooms/{q(room)}/joined_members")
    assert set(members["joined"]) == {alice.user_id, bob.user_id}


async def test_end_to_end_sigkill(make_user, own_server):
    """End-to-end: the same scenario, then SIGKILL and restart: every acknowledged write survives
    (messages, state, profile, account data, aliases, devices, txn-id idempotency)."""
    alice, bob, room, sent = await chat_scenario(make_user, own_server)
    alias = f"#durable-{alice.localpart}:{own_server.server_name}"
    await alice.ok("PUT", f"{CS}/directory/room/{q(alias)}", json={"room_id": room})
    await alice.put_state(room, "m.room.topic", {"topic": "written just before the crash"})
    await bob.ok("PUT", f"{CS}/profile/{q(bob.user_id)}/displayname", json={"displayname": "Bob Durable"})
    await alice.ok("PUT", f"{CS}/user/{q(alice.user_id)}/account_data/com.example.durable", json={"kept": True})
    await alice.ok("PUT", f"{CS}/devices/{q(alice.device_id)}", json={"display_name": "crash test dummy"})
    txn_body = {"msgtype": "m.text", "body": "last before crash"}
    last = (await alice.ok("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/crash-txn", json=txn_body))["event_id"]
    sent.append((last, "last before crash"))

    own_server.kill_and_restart()

    await assert_history(alice, room, sent)
    await assert_history(bob, room, sent)
    await assert_sync_history(bob, room, sent)
    assert (await bob.state_content(room, "m.room.topic"))["topic"] == "written just before the crash"
    assert (await alice.ok("GET", f"{CS}/directory/room/{q(alias)}"))["room_id"] == room
    assert (await alice.ok("GET", f"{CS}/profile/{q(bob.user_id)}"))["displayname"] == "Bob Durable"
    assert await alice.ok("GET", f"{CS}/user/{q(alice.user_id)}/account_data/com.example.durable") == {"kept": True}
    assert (await alice.ok("GET", f"{CS}/devices/{q(alice.device_id)}"))["display_name"] == "crash test dummy"
    # the transaction id is still remembered: a retry after the crash does not duplicate the message
    again = (await alice.ok("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/crash-txn", json=txn_body))["event_id"]
    assert again == last
    await assert_history(alice, room, sent)


async def test_restart_twice_and_register(make_user, own_server):
    """Users registered before a crash can log in afterwards; new registrations work after two restarts
    and do not collide with existing IDs."""
    alice = await make_user(server=own_server, password="pw-a")
    own_server.kill_and_restart()
    own_server.restart()
    a2 = await make_user.login(alice)
    assert a2.user_id == alice.user_id
    r = await a2.http.request(
        "GET", f"{CS}/register/available", params={"username": alice.localpart}, server=own_server
    )
    assert_status(r, 400, "M_USER_IN_USE")
    newcomer = await make_user(server=own_server)
    room = await newcomer.create_room(preset="public_chat")
    await alice.join(room)
    eid = await alice.send_text(room, "hello after two restarts")
    assert (await newcomer.messages(room, limit=1))["chunk"][0]["event_id"] == eid
