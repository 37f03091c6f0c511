"""Incoming webhooks and federation: a post to a Parvis webhook in a room shared with a Synapse user
reaches that user as an ordinary message from the webhook's account, with its formatting.

The Parvis server of the pair hosts the room and the webhook (both pair orders); room version 12.
"""

from __future__ import annotations

import pytest
from fedhelpers import create_and_join, since_now, wait_timeline
from helpers import q


async def test_webhook_post_reaches_a_synapse_user(pair, make_user):
    """A webhook created with the REST API posts Slack mrkdwn; the Synapse member's /sync shows the
    message, sent by the webhook's user, as m.notice with the rendered HTML."""
    if {pair.a.kind, pair.b.kind} != {"parvis", "synapse"}:
        pytest.skip("needs a Parvis and a Synapse server")
    parvis, synapse = (pair.a, pair.b) if pair.a.kind == "parvis" else (pair.b, pair.a)
    alice = await make_user(parvis)
    bob = await make_user(synapse)
    room_id = await create_and_join(alice, bob, "12")

    hook = await alice.ok("POST", f"/_parvis/client/v1/rooms/{q(room_id)}/webhooks", json={"name": "CI"})
    since = await since_now(bob)
    r = await alice.req(
        "POST",
        hook["path"],
        json={"text": "*Build* <https://ci.example/builds/1|#1> failed on `main`"},
    )
    assert r.status == 200, r
    event_id = r.body["event_id"]

    def from_hook(ev: dict) -> bool:
        return ev.get("event_id") == event_id

    ev = await wait_timeline(bob, room_id, from_hook, since, "the webhook's post on Synapse")
    assert ev["sender"] == hook["user_id"], ev
    content = ev["content"]
    assert content["msgtype"] == "m.notice", content
    assert content["format"] == "org.matrix.custom.html", content
    html = content["formatted_body"]
    for part in ("<b>Build</b>", '<a href="https://ci.example/builds/1">#1</a>', "<code>main</code>"):
        assert part in html, (part, html)
