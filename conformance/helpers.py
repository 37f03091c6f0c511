"""Shared helpers for the Parvis conformance suite: the server process, raw HTTP, users."""

from __future__ import annotations

import asyncio
import atexit
import json as jsonlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
from nio import AsyncClient, AsyncClientConfig, LoginResponse, RegisterResponse

CS = "/_matrix/client/v3"
READY_POLL_S = 0.02
READY_TIMEOUT_S = 30.0
# Upper bound for any "wait until the server shows X" loop. The server is local and fast.
WAIT_S = 10.0


def q(segment: str) -> str:
    """Percent-encode one path segment (room ids, aliases, event ids, user ids)."""
    return urllib.parse.quote(segment, safe="")


def rand_localpart(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def txn_id() -> str:
    return uuid.uuid4().hex


def free_port() -> int:
    """A port nobody listens on now, from 20000-32767: below the kernel's ephemeral range, so an
    outgoing connection or a listener on port 0 is never given it before the server binds it."""
    global _next_port
    for _ in range(12768):
        port = 20000 + _next_port % 12768
        _next_port += 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32767")


_next_port = (os.getpid() * 7919) % 12768


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------


# PARVIS_TEST_CLUSTER=N (with PARVIS_TEST_ENGINE=postgres): every server is a group of N
# processes on one PostgreSQL schema, behind a round-robin proxy (tools/round_robin_proxy.py).
CLUSTER = int(os.environ.get("PARVIS_TEST_CLUSTER", "0") or 0)
PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "round_robin_proxy.py")


class Server:
    """One parvis server, configured only through PARVIS_* environment variables: one process,
    or a group of processes behind a round-robin proxy (PARVIS_TEST_CLUSTER)."""

    all_logs: list[str] = []

    def __init__(self, binary: str):
        self.binary = binary
        self.workdir = tempfile.mkdtemp(prefix="parvis-conformance-")
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir)
        self.port = free_port()
        self.cluster = CLUSTER if CLUSTER > 1 else 0
        if self.cluster and os.environ.get("PARVIS_TEST_ENGINE") != "postgres":
            raise RuntimeError("PARVIS_TEST_CLUSTER needs PARVIS_TEST_ENGINE=postgres")
        # The processes' own ports (the proxy listens on self.port); one process: self.port.
        self.process_ports = [free_port() for _ in range(self.cluster)] or [self.port]
        self.log_paths = [
            os.path.join(self.workdir, f"server{i}.log" if self.cluster else "server.log")
            for i in range(len(self.process_ports))
        ]
        self.log_path = self.log_paths[0]
        Server.all_logs.extend(self.log_paths)
        self.procs: list[subprocess.Popen] = []
        self.proxy: subprocess.Popen | None = None
        self.starts = 0

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.procs[0] if self.procs else None

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, index: int = 0) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PARVIS_SERVER_NAME": self.server_name,
                "PARVIS_LISTEN__CLIENT": f"127.0.0.1:{self.process_ports[index]}",
                "PARVIS_STORAGE__PATH": self.data_dir,
                "PARVIS_RATE_LIMITS__ENABLED": "false",
                # Peers and push gateways of the tests listen on loopback (denied by default).
                "PARVIS_NETWORK__ALLOW_RANGES": '["127.0.0.0/8", "::1/128"]',
                # Several servers run at once: the federation listener takes any free port.
                "PARVIS_FEDERATION__LISTEN": "127.0.0.1:0",
                # Login with another device (POST /login/get_token) is off by default; on here,
                # so the suite walks it (test_login.py, test_versions.py).
                "PARVIS_SESSIONS__LOGIN_VIA_EXISTING_SESSION__ENABLED": "true",
            }
        )
        # PARVIS_TEST_ENGINE=postgres (scripts/with-postgres.sh sets PARVIS_TEST_PG): the server
        # stores in PostgreSQL, in a schema of its own named after its data folder (a restart
        # finds its data).
        if os.environ.get("PARVIS_TEST_ENGINE") == "postgres":
            digest = hashlib.sha256(self.data_dir.encode()).hexdigest()[:16]
            env.update(
                {
                    "PARVIS_STORAGE__ENGINE": "postgres",
                    "PARVIS_STORAGE__POSTGRES__URL": os.environ["PARVIS_TEST_PG"],
                    "PARVIS_STORAGE__POSTGRES__SCHEMA": f"c_{digest}",
                    "PARVIS_STORAGE__POSTGRES__POOL_SIZE": "2",
                }
            )
        if self.cluster:
            # A group: one schema and one media folder, a data folder per process, and the
            # proxy's address as the server's.
            own = os.path.join(self.data_dir, f"process{index}")
            os.makedirs(own, exist_ok=True)
            env.update(
                {
                    "PARVIS_STORAGE__PATH": own,
                    "PARVIS_STORAGE__MEDIA_PATH": os.path.join(self.data_dir, "media"),
                    "PARVIS_STORAGE__POSTGRES__SHARED": "true",
                    "PARVIS_LISTEN__PUBLIC_BASE_URL": self.base_url,
                }
            )
        return env

    def start(self) -> None:
        assert not any(p.poll() is None for p in self.procs), "server already running"
        self.starts += 1
        self.procs = []
        for index, log_path in enumerate(self.log_paths):
            log = open(log_path, "ab")
            log.write(f"\n===== start #{self.starts}: {self.binary} serve =====\n".encode())
            log.flush()
            self.procs.append(
                subprocess.Popen(
                    [self.binary, "serve"],
                    env=self.env(index),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        if self.cluster and (self.proxy is None or self.proxy.poll() is not None):
            self.proxy = subprocess.Popen(
                [sys.executable, PROXY, str(self.port), *map(str, self.process_ports)],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self not in _live:
            _live.append(self)
        for port in self.process_ports:
            self.wait_ready(port)
        if self.cluster:
            self.wait_ready(self.port)

    def wait_ready(self, port: int | None = None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = f"http://127.0.0.1:{port or self.port}/_matrix/client/versions"
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"parvis exited with code {p.returncode} before answering /versions\n"
                        f"--- {self.log_path} ---\n{self.log_tail()}"
                    )
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as e:  # answered, but not 200: keep waiting a bit
                last_err = e
            except (OSError, urllib.error.URLError) as e:
                last_err = e
            time.sleep(READY_POLL_S)
        self.kill()
        raise RuntimeError(
            f"parvis did not answer GET /_matrix/client/versions within {READY_TIMEOUT_S}s "
            f"(last error: {last_err!r})\n--- {self.log_path} ---\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after grace_s."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill_and_restart(self) -> None:
        self.kill()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.kill()
            self.proxy.wait(timeout=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        tails = []
        for path in self.log_paths:
            try:
                with open(path, "rb") as f:
                    data = f.read().decode("utf-8", "replace")
            except OSError:
                data = "(no log)"
            tail = "\n".join(data.splitlines()[-lines:])
            tails.append(f"--- {path} ---\n{tail}" if self.cluster else tail)
        return "\n".join(tails)


_live: list[Server] = []


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a server behind, even if pytest is interrupted before fixture teardown."""
    for srv in _live:
        srv.kill()
        if srv.proxy is not None and srv.proxy.poll() is None:
            srv.proxy.kill()


# --------------------------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------------------------

_NOTSET = object()


@dataclass
class Resp:
    status: int
    text: str
    headers: Any
    body: Any = None

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        return f"<HTTP {self.status} {self.text[:600]}>"


class Http:
    """A plain aiohttp session. No keep-alive, so a restarted server is never hit on a dead socket."""

    def __init__(self, server: Server):
        self.server = server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = _NOTSET,
        data: bytes | str | None = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        server: Server | None = None,
    ) -> Resp:
        srv = server or self.server
        hdrs: dict[str, str] = {}
        body: bytes | str | None = None
        if json is not _NOTSET:
            body = jsonlib.dumps(json)
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            body = data
            hdrs["Content-Type"] = "application/json"
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if headers:
            hdrs.update(headers)
        if params:
            params = {
                k: (jsonlib.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in params.items()
                if v is not None
            }
        url = srv.base_url + path
        async with self.session.request(method, url, data=body, params=params, headers=hdrs) as r:
            raw = await r.read()
            text = raw.decode("utf-8", "replace")
            parsed = None
            if raw:
                try:
                    parsed = jsonlib.loads(text)
                except ValueError:
                    parsed = None
            return Resp(status=r.status, text=text, headers=r.headers, body=parsed)


def assert_status(r: Resp, status: int, errcode: str | None = None, what: str = "") -> Resp:
    assert r.status == status, f"{what} expected HTTP {status}, got {r!r}"
    if errcode is not None:
        assert r.errcode == errcode, f"{what} expected errcode {errcode}, got {r!r}"
    uia = status == 401 and isinstance(r.body, dict) and "flows" in r.body
    if status >= 400 and not uia:
        assert isinstance(r.body, dict) and isinstance(r.body.get("errcode"), str), (
            f"{what} error response must be a JSON object with an errcode: {r!r}"
        )
    return r


# --------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------


def nio_config() -> AsyncClientConfig:
    return AsyncClientConfig(
        max_timeouts=3,
        max_limit_exceeded=0,
        request_timeout=30,
        encryption_enabled=False,
        store_sync_tokens=False,
    )


@dataclass
class User:
    server: Server
    http: Http
    localpart: str
    password: str
    user_id: str
    device_id: str
    access_token: str
    nio: AsyncClient
    extra: dict = field(default_factory=dict)

    # ---- raw requests -------------------------------------------------------------------
    async def req(self, method: str, path: str, **kw) -> Resp:
        kw.setdefault("token", self.access_token)
        kw.setdefault("server", self.server)
        return await self.http.request(method, path, **kw)

    async def ok(self, method: str, path: str, **kw) -> Any:
        r = await self.req(method, path, **kw)
        assert r.status == 200, f"{method} {path} as {self.user_id}: expected 200, got {r!r}"
        return r.body

    # ---- rooms --------------------------------------------------------------------------
    async def create_room(self, **body) -> str:
        b = await self.ok("POST", f"{CS}/createRoom", json=body)
        assert isinstance(b.get("room_id"), str) and b["room_id"].startswith("!"), b
        return b["room_id"]

    async def join(self, room_id_or_alias: str) -> str:
        b = await self.ok("POST", f"{CS}/join/{q(room_id_or_alias)}", json={})
        return b["room_id"]

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.ok("POST", f"{CS}/rooms/{q(room_id)}/invite", json={"user_id": user_id})

    async def leave(self, room_id: str) -> None:
        await self.ok("POST", f"{CS}/rooms/{q(room_id)}/leave", json={})

    async def send(self, room_id: str, event_type: str, content: dict, txn: str | None = None) -> str:
        b = await self.ok(
            "PUT", f"{CS}/rooms/{q(room_id)}/send/{q(event_type)}/{txn or txn_id()}", json=content
        )
        assert isinstance(b.get("event_id"), str) and b["event_id"].startswith("$"), b
        return b["event_id"]

    async def send_text(self, room_id: str, body: str) -> str:
        return await self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})

    async def put_state(self, room_id: str, event_type: str, content: dict, state_key: str = "") -> str:
        b = await self.ok(
            "PUT", f"{CS}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}", json=content
        )
        return b["event_id"]

    async def get_state(self, room_id: str, event_type: str, state_key: str = "") -> Resp:
        return await self.req("GET", f"{CS}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}")

    async def state_content(self, room_id: str, event_type: str, state_key: str = "") -> dict:
        r = await self.get_state(room_id, event_type, state_key)
        assert r.status == 200, f"GET state {event_type}/{state_key}: {r!r}"
        return r.body

    async def messages(self, room_id: str, **params) -> dict:
        params.setdefault("dir", "b")
        return await self.ok("GET", f"{CS}/rooms/{q(room_id)}/messages", params=params)

    # ---- sync ---------------------------------------------------------------------------
    async def sync(self, since: str | None = None, **params) -> dict:
        params.setdefault("timeout", 0)
        if since:
            params["since"] = since
        return await self.ok("GET", f"{CS}/sync", params=params)

    async def sync_until(
        self,
        check: Callable[[dict], Any],
        since: str | None = None,
        timeout_s: float = WAIT_S,
        what: str = "condition",
        **params,
    ) -> tuple[dict, Any]:
        """Incremental long-poll syncs until check(response) is truthy; returns (response, check result).

        Each response is checked on its own (as Complement's SyncUntil does)."""
        deadline = time.monotonic() + timeout_s
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            poll_ms = 0 if since is None else max(0, min(1000, int(remaining * 1000)))
            body = await self.sync(since=since, timeout=poll_ms, **params)
            result = check(body)
            if result:
                return body, result
            seen.append(body)
            since = body["next_batch"]
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.user_id}: /sync never satisfied {what} within {timeout_s}s; "
                    f"last response: {jsonlib.dumps(body)[:3000]}"
                )


async def register_user(
    server: Server,
    http: Http,
    localpart: str | None = None,
    password: str | None = None,
    device_id: str | None = None,
    device_name: str = "",
) -> User:
    """Register through the m.login.dummy UIA flow and return a logged-in nio client."""
    localpart = localpart or rand_localpart()
    password = password or ("pw-" + uuid.uuid4().hex)
    r = await http.request(
        "POST", f"{CS}/register", json={"username": localpart, "password": password}, server=server
    )
    assert r.status == 401, f"POST /register without auth must start UIA with 401, got {r!r}"
    session = r.body.get("session")
    assert isinstance(session, str) and session, f"UIA 401 must carry a session: {r!r}"
    assert any(f.get("stages") == ["m.login.dummy"] for f in r.body.get("flows", [])), r
    client = AsyncClient(server.base_url, config=nio_config())
    if device_id:
        client.device_id = device_id
    resp = await client.register(localpart, password, device_name=device_name, session_token=session)
    if not isinstance(resp, RegisterResponse):
        await client.close()
        raise AssertionError(f"register {localpart} failed: {resp}")
    return User(
        server=server,
        http=http,
        localpart=localpart,
        password=password,
        user_id=resp.user_id,
        device_id=resp.device_id,
        access_token=resp.access_token,
        nio=client,
    )


async def login_user(
    server: Server, http: Http, localpart: str, password: str, device_id: str | None = None
) -> User:
    """A new device for an existing account, logged in with nio's password login."""
    client = AsyncClient(server.base_url, user=localpart, config=nio_config())
    if device_id:
        client.device_id = device_id
    resp = await client.login(password=password, device_name="conformance")
    if not isinstance(resp, LoginResponse):
        await client.close()
        raise AssertionError(f"login {localpart} failed: {resp}")
    return User(
        server=server,
        http=http,
        localpart=localpart,
        password=password,
        user_id=resp.user_id,
        device_id=resp.device_id,
        access_token=resp.access_token,
        nio=client,
    )


# --------------------------------------------------------------------------------------------
# Sync response inspection
# --------------------------------------------------------------------------------------------


def joined(body: dict, room_id: str) -> dict | None:
    return body.get("rooms", {}).get("join", {}).get(room_id)


def invited(body: dict, room_id: str) -> dict | None:
    return body.get("rooms", {}).get("invite", {}).get(room_id)


def left(body: dict, room_id: str) -> dict | None:
    return body.get("rooms", {}).get("leave", {}).get(room_id)


def timeline(body: dict, room_id: str, section: str = "join") -> list[dict]:
    room = body.get("rooms", {}).get(section, {}).get(room_id) or {}
    return room.get("timeline", {}).get("events", [])


def timeline_has(room_id: str, pred: Callable[[dict], bool], section: str = "join"):
    def check(body: dict):
        for ev in timeline(body, room_id, section):
            if pred(ev):
                return ev
        return None

    return check


def ephemeral_has(room_id: str, pred: Callable[[dict], bool]):
    def check(body: dict):
        room = joined(body, room_id) or {}
        for ev in room.get("ephemeral", {}).get("events", []):
            if pred(ev):
                return ev
        return None

    return check


def event_ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message" and "body" in e.get("content", {})]


async def wait_for(coro_fn: Callable[[], Any], timeout_s: float = WAIT_S, interval_s: float = 0.05, what: str = "condition"):
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await coro_fn()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value {last!r}")


def creators_privileged(room_version: str) -> bool:
    """Room versions 12+ (MSC4289): creators have infinite power and are not listed in power_levels.users."""
    try:
        return int(room_version) >= 12
    except ValueError:
        return False


async def power_of(user: "User", room_id: str, target: str) -> float:
    """Effective power level of target in room_id, as seen by user (creators of v12+ rooms: infinity)."""
    create_r = await user.get_state(room_id, "m.room.create")
    assert create_r.status == 200, create_r
    create = create_r.body
    if creators_privileged(create.get("room_version", "1")):
        creators = {create.get("creator")} | set(create.get("additional_creators", []))
        state = await user.ok("GET", f"{CS}/rooms/{q(room_id)}/state")
        for ev in state:
            if ev["type"] == "m.room.create":
                creators.add(ev["sender"])
        if target in creators:
            return float("inf")
    pl = await user.state_content(room_id, "m.room.power_levels")
    return pl.get("users", {}).get(target, pl.get("users_default", 0))
