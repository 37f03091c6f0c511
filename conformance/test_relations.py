"""Relations and threads: GET /relations/{eventId}[/{relType}[/{eventType}]], GET /threads,
bundled aggregations, duplicate annotations.
Complement: TestRelations, TestRelationsPagination, TestRelationsPaginationSync
(room_relations_test.go), TestThreadsEndpoint (room_threads_test.go)."""

from helpers import CS, assert_status, q

V1 = "/_matrix/client/v1"


def thread_reply(root, body="reply", kind_body=None):
    return {"msgtype": "m.text", "body": body, "m.relates_to": {"rel_type": "m.thread", "event_id": root}}


async def relations(user, room, event, rest="", **params):
    return await user.ok("GET", f"{V1}/rooms/{q(room)}/relations/{q(event)}{rest}", params=params or None)


async def test_TestRelations(alice):
    """Complement: TestRelations: children of every type, filtered by relation type and event type."""
    room = await alice.create_room(preset="public_chat")
    root = await alice.send_text(room, "root")
    thread = await alice.send(room, "m.room.message", thread_reply(root))
    reaction = await alice.send(room, "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}})
    custom = await alice.send(room, "m.room.test", {"body": "x", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})

    body = await relations(alice, room, root)
    assert [e["event_id"] for e in body["chunk"]] == [custom, reaction, thread], body
    assert all(e["room_id"] == room for e in body["chunk"])
    body = await relations(alice, room, root, "/m.thread")
    assert [e["event_id"] for e in body["chunk"]] == [custom, thread]
    body = await relations(alice, room, root, "/m.thread/m.room.test")
    assert [e["event_id"] for e in body["chunk"]] == [custom]
    # An unknown event: 404.
    r = await alice.req("GET", f"{V1}/rooms/{q(room)}/relations/{q('$unknown:example.org')}")
    assert_status(r, 404, "M_NOT_FOUND")


async def test_TestRelationsPagination(alice):
    """Complement: TestRelationsPagination: next_batch pages backwards and forwards, and `to`."""
    room = await alice.create_room(preset="public_chat")
    root = await alice.send_text(room, "root")
    children = [await alice.send(room, "m.room.message", thread_reply(root, f"reply {i}")) for i in range(10)]

    page = await relations(alice, room, root, "/m.thread", limit="3")
    assert [e["event_id"] for e in page["chunk"]] == children[:-4:-1]
    page = await relations(alice, room, root, "/m.thread", limit="3", **{"from": page["next_batch"]})
    assert [e["event_id"] for e in page["chunk"]] == children[6:3:-1]

    # Forwards from the start.
    seen, token = [], None
    for _ in range(10):
        params = {"limit": "3", "dir": "f"}
        if token:
            params["from"] = token
        page = await relations(alice, room, root, "/m.thread", **params)
        seen += [e["event_id"] for e in page["chunk"]]
        token = page.get("next_batch")
        if not token:
            break
    assert seen == children

    # `to` a previous next_batch: the first page's events only.
    first = await relations(alice, room, root, "/m.thread", limit="3")
    bounded = await relations(alice, room, root, "/m.thread", limit="20", to=first["next_batch"])
    assert [e["event_id"] for e in bounded["chunk"]] == children[:-4:-1]


async def test_TestRelationsPaginationSync(alice):
    """Complement: TestRelationsPaginationSync: a /sync next_batch token as `from`."""
    room = await alice.create_room(preset="public_chat")
    root = await alice.send_text(room, "root")
    early = await alice.send(room, "m.room.message", thread_reply(root, "early"))
    token = (await alice.sync())["next_batch"]
    late = [await alice.send(room, "m.room.message", thread_reply(root, f"late {i}")) for i in range(3)]
    # Backwards from the sync token: what came before it.
    page = await relations(alice, room, root, "/m.thread", **{"from": token})
    assert [e["event_id"] for e in page["chunk"]] == [early]
    # Forwards from it: what came after.
    page = await relations(alice, room, root, "/m.thread", dir="f", **{"from": token})
    assert [e["event_id"] for e in page["chunk"]] == late


async def test_TestRelations_recurse(alice):
    """Complement: TestRelations (recurse, spec v1.10): relations of relations, recursion_depth."""
    room = await alice.create_room(preset="public_chat")
    root = await alice.send_text(room, "root")
    child = await alice.send(room, "m.room.message", thread_reply(root))
    grandchild = await alice.send(room, "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": child, "key": "x"}})
    body = await relations(alice, room, root, recurse="true")
    assert [e["event_id"] for e in body["chunk"]] == [grandchild, child]
    assert body["recursion_depth"] >= 3


async def test_TestThreadsEndpoint(alice, bob):
    """Complement: TestThreadsEndpoint: thread roots by latest activity, include=participated,
    the thread summary bundled with each root."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    first = await alice.send_text(room, "first thread")
    second = await bob.send_text(room, "second thread")
    await bob.send(room, "m.room.message", thread_reply(first, "in first"))
    latest = await bob.send(room, "m.room.message", thread_reply(second, "in second"))

    body = await alice.ok("GET", f"{V1}/rooms/{q(room)}/threads")
    assert [e["event_id"] for e in body["chunk"]] == [second, first], body
    summary = body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 1
    assert summary["latest_event"]["event_id"] == latest
    assert summary["current_user_participated"] is False
    # A newer reply in the first thread moves it up.
    await alice.send(room, "m.room.message", thread_reply(first, "again"))
    body = await alice.ok("GET", f"{V1}/rooms/{q(room)}/threads")
    assert [e["event_id"] for e in body["chunk"]] == [first, second]
    body = await alice.ok("GET", f"{V1}/rooms/{q(room)}/threads", params={"include": "participated"})
    assert [e["event_id"] for e in body["chunk"]] == [first]
    # Pagination.
    page = await alice.ok("GET", f"{V1}/rooms/{q(room)}/threads", params={"limit": "1"})
    assert [e["event_id"] for e in page["chunk"]] == [first]
    page = await alice.ok("GET", f"{V1}/rooms/{q(room)}/threads", params={"limit": "1", "from": page["next_batch"]})
    assert [e["event_id"] for e in page["chunk"]] == [second]
    assert "next_batch" not in page


async def test_TestRelations_bundled_edit_and_duplicate_annotation(alice):
    """sytest: Reactions: can annotate an event; duplicate annotations are refused
    (M_DUPLICATE_ANNOTATION); an edit is bundled in unsigned.m.relations (spec v1.7+)."""
    room = await alice.create_room(preset="public_chat")
    root = await alice.send_text(room, "helo")
    like = {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}}
    await alice.send(room, "m.reaction", like)
    r = await alice.req("PUT", f"{CS}/rooms/{q(room)}/send/m.reaction/dup1", json=like)
    assert_status(r, 400, "M_DUPLICATE_ANNOTATION")
    edit = await alice.send(room, "m.room.message", {
        "msgtype": "m.text", "body": "* hello", "m.new_content": {"msgtype": "m.text", "body": "hello"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root},
    })
    event = await alice.ok("GET", f"{CS}/rooms/{q(room)}/event/{q(root)}")
    assert event["unsigned"]["m.relations"]["m.replace"]["event_id"] == edit
    assert event["content"]["body"] == "helo"
