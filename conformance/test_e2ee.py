"""End-to-end encryption with matrix-nio's own crypto (matrix-nio[e2e], vodozemac): key upload, query and
claim, to-device room keys, device lists. Docstrings name the matching Complement / sytest tests."""

from __future__ import annotations

from e2ee_clients import e2ee_login
from helpers import CS, q, rand_localpart


async def _encrypted_room(alice, bob) -> str:
    room_id = await alice.create_room(
        preset="private_chat",
        name=rand_localpart("e2ee"),
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    await alice.invite(room_id, bob.user_id)
    await bob.join(room_id)
    return room_id


async def test_encrypted_messages_between_two_devices_and_a_third_added_later(server, make_user):
    """Complement: TestUploadKey
    sytest: Can upload device keys
    sytest: Can query remote device keys using POST after notification
    sytest: Can claim one time key using POST
    sytest: Can send a to-device message to a single device
    sytest: New device appears in device_lists.changed
    Two encrypting clients in an encrypted room: one sends, the other decrypts (the room key travels as an
    Olm-encrypted to-device message after a key claim). A third device of the receiver, added later, shows in
    the sender's device list (device_lists.changed, keys/query), gets the next room key and decrypts."""
    alice_user = await make_user()
    bob_user = await make_user()
    room_id = await _encrypted_room(alice_user, bob_user)
    alice = await e2ee_login(server.base_url, alice_user.localpart, alice_user.password)
    bob = await e2ee_login(server.base_url, bob_user.localpart, bob_user.password)
    third = None
    try:
        counts = await alice_user.ok("POST", f"{CS}/keys/upload", token=alice.nio.access_token, json={})
        assert counts["one_time_key_counts"].get("signed_curve25519", 0) > 0, counts
        await alice.settle()
        await bob.settle()
        await alice.settle_until(lambda: alice.knows_device(bob_user.user_id, bob.device_id), "bob's e2ee device")

        await alice.send_text(room_id, "first secret")
        await bob.wait_decrypted(room_id, "first secret")

        # A third device of bob's, added later.
        third = await e2ee_login(server.base_url, bob_user.localpart, bob_user.password)
        await third.settle()
        await alice.settle_until(lambda: alice.knows_device(bob_user.user_id, third.device_id), "bob's new device in alice's device list")
        await alice.send_text(room_id, "second secret")
        await third.wait_decrypted(room_id, "second secret")
        await bob.wait_decrypted(room_id, "second secret")
    finally:
        for c in (alice, bob, third):
            if c:
                await c.close()


async def test_TestToDeviceMessages(server, make_user):
    """Complement: TestToDeviceMessages
    sytest: Can send a message directly to a device using PUT /sendToDevice
    sytest: Can recv device messages until they are acknowledged
    sytest: Device messages with the same txn_id are deduplicated
    A to-device message stays in /sync until a later /sync acknowledges it; the same txn id sends once."""
    alice = await make_user()
    bob = await make_user()
    start = (await bob.sync())["next_batch"]
    body = {"messages": {bob.user_id: {bob.device_id: {"secret": "s1"}}}}
    await alice.ok("PUT", f"{CS}/sendToDevice/{q('m.test')}/txn-a", json=body)
    await alice.ok("PUT", f"{CS}/sendToDevice/{q('m.test')}/txn-a", json=body)
    first = await bob.sync(since=start)
    events = first.get("to_device", {}).get("events", [])
    assert [e["content"] for e in events] == [{"secret": "s1"}], first
    assert events[0]["sender"] == alice.user_id and events[0]["type"] == "m.test", events
    again = await bob.sync(since=start)
    assert len(again.get("to_device", {}).get("events", [])) == 1, "not acknowledged yet: delivered again"
    after = await bob.sync(since=first["next_batch"])
    assert not after.get("to_device", {}).get("events"), after
    gone = await bob.sync(since=start)
    assert not gone.get("to_device", {}).get("events"), "acknowledged messages are deleted"
