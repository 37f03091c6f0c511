// Named checks: `await t.check("name", async () => {...})` passes when the function returns and fails when
// it throws, with the error (for HTTP failures: the request and the server's answer) printed under it.
// Later checks go on after a failure; one that needs the result of a failed one fails with that reason.
// The last line is "appservice-js: N passed, N failed[, N skipped]".
//
// KNOWN_SERVER_BUGS maps "section / check" to a reason: such a check is run, and its failure reported as
// "expected failure: <reason>" (counted as skipped) without failing the suite; if it passes, the suite
// fails ("unexpected pass") so that the mark is removed once the server is fixed.

import { format } from "node:util";

export const KNOWN_SERVER_BUGS = {};

export const out = (s) => process.stdout.write(`${s}\n`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const WAIT_MS = Number(process.env.AS_WAIT_MS || 10000);

/** Polls `fn` until it returns a truthy value (returned); fails after WAIT_MS with `what` (or what() says). */
export async function waitFor(what, fn, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastErr = undefined;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const why = lastErr ? `: ${lastErr.message ?? lastErr}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}${why}`);
    }
    await sleep(50);
  }
}

/** The error `fn` rejects with; fails when it resolves. */
export async function rejection(what, fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what}: expected a rejection, it resolved`);
}

/** The value of a step an earlier check produced, or a failure that names that check. */
export function needs(value, what) {
  if (value === undefined || value === null) throw new Error(`not run: needs ${what} (an earlier check failed)`);
  return value;
}

const fmtErr = (e) => (e && e.stack ? e.stack : format(e));
const indent = (s) =>
  String(s)
    .split("\n")
    .map((l) => `        ${l}`)
    .join("\n");

export class Checks {
  constructor() {
    this.passed = 0;
    this.failures = [];
    this.expected = [];
    this.section = "";
  }

  begin(section) {
    this.section = section;
    out(section);
  }

  async check(name, fn) {
    const full = `${this.section} / ${name}`;
    const bug = KNOWN_SERVER_BUGS[full];
    let err = null;
    try {
      await fn();
    } catch (e) {
      err = e;
    }
    const first = (e) => String(e?.message ?? e).split("\n")[0];
    if (bug !== undefined && err) {
      this.expected.push(`${full}: ${bug}`);
      out(`  xfail ${name} — expected failure: ${bug}\n        (${first(err)})`);
    } else if (bug !== undefined) {
      this.failures.push(`${full}: unexpected pass (remove it from KNOWN_SERVER_BUGS in lib/checks.mjs)`);
      out(`  FAIL  ${name} — unexpected pass of a known server bug: remove the mark`);
    } else if (err) {
      this.failures.push(`${full}: ${first(err)}`);
      out(`  FAIL  ${name}\n${indent(fmtErr(err))}`);
    } else {
      this.passed++;
      out(`  ok    ${name}`);
    }
    return !err;
  }

  /** Records a failure found outside a check (errors of the appservice's own handlers). */
  fail(name, err) {
    this.failures.push(`${name}: ${String(err?.message ?? err).split("\n")[0]}`);
    out(`  FAIL  ${name}\n${indent(fmtErr(err))}`);
  }

  summary(seconds) {
    if (this.expected.length) {
      out(`\nexpected failures (known server bugs, see KNOWN_SERVER_BUGS in lib/checks.mjs):`);
      for (const x of this.expected) out(`  - ${x}`);
    }
    if (this.failures.length) {
      out(`\nfailed checks:`);
      for (const f of this.failures) out(`  - ${f}`);
    }
    out(`\nmatrix-bot-sdk appservice suite finished in ${seconds.toFixed(1)} s`);
    const skipped = this.expected.length ? `, ${this.expected.length} skipped` : "";
    out(`appservice-js: ${this.passed} passed, ${this.failures.length} failed${skipped}`);
    return this.failures.length ? 1 : 0;
  }
}
