// TestThreadsEndpoint (Complement tests/csapi/room_threads_test.go), seen through matrix-js-sdk's thread
// model: a thread with replies from two users, live on both clients, in the thread list (/threads) and on a
// client started afresh (bundled m.thread aggregation of the initial sync).

import { Direction, ThreadFilterType, THREAD_RELATION_TYPE } from "matrix-js-sdk";
import { assert, waitFor, roomWhen, membership, liveIds } from "../lib/harness.mjs";

export const name = "TestThreadsEndpoint";
export const needs = [];

const text = (body) => ({ msgtype: "m.text", body });
const threadReply = (rootId, body) => ({
  msgtype: "m.text",
  body,
  "m.relates_to": { rel_type: "m.thread", event_id: rootId, is_falling_back: true, "m.in_reply_to": { event_id: rootId } },
});

/** What `client`'s thread model shows, for failure messages. */
export function threadState(client, roomId, rootId) {
  const th = client.getRoom(roomId)?.getThread(rootId);
  if (!th) return "no thread";
  const ids = th.timeline.map((e) => `${e.getId()}${e.status ? `(${e.status})` : ""}`);
  return `length ${th.length}, replyToEvent ${th.replyToEvent?.getId()}, timeline [${ids.join(", ")}]`;
}

/** Checks the thread model of `client` for the thread `rootId` with the replies `replyIds` (in order). */
export async function checkThreadModel(t, client, roomId, rootId, replyIds, what) {
  const label = client.label;
  await t.check(`${label} ${what}: room.getThread(root) has length ${replyIds.length} and the last reply`, async () => {
    const thread = await waitFor(() => `${label}: thread with ${replyIds.length} replies (${threadState(client, roomId, rootId)})`, () => {
      const th = client.getRoom(roomId)?.getThread(rootId);
      return th && th.length === replyIds.length && th.replyToEvent?.getId() === replyIds.at(-1) ? th : null;
    });
    assert.equal(thread.id, rootId);
    assert.equal(thread.rootEvent?.getId(), rootId, "thread.rootEvent is the root");
    assert.equal(thread.roomId, roomId);
  });
  await t.check(`${label} ${what}: room.getThreads() lists it and the root event's getThread() is it`, async () => {
    const room = client.getRoom(roomId);
    const thread = room.getThread(rootId);
    assert.ok(thread, "room.getThread(root)");
    assert.ok(room.getThreads().includes(thread), "room.getThreads() includes the thread");
    const root = room.findEventById(rootId);
    assert.ok(root, "the root event is known to the room");
    assert.equal(root.getThread(), thread, "rootEvent.getThread()");
    assert.equal(root.isThreadRoot, true, "rootEvent.isThreadRoot");
  });
  await t.check(`${label} ${what}: thread.timeline holds the replies, in order`, async () => {
    const ids = await waitFor(`${label}: replies in thread.timeline`, () => {
      const th = client.getRoom(roomId)?.getThread(rootId);
      if (!th?.initialEventsFetched) return null;
      const got = th.timeline.map((e) => e.getId()).filter((id) => id !== rootId);
      return replyIds.every((id) => got.includes(id)) ? got : null;
    });
    assert.deepEqual(ids, replyIds, "thread.timeline (without the root) is the replies in order");
    const thread = client.getRoom(roomId).getThread(rootId);
    for (const id of replyIds) {
      const ev = thread.findEventById(id);
      assert.equal(ev.threadRootId, rootId, `reply ${id}: threadRootId`);
      assert.equal(ev.getThread(), thread, `reply ${id}: getThread()`);
      assert.equal(ev.isRelation(THREAD_RELATION_TYPE.name), true, `reply ${id}: an m.thread relation`);
    }
  });
  await t.check(`${label} ${what}: the main live timeline has the root but not the replies`, async () => {
    const ids = liveIds(client.getRoom(roomId));
    assert.ok(ids.includes(rootId), "root in the main timeline");
    for (const id of replyIds) assert.ok(!ids.includes(id), `thread reply ${id} must not be in the main timeline`);
  });
}

export async function run(t, ctx) {
  const { world, a, b, alice, bob } = ctx;

  // Setup: alice's public room, bob joins; both clients see both members.
  const { room_id: roomId } = await a.createRoom({ preset: "public_chat", name: "js threads", room_version: "10" });
  await b.joinRoom(roomId, { viaServers: [world.serverName] });
  for (const c of [a, b]) {
    await roomWhen(c, roomId, "alice and bob joined", (r) => membership(r, alice.userId) === "join" && membership(r, bob.userId) === "join");
  }
  ctx.roomId = roomId;

  const { event_id: rootId } = await a.sendMessage(roomId, text("thread root"));
  await roomWhen(b, roomId, "the root", (r) => r.findEventById(rootId));
  // The first reply creates the thread in alice's client.
  let r1;
  await t.check("alice starts the thread: the SDK's send of the first reply resolves", async () => {
    ({ event_id: r1 } = await a.sendMessage(roomId, rootId, threadReply(rootId, "alice in the thread")));
  });
  if (!r1) {
    // The send failed in the SDK although the server took the event: carry on with the event the server has.
    const ev = await waitFor("bob sees alice's reply", () =>
      b.getRoom(roomId).getThread(rootId)?.timeline.find((e) => e.getContent().body === "alice in the thread"),
    );
    r1 = ev.getId();
  }
  // Bob answers once his client shows the thread (its first page fetched), as a person reading it would: an
  // answer sent within milliseconds, while the SDK still fetches the thread, races inside the SDK.
  await waitFor("bob sees alice's reply", () => {
    const th = b.getRoom(roomId).getThread(rootId);
    return th?.initialEventsFetched && th.findEventById(r1);
  });
  const { event_id: r2 } = await b.sendMessage(roomId, rootId, threadReply(rootId, "bob in the thread"));
  ctx.thread = { rootId, replies: [r1, r2] };

  for (const c of [a, b]) await checkThreadModel(t, c, roomId, rootId, [r1, r2], "live");

  await t.check("thread list (/threads) through createThreadListMessagesRequest: all and participated", async () => {
    const all = await a.createThreadListMessagesRequest(roomId, null, 20, Direction.Backward, ThreadFilterType.All);
    assert.deepEqual(all.chunk.map((e) => e.event_id), [rootId], "include=all lists the root");
    const agg = all.chunk[0].unsigned?.["m.relations"]?.["m.thread"];
    assert.equal(agg?.count, 2, "bundled m.thread count");
    assert.equal(agg?.latest_event?.event_id, r2, "bundled m.thread latest_event");
    assert.equal(agg?.current_user_participated, true, "alice participated");
    const mine = await b.createThreadListMessagesRequest(roomId, null, 20, Direction.Backward, ThreadFilterType.My);
    assert.deepEqual(mine.chunk.map((e) => e.event_id), [rootId], "include=participated lists it for bob");
  });

  await t.check("thread list through room.fetchRoomThreads(): the threads timeline sets list the root", async () => {
    for (const c of [a, b]) {
      const room = c.getRoom(roomId);
      const sets = await room.createThreadsTimelineSets();
      assert.ok(sets, `${c.label}: createThreadsTimelineSets()`);
      await room.fetchRoomThreads();
      const [allSet, mySet] = room.threadsTimelineSets;
      const ids = (set) => set.getLiveTimeline().getEvents().map((e) => e.getId());
      assert.ok(ids(allSet).includes(rootId), `${c.label}: the "all threads" timeline set lists the root`);
      assert.ok(ids(mySet).includes(rootId), `${c.label}: the "my threads" timeline set lists the root`);
    }
  });

  // A third user who never saw the thread live, and a fresh device of bob: initial sync only.
  const charlie = await world.register("charlie");
  const c = await world.start(charlie, "charlie(fresh)");
  await c.joinRoom(roomId, { viaServers: [world.serverName] });
  const bFresh = await world.fresh(bob, "bob(fresh)");
  try {
    await roomWhen(c, roomId, "charlie joined", (r) => membership(r, charlie.userId) === "join");
    for (const fc of [bFresh, c]) {
      await t.check(`${fc.label}: the root event carries the bundled m.thread aggregation`, async () => {
        const root = await waitFor(`${fc.label}: root`, () => fc.getRoom(roomId)?.findEventById(rootId));
        const agg = root.getServerAggregatedRelation(THREAD_RELATION_TYPE.name);
        assert.equal(agg?.count, 2, "m.thread count");
        assert.equal(agg?.latest_event?.event_id, r2, "m.thread latest_event");
        assert.equal(agg?.current_user_participated, fc === bFresh, "current_user_participated");
      });
      await checkThreadModel(t, fc, roomId, rootId, [r1, r2], "initial sync");
      await t.check(`${fc.label}: thread.hasCurrentUserParticipated`, async () => {
        assert.equal(fc.getRoom(roomId).getThread(rootId).hasCurrentUserParticipated, fc === bFresh);
      });
    }
  } finally {
    world.stop(bFresh);
    world.stop(c);
  }
}
