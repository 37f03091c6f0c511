// A real (non-appservice) user spoken for with plain fetch: what a Matrix client sends, no SDK in between,
// so that a failure shows the exact request and the server's answer.

const CS = "/_matrix/client/v3";
export const q = encodeURIComponent;

/** An HTTP answer that was not what the check wanted: the request and the whole answer. */
export class HttpError extends Error {
  constructor(method, path, reqBody, status, body) {
    const sent = reqBody === undefined ? "" : ` ${JSON.stringify(reqBody)}`;
    super(`${method} ${path}${sent} -> ${status} ${JSON.stringify(body)}`);
    this.status = status;
    this.body = body;
  }
}

/** Unauthenticated or authenticated request; resolves to {status, body} whatever the status. */
export async function request(baseUrl, method, path, { token, body, query } = {}) {
  const url = new URL(baseUrl + path);
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, String(v));
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, describe: () => new HttpError(method, url.pathname + url.search, body, res.status, parsed) };
}

let counter = 0;

export class User {
  constructor(baseUrl, userId, token) {
    this.baseUrl = baseUrl;
    this.userId = userId;
    this.token = token;
    this.since = undefined;
  }

  /** Registers a new user through the m.login.dummy UIA flow (first answer 401 with a session). */
  static async register(baseUrl, prefix) {
    const username = `${prefix}${Date.now().toString(36)}${(counter++).toString(36)}`;
    const body = { username, password: `pw-${Math.random().toString(36).slice(2)}` };
    const first = await request(baseUrl, "POST", `${CS}/register`, { body });
    if (first.status !== 401 || !first.body.session) throw first.describe();
    const done = await request(baseUrl, "POST", `${CS}/register`, {
      body: { ...body, auth: { type: "m.login.dummy", session: first.body.session } },
    });
    if (done.status !== 200) throw done.describe();
    return new User(baseUrl, done.body.user_id, done.body.access_token);
  }

  req(method, path, opts = {}) {
    return request(this.baseUrl, method, path.startsWith("/_matrix") ? path : CS + path, { ...opts, token: this.token });
  }

  /** The body of a 200 answer; anything else throws with the request and the answer. */
  async ok(method, path, opts = {}) {
    const r = await this.req(method, path, opts);
    if (r.status !== 200) throw r.describe();
    return r.body;
  }

  /** The answer's errcode must be `errcode` with HTTP `status`. */
  async expectError(method, path, status, errcode, opts = {}) {
    const r = await this.req(method, path, opts);
    if (r.status !== status || r.body?.errcode !== errcode) {
      const e = r.describe();
      e.message = `expected ${status} ${errcode}; got ${e.message}`;
      throw e;
    }
    return r.body;
  }

  /**
   * Incremental /sync until `pred(event)` holds for an event of the room's timeline; returns that event.
   * The events seen on the way are kept in this.seen[roomId].
   */
  async syncUntil(roomId, what, pred, timeoutMs = 10000) {
    this.seen ??= {};
    const seen = (this.seen[roomId] ??= []);
    const found = seen.find(pred);
    if (found) return found;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const query = { timeout: Math.min(2000, Math.max(0, deadline - Date.now())) };
      if (this.since) query.since = this.since;
      const sync = await this.ok("GET", "/sync", { query });
      this.since = sync.next_batch;
      for (const [id, room] of Object.entries(sync.rooms?.join ?? {})) {
        const list = (this.seen[id] ??= []);
        list.push(...(room.timeline?.events ?? []));
      }
      const hit = seen.find(pred);
      if (hit) return hit;
    }
    const tail = seen.slice(-5).map((e) => `${e.type} from ${e.sender}: ${JSON.stringify(e.content)}`);
    throw new Error(`${this.userId}'s /sync did not show ${what} in ${roomId} within ${timeoutMs} ms; the last events:\n${tail.join("\n")}`);
  }
}
