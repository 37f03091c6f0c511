"""Server discovery and information: /versions, /.well-known/matrix/client, /capabilities."""

from helpers import CS, assert_status


async def test_TestVersionStructure(http):
    """Complement: TestVersionStructure
    GET /_matrix/client/versions needs no auth and lists spec versions (vX.Y or rN.N.N)."""
    r = assert_status(await http.request("GET", "/_matrix/client/versions"), 200)
    versions = r.body["versions"]
    assert isinstance(versions, list) and versions, r
    import re

    for v in versions:
        assert re.fullmatch(r"(v1\.\d+|r0\.\d+\.\d+)", v), f"bad version string {v!r}"
    assert any(v.startswith("v1.") for v in versions), "a modern server advertises at least one v1.x"
    uf = r.body.get("unstable_features", {})
    assert isinstance(uf, dict) and all(isinstance(x, bool) for x in uf.values()), r


async def test_well_known_client(http, server):
    """sytest: (discovery) GET /.well-known/matrix/client
    Answers without auth with m.homeserver.base_url; CORS allowed as the spec requires."""
    r = assert_status(
        await http.request("GET", "/.well-known/matrix/client", headers={"Origin": "https://app.example"}),
        200,
    )
    base = r.body["m.homeserver"]["base_url"]
    assert isinstance(base, str) and base.startswith(("http://", "https://")), r
    assert r.headers.get("Access-Control-Allow-Origin") == "*", dict(r.headers)


async def test_TestServerCapabilities(alice):
    """Complement: TestServerCapabilities
    sytest: GET /capabilities is present and well formed for registered user"""
    body = await alice.ok("GET", f"{CS}/capabilities")
    caps = body["capabilities"]
    rv = caps["m.room_versions"]
    assert rv["default"] in rv["available"], body
    assert all(s in ("stable", "unstable") for s in rv["available"].values()), body
    cp = caps.get("m.change_password", {"enabled": True})
    assert cp["enabled"] is True, "password changes are supported (POST /account/password)"


async def test_capabilities_requires_auth(http):
    """sytest: GET /capabilities is not public"""
    r = await http.request("GET", f"{CS}/capabilities")
    assert_status(r, 401, "M_MISSING_TOKEN")


async def test_nio_versions_and_login_info(alice):
    """nio's view of the server: GET /login lists m.login.password (nio.AsyncClient.login_info).
    sytest: GET /login yields a set of flows"""
    from nio import LoginInfoResponse

    resp = await alice.nio.login_info()
    assert isinstance(resp, LoginInfoResponse), resp
    assert "m.login.password" in resp.flows
