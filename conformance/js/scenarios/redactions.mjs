// TestRedact (Complement tests/csapi/redact_test.go) with relations: bob redacts his reaction and the
// Relations model drops it; alice redacts her thread reply and the thread's length drops, live and on a
// client started afresh (bundled m.thread count).

import { assert, waitFor } from "../lib/harness.mjs";
import { annotations } from "./reactions.mjs";
import { checkThreadModel, threadState } from "./threads.mjs";

export const name = "TestRedact_relations";
export const needs = ["TestThreadsEndpoint", "TestRelations_annotations"];

export async function run(t, ctx) {
  const { world, a, b, alice } = ctx;
  const roomId = ctx.roomId;
  assert.ok(roomId && ctx.reaction && ctx.thread, "needs the room, thread and reaction of the scenarios before");
  const { msgId, reactionId } = ctx.reaction;
  const { rootId, replies } = ctx.thread;
  const [aliceReply, bobReply] = replies;

  await b.redactEvent(roomId, reactionId);
  for (const c of [a, b]) {
    await t.check(`${c.label}: the redacted reaction leaves the Relations model (0 annotations)`, async () => {
      await waitFor(`${c.label}: reaction redacted`, () => c.getRoom(roomId)?.findEventById(reactionId)?.isRedacted());
      const { rel, byKey } = annotations(c, roomId, msgId);
      assert.deepEqual(byKey, [], "no annotation key left");
      assert.deepEqual(rel?.getRelations() ?? [], [], "no relation event left");
    });
  }

  // Each client's length before the redaction (2, unless a known thread race of TestThreadsEndpoint made it
  // wrong there: that check reports it; this one checks that the redaction takes one off).
  const before = new Map([a, b].map((c) => [c, c.getRoom(roomId)?.getThread(rootId)?.length]));
  await a.redactEvent(roomId, rootId, aliceReply);
  for (const c of [a, b]) {
    await t.check(`${c.label}: the redaction of a reply takes one off thread.length`, async () => {
      const want = before.get(c) - 1;
      const thread = await waitFor(() => `${c.label}: length ${want} (${threadState(c, roomId, rootId)})`, () => {
        const th = c.getRoom(roomId)?.getThread(rootId);
        return th?.length === want ? th : null;
      });
      assert.equal(thread.replyToEvent?.getId(), bobReply, "the last reply is still bob's");
      await waitFor(`${c.label}: the reply redacted`, () => c.getRoom(roomId).findEventById(aliceReply)?.isRedacted());
    });
  }

  const fresh = await world.fresh(alice, "alice(fresh)");
  try {
    await t.check(`${fresh.label}: bundled m.thread count is 1 and the reaction is gone`, async () => {
      const root = await waitFor(`${fresh.label}: root`, () => fresh.getRoom(roomId)?.findEventById(rootId));
      const agg = root.getServerAggregatedRelation("m.thread");
      assert.equal(agg?.count, 1, "m.thread count after the redaction");
      assert.equal(agg?.latest_event?.event_id, bobReply, "m.thread latest_event");
      await waitFor(`${fresh.label}: thread length 1`, () => fresh.getRoom(roomId).getThread(rootId)?.length === 1);
      const msg = fresh.getRoom(roomId).findEventById(msgId);
      assert.equal(msg?.getServerAggregatedRelation("m.annotation"), undefined, "no bundled annotation");
      assert.deepEqual(annotations(fresh, roomId, msgId).byKey, [], "no annotation in the model");
    });
    await checkThreadModel(t, fresh, roomId, rootId, [bobReply], "initial sync after the redaction");
  } finally {
    world.stop(fresh);
  }
}
