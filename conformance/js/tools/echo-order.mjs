// Measures which answer the sender sees first: its own event down its long-polling /sync, or the answer of
// the PUT /send that created it (keep-alive connections, as a browser or matrix-js-sdk uses them). While
// other members long-poll /sync too, Parvis often answers the sync first; matrix-js-sdk's thread model then
// races (see KNOWN_RACES in ../lib/harness.mjs).
//   node_modules/.bin/node tools/echo-order.mjs http://127.0.0.1:8008 [other members syncing, default 2] [sends, default 50]
// against a running server with open registration (m.login.dummy).
const base = `${process.argv[2] ?? "http://127.0.0.1:8008"}/_matrix/client`;
const others = Number(process.argv[3] ?? 2);
const N = Number(process.argv[4] ?? 50);
const q = encodeURIComponent;

async function req(method, path, body, tok) {
  const r = await fetch(base + path, {
    method,
    body: body && JSON.stringify(body),
    headers: { "content-type": "application/json", ...(tok && { authorization: `Bearer ${tok}` }) },
  });
  return r.json();
}
async function user(name) {
  const { session } = await req("POST", "/v3/register", { username: name, password: "pw-echo-order" });
  const auth = { type: "m.login.dummy", session };
  return (await req("POST", "/v3/register", { username: name, password: "pw-echo-order", auth })).access_token;
}

const tag = Date.now().toString(36);
const sender = await user(`echoa${tag}`);
const room = (await req("POST", "/v3/createRoom", { preset: "public_chat" }, sender)).room_id;
const tokens = [sender];
for (let i = 0; i < others; i++) {
  const t = await user(`echob${i}${tag}`);
  await req("POST", `/v3/join/${q(room)}`, {}, t);
  tokens.push(t);
}
const since = await Promise.all(tokens.map(async (t) => (await req("GET", "/v3/sync?timeout=0", null, t)).next_batch));

let syncFirst = 0;
for (let i = 0; i < N; i++) {
  // Each member syncs until the message is in its timeline (a sync may first answer with
  // something else: only the answer that shows the message counts).
  const syncs = tokens.map(async (t, k) => {
    for (;;) {
      const r = await req("GET", `/v3/sync?timeout=5000&since=${since[k]}`, null, t);
      since[k] = r.next_batch;
      const events = r.rooms?.join?.[room]?.timeline?.events ?? [];
      if (events.some((e) => e.content?.body === `${i}`)) return performance.now();
    }
  });
  await new Promise((r) => setTimeout(r, 30)); // every long-poll is waiting
  const body = { msgtype: "m.text", body: `${i}` };
  const put = req("PUT", `/v3/rooms/${q(room)}/send/m.room.message/echo${i}`, body, sender).then(() => performance.now());
  const [putAt, senderSyncAt] = await Promise.all([put, syncs[0]]);
  await Promise.all(syncs);
  if (senderSyncAt < putAt) syncFirst++;
}
console.log(`${others} other member(s) syncing: the sender's /sync answered before its PUT /send in ${syncFirst} of ${N} sends`);
