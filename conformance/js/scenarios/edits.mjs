// TestRelations (Complement tests/csapi/room_relations_test.go), edits: alice fixes a typo with an m.replace
// event; the SDK's event shows the new content live (replacingEvent, getContent) and on a client started
// afresh, where the edit also comes bundled in unsigned.m.relations (m.replace, the whole edit event).

import { assert, waitFor } from "../lib/harness.mjs";

export const name = "TestRelations_edit";
export const needs = ["TestThreadsEndpoint"];

export async function run(t, ctx) {
  const { world, a, b, bob } = ctx;
  const roomId = ctx.roomId;
  assert.ok(roomId, "needs the room of TestThreadsEndpoint");

  const { event_id: msgId } = await a.sendMessage(roomId, { msgtype: "m.text", body: "teh typo" });
  await waitFor("bob sees the message", () => b.getRoom(roomId)?.findEventById(msgId));
  const { event_id: editId } = await a.sendEvent(roomId, "m.room.message", {
    msgtype: "m.text",
    body: "* the typo",
    "m.new_content": { msgtype: "m.text", body: "the typo" },
    "m.relates_to": { rel_type: "m.replace", event_id: msgId },
  });
  ctx.edit = { msgId, editId };

  for (const c of [a, b]) {
    await t.check(`${c.label}: event.replacingEvent() is the edit and getContent() the new content`, async () => {
      const ev = await waitFor(`${c.label}: the edit applied`, () => {
        const e = c.getRoom(roomId)?.findEventById(msgId);
        return e?.replacingEvent()?.getId() === editId ? e : null;
      });
      assert.equal(ev.getContent().body, "the typo", "getContent().body");
      assert.equal(ev.getOriginalContent().body, "teh typo", "getOriginalContent().body");
      assert.equal(ev.replacingEventId(), editId, "replacingEventId()");
      const rel = c.getRoom(roomId).relations.getChildEventsForEvent(msgId, "m.replace", "m.room.message");
      assert.deepEqual(rel?.getRelations().map((e) => e.getId()), [editId], "room.relations m.replace");
    });
  }

  const fresh = await world.fresh(bob, "bob(fresh)");
  try {
    await t.check(`${fresh.label}: initial sync: the bundled m.replace is the edit, getContent() the new content`, async () => {
      const ev = await waitFor(`${fresh.label}: the message`, () => fresh.getRoom(roomId)?.findEventById(msgId));
      const bundled = ev.getServerAggregatedRelation("m.replace");
      assert.equal(bundled?.event_id, editId, "unsigned.m.relations.m.replace.event_id");
      assert.equal(bundled?.content?.["m.new_content"]?.body, "the typo", "the bundled edit carries its content");
      assert.equal(ev.replacingEventId(), editId, "replacingEventId()");
      await waitFor(`${fresh.label}: replacingEvent()`, () => ev.replacingEvent()?.getId() === editId);
      assert.equal(ev.getContent().body, "the typo", "getContent().body");
    });
    await t.check(`${fresh.label}: the event fetched alone (GET /event, as for a permalink) carries the edit`, async () => {
      const raw = await fresh.fetchRoomEvent(roomId, msgId);
      const ev = fresh.getEventMapper()(raw);
      assert.equal(ev.getServerAggregatedRelation("m.replace")?.event_id, editId);
      assert.equal(ev.replacingEventId(), editId);
    });
  } finally {
    world.stop(fresh);
  }
}
