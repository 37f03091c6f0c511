// The matrix-js-sdk suite: runs the scenarios in order against a live parvis.
//   PARVIS_URL           the server's base URL (run.sh starts the server and sets it)
//   PARVIS_SERVER_NAME   its server name
// Arguments: names of scenarios to run (default: all). The exit code is 0 only when no check failed.

import { out, installProcessHandlers, World, Results, runScenario, takeEscapes } from "./lib/harness.mjs";
import * as threads from "./scenarios/threads.mjs";
import * as reactions from "./scenarios/reactions.mjs";
import * as edits from "./scenarios/edits.mjs";
import * as redactions from "./scenarios/redactions.mjs";
import * as upgrade from "./scenarios/upgrade.mjs";
import * as emptyLists from "./scenarios/empty-lists.mjs";

// The order is a story: the later scenarios use the room, thread and reaction of the earlier ones.
const SCENARIOS = [threads, reactions, edits, redactions, upgrade, emptyLists];
const SCENARIO_TIMEOUT_MS = 90_000;

installProcessHandlers();

const baseUrl = process.env.PARVIS_URL;
const serverName = process.env.PARVIS_SERVER_NAME;
if (!baseUrl || !serverName) {
  out("PARVIS_URL and PARVIS_SERVER_NAME must be set (conformance/js/run.sh sets them)");
  process.exit(2);
}

const wanted = process.argv.slice(2);
// The scenarios asked for, and those they build on.
const chosen = new Set(wanted.length ? SCENARIOS.filter((s) => wanted.some((w) => s.name.includes(w))) : SCENARIOS);
for (const s of [...chosen].reverse()) for (const n of s.needs) chosen.add(SCENARIOS.find((x) => x.name === n));
if (!chosen.size) {
  out(`no scenario name contains ${wanted.join(" or ")}; the scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
const results = new Results();
const world = new World(baseUrl, serverName);
const started = Date.now();
const ctx = { world };

try {
  await runScenario(
    results,
    "setup",
    async (t) => {
      await t.check("register alice and bob (m.login.dummy UIA) and start their clients", async () => {
        ctx.alice = await world.register("alice");
        ctx.bob = await world.register("bob");
        ctx.a = await world.start(ctx.alice, "alice");
        ctx.b = await world.start(ctx.bob, "bob");
      });
    },
    SCENARIO_TIMEOUT_MS,
  );
  if (ctx.a && ctx.b) {
    for (const s of SCENARIOS) {
      if (!chosen.has(s)) continue;
      await runScenario(results, s.name, (t) => s.run(t, ctx), SCENARIO_TIMEOUT_MS);
    }
  }
} finally {
  world.stopAll();
}
const late = takeEscapes();
if (late.length) results.record("teardown / no error escaped the SDK", new Error(late.join("\n")));

const secs = ((Date.now() - started) / 1000).toFixed(1);
if (results.expected.length) {
  out(`\nexpected failures (known server bugs and races, see lib/harness.mjs KNOWN_SERVER_BUGS, KNOWN_RACES):`);
  for (const x of results.expected) out(`  - ${x}`);
}
if (results.failures.length) {
  out(`\nfailed checks:`);
  for (const f of results.failures) out(`  - ${f.split("\n")[0]}`);
}
out(`\nmatrix-js-sdk suite finished in ${secs} s`);
const xfail = results.xfailed ? `, ${results.xfailed} skipped` : "";
out(`js-sdk: ${results.passed} passed, ${results.failed} failed${xfail}`);
process.exit(results.failed ? 1 : 0);
