"""Honest /versions (issue 9): a spec version is advertised only when every endpoint of it is
served, or the spec lets a server leave it out; an `unstable_features` flag only when the feature
answers. The endpoint list is the spec's own (conformance/data/spec-endpoints.tsv, written from
the bundled OpenAPI by conformance/tools/spec_endpoints.py)."""

from __future__ import annotations

import os
import re

from helpers import CS, assert_status, q, txn_id

DATA = os.path.join(os.path.dirname(__file__), "data", "spec-endpoints.tsv")

# Endpoints of the advertised versions that Parvis leaves out, each with its reason; kept in step
# with spec/features.md ("Optional endpoints left out") and spec/deviations.md.
OPTIONAL = {
    # SSO is one of several login types; a server without providers (as this suite's) lists no
    # m.login.sso flow and answers 404 M_UNRECOGNIZED. tests/oidc.rs tests them configured.
    ("GET", "/_matrix/client/v3/login/sso/redirect"): "no SSO login flow is offered",
    ("GET", "/_matrix/client/v3/login/sso/redirect/{idpId}"): "no SSO login flow is offered",
    # OAuth 2.0 API (v1.15): a server without it answers 404 M_UNRECOGNIZED.
    ("GET", "/_matrix/client/v1/auth_metadata"): "the OAuth 2.0 API is not offered",
}
# Not optional in the spec, and not served yet: listed in spec/deviations.md.
NOT_YET = {
    ("GET", "/_matrix/media/v3/preview_url"): "URL previews (deprecated path)",
    ("GET", "/_matrix/client/v1/media/preview_url"): "URL previews",
    ("GET", "/_matrix/client/v3/events"): "deprecated event stream (clients use /sync)",
    ("GET", "/_matrix/client/v3/events/{eventId}"): "deprecated (clients use /rooms/{roomId}/event/{eventId})",
    ("GET", "/_matrix/client/v3/initialSync"): "deprecated (clients use /sync)",
    ("GET", "/_matrix/client/v3/rooms/{roomId}/initialSync"): "deprecated (clients use /sync and /messages)",
    ("POST", "/_matrix/client/v3/account/3pid"): "deprecated way to add a third-party identifier (clients use /account/3pid/add)",
}
LEFT_OUT = {**OPTIONAL, **NOT_YET}

# Endpoints called without an access token: with one they would log the test user out, deactivate
# or change them. A served endpoint asks for the token (401); a missing route is 404 M_UNRECOGNIZED.
WITHOUT_TOKEN = {
    ("POST", "/_matrix/client/v3/logout"),
    ("POST", "/_matrix/client/v3/logout/all"),
    ("POST", "/_matrix/client/v3/account/deactivate"),
    ("POST", "/_matrix/client/v3/account/password"),
    ("POST", "/_matrix/client/v3/delete_devices"),
    ("DELETE", "/_matrix/client/v3/devices/{deviceId}"),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/leave"),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/forget"),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/upgrade"),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/kick"),
    ("POST", "/_matrix/client/v3/rooms/{roomId}/ban"),
}


def version_key(v: str) -> tuple[int, int]:
    m = re.fullmatch(r"v?(\d+)\.(\d+)", v)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def spec_endpoints() -> list[tuple[str, str, str, bool]]:
    rows = []
    for line in open(DATA):
        if line.startswith("#") or not line.strip():
            continue
        method, path, added, deprecated = (line.rstrip("\n").split("\t") + ["", ""])[:4]
        rows.append((method, path, added, deprecated == "deprecated"))
    return rows


def not_served(r) -> bool:
    """The spec's answer for an unknown endpoint (404) or method (405): M_UNRECOGNIZED."""
    return r.status in (404, 405) and r.errcode == "M_UNRECOGNIZED"


async def test_every_endpoint_of_the_advertised_versions_is_served(http, alice, server):
    """Walks the spec's client-server endpoints added up to the newest advertised version (those
    the spec does not date are in every version) and checks each is served: anything but 404/405
    M_UNRECOGNIZED, with the test user's token and real identifiers."""
    versions = assert_status(await http.request("GET", "/_matrix/client/versions"), 200).body["versions"]
    newest = max(version_key(v) for v in versions if v.startswith("v1."))
    room = await alice.create_room(preset="public_chat")
    event = (await alice.ok("PUT", f"{CS}/rooms/{q(room)}/send/m.room.message/{txn_id()}", json={"msgtype": "m.text", "body": "x"}))["event_id"]
    values = {
        "roomId": room, "roomIdOrAlias": room, "eventId": event, "userId": alice.user_id,
        "deviceId": alice.device_id, "roomAlias": f"#probe-{txn_id()}:{server.server_name}",
        "type": "org.example.probe", "tag": "u.probe", "filterId": "0", "eventType": "org.example.probe",
        "stateKey": "probe", "txnId": "", "kind": "override", "ruleId": "org.example.probe",
        "receiptType": "m.read", "keyName": "displayname", "serverName": server.server_name,
        "mediaId": "missing", "fileName": "f.txt", "protocol": "irc", "networkId": "net", "version": "1",
        "sessionId": "s", "appserviceId": "as", "idpId": "idp", "relType": "m.thread",
    }
    missing = []
    checked = 0
    for method, path, added, _deprecated in spec_endpoints():
        if added and version_key(added) > newest:
            continue
        if (method, path) in LEFT_OUT:
            continue

        def value(m: re.Match) -> str:
            name = m.group(1)
            return txn_id() if name == "txnId" else values[name]

        url = re.sub(r"\{(\w+)\}", lambda m: q(value(m)), path)
        token = None if (method, path) in WITHOUT_TOKEN else alice.access_token
        params = {"timeout": 0} if method == "GET" else None
        body = {} if method in ("POST", "PUT") else None
        kw = {"json": body} if body is not None else {}
        r = await http.request(method, url, params=params, token=token, **kw)
        checked += 1
        if not_served(r):
            missing.append(f"{method} {path} (added in {added or 'v1.0'}): {r.status} {r.errcode}")
    assert checked > 100, f"only {checked} endpoints walked"
    assert not missing, "advertised versions include endpoints not served:\n" + "\n".join(missing)


async def test_left_out_endpoints_are_optional_and_answer_unrecognized(http):
    """What LEFT_OUT names is really not served (so the list stays true) and is in the spec."""
    listed = {(m, p) for m, p, _, _ in spec_endpoints()}
    for method, path in LEFT_OUT:
        assert (method, path) in listed, f"{method} {path} is not a spec endpoint"
        url = path.replace("{idpId}", "idp").replace("{eventId}", "$x").replace("{roomId}", "!x:y")
        r = await http.request(method, url, json={} if method == "POST" else None) if method == "POST" else await http.request(method, url)
        assert not_served(r), f"{method} {path} is served now: take it out of LEFT_OUT ({r!r})"


async def test_unstable_features_are_served(http, alice):
    """Each advertised unstable feature answers: simplified sliding sync (MSC4186), MSC3827's
    stable `room_types` filter of /publicRooms, the room summary (MSC3266), mutual rooms
    (MSC2666) and account moderation (MSC4323)."""
    features = assert_status(await http.request("GET", "/_matrix/client/versions"), 200).body.get("unstable_features", {})
    room = await alice.create_room(preset="public_chat")
    probes = {
        "org.matrix.simplified_msc3575": ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", {"lists": {}}),
        "org.matrix.msc3827.stable": ("POST", f"{CS}/publicRooms", {"filter": {"room_types": [None]}}),
        "im.nheko.summary": ("GET", f"/_matrix/client/unstable/im.nheko.summary/rooms/{q(room)}/summary", None),
        "uk.half-shot.msc2666.query_mutual_rooms": ("GET", f"/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms?user_id={q('@someone-else:' + alice.user_id.split(':', 1)[1])}", None),
        # Account moderation: served, and refused to alice, who is not a server admin.
        "uk.timedout.msc4323": ("GET", f"/_matrix/client/unstable/uk.timedout.msc4323/admin/lock/{q(alice.user_id)}", None, 403),
    }
    for name, enabled in features.items():
        if not enabled:
            continue
        assert name in probes, f"unstable feature {name} is advertised but this test does not check it"
        method, path, body, *expected = probes[name]
        r = await (alice.req(method, path, json=body) if body is not None else alice.req(method, path))
        assert r.status == (expected[0] if expected else 200), f"{name}: {method} {path} answered {r!r}"
