// TestRoomUpgrade (sytest tests/30rooms/60version_upgrade.pl; conformance/test_room_upgrade.py): alice
// upgrades the room of the scenarios before (a version 10 room with a thread, reactions and an edit) to the
// server's default version; both clients see the tombstone, bob follows it to the replacement room, and the
// SDK links the two rooms (findPredecessor, getRoomUpgradeHistory, getVisibleRooms).

import { EventType } from "matrix-js-sdk";
import { assert, waitFor, roomWhen, membership, rejection } from "../lib/harness.mjs";

export const name = "TestRoomUpgrade_member_follows_the_tombstone";
export const needs = ["TestThreadsEndpoint"];

export async function run(t, ctx) {
  const { world, a, b, alice, bob } = ctx;
  const oldId = ctx.roomId;
  assert.ok(oldId, "needs the room of TestThreadsEndpoint");

  let target;
  await t.check("room.getRecommendedVersion() and userMayUpgradeRoom() follow /capabilities and the power levels", async () => {
    const versions = (await a.getCapabilities())["m.room_versions"];
    assert.ok(versions?.default, "/capabilities m.room_versions.default");
    assert.equal(versions.available?.["10"], "stable", "version 10 is listed as stable");
    const room = a.getRoom(oldId);
    assert.equal(room.getVersion(), "10");
    // A stable version needs no upgrade (the SDK only recommends one for an unstable version).
    assert.deepEqual(await room.getRecommendedVersion(), { version: "10", needsUpgrade: false, urgent: false });
    assert.equal(room.userMayUpgradeRoom(alice.userId), true, "alice (100) may send the tombstone");
    assert.equal(b.getRoom(oldId).userMayUpgradeRoom(bob.userId), false, "bob (0) may not");
    target = versions.default;
  });
  target ??= "11";

  const { replacement_room: newId } = await a.upgradeRoom(oldId, target);
  assert.ok(newId && newId !== oldId, "upgradeRoom answers the replacement room");
  ctx.upgradedRoomId = newId;

  for (const c of [a, b]) {
    await t.check(`${c.label}: the old room's state has the tombstone pointing at the new room`, async () => {
      const ts = await waitFor(`${c.label}: tombstone`, () =>
        c.getRoom(oldId)?.currentState.getStateEvents(EventType.RoomTombstone, ""),
      );
      assert.equal(ts.getContent().replacement_room, newId);
      assert.equal(ts.getSender(), alice.userId);
      const inTimeline = c.getRoom(oldId).getLiveTimeline().getEvents().some((e) => e.getId() === ts.getId());
      assert.ok(inTimeline, "the tombstone is in the live timeline");
    });
  }

  await t.check("alice is joined to the new room, whose create event names the predecessor", async () => {
    const room = await roomWhen(a, newId, "alice in the new room", (r) => membership(r, alice.userId) === "join");
    assert.equal(room.getVersion(), target, "the new room's version");
    const pred = room.findPredecessor();
    assert.equal(pred?.roomId, oldId, "findPredecessor().roomId");
    const tombstone = a.getRoom(oldId).currentState.getStateEvents(EventType.RoomTombstone, "");
    if (pred.eventId !== undefined) assert.equal(pred.eventId, tombstone.getId(), "predecessor.event_id is the tombstone");
  });

  // Bob follows the tombstone as Element's "This room has been replaced" link does.
  const replacement = b.getRoom(oldId).currentState.getStateEvents(EventType.RoomTombstone, "").getContent().replacement_room;
  await b.joinRoom(replacement, { viaServers: [world.serverName] });

  for (const c of [a, b]) {
    await t.check(`${c.label}: both users are in the new room and the SDK links the rooms`, async () => {
      const room = await roomWhen(c, newId, "alice and bob in the new room", (r) =>
        membership(r, alice.userId) === "join" && membership(r, bob.userId) === "join",
      );
      assert.equal(room.findPredecessor()?.roomId, oldId, "findPredecessor()");
      const history = c.getRoomUpgradeHistory(newId, true).map((r) => r.roomId);
      assert.deepEqual(history, [oldId, newId], "getRoomUpgradeHistory(new, verifyLinks)");
      assert.deepEqual(c.getRoomUpgradeHistory(oldId, true).map((r) => r.roomId), [oldId, newId], "from the old room");
      const visible = c.getVisibleRooms().map((r) => r.roomId);
      assert.ok(visible.includes(newId) && !visible.includes(oldId), "getVisibleRooms() hides the replaced room");
    });
  }

  await t.check("the new room has the old room's name; bob may no longer post in the old room", async () => {
    assert.equal(b.getRoom(newId).name, "js threads");
    const err = await rejection("message in the old room", () => b.sendMessage(oldId, { msgtype: "m.text", body: "hi" }));
    assert.equal(err.errcode, "M_FORBIDDEN", `${err}`);
    // Element shows the refused message as failed; the user deletes it.
    for (const ev of b.getRoom(oldId).getLiveTimeline().getEvents()) if (ev.status === "not_sent") b.cancelPendingEvent(ev);
  });

  await t.check("a message in the new room reaches the other client", async () => {
    const { event_id } = await b.sendMessage(newId, { msgtype: "m.text", body: "here now" });
    await waitFor("alice sees it", () => a.getRoom(newId)?.findEventById(event_id));
  });
}
