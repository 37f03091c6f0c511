"""Push evaluation of events received over federation: a remote user's mention counts as a notification
and a highlight for the local user, and the local user's read receipt resets the counts.

A (pair.a) creates the room, B (pair.b) is the remote server; both directions, room version 12.
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md).
"""

from __future__ import annotations

from fedhelpers import FED_WAIT_S, create_and_join, poll, tag
from helpers import CS, q


def counts(body: dict, room_id: str):
    room = body.get("rooms", {}).get("join", {}).get(room_id)
    if room is None:
        return None
    unread = room.get("unread_notifications", {})
    return unread.get("notification_count", 0), unread.get("highlight_count", 0)


async def test_remote_mention_notifies(pair, make_user):
    """sytest: Notifications can be viewed with GET /notifications (for an event received over federation)
    A mention sent on one server is a highlighted notification in the other server's /sync and
    /notifications; the mentioned user's receipt resets the counts."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    room_id = await create_and_join(alice, bob, "12")

    for author, reader in ((alice, bob), (bob, alice)):
        body = tag(f"hello {reader.user_id}")
        event_id = await author.send(room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": [reader.user_id]}})

        async def highlighted():
            c = counts(await reader.sync(), room_id)
            return c is not None and c[0] >= 1 and c[1] >= 1 and c

        await poll(highlighted, FED_WAIT_S, f"the mention counted for {reader.user_id}")
        listed = await reader.ok("GET", f"{CS}/notifications", params={"only": "highlight"})
        assert event_id in [n["event"]["event_id"] for n in listed["notifications"]], listed

        await reader.ok("POST", f"{CS}/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", json={})

        async def reset():
            c = counts(await reader.sync(), room_id)
            return c == (0, 0)

        await poll(reset, FED_WAIT_S, f"{reader.user_id}'s counts reset by the receipt")
