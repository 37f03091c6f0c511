"""A group of processes on one PostgreSQL schema (PARVIS_TEST_CLUSTER=2, scripts/test.sh), seen
from a client: requests that the proxy spreads over the processes, and what one process must
know of another's requests. Skipped on a lone server; the rest of the suite also runs through
the proxy in that mode."""

from __future__ import annotations

import asyncio

import pytest

from helpers import CLUSTER, CS, Server, q, rand_localpart, wait_for

pytestmark = pytest.mark.skipif(CLUSTER < 2, reason="a group of processes only (PARVIS_TEST_CLUSTER)")


def process(server: Server, index: int) -> Server:
    """A view of `server` that sends to one process directly, past the proxy."""

    class One:
        base_url = f"http://127.0.0.1:{server.process_ports[index]}"

    return One()  # type: ignore[return-value]


async def test_the_proxy_takes_turns(http, server):
    seen = set()
    for _ in range(4):
        r = await http.request("GET", "/_matrix/client/versions")
        assert r.status == 200, r
        seen.add(r.headers["X-Parvis-Process"])
    assert seen == {f"127.0.0.1:{p}" for p in server.process_ports}, seen


async def test_a_uia_flow_continues_on_another_process(http, server):
    """The two requests of a registration's m.login.dummy flow reach different processes."""
    first, second = process(server, 0), process(server, 1)
    localpart = rand_localpart()
    body = {"username": localpart, "password": "pw-group-test"}
    r = await http.request("POST", f"{CS}/register", json=body, server=first)
    assert r.status == 401, r
    session = r.body["session"]
    done = await http.request(
        "POST", f"{CS}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}, server=second
    )
    assert done.status == 200, done
    assert done.body["user_id"].startswith(f"@{localpart}:")
    # The session is spent for every process: replaying it starts a new one.
    again = await http.request(
        "POST",
        f"{CS}/register",
        json={"username": rand_localpart(), "password": "pw-group-test", "auth": {"type": "m.login.dummy", "session": session}},
        server=first,
    )
    assert again.status == 401 and again.body["session"] != session, again


async def test_typing_on_one_process_shows_and_ends_on_the_other(make_user, http, server):
    alice = await make_user()
    bob = await make_user()
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    first, second = process(server, 0), process(server, 1)
    r = await http.request(
        "PUT",
        f"{CS}/rooms/{q(room)}/typing/{q(alice.user_id)}",
        json={"typing": True, "timeout": 1500},
        token=alice.access_token,
        server=first,
    )
    assert r.status == 200, r
    since = None

    async def typing_seen(expected):
        nonlocal since
        params = {"timeout": 0}
        if since:
            params["since"] = since
        s = await http.request("GET", f"{CS}/sync", params=params, token=bob.access_token, server=second)
        assert s.status == 200, s
        since = s.body["next_batch"]
        for event in s.body.get("rooms", {}).get("join", {}).get(room, {}).get("ephemeral", {}).get("events", []):
            if event["type"] == "m.typing" and event["content"]["user_ids"] == expected:
                return True
        return False

    await wait_for(lambda: typing_seen([alice.user_id]), what="alice typing, seen through the other process")
    # The timeout ends it for every process (a commit of the lease holder's).
    await wait_for(lambda: typing_seen([]), timeout_s=10, what="alice's typing ended after its timeout")


async def test_a_login_token_works_once_across_processes(make_user, http, server):
    alice = await make_user()
    r = await http.request("POST", "/_matrix/client/v1/login/get_token", json={}, token=alice.access_token)
    if r.status == 401:
        r = await http.request(
            "POST",
            "/_matrix/client/v1/login/get_token",
            json={"auth": {"type": "m.login.password", "session": r.body["session"],
                           "identifier": {"type": "m.id.user", "user": alice.user_id}, "password": alice.password}},
            token=alice.access_token,
        )
    assert r.status == 200, r
    token = r.body["login_token"]
    login = {"type": "m.login.token", "token": token}
    results = await asyncio.gather(
        http.request("POST", f"{CS}/login", json=login, server=process(server, 0)),
        http.request("POST", f"{CS}/login", json=login, server=process(server, 1)),
    )
    assert sorted(r.status for r in results) == [200, 403], results
