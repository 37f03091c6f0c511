#!/usr/bin/env python3
"""Federation join bench: how long a user of one server takes to join a big room of another server.

Rooms with `--members` joined members (default 1,000) and `--state` state events in all (default 5,000: the
members, the creation events and `bench.state` events to make up the number) are built on a hosting server;
then a user of another server joins it (`POST /join/{roomId}?server_name=<host>`). Pairs (host → joiner):

    parvis  ← synapse   a Synapse user joins a Parvis room
    synapse ← parvis    a Parvis user joins a Synapse room
    synapse ← synapse   the reference: Synapse to Synapse
    parvis  ← parvis    Parvis to Parvis
    … ← parvisfull       a Parvis joiner with `partial_state_joins = false` (the whole state with the
                         join: how Parvis joined before partial-state joins)

Figures per pair: the time of the `/join` request (what the user waits for), and the time until the
joining server answers `GET /joined_members` with the whole membership (a server doing a partial-state
join answers `/join` before it has the room's full state). The same room of each host serves both of its
joiners (the second joiner sees one member more). Servers run on loopback with TLS federation, through the
harness of `conformance/federation/homeservers.py`; Synapse logs at WARNING, Parvis with RUST_LOG=warn.

    bash bench/federation.sh [--members N] [--state N] [--pairs parvis-synapse,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance", "federation"))

import aiohttp  # noqa: E402
import homeservers  # noqa: E402

CS = "/_matrix/client/v3"


class QuietSynapse(homeservers.SynapseServer):
    """Synapse as in the interop harness, but logging at WARNING (per-request INFO logs cost it CPU)."""

    def log_config_yaml(self) -> str:
        return super().log_config_yaml().replace("root: {level: INFO", "root: {level: WARNING")


class Client:
    def __init__(self, session: aiohttp.ClientSession, server: homeservers.Homeserver, token: str | None = None):
        self.session = session
        self.server = server
        self.token = token
        self.user_id = ""

    async def call(self, method: str, path: str, body: dict | None = None, ok=(200,)) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for attempt in range(50):
            async with self.session.request(
                method, self.server.base_url + path, json=body, headers=headers
            ) as r:
                data = await r.json(content_type=None)
                if r.status == 429:
                    await asyncio.sleep(data.get("retry_after_ms", 200) / 1000)
                    continue
                if r.status not in ok:
                    raise RuntimeError(f"{method} {path} on {self.server}: {r.status} {data}")
                return r.status, data
        raise RuntimeError(f"{method} {path}: still rate limited")


async def register(session: aiohttp.ClientSession, server: homeservers.Homeserver, localpart: str) -> Client:
    anon = Client(session, server)
    body = {"username": localpart, "password": "pw-" + localpart}
    status, data = await anon.call("POST", f"{CS}/register", body, ok=(200, 401))
    if status == 401:
        body["auth"] = {"type": "m.login.dummy", "session": data["session"]}
        _, data = await anon.call("POST", f"{CS}/register", body)
    c = Client(session, server, data["access_token"])
    c.user_id = data["user_id"]
    return c


async def bounded(n: int, coros) -> list:
    sem = asyncio.Semaphore(n)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


async def build_room(session, host: homeservers.Homeserver, members: int, state: int, room_version: str) -> str:
    tag = uuid.uuid4().hex[:6]
    owner = await register(session, host, f"owner{tag}")
    _, r = await owner.call(
        "POST",
        f"{CS}/createRoom",
        {"preset": "public_chat", "room_version": room_version, "name": f"bench {tag}"},
    )
    room = r["room_id"]
    t0 = time.monotonic()
    users = await bounded(4, [register(session, host, f"m{tag}x{i}") for i in range(members - 1)])
    await bounded(4, [u.call("POST", f"{CS}/join/{room}", {}) for u in users])
    # State so far: create, owner's member, power levels, join rules, history visibility, name, the members.
    have = 5 + members
    extra = max(0, state - have)
    await bounded(
        4,
        [
            owner.call("PUT", f"{CS}/rooms/{room}/state/bench.state/k{i}", {"i": i, "pad": "x" * 32})
            for i in range(extra)
        ],
    )
    _, st = await owner.call("GET", f"{CS}/rooms/{room}/state")
    print(
        f"  built {room} on {host.kind}: {len(st)} state events, "
        f"{sum(1 for e in st if e['type'] == 'm.room.member')} members in {time.monotonic() - t0:.0f} s",
        flush=True,
    )
    return room, owner


async def measure_join(session, joiner: homeservers.Homeserver, host: homeservers.Homeserver, room: str, owner) -> dict:
    user = await register(session, joiner, f"joiner{uuid.uuid4().hex[:6]}")
    _, before = await owner.call("GET", f"{CS}/rooms/{room}/joined_members")
    expected = len(before["joined"]) + 1
    t0 = time.monotonic()
    await user.call("POST", f"{CS}/join/{room}?server_name={host.server_name}", {})
    joined = time.monotonic() - t0
    # The whole membership, as the joining server sees it.
    full = None
    deadline = t0 + 600
    while time.monotonic() < deadline:
        status, data = await user.call("GET", f"{CS}/rooms/{room}/joined_members", ok=(200, 403, 404))
        if status == 200:
            if len(data.get("joined", {})) >= expected:
                full = time.monotonic() - t0
                break
        await asyncio.sleep(0.05)
    return {"join_s": joined, "full_s": full, "members": expected}


class FullStateParvis(homeservers.ParvisServer):
    """Parvis joining with the whole state in the `send_join` answer (no partial-state join)."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PARVIS_FEDERATION__PARTIAL_STATE_JOINS"] = "false"
        return env


def make(kind: str, label: str) -> homeservers.Homeserver:
    if kind == "synapse":
        return QuietSynapse(label)
    if kind == "parvisfull":
        return FullStateParvis(label)
    return homeservers.ParvisServer(label)


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception:
        return "?"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--state", type=int, default=5000)
    ap.add_argument("--room-version", default="12")
    ap.add_argument(
        "--pairs",
        default="parvis-synapse,synapse-parvis,synapse-synapse,parvis-parvis",
        help="host-joiner pairs, comma-separated (joiner parvisfull: Parvis without partial-state joins)",
    )
    ap.add_argument("--out", default=os.path.join(HERE, "federation-results.md"))
    args = ap.parse_args()
    os.environ.setdefault("RUST_LOG", "warn")

    pairs = [tuple(p.split("-")) for p in args.pairs.split(",") if p]
    hosts = {h for h, _ in pairs}
    joiners = {j for _, j in pairs}
    servers: dict[str, homeservers.Homeserver] = {}
    for kind in sorted(hosts):
        servers["host-" + kind] = make(kind, f"host-{kind}")
    for kind in sorted(joiners):
        servers["join-" + kind] = make(kind, f"join-{kind}")
    results = []
    try:
        for s in servers.values():
            s.start()
        timeout = aiohttp.ClientTimeout(total=900)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            rooms = {}
            for kind in sorted(hosts):
                print(f"building a room on {kind} ({args.members} members, {args.state} state events)", flush=True)
                rooms[kind] = await build_room(
                    session, servers["host-" + kind], args.members, args.state, args.room_version
                )
            for host_kind, joiner_kind in pairs:
                host = servers["host-" + host_kind]
                joiner = servers["join-" + joiner_kind]
                room, owner = rooms[host_kind]
                r = await measure_join(session, joiner, host, room, owner)
                full = f"{r['full_s']:.2f} s" if r["full_s"] is not None else "not within 600 s"
                print(
                    f"{joiner_kind} user joins {host_kind} room: /join {r['join_s']:.2f} s, "
                    f"all {r['members']} members visible after {full}",
                    flush=True,
                )
                results.append((host_kind, joiner_kind, r))
    finally:
        for s in servers.values():
            try:
                s.cleanup()
            except Exception as e:  # noqa: BLE001
                print(f"cleanup of {s}: {e}", file=sys.stderr)

    lines = [
        f"## {args.members} members, {args.state} state events ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Commit {git_commit()}, {platform.machine()} with {os.cpu_count()} cores, "
        f"loopback TLS; room version {args.room_version}; Synapse {homeservers.SYNAPSE_VERSION} "
        "(SQLite), Parvis release build; `parvisfull` is Parvis with `partial_state_joins = false`.",
        "",
        "| room on | joining server | `/join` answered | whole membership visible on the joining server |",
        "|---|---|---|---|",
    ]
    for host_kind, joiner_kind, r in results:
        full = f"{r['full_s']:.2f} s" if r["full_s"] is not None else "> 600 s"
        lines.append(f"| {host_kind} | {joiner_kind} | {r['join_s']:.2f} s | {full} |")
    text = "\n".join(lines) + "\n"
    print(text)
    # The newest section first, under the title; earlier sections are kept below it.
    title = "# Federation join bench\n"
    try:
        with open(args.out) as f:
            before = f.read()
    except FileNotFoundError:
        before = ""
    if before.startswith(title):
        before = before[len(title):].lstrip("\n")
    with open(args.out, "w") as f:
        f.write(title + "\n" + text + ("\n" + before if before else ""))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
