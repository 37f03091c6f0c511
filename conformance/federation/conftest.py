"""Fixtures for the federation interop harness: a pair of homeservers (A, B) on loopback, users on each.

FEDERATION_PAIRS selects the pairs, comma-separated, "<kind of A>-<kind of B>" with kinds synapse / parvis
(default "synapse-synapse"). In every scenario A is the server that creates the room and B the remote one,
so "synapse-parvis" and "parvis-synapse" together cover both directions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # the client-side suite: helpers.py

from helpers import Http, register_user  # noqa: E402

import homeservers  # noqa: E402
from homeservers import Homeserver, make_server  # noqa: E402

DEFAULT_PAIRS = "synapse-synapse"


def _pairs() -> list[tuple[str, str]]:
    raw = os.environ.get("FEDERATION_PAIRS", DEFAULT_PAIRS)
    out = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split("-")
        if len(parts) != 2 or any(p not in homeservers.KINDS for p in parts):
            raise pytest.UsageError(
                f"FEDERATION_PAIRS: bad pair {item!r}; expected e.g. synapse-synapse,synapse-parvis,parvis-synapse"
            )
        out.append((parts[0], parts[1]))
    if not out:
        raise pytest.UsageError("FEDERATION_PAIRS is empty")
    return out


PAIRS = _pairs()


def pytest_ignore_collect(collection_path, config):
    """The client-side suite (`bash conformance/run.sh`, rooted at ../) recurses into this folder: skip the
    federation tests there (they need Synapse and minutes), unless FEDERATION_PAIRS asks for them."""
    if os.path.realpath(str(config.rootpath)) != os.path.realpath(HERE) and "FEDERATION_PAIRS" not in os.environ:
        return True
    return None


class Pair:
    """Two running homeservers: a (creates the rooms) and b (the remote side)."""

    def __init__(self, a: Homeserver, b: Homeserver):
        self.a = a
        self.b = b

    @property
    def id(self) -> str:
        return f"{self.a.kind}-{self.b.kind}"

    def __iter__(self):
        return iter((self.a, self.b))


def _start_pair(kind_a: str, kind_b: str) -> Pair:
    servers: list[Homeserver] = []
    try:
        servers.append(make_server(kind_a, "A"))
        servers.append(make_server(kind_b, "B"))
        # Start both at once: Synapse needs several seconds on a busy machine.
        errors: list[BaseException] = []

        def run(hs: Homeserver) -> None:
            try:
                hs.start()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(hs,)) for hs in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=homeservers.READY_TIMEOUT_S + 120)
        if errors:
            raise errors[0]
        return Pair(*servers)
    except BaseException:
        for hs in servers:
            hs.cleanup()
        raise


@pytest.fixture(scope="module", params=PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def pair(request):
    """A module-wide pair of servers; tests of one module share it (and must not stop it, except
    modules that use it on purpose, such as the catch-up scenarios)."""
    kind_a, kind_b = request.param
    error = None
    try:
        p = _start_pair(kind_a, kind_b)
    except Exception as e:  # noqa: BLE001 - reported as the fixture's failure, without the chained traceback
        error = f"could not start the {kind_a}-{kind_b} pair: {e}"
    if error:
        pytest.fail(error, pytrace=False)
    yield p
    for hs in p:
        hs.cleanup()


@pytest.fixture
async def http(pair):
    h = Http(pair.a)
    yield h
    await h.close()


@pytest.fixture
async def make_user(http):
    """Factory: `await make_user(hs)` registers a fresh user on homeserver hs (m.login.dummy UIA) and returns a
    helpers.User (nio client + raw HTTP helpers). All nio clients are closed at teardown."""
    users = []

    async def factory(hs: Homeserver, localpart: str | None = None):
        u = await register_user(hs, http, localpart)
        users.append(u)
        return u

    yield factory
    for u in users:
        await u.nio.close()


# --------------------------------------------------------------------------------------------
# Which federation endpoints each test made the servers call (parsed from Synapse's logs)
# --------------------------------------------------------------------------------------------

_ACCESS = re.compile(
    r"synapse\.access\.https?\.\d+ \S+ - \d+ - \{(?P<origin>[^}]*)\} Processed request: .*? "
    r"(?P<status>\d{3}) \"(?P<method>[A-Z]+) (?P<path>/_matrix/(?:federation|key)/\S*) HTTP"
)
_OUTBOUND = re.compile(
    r"synapse\.http\.matrixfederationclient .*?Completed request: (?P<status>\d{3}) .*? - "
    r"(?P<method>[A-Z]+) matrix-federation://(?P<dest>[^/\s]+)(?P<path>/\S*)"
)
_OUTBOUND_FAILED = re.compile(
    r"synapse\.http\.matrixfederationclient .*?Request failed: (?P<method>[A-Z]+) "
    r"matrix-federation://(?P<dest>[^/\s]+)(?P<path>/\S*?): (?P<err>[^\n]*)"
)
_KEEP_SECOND = {"query", "user", "publicRooms", "hierarchy", "openid", "media"}


def normalize_path(path: str) -> str:
    """/_matrix/federation/v1/send/1234 -> /_matrix/federation/v1/send/{…}; query keys kept, values dropped."""
    path, _, query = path.partition("?")
    segs = path.split("/")
    # ['', '_matrix', 'federation', 'v1', name, ...]
    keep = 5
    if len(segs) > 4 and segs[4] in _KEEP_SECOND:
        keep = 6
        if len(segs) > 5 and segs[5] == "keys":
            keep = 7
    if len(segs) > 3 and segs[2] == "key":  # /_matrix/key/v2/server[/{keyId}], /_matrix/key/v2/query
        keep = 5
    out = segs[:keep] + ["{…}" for _ in segs[keep:] if _ != ""]
    norm = "/".join(out)
    if query:
        keys = sorted({kv.split("=", 1)[0] for kv in query.split("&") if kv})
        norm += "?" + "&".join(keys)
    return norm


ENDPOINTS: dict[str, dict[str, list[str]]] = {}


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@pytest.fixture(autouse=True)
def _record_endpoints(request):
    if "pair" not in request.fixturenames:
        yield
        return
    p: Pair = request.getfixturevalue("pair")
    start = {hs.label: _log_size(hs.log_path) for hs in p}
    yield
    names = {hs.server_name: hs.label for hs in p}
    calls: dict[str, set[str]] = {}
    for hs in p:
        if hs.kind != "synapse":
            continue
        text = _read_from(hs.log_path, start[hs.label])
        for m in _ACCESS.finditer(text):
            origin = m["origin"]
            origin = names.get(origin, "unauthenticated" if origin in ("", "None") else origin)
            key = f"{origin} -> {hs.label}"
            calls.setdefault(key, set()).add(f'{m["method"]} {normalize_path(m["path"])} {m["status"]}')
        for m in _OUTBOUND.finditer(text):
            dest = names.get(m["dest"], m["dest"])
            key = f"{hs.label} -> {dest} (outbound)"
            calls.setdefault(key, set()).add(f'{m["method"]} {normalize_path(m["path"])} {m["status"]}')
        for m in _OUTBOUND_FAILED.finditer(text):
            dest = names.get(m["dest"], m["dest"])
            key = f"{hs.label} -> {dest} (outbound)"
            code = re.match(r"\w+\('(\d{3})", m["err"])
            status = code.group(1) if code else "failed: " + m["err"].split("(")[0]
            calls.setdefault(key, set()).add(f'{m["method"]} {normalize_path(m["path"])} {status}')
    ENDPOINTS[request.node.nodeid] = {k: sorted(v) for k, v in sorted(calls.items())}


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("FEDERATION_ENDPOINTS_OUT")
    if out and ENDPOINTS:
        with open(out, "w") as f:
            json.dump(ENDPOINTS, f, indent=2, ensure_ascii=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("FEDERATION_SHOW_ENDPOINTS") and ENDPOINTS:
        terminalreporter.write_sep("-", "federation requests seen in Synapse logs, per test")
        for nodeid, calls in ENDPOINTS.items():
            terminalreporter.write_line(nodeid)
            for direction, lines in calls.items():
                terminalreporter.write_line(f"  {direction}")
                for line in lines:
                    terminalreporter.write_line(f"      {line}")
    if exitstatus not in (0, 5) or os.environ.get("FEDERATION_KEEP_LOGS"):
        if Homeserver.all_logs:
            terminalreporter.write_sep("-", "homeserver logs")
            for p in Homeserver.all_logs:
                terminalreporter.write_line(p)
    else:
        # Success: remove the work directories (certificates and logs); data dirs are already gone.
        for p in Homeserver.all_logs:
            shutil.rmtree(os.path.dirname(p), ignore_errors=True)
