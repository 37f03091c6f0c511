// The test harness of the matrix-js-sdk suite: named checks, known server bugs, users and SDK clients.
//
// A scenario is an async function (t) => {...}. Inside it, `await t.check("name", async () => {...})`
// runs one check: it passes when the function returns, fails when it throws (the scenario goes on with the
// next check). Setup steps that are not checks simply throw: the scenario then stops and counts as failed.
// Every check asserts what the SDK's own models show (Room, Thread, Relations, MatrixEvent, EventTimeline).
//
// KNOWN_SERVER_BUGS maps "Scenario / check" to a reason: such a check is run, and its failure reported as
// "expected failure: <reason>" without failing the suite; if it passes, the suite fails ("unexpected pass")
// so that the mark is removed once the server is fixed.
//
// KNOWN_RACES is for checks that fail only in some runs, because of timing (the reason says whether the
// server's or the SDK's): a failure is reported as "expected failure (race)", a pass as a pass. Remove a
// mark once the cause is fixed and a loop of runs shows no xfail
// (for i in $(seq 30); do bash conformance/js/run.sh || break; done).

import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { format } from "node:util";
import { createClient, ClientEvent, SyncState, MatrixScheduler, MatrixError, ConnectionError, HTTPError } from "matrix-js-sdk";

export { assert };

export const KNOWN_SERVER_BUGS = {
  // "TestThreadsEndpoint / ...": "reason",
};

// (Parvis used to deliver the sender's own event down its /sync before answering the PUT /send that
// created it, which matrix-js-sdk's thread model does not cope with; the sending device's /sync now
// waits for its sends to be answered, services/sends_in_flight.rs, and tools/echo-order.mjs measures
// 0 of 50. The first-reply check it broke is a plain check again.)
// The thread of the replying user's client refetches its root (GET /event) around the reply: when the
// bundled m.thread count of that answer already includes the reply and the reply's /sync echo is counted
// on top, thread.length is one too many (3 for 2 replies) until the client restarts. The server's count is
// right (the fresh clients' checks); the SDK's merge of the two answers is not. Seen in ~1 run in 30.
const COUNT_RACE =
  "matrix-js-sdk thread race: the reply is counted twice (bundled count of a root refetched around the reply + its /sync echo)";

// The same refetch on a redaction: the redacting client refetches the thread root (GET /event) while
// its PUT /redact is in flight; the PUT is answered before the /sync echo (sdk.log shows the order), but
// the SDK merges the refetched root's count and the redaction echo so that the length stays. Seen in
// ~1 run in 20 once the echo order was fixed.
const REDACTION_COUNT_RACE =
  "matrix-js-sdk thread race: the redacted reply stays counted (root refetched while the redaction is sent)";

export const KNOWN_RACES = {
  "TestThreadsEndpoint / bob live: room.getThread(root) has length 2 and the last reply": COUNT_RACE,
  "TestRedact_relations / alice: the redaction of a reply takes one off thread.length": REDACTION_COUNT_RACE,
};

const WAIT_MS = Number(process.env.JS_WAIT_MS || 10000);
const POLL_MS = 25;

// The SDK logs through console.* (looked up at each call): all of it goes to JS_SDK_LOG_FILE (run.sh keeps
// it beside the server's log), or nowhere when unset. The suite itself writes to stdout with `out`.
const sdkLogFile = process.env.JS_SDK_LOG_FILE;
for (const m of ["log", "debug", "info", "warn", "error", "trace"]) {
  console[m] = (...args) => {
    if (sdkLogFile) appendFileSync(sdkLogFile, `${new Date().toISOString()} ${m} ${format(...args)}\n`);
  };
}
export const out = (s) => process.stdout.write(`${s}\n`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (returned) or throws no more; fails after WAIT_MS. */
/** `what` may be a function: called at the timeout, it describes the state reached (for the message). */
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
      const desc = typeof what === "function" ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${desc}${why}`);
    }
    await sleep(POLL_MS);
  }
}

/** Runs `fn` and returns the error it rejects with; fails when it resolves. */
export async function rejection(what, fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what}: expected the SDK call to reject, it resolved`);
}

const fmtErr = (e) => (e && e.stack ? e.stack : String(e));

// ------------------------------------------------------------------------------------------------
// Errors that escape the SDK
// ------------------------------------------------------------------------------------------------

/** Unhandled rejections, uncaught exceptions and sync errors seen since the last `takeEscapes()`. */
const escapes = [];

export function installProcessHandlers() {
  process.on("unhandledRejection", (reason) => {
    escapes.push(`unhandledRejection: ${fmtErr(reason)}`);
  });
  process.on("uncaughtException", (err) => {
    escapes.push(`uncaughtException: ${fmtErr(err)}`);
  });
}

export function takeEscapes() {
  return escapes.splice(0, escapes.length);
}

// ------------------------------------------------------------------------------------------------
// Users and clients
// ------------------------------------------------------------------------------------------------

let userCounter = 0;

/**
 * The SDK's default send scheduler, except that an exception thrown by the SDK itself (not an HTTP or
 * network error) is not retried: the default retries it 4 times with backoff (30 s) and holds every later
 * message of the room behind it, which only slows a failing run down.
 */
function scheduler() {
  return new MatrixScheduler((event, attempts, err) => {
    const transport = err instanceof MatrixError || err instanceof ConnectionError || err instanceof HTTPError;
    return transport ? MatrixScheduler.RETRY_BACKOFF_RATELIMIT(event, attempts, err) : -1;
  });
}

export class World {
  constructor(baseUrl, serverName) {
    this.baseUrl = baseUrl;
    this.serverName = serverName;
    this.clients = new Set();
  }

  /**
   * Registers a user through the SDK's registerRequest: the first call answers 401 with the UIA session,
   * the second completes the m.login.dummy stage. Returns {userId, localpart, password, accessToken, deviceId}.
   */
  async register(prefix) {
    const localpart = `${prefix}${Date.now().toString(36)}${(userCounter++).toString(36)}`;
    const password = `pw-${Math.random().toString(36).slice(2)}`;
    const anon = createClient({ baseUrl: this.baseUrl });
    const first = await rejection("register without auth", () => anon.registerRequest({ username: localpart, password }));
    assert.equal(first.httpStatus, 401, `POST /register without auth must answer 401 (UIA): ${first}`);
    const session = first.data?.session;
    assert.ok(session, "the UIA 401 carries a session");
    const res = await anon.registerRequest({
      username: localpart,
      password,
      initial_device_display_name: "matrix-js-sdk suite",
      auth: { type: "m.login.dummy", session },
    });
    return { userId: res.user_id, localpart, password, accessToken: res.access_token, deviceId: res.device_id };
  }

  /** A new device of `user` (password login through the SDK). */
  async login(user) {
    const anon = createClient({ baseUrl: this.baseUrl });
    const res = await anon.loginRequest({
      type: "m.login.password",
      identifier: { type: "m.id.user", user: user.localpart },
      password: user.password,
      initial_device_display_name: "matrix-js-sdk suite (fresh)",
    });
    return { ...user, accessToken: res.access_token, deviceId: res.device_id };
  }

  /**
   * A started client (threadSupport on, no crypto) whose first sync has completed (PREPARED).
   * Sync errors are recorded as escapes. `label` names it in messages.
   */
  async start(user, label, startOpts = {}) {
    const client = createClient({
      baseUrl: this.baseUrl,
      userId: user.userId,
      deviceId: user.deviceId,
      accessToken: user.accessToken,
      timelineSupport: true,
      scheduler: scheduler(),
    });
    client.label = label;
    const prepared = new Promise((resolve, reject) => {
      client.on(ClientEvent.Sync, (state, _prev, data) => {
        if (state === SyncState.Error) {
          escapes.push(`sync error on ${label}: ${fmtErr(data?.error)}`);
          reject(new Error(`sync error on ${label}: ${data?.error}`));
        } else if (state === SyncState.Prepared) {
          resolve();
        }
      });
    });
    prepared.catch(() => {}); // awaited below; a rejection before that is not "unhandled"
    this.clients.add(client);
    await client.startClient({ threadSupport: true, initialSyncLimit: 50, ...startOpts });
    await Promise.race([
      prepared,
      sleep(WAIT_MS * 2).then(() => {
        throw new Error(`${label}: first sync not PREPARED within ${WAIT_MS * 2} ms`);
      }),
    ]);
    return client;
  }

  /** A fresh device of `user` started from scratch: what another client of the same person sees. */
  async fresh(user, label, startOpts = {}) {
    return this.start(await this.login(user), label, startOpts);
  }

  stop(client) {
    if (!client) return;
    client.stopClient();
    client.removeAllListeners();
    this.clients.delete(client);
  }

  stopAll() {
    for (const c of [...this.clients]) this.stop(c);
  }
}

/** The room as `client` sees it once `pred(room)` holds. */
export async function roomWhen(client, roomId, what, pred = () => true) {
  return waitFor(`${client.label}: ${what}`, () => {
    const room = client.getRoom(roomId);
    return room && pred(room) ? room : null;
  });
}

export const membership = (room, userId) => room.getMember(userId)?.membership;

/** The event ids of the room's main live timeline (the unfiltered timeline set, as the room view shows). */
export const liveIds = (room) => room.getLiveTimeline().getEvents().map((e) => e.getId());

// ------------------------------------------------------------------------------------------------
// Running scenarios
// ------------------------------------------------------------------------------------------------

export class Results {
  constructor() {
    this.passed = 0;
    this.failed = 0;
    this.xfailed = 0;
    this.failures = [];
    this.expected = [];
  }

  record(name, err) {
    const race = KNOWN_RACES[name];
    if (race !== undefined) {
      if (err) {
        this.xfailed++;
        this.expected.push(`${name}: ${race}`);
        out(`  xfail ${name} — expected failure (race): ${race}\n        (${String(err.message ?? err).split("\n")[0]})`);
      } else {
        this.passed++;
        out(`  ok    ${name} (a known race that did not occur this time)`);
      }
      return;
    }
    const bug = KNOWN_SERVER_BUGS[name];
    if (bug !== undefined) {
      if (err) {
        this.xfailed++;
        this.expected.push(`${name}: ${bug}`);
        out(`  xfail ${name} — expected failure: ${bug}\n        (${String(err.message ?? err).split("\n")[0]})`);
      } else {
        this.failed++;
        this.failures.push(`${name}: unexpected pass (remove it from KNOWN_SERVER_BUGS)`);
        out(`  FAIL  ${name} — unexpected pass of a known server bug: remove the mark`);
      }
      return;
    }
    if (err) {
      this.failed++;
      this.failures.push(`${name}: ${fmtErr(err)}`);
      out(`  FAIL  ${name}\n${indent(fmtErr(err))}`);
    } else {
      this.passed++;
      out(`  ok    ${name}`);
    }
  }
}

const indent = (s) =>
  String(s)
    .split("\n")
    .map((l) => `        ${l}`)
    .join("\n");

export class Scenario {
  constructor(results, name) {
    this.results = results;
    this.name = name;
  }

  async check(name, fn) {
    let err = null;
    try {
      await fn();
    } catch (e) {
      err = e;
    }
    this.results.record(`${this.name} / ${name}`, err);
    return !err;
  }
}

/** Runs one scenario: its checks, then a check that no error escaped the SDK while it ran. */
export async function runScenario(results, name, fn, timeoutMs) {
  out(`${name}`);
  const t = new Scenario(results, name);
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      fn(t),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`scenario timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    results.record(`${name} / (scenario aborted)`, e);
  } finally {
    clearTimeout(timer);
  }
  // Let pending SDK work settle so that rejections it leaves behind are attributed to this scenario.
  await sleep(100);
  const escaped = takeEscapes();
  results.record(
    `${name} / no error escaped the SDK`,
    escaped.length ? new Error(`errors escaped the SDK:\n${escaped.join("\n")}`) : null,
  );
  out(`  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
