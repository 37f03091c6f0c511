"""Reporting content (spec "Reporting content": POST /rooms/{roomId}/report/{eventId}, /rooms/{roomId}/report,
/users/{userId}/report) and the admin API's event reports (spec/admin-api.md), raw HTTP against the binary.
Complement has no report tests (TestReport* does not exist upstream); names follow the spec."""

import subprocess

from helpers import CS, assert_status, q

ADMIN = "/_synapse/admin/v1"


def make_admin(srv, user_id):
    return subprocess.run([srv.binary, "make-admin", user_id], env=srv.env(), capture_output=True, text=True, timeout=60)


async def test_TestReport_event_room_and_user_reports(make_user, own_server):
    """Spec: reportEvent (joined member: 200; not joined or unknown event: 404 M_NOT_FOUND), reportRoom,
    reportUser; Synapse admin API: GET/DELETE /_synapse/admin/v1/event_reports[/{id}]."""
    root = await make_user(server=own_server, password="root-pass")
    alice = await make_user(server=own_server)
    bob = await make_user(server=own_server)
    eve = await make_user(server=own_server)
    room = await alice.create_room(preset="public_chat", name="Reported room")
    await bob.join(room)
    eid = await alice.send_text(room, "offensive words")

    r = await bob.req("POST", f"{CS}/rooms/{q(room)}/report/{q(eid)}", json={"reason": "offensive", "score": -50})
    assert_status(r, 200)
    assert r.body == {}
    assert_status(await eve.req("POST", f"{CS}/rooms/{q(room)}/report/{q(eid)}", json={"reason": "x"}), 404, "M_NOT_FOUND")
    missing = f"$missing:{own_server.server_name}"
    assert_status(await bob.req("POST", f"{CS}/rooms/{q(room)}/report/{q(missing)}", json={"reason": "x"}), 404, "M_NOT_FOUND")
    assert_status(await eve.req("POST", f"{CS}/rooms/{q(room)}/report", json={"reason": "spam room"}), 200)
    unknown_room = f"!unknown:{own_server.server_name}"
    assert_status(await eve.req("POST", f"{CS}/rooms/{q(unknown_room)}/report", json={"reason": "x"}), 404, "M_NOT_FOUND")
    assert_status(await eve.req("POST", f"{CS}/users/{q(alice.user_id)}/report", json={"reason": "spammer"}), 200)
    ghost = f"@ghost:{own_server.server_name}"
    assert_status(await eve.req("POST", f"{CS}/users/{q(ghost)}/report", json={"reason": "x"}), 404, "M_NOT_FOUND")

    # The admin reads the event report after a restart (make-admin needs the server stopped).
    own_server.stop()
    done = make_admin(own_server, root.user_id)
    assert done.returncode == 0, done.stderr
    own_server.start()
    assert_status(await bob.req("GET", f"{ADMIN}/event_reports"), 403, "M_FORBIDDEN")
    listing = await root.ok("GET", f"{ADMIN}/event_reports")
    assert listing["total"] == 1, listing
    report = listing["event_reports"][0]
    assert (report["event_id"], report["room_id"], report["user_id"], report["sender"]) == (eid, room, bob.user_id, alice.user_id)
    assert (report["reason"], report["score"], report["name"]) == ("offensive", -50, "Reported room")
    details = await root.ok("GET", f"{ADMIN}/event_reports/{report['id']}")
    assert details["event_json"]["content"]["body"] == "offensive words"
    filtered = await root.ok("GET", f"{ADMIN}/event_reports", params={"user_id": eve.user_id})
    assert filtered == {"event_reports": [], "total": 0}
    assert (await root.ok("DELETE", f"{ADMIN}/event_reports/{report['id']}")) == {}
    assert_status(await root.req("GET", f"{ADMIN}/event_reports/{report['id']}"), 404, "M_NOT_FOUND")
    assert (await root.ok("GET", f"{ADMIN}/event_reports"))["total"] == 0
