"""Application services driven by a real framework: mautrix-python (PyPI `mautrix`, the library of
the mautrix bridges) registers with Parvis from a registration file, pings itself through the
server, creates ghost users with display names, joins a room, receives a user's message in a
transaction and answers it as its ghost, and creates a room on an alias query; with its
ephemeral and encryption events on, it receives typing (MSC2409), a to-device message for its
ghost's device (MSC4203), a device list change (MSC3202), and creates a ghost on a user query.

sytest names: AS can create a user; AS can set displayname for ghosted users; AS cannot create
users outside its own namespace; AS user (not ghost) can join room without registering."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from mautrix.appservice import AppService
from mautrix.errors import MatrixRequestError

from helpers import CS, Server, free_port, q, register_user, timeline_has, wait_for

AS_TOKEN = "mautrix-as-token"
HS_TOKEN = "mautrix-hs-token"


class ServerWithAppservice(Server):
    def __init__(self, binary: str, registration: str):
        super().__init__(binary)
        self.registration = registration

    def env(self, index: int = 0) -> dict[str, str]:
        env = super().env(index)
        env["PARVIS_APPSERVICES__REGISTRATION_FILES"] = json.dumps([self.registration])
        return env


@pytest.fixture
async def bridge(parvis_bin, tmp_path):
    port = free_port()
    registration = tmp_path / "mautrix.yaml"
    registration.write_text(
        "\n".join(
            [
                "id: mx",
                f'url: "http://127.0.0.1:{port}"',
                f'as_token: "{AS_TOKEN}"',
                f'hs_token: "{HS_TOKEN}"',
                "sender_localpart: _mx_bot",
                "rate_limited: false",
                "receive_ephemeral: true",
                "org.matrix.msc3202: true",
                "namespaces:",
                "  users:",
                "    - exclusive: true",
                '      regex: "@_mx_.*"',
                "  aliases:",
                "    - exclusive: true",
                '      regex: "#_mx_.*"',
                "",
            ]
        )
    )
    server = ServerWithAppservice(parvis_bin, str(registration))
    server.start()
    events: list = []
    appserv = AppService(
        server=server.base_url,
        domain=server.server_name,
        as_token=AS_TOKEN,
        hs_token=HS_TOKEN,
        bot_localpart="_mx_bot",
        id="mx",
        log="mautrix-test",
        ephemeral_events=True,
        encryption_events=True,
    )

    async def query_alias(alias):
        # The bridge makes rooms on demand: `#_mx_lobby` exists once asked for.
        if not alias.startswith("#_mx_lobby:"):
            return None
        room_id = await appserv.intent.create_room(alias_localpart="_mx_lobby", is_direct=False)
        return {"room_id": room_id}

    async def query_user(user_id):
        # The bridge makes ghosts on demand: `@_mx_asked...` exists once asked for.
        if not user_id.startswith("@_mx_asked"):
            return None
        ghost = appserv.intent.user(user_id)
        await ghost.ensure_registered()
        await ghost.set_displayname("Asked for")
        return {}

    async def on_to_device(evt):
        events.append(("to_device", evt))

    async def on_device_lists(lists):
        events.append(("device_lists", lists))

    appserv.query_alias = query_alias
    appserv.query_user = query_user
    appserv.to_device_handler = on_to_device
    appserv.device_list_handler = on_device_lists
    await appserv.start("127.0.0.1", port)
    appserv.matrix_event_handler(lambda evt: events.append(evt))
    try:
        yield server, appserv, events
    finally:
        await appserv.stop()
        server.cleanup()


async def test_mautrix_appservice_bridges_a_message_round_trip(bridge, http):
    server, appserv, events = bridge
    # The framework's start-up checks: ping through the server, its own user.
    assert isinstance(await appserv.ping_self("t-ping"), int)
    await appserv.intent.ensure_registered()
    whoami = await appserv.intent.whoami()
    assert whoami.user_id == f"@_mx_bot:{server.server_name}"

    ghost = appserv.intent.user(f"@_mx_ghost:{server.server_name}")
    await ghost.ensure_registered()
    await ghost.set_displayname("Ghost of IRC")
    outsider = appserv.intent.user(f"@not_mx:{server.server_name}")
    with pytest.raises(MatrixRequestError):
        await outsider.ensure_registered()

    alice = await register_user(server, http, None, None, None, "")
    room = await alice.create_room(preset="public_chat")
    await ghost.ensure_joined(room)
    body = await alice.ok("GET", f"{CS}/profile/{q(ghost.mxid)}")
    assert body.get("displayname") == "Ghost of IRC", body

    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/t1", json={"msgtype": "m.text", "body": "hello bridge"})

    async def received():
        return any(getattr(getattr(e, "content", None), "body", None) == "hello bridge" for e in events)

    await wait_for(received, what="the message in a transaction")
    await ghost.send_text(room, "echo: hello bridge")

    async def echoed():
        sync = await alice.ok("GET", f"{CS}/sync", params={"timeout": 0})
        return timeline_has(room, lambda e: e.get("content", {}).get("body") == "echo: hello bridge" and e["sender"] == ghost.mxid)(sync)

    await wait_for(echoed, what="the ghost's answer in alice's sync")

    # An alias in the bridge's namespace is asked of it and then resolves.
    resolved = await alice.ok("GET", f"{CS}/directory/room/{q('#_mx_lobby:' + server.server_name)}")
    assert resolved["room_id"].startswith("!"), resolved
    r = await alice.req("GET", f"{CS}/directory/room/{q('#_mx_nothing:' + server.server_name)}")
    assert r.status == 404, r
    await alice.nio.close()


async def test_mautrix_appservice_gets_edus_to_device_and_device_lists(bridge, http):
    """The framework's own parsing of MSC2409, MSC4203 and MSC3202 transaction fields, and a user
    query answered by creating the ghost."""
    server, appserv, events = bridge
    await appserv.intent.ensure_registered()
    alice = await register_user(server, http, None, None, None, "")

    # A user query: the profile of an unknown ghost is asked of the bridge, which creates it.
    asked = f"@_mx_asked1:{server.server_name}"
    body = await alice.ok("GET", f"{CS}/profile/{q(asked)}")
    assert body.get("displayname") == "Asked for", body
    r = await alice.req("GET", f"{CS}/profile/{q('@_mx_nobody:' + server.server_name)}")
    assert r.status == 404, r

    # A ghost with a device of its own (m.login.application_service), in alice's room.
    ghost = appserv.intent.user(f"@_mx_crypto:{server.server_name}")
    await ghost.ensure_registered()
    login = {"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": ghost.mxid}}
    r = await alice.req("POST", f"{CS}/login", token=AS_TOKEN, json=login)
    assert r.status == 200, r
    device = r.body["device_id"]
    room = await alice.create_room(preset="public_chat")
    await ghost.ensure_joined(room)

    # Typing (MSC2409), through the framework's ephemeral handling.
    await alice.ok("PUT", f"{CS}/rooms/{q(room)}/typing/{q(alice.user_id)}", json={"typing": True, "timeout": 30000})

    async def typing_seen():
        return any(
            str(getattr(e, "type", "")) == "m.typing" and alice.user_id in getattr(e.content, "user_ids", [])
            for e in events
            if not isinstance(e, tuple)
        )

    await wait_for(typing_seen, what="alice's typing as an EDU")

    # A to-device message for the ghost's device (MSC4203).
    messages = {"messages": {ghost.mxid: {device: {"hello": "bridge"}}}}
    await alice.ok("PUT", f"{CS}/sendToDevice/org.example.hello/td1", json=messages)

    async def to_device_seen():
        return [
            e[1]
            for e in events
            if isinstance(e, tuple) and e[0] == "to_device" and e[1].to_device_id == device
        ]

    got = (await wait_for(to_device_seen, what="the to-device message"))[0]
    assert got.to_user_id == ghost.mxid and got.sender == alice.user_id, got

    # Alice's device list changes (a new device): the framework's device list handler hears of it.
    await register_login(server, http, alice)

    async def lists_seen():
        return any(
            isinstance(e, tuple) and e[0] == "device_lists" and alice.user_id in (e[1].changed or [])
            for e in events
        )

    await wait_for(lists_seen, what="alice in device_lists.changed", timeout_s=20)
    await alice.nio.close()


async def register_login(server, http, user):
    """A second device for `user` (a password login)."""
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id}, "password": user.password}
    r = await user.req("POST", f"{CS}/login", token=None, json=login)
    assert r.status == 200, r
