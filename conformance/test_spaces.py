"""Spaces (GET /rooms/{roomId}/hierarchy) and restricted joins on one server.
Complement: TestClientSpacesSummary, TestClientSpacesSummaryJoinRules, TestRestrictedRoomsLocalJoin,
TestRestrictedRoomsSpacesSummaryLocal."""

from helpers import CS, assert_status, q

HIERARCHY = "/_matrix/client/v1/rooms/{}/hierarchy"


async def make_space(user, **body) -> str:
    return await user.create_room(creation_content={"type": "m.space"}, **body)


async def link(user, parent: str, child: str, **extra) -> None:
    await user.put_state(parent, "m.space.child", {"via": [user.server.server_name], **extra}, child)


async def rooms(user, root: str, **params) -> tuple[list[str], dict]:
    body = await user.ok("GET", HIERARCHY.format(q(root)), params=params)
    return [r["room_id"] for r in body["rooms"]], body


async def test_TestClientSpacesSummary(alice):
    """Complement: TestClientSpacesSummary
    Root -> (R1, SS1 -> (R3, SS2 -> (R4)), R2); alice in every room. The walk is depth first in the
    children's order; children_state lists the links; max_depth, suggested_only and limit/from
    pagination (max_depth and suggested_only may not change between pages); a link without via is
    ignored."""
    root = await make_space(alice, preset="public_chat", name="root")
    ss1 = await make_space(alice, preset="public_chat", name="ss1")
    ss2 = await make_space(alice, preset="public_chat", name="ss2")
    r1, r2, r3, r4 = [await alice.create_room(preset="public_chat", name=n) for n in ("r1", "r2", "r3", "r4")]
    await link(alice, root, r1, order="1", suggested=True)
    await link(alice, root, ss1, order="2")
    await link(alice, root, r2, order="3", suggested=True)
    await link(alice, ss1, r3, order="1")
    await link(alice, ss1, ss2, order="2")
    await link(alice, ss2, r4)
    dead = await alice.create_room(preset="public_chat", name="unlinked")
    await alice.put_state(root, "m.space.child", {}, dead)  # no via: not a child

    ids, body = await rooms(alice, root)
    assert ids == [root, r1, ss1, r3, ss2, r4, r2], body
    by_id = {r["room_id"]: r for r in body["rooms"]}
    assert {e["state_key"] for e in by_id[root]["children_state"]} == {r1, ss1, r2}, by_id[root]
    assert all("origin_server_ts" in e and e["type"] == "m.space.child" for e in by_id[root]["children_state"])
    assert by_id[r1]["children_state"] == [] and by_id[r1]["name"] == "r1", by_id[r1]
    assert by_id[root]["room_type"] == "m.space" and by_id[root]["num_joined_members"] == 1, by_id[root]

    ids, _ = await rooms(alice, root, max_depth="1")
    assert ids == [root, r1, ss1, r2]
    ids, _ = await rooms(alice, root, suggested_only="true")
    assert ids == [root, r1, r2]

    seen, params = [], {"limit": "2"}
    for _ in range(10):
        page_ids, page = await rooms(alice, root, **params)
        assert len(page_ids) <= 2
        seen += page_ids
        if "next_batch" not in page:
            break
        params = {"limit": "2", "from": page["next_batch"]}
    assert seen == [root, r1, ss1, r3, ss2, r4, r2], seen

    _, first = await rooms(alice, root, limit="2")
    r = await alice.req("GET", HIERARCHY.format(q(root)), params={"limit": "2", "from": first["next_batch"], "max_depth": "1"})
    assert_status(r, 400, "M_INVALID_PARAM")


async def test_TestClientSpacesSummaryJoinRules(alice, bob):
    """Complement: TestClientSpacesSummaryJoinRules
    Root -> (R1, SS1 -> (R2, R3)), everything invite-only except R2 (public); bob is invited to the root
    and to R1 only. bob sees the root, R1 and not SS1 (nor, through it, R2 or R3); the root of a walk he
    may not see is 403."""
    root = await make_space(alice, preset="private_chat")
    ss1 = await make_space(alice, preset="private_chat")
    r1 = await alice.create_room(preset="private_chat")
    r2 = await alice.create_room(preset="public_chat")
    r3 = await alice.create_room(preset="private_chat")
    await link(alice, root, r1, order="1")
    await link(alice, root, ss1, order="2")
    await link(alice, ss1, r2, order="1")
    await link(alice, ss1, r3, order="2")
    r = await bob.req("GET", HIERARCHY.format(q(root)))
    assert_status(r, 403, "M_FORBIDDEN")
    await alice.invite(root, bob.user_id)
    await alice.invite(r1, bob.user_id)
    ids, body = await rooms(bob, root)
    assert ids == [root, r1], body
    ids, _ = await rooms(alice, root)
    assert ids == [root, r1, ss1, r2, r3]


async def test_TestRestrictedRoomsSpacesSummaryLocal(alice, bob):
    """Complement: TestRestrictedRoomsSpacesSummaryLocal
    Complement: TestRestrictedRoomsLocalJoin
    A public space with a room restricted to the space's members: bob sees the room (with its
    allowed_room_ids) only once he is in the space, then joins it; the join names alice as authoriser."""
    space = await make_space(alice, preset="public_chat")
    rules = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}
    room = await alice.create_room(
        room_version="10", preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": rules}],
    )
    await link(alice, space, room)
    ids, _ = await rooms(bob, space)
    assert ids == [space]
    r = await bob.req("POST", f"{CS}/join/{q(room)}", json={})
    assert_status(r, 403, "M_FORBIDDEN")

    await bob.join(space)
    ids, body = await rooms(bob, space)
    assert ids == [space, room], body
    summary = body["rooms"][1]
    assert summary["join_rule"] == "restricted" and summary["allowed_room_ids"] == [space], summary
    await bob.join(room)
    member = await alice.state_content(room, "m.room.member", bob.user_id)
    assert member["membership"] == "join" and member["join_authorised_via_users_server"] == alice.user_id, member
