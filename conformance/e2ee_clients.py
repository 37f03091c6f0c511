"""End-to-end encrypted matrix-nio clients for the conformance suites (matrix-nio[e2e], vodozemac).

Each client logs in a new device of an existing user with its own key store in a temporary folder,
uploads its keys, and follows the server's device lists, as Element does."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time

from nio import AsyncClient, AsyncClientConfig, LoginResponse, MegolmEvent, RoomMessageText, SyncResponse

WAIT_S = 20.0


class E2eeClient:
    def __init__(self, client: AsyncClient, store: str):
        self.nio = client
        self.store = store

    @property
    def device_id(self) -> str:
        return self.nio.device_id

    async def settle(self) -> None:
        """One sync (short long-poll), then the key traffic nio asks for: upload, query, claim."""
        resp = await self.nio.sync(timeout=300, full_state=self.nio.next_batch is None)
        assert isinstance(resp, SyncResponse), f"sync failed: {resp}"
        if self.nio.should_upload_keys:
            await self.nio.keys_upload()
        if self.nio.should_query_keys:
            await self.nio.keys_query()
        if self.nio.should_claim_keys:
            await self.nio.keys_claim(self.nio.get_users_for_key_claiming())

    async def settle_until(self, check, what: str, timeout_s: float = WAIT_S):
        deadline = time.monotonic() + timeout_s
        while True:
            await self.settle()
            result = check()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.nio.user_id}/{self.device_id}: never saw {what} within {timeout_s}s")
            await asyncio.sleep(0.1)

    def knows_device(self, user_id: str, device_id: str) -> bool:
        return any(d.device_id == device_id for d in self.nio.device_store.active_user_devices(user_id))

    async def send_text(self, room_id: str, body: str) -> None:
        resp = await self.nio.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
        )
        assert getattr(resp, "event_id", None), f"room_send failed: {resp}"

    async def wait_decrypted(self, room_id: str, body: str, timeout_s: float = WAIT_S) -> None:
        """Syncs until `body` arrives in `room_id` and decrypts (a MegolmEvent that stays encrypted
        means the room key never came)."""
        seen: list = []
        deadline = time.monotonic() + timeout_s
        while True:
            resp = await self.nio.sync(timeout=300)
            if self.nio.should_upload_keys:
                await self.nio.keys_upload()
            if self.nio.should_query_keys:
                await self.nio.keys_query()
            room = getattr(resp, "rooms", None)
            events = room.join[room_id].timeline.events if room and room_id in room.join else []
            for event in events:
                if isinstance(event, MegolmEvent):
                    # The key may arrive in a later sync: retry decryption from the store then.
                    seen.append(event)
                elif isinstance(event, RoomMessageText) and event.body == body:
                    assert event.decrypted, f"{body!r} arrived unencrypted"
                    return
            for pending in list(seen):
                try:
                    decrypted = self.nio.decrypt_event(pending)
                except Exception:  # noqa: BLE001 - not yet decryptable
                    continue
                seen.remove(pending)
                if isinstance(decrypted, RoomMessageText) and decrypted.body == body:
                    return
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.nio.user_id}/{self.device_id}: {body!r} never decrypted ({len(seen)} undecryptable)")

    async def close(self) -> None:
        await self.nio.close()
        shutil.rmtree(self.store, ignore_errors=True)


async def e2ee_login(base_url: str, localpart: str, password: str) -> E2eeClient:
    """A new encrypting device of an existing user; its keys are uploaded before it returns."""
    store = tempfile.mkdtemp(prefix="parvis-e2ee-store-")
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, request_timeout=30, max_timeouts=3)
    client = AsyncClient(base_url, user=localpart, store_path=store, config=config)
    resp = await client.login(password=password, device_name="e2ee")
    if not isinstance(resp, LoginResponse):
        await client.close()
        raise AssertionError(f"login {localpart} failed: {resp}")
    e = E2eeClient(client, store)
    if client.should_upload_keys:
        await client.keys_upload()
    return e
