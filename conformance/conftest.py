"""Fixtures: the parvis server process, raw HTTP, and registered users driven by matrix-nio."""

from __future__ import annotations

import os

import pytest

from helpers import Http, Server, login_user, register_user


def _binary() -> str:
    default = os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/parvis-target")), "debug", "parvis"
    )
    return os.environ.get("PARVIS_BIN", default)


@pytest.fixture(scope="session")
def parvis_bin() -> str:
    path = _binary()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"parvis binary not found or not executable: {path} (set PARVIS_BIN)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def server(parvis_bin):
    """The shared server for the whole session (ephemeral port, temporary data directory)."""
    srv = Server(parvis_bin)
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture
def own_server(parvis_bin):
    """A private server for tests that restart or kill it. Call .restart() / .kill_and_restart()."""
    srv = Server(parvis_bin)
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture
async def http(server):
    h = Http(server)
    yield h
    await h.close()


@pytest.fixture
async def make_user(server, http):
    """Factory: `await make_user()` registers a fresh user (random localpart, m.login.dummy UIA)
    and returns a helpers.User holding a logged-in nio AsyncClient. All clients are closed at teardown.
    Pass server=own_server to register on a private server."""
    users = []

    async def factory(localpart=None, password=None, device_id=None, device_name="", server=server):
        u = await register_user(server, http, localpart, password, device_id, device_name)
        users.append(u)
        return u

    async def login(user, device_id=None):
        u = await login_user(user.server, http, user.localpart, user.password, device_id)
        users.append(u)
        return u

    factory.login = login
    yield factory
    for u in users:
        await u.nio.close()


@pytest.fixture
async def alice(make_user):
    return await make_user(localpart=None)


@pytest.fixture
async def bob(make_user):
    return await make_user()


@pytest.fixture
async def charlie(make_user):
    return await make_user()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus not in (0, 5) and Server.all_logs:
        terminalreporter.write_sep("-", "parvis server logs")
        for p in Server.all_logs:
            terminalreporter.write_line(p)
