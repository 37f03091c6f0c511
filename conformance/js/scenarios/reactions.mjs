// TestRelations (Complement tests/csapi/room_relations_test.go), annotations: a 👍 reaction aggregated in
// the SDK's Relations model on both clients; a second identical reaction is refused by the server
// (400 M_DUPLICATE_ANNOTATION, as Synapse) and the SDK surfaces the error while its model still shows one.

import { EventStatus, RoomEvent } from "matrix-js-sdk";
import { assert, waitFor, rejection } from "../lib/harness.mjs";

export const name = "TestRelations_annotations";
export const needs = ["TestThreadsEndpoint"];

export const THUMBS = "👍";

/** The m.reaction annotations of `eventId` in `client`'s room model: [[key, [senders]]] and the raw Relations. */
export function annotations(client, roomId, eventId) {
  const rel = client.getRoom(roomId)?.relations.getChildEventsForEvent(eventId, "m.annotation", "m.reaction");
  const byKey = (rel?.getSortedAnnotationsByKey() ?? [])
    .filter(([, evs]) => evs.size > 0)
    .map(([key, evs]) => [key, [...evs].map((e) => e.getSender())]);
  return { rel, byKey };
}

export const reaction = (eventId, key) => ({ "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key } });

export async function run(t, ctx) {
  const { a, b, bob } = ctx;
  const roomId = ctx.roomId;
  assert.ok(roomId, "needs the room of TestThreadsEndpoint");

  const { event_id: msgId } = await a.sendMessage(roomId, { msgtype: "m.text", body: "react to me" });
  await waitFor("bob sees the message", () => b.getRoom(roomId)?.findEventById(msgId));
  const { event_id: reactionId } = await b.sendEvent(roomId, "m.reaction", reaction(msgId, THUMBS));
  ctx.reaction = { msgId, reactionId };

  for (const c of [a, b]) {
    await t.check(`${c.label}: room.relations shows 1 annotation ${THUMBS} by bob`, async () => {
      const { rel, byKey } = await waitFor(`${c.label}: the reaction aggregated`, () => {
        const x = annotations(c, roomId, msgId);
        return x.byKey.length ? x : null;
      });
      assert.deepEqual(byKey, [[THUMBS, [bob.userId]]]);
      assert.deepEqual(rel.getRelations().map((e) => e.getId()), [reactionId]);
      assert.equal(rel.getAnnotationsBySender()[bob.userId]?.size, 1, "getAnnotationsBySender()[bob]");
    });
  }

  await t.check("a second identical reaction is refused: the SDK rejects with M_DUPLICATE_ANNOTATION (400)", async () => {
    let pending;
    const onLocal = (ev) => {
      if (ev.getType() === "m.reaction") pending = ev;
    };
    const room = b.getRoom(roomId);
    room.on(RoomEvent.LocalEchoUpdated, onLocal);
    try {
      const err = await rejection("duplicate reaction", () => b.sendEvent(roomId, "m.reaction", reaction(msgId, THUMBS)));
      assert.equal(err.errcode, "M_DUPLICATE_ANNOTATION", `errcode of ${err}`);
      assert.equal(err.httpStatus, 400, "HTTP status");
    } finally {
      room.off(RoomEvent.LocalEchoUpdated, onLocal);
    }
    // The failed local echo stays as NOT_SENT (Element offers "retry / delete"); the user deletes it.
    assert.ok(pending, "the SDK made a local echo of the reaction");
    assert.equal(pending.status, EventStatus.NOT_SENT, "the failed reaction's status");
    b.cancelPendingEvent(pending);
  });

  for (const c of [a, b]) {
    await t.check(`${c.label}: after the refused duplicate the model still shows 1 annotation`, async () => {
      // Give a wrongly accepted duplicate the time to come down /sync.
      const { event_id: marker } = await a.sendMessage(roomId, { msgtype: "m.text", body: "after the duplicate" });
      await waitFor(`${c.label}: marker`, () => c.getRoom(roomId)?.findEventById(marker));
      const { rel, byKey } = annotations(c, roomId, msgId);
      assert.deepEqual(byKey, [[THUMBS, [bob.userId]]]);
      assert.deepEqual(rel.getRelations().map((e) => e.getId()), [reactionId]);
    });
  }
}
