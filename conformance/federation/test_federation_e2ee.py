"""End-to-end encryption across two homeservers with matrix-nio's own crypto (matrix-nio[e2e]): keys of the
remote user queried and claimed over federation, room keys as m.direct_to_device EDUs, a new device announced
with m.device_list_update. A (pair.a) creates the room, B (pair.b) is the remote server; both directions.
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md)."""

from __future__ import annotations

from e2ee_clients import e2ee_login
from fedhelpers import FED_WAIT_S, is_member, join_remote, since_now, tag, wait_timeline
from helpers import CS


async def test_TestFederationE2EEMessages(pair, make_user):
    """Complement: TestFederationKeyUploadQuery
    Complement: TestToDeviceMessagesOverFederation
    Complement: TestDeviceListsUpdateOverFederation
    sytest: Can query remote device keys using POST
    sytest: Can claim remote one time key using POST
    Two encrypting clients on different servers in an encrypted room: each sends, the other decrypts (keys
    queried and claimed over federation, room keys as to-device EDUs). A third device of B's user, added later,
    reaches A's device list and decrypts the next message from A."""
    alice_user = await make_user(pair.a)
    bob_user = await make_user(pair.b)
    room_id = await alice_user.create_room(
        preset="private_chat",
        name=tag("e2ee"),
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    a_since = await since_now(alice_user)
    await alice_user.invite(room_id, bob_user.user_id)
    await bob_user.sync_until(
        lambda b: room_id in b.get("rooms", {}).get("invite", {}), timeout_s=FED_WAIT_S, what="the invite on B"
    )
    await join_remote(bob_user, room_id, pair.a.server_name)
    await wait_timeline(alice_user, room_id, is_member(bob_user.user_id, "join"), a_since, "bob's join on A")

    alice = await e2ee_login(pair.a.base_url, alice_user.localpart, alice_user.password)
    bob = await e2ee_login(pair.b.base_url, bob_user.localpart, bob_user.password)
    third = None
    try:
        await bob.settle()
        await alice.settle_until(
            lambda: alice.knows_device(bob_user.user_id, bob.device_id), "bob's e2ee device on A", FED_WAIT_S
        )
        await bob.settle_until(
            lambda: bob.knows_device(alice_user.user_id, alice.device_id), "alice's e2ee device on B", FED_WAIT_S
        )

        await alice.send_text(room_id, "from A, encrypted")
        await bob.wait_decrypted(room_id, "from A, encrypted", FED_WAIT_S)
        await bob.send_text(room_id, "from B, encrypted")
        await alice.wait_decrypted(room_id, "from B, encrypted", FED_WAIT_S)

        # A new device of bob's on B: A learns of it (m.device_list_update), alice's next message reaches it.
        third = await e2ee_login(pair.b.base_url, bob_user.localpart, bob_user.password)
        await third.settle()
        await alice.settle_until(
            lambda: alice.knows_device(bob_user.user_id, third.device_id), "bob's new device on A", FED_WAIT_S
        )
        await alice.send_text(room_id, "to the new device")
        await third.wait_decrypted(room_id, "to the new device", FED_WAIT_S)

        # The keys of the remote user through the plain API as well.
        keys = await bob_user.ok("POST", f"{CS}/keys/query", json={"device_keys": {alice_user.user_id: []}})
        assert alice.device_id in keys["device_keys"].get(alice_user.user_id, {}), keys
    finally:
        for c in (alice, bob, third):
            if c:
                await c.close()
