"""Scenario helpers shared by the federation tests (on top of ../helpers.py)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any, Awaitable, Callable

from helpers import CS, User, invited, q, timeline_has

# Upper bound for "the other server shows X" waits. Federation on loopback takes well under a second
# between two idle Synapses; the bound is generous because the machine may be busy compiling.
FED_WAIT_S = float(os.environ.get("FEDERATION_WAIT_S", "30"))
# Upper bound for a restarted server to catch up.
CATCHUP_WAIT_S = float(os.environ.get("FEDERATION_CATCHUP_WAIT_S", "90"))

ROOM_VERSIONS = ["10", "11", "12"]


def tag(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def is_member(user_id: str, membership: str, **content) -> Callable[[dict], bool]:
    def pred(ev: dict) -> bool:
        if ev.get("type") != "m.room.member" or ev.get("state_key") != user_id:
            return False
        c = ev.get("content", {})
        return c.get("membership") == membership and all(c.get(k) == v for k, v in content.items())

    return pred


def is_text(body: str, sender: str | None = None) -> Callable[[dict], bool]:
    def pred(ev: dict) -> bool:
        return (
            ev.get("type") == "m.room.message"
            and ev.get("content", {}).get("body") == body
            and (sender is None or ev.get("sender") == sender)
        )

    return pred


async def since_now(user: User) -> str:
    """A sync token for "now": later sync_until(since=...) calls only see what happens after it."""
    return (await user.sync(timeout=0))["next_batch"]


async def wait_timeline(user: User, room_id: str, pred, since: str | None, what: str, section: str = "join"):
    _, ev = await user.sync_until(timeline_has(room_id, pred, section), since=since, timeout_s=FED_WAIT_S, what=what)
    return ev


async def wait_invite(user: User, room_id: str, since: str | None = None) -> list[dict]:
    def check(body):
        room = invited(body, room_id)
        return room and room.get("invite_state", {}).get("events")

    _, events = await user.sync_until(check, since=since, timeout_s=FED_WAIT_S, what=f"an invite to {room_id}")
    return events


async def join_remote(user: User, room_id: str, via: str) -> str:
    """POST /join/{roomId}?server_name=<via> (v12 room ids carry no server name)."""
    b = await user.ok("POST", f"{CS}/join/{q(room_id)}", params={"server_name": via}, json={})
    assert b.get("room_id") == room_id, b
    return room_id


async def create_and_join(alice: User, bob: User, room_version: str, *, also: list[User] = (), **create) -> str:
    """alice (server A) creates a room of room_version and invites bob (and `also`, all on server B); each
    sees the invite through /sync and joins through A; alice sees every join. Returns the room id."""
    a_since = await since_now(alice)
    create.setdefault("preset", "private_chat")
    room_id = await alice.create_room(room_version=room_version, **create)
    for u in (bob, *also):
        await alice.invite(room_id, u.user_id)
        await wait_invite(u, room_id)
        await join_remote(u, room_id, alice.server.server_name)
        await wait_timeline(alice, room_id, is_member(u.user_id, "join"), a_since, f"{u.user_id} join on A")
    return room_id


async def send_and_see(sender: User, receiver: User, room_id: str, body: str | None = None) -> dict:
    """sender posts a text; receiver's /sync shows it (same event id). Returns the event as received."""
    body = body or tag("msg")
    since = await since_now(receiver)
    event_id = await sender.send_text(room_id, body)
    ev = await wait_timeline(receiver, room_id, is_text(body, sender.user_id), since, f"message {body!r}")
    assert ev["event_id"] == event_id, (ev, event_id)
    return ev


async def poll(fn: Callable[[], Awaitable[Any]], timeout_s: float, what: str, interval_s: float = 0.25):
    """Call fn until it returns something truthy; bounded in time (and so in count)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = await fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value {last!r}")
        await asyncio.sleep(interval_s)


async def message_bodies(user: User, room_id: str, limit: int = 50) -> list[str]:
    """Text bodies in room_id as user's server returns them through /messages (backwards), oldest first."""
    b = await user.messages(room_id, limit=limit)
    return [
        e["content"]["body"]
        for e in reversed(b.get("chunk", []))
        if e.get("type") == "m.room.message" and "body" in e.get("content", {})
    ]
