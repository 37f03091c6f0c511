"""Application services driven by a real framework: mautrix-python (PyPI `mautrix`, the library of
the mautrix bridges) registers with Parvis from a registration file, pings itself through the
server, creates ghost users with display names, joins a room, receives a user's message in a
transaction and answers it as its ghost, and creates a room on an alias query.

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

    def env(self) -> dict[str, str]:
        env = super().env()
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
    )

    async def query_alias(alias):
        # The bridge makes rooms on demand: `#_mx_lobby` exists once asked for.
        if not alias.startswith("#_mx_lobby:"):
            return None
        room_id = await appserv.intent.create_room(alias_localpart="_mx_lobby", is_direct=False)
        return {"room_id": room_id}

    appserv.query_alias = query_alias
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
        return any(getattr(e.content, "body", None) == "hello bridge" for e in events)

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
