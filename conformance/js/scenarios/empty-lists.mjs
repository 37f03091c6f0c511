// Responses whose empty lists client code reads without a check (issue 9, "Two gaps"): /search without a
// match (TestSearch, Complement tests/csapi/apidoc_search_test.go) and the push rules
// (TestPushRuleCacheHealth, Complement tests/csapi/push_test.go), through the SDK's own calls.

import { assert } from "../lib/harness.mjs";

export const name = "TestSearch_and_push_rules_empty_lists";
export const needs = ["TestThreadsEndpoint"];

export async function run(t, ctx) {
  const { a } = ctx;

  await t.check("client.search() with no match answers results: [] (and count 0)", async () => {
    const res = await a.search({ body: { search_categories: { room_events: { search_term: "zzqqxxnomatch" } } } });
    const re = res.search_categories?.room_events;
    assert.ok(re, "search_categories.room_events");
    assert.deepEqual(re.results, [], "room_events.results");
    if (re.count !== undefined) assert.equal(re.count, 0, "room_events.count");
  });

  await t.check("client.searchRoomEvents() with no match: the SDK's ISearchResults has results []", async () => {
    const res = await a.searchRoomEvents({ term: "zzqqxxnomatch" });
    assert.deepEqual(res.results, []);
    assert.equal(res.count ?? 0, 0);
    assert.equal(res.next_batch, undefined, "no next_batch without results");
  });

  await t.check("client.getPushRules(): global has content, room and sender arrays (and override, underride)", async () => {
    const rules = await a.getPushRules();
    for (const kind of ["override", "content", "room", "sender", "underride"]) {
      assert.ok(Array.isArray(rules.global?.[kind]), `global.${kind} is an array: ${JSON.stringify(rules.global?.[kind])}`);
    }
    assert.ok(rules.global.override.some((r) => r.rule_id === ".m.rule.master"), "the master rule");
  });

  await t.check("client.getPushRules() after a room rule: room lists it, sender is still []", async () => {
    const roomId = ctx.roomId;
    assert.ok(roomId, "needs the room of TestThreadsEndpoint");
    await a.addPushRule("global", "room", roomId, { actions: [] });
    try {
      const rules = await a.getPushRules();
      assert.deepEqual(rules.global.room.map((r) => r.rule_id), [roomId]);
      assert.deepEqual(rules.global.sender, []);
    } finally {
      await a.deletePushRule("global", "room", roomId);
    }
  });
}
