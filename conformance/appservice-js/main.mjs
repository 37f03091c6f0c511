// The matrix-bot-sdk appservice suite: an echo bridge on matrix-bot-sdk's `Appservice` (lib/bridge.mjs)
// registered with a live parvis by the registration file run.sh wrote (lib/registration.mjs), and a real
// user spoken for with plain fetch (lib/user.mjs). Run through run.sh, which preloads lib/without-crypto.mjs.
//   PARVIS_URL, PARVIS_SERVER_NAME   the server (run.sh starts it)
//   AS_PORT, AS_TOKEN, HS_TOKEN      the registration (run.sh writes it for Parvis with the same values)
//   BOTSDK_LOG_FILE                  where the bot-sdk's own logging goes
// The exit code is 0 only when no check failed.

import assert from "node:assert/strict";
import { EchoBridge, ECHO } from "./lib/bridge.mjs";
import { Checks, out, waitFor, rejection, needs } from "./lib/checks.mjs";
import { fromEnv, BOT_LOCALPART, PREFIX } from "./lib/registration.mjs";
import { User, request, q } from "./lib/user.mjs";

const baseUrl = process.env.PARVIS_URL;
const serverName = process.env.PARVIS_SERVER_NAME;
if (!baseUrl || !serverName) {
  out("PARVIS_URL and PARVIS_SERVER_NAME must be set (conformance/appservice-js/run.sh sets them)");
  process.exit(2);
}
const registration = fromEnv();
const started = Date.now();
const t = new Checks();
const bridge = new EchoBridge({
  registration,
  homeserverUrl: baseUrl,
  serverName,
  port: Number(process.env.AS_PORT),
  logFile: process.env.BOTSDK_LOG_FILE,
});
const as = bridge.appservice;
const mxid = (localpart) => `@${localpart}:${serverName}`;
const ghostId = (name) => mxid(`${PREFIX}${name}`);
const alias = (name) => `#${PREFIX}${name}:${serverName}`;
const ctx = {};

// The bot-sdk's MatrixError carries errcode and statusCode.
const assertMatrixError = (err, statusCode, errcode) =>
  assert.ok(err?.statusCode === statusCode && err?.errcode === errcode, `expected ${statusCode} ${errcode}, got ${err?.statusCode} ${err?.errcode}: ${err?.message ?? err}`);

await bridge.start();
try {
  t.begin("registration");
  await t.check("the appservice listens: a transaction with a wrong hs_token is refused by the bot-sdk (its own check)", async () => {
    const r = await request(registration.url, "PUT", "/_matrix/app/v1/transactions/probe", { token: "not-the-hs-token", body: { events: [] } });
    assert.equal(r.status, 401, JSON.stringify(r));
  });
  await t.check(`the bot user exists: botIntent.ensureRegistered() resolves (Parvis made @${BOT_LOCALPART} at start-up)`, async () => {
    await as.botIntent.ensureRegistered();
  });
  await t.check("whoami with the as_token is the bot user", async () => {
    const who = await as.botClient.getWhoAmI();
    assert.equal(who.user_id, as.botUserId);
    assert.equal(as.botUserId, mxid(BOT_LOCALPART));
  });

  t.begin("ghost users");
  const echo = as.getIntentForUserId(ghostId("echo"));
  await t.check("before it registers, acting as a namespaced ghost is refused (403 M_FORBIDDEN)", async () => {
    const err = await rejection("whoami as an unregistered ghost", () => echo.underlyingClient.getWhoAmI());
    assertMatrixError(err, 403, "M_FORBIDDEN");
  });
  await t.check("a ghost in the namespace registers (m.login.application_service) and whoami names it", async () => {
    await echo.ensureRegistered();
    const who = await echo.underlyingClient.getWhoAmI();
    assert.equal(who.user_id, echo.userId);
    ctx.echo = echo;
  });
  await t.check("the ghost sets its display name and avatar", async () => {
    needs(ctx.echo, "the registered ghost");
    await echo.underlyingClient.setDisplayName("Echo (bridged)");
    const mxc = await echo.underlyingClient.uploadContent(Buffer.from("GIF89a"), "image/gif", "echo.gif");
    assert.match(mxc, /^mxc:\/\//);
    await echo.underlyingClient.setAvatarUrl(mxc);
    ctx.echoAvatar = mxc;
  });
  await t.check("a user outside the namespace is refused: ensureRegistered rejects with 400 M_EXCLUSIVE", async () => {
    const outsider = as.getIntentForUserId(mxid("not_bridged"));
    const err = await rejection("registering @not_bridged", () => outsider.ensureRegistered());
    assertMatrixError(err, 400, "M_EXCLUSIVE");
  });

  t.begin("a message round trip");
  await t.check("a user registers (m.login.dummy) and sees the ghost's profile", async () => {
    ctx.alice = await User.register(baseUrl, "alice");
    needs(ctx.echo, "the registered ghost");
    const profile = await ctx.alice.ok("GET", `/profile/${q(echo.userId)}`);
    assert.equal(profile.displayname, "Echo (bridged)", JSON.stringify(profile));
    assert.equal(profile.avatar_url, ctx.echoAvatar, JSON.stringify(profile));
  });
  await t.check("an ordinary user cannot register inside the exclusive namespace (400 M_EXCLUSIVE)", async () => {
    const r = await request(baseUrl, "POST", "/_matrix/client/v3/register", { body: { username: `${PREFIX}squatter`, password: "pw-squatter" } });
    assert.ok(r.status === 400 && r.body.errcode === "M_EXCLUSIVE", r.describe().message);
  });
  await t.check("the user creates a room and invites the ghost: the invite reaches the appservice (room.invite) and the ghost joins", async () => {
    const alice = needs(ctx.alice, "the user");
    needs(ctx.echo, "the registered ghost");
    const room = await alice.ok("POST", "/createRoom", { body: { preset: "private_chat", name: "bridged room" } });
    ctx.room = room.room_id;
    await alice.ok("POST", `/rooms/${q(ctx.room)}/invite`, { body: { user_id: echo.userId } });
    await waitFor(`room.invite of ${echo.userId} in ${ctx.room}`, () => bridge.seen.invites.find((i) => i.roomId === ctx.room && i.event.state_key === echo.userId));
    const join = await waitFor(`${echo.userId}'s join in alice's /sync`, () =>
      alice.syncUntil(ctx.room, "the ghost's join", (e) => e.type === "m.room.member" && e.state_key === echo.userId && e.content.membership === "join"),
    );
    assert.equal(join.sender, echo.userId);
    await waitFor("the ghost's join in a transaction (room.join)", () => bridge.seen.joins.find((j) => j.roomId === ctx.room && j.event.state_key === echo.userId));
  });
  await t.check("the user's message reaches the appservice in a transaction (room.message: room_id, sender, body)", async () => {
    const alice = needs(ctx.alice, "the user");
    const room = needs(ctx.room, "the room with the ghost");
    const sent = await alice.ok("PUT", `/rooms/${q(room)}/send/m.room.message/rt1`, { body: { msgtype: "m.text", body: "hello bridge" } });
    const got = await waitFor("the message in a transaction", () => bridge.seen.messages.find((m) => m.event.event_id === sent.event_id));
    assert.equal(got.roomId, room);
    assert.equal(got.event.sender, alice.userId);
    assert.equal(got.event.content.body, "hello bridge");
    ctx.sent = sent.event_id;
  });
  await t.check("the ghost's answer reaches the user's /sync, sent by the ghost", async () => {
    const alice = needs(ctx.alice, "the user");
    needs(ctx.sent, "the user's message in a transaction");
    const answer = await alice.syncUntil(ctx.room, "the echo", (e) => e.type === "m.room.message" && e.content.body === `${ECHO}hello bridge`);
    assert.equal(answer.sender, echo.userId);
  });
  await t.check("ten quick messages reach the appservice once each, in the order sent", async () => {
    const alice = needs(ctx.alice, "the user");
    const room = needs(ctx.room, "the room with the ghost");
    const ids = [];
    for (let i = 0; i < 10; i++) {
      ids.push((await alice.ok("PUT", `/rooms/${q(room)}/send/m.room.message/burst${i}`, { body: { msgtype: "m.text", body: `burst ${i}` } })).event_id);
    }
    const wanted = new Set(ids);
    const received = () => bridge.seen.messages.filter((m) => wanted.has(m.event.event_id)).map((m) => m.event.event_id);
    await waitFor(() => `all ten (got ${received().length})`, () => received().length >= 10);
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would come right behind
    assert.deepEqual(received(), ids);
  });

  await t.check("a message sent while the appservice is down arrives once it listens again (the transaction is retried)", async () => {
    const alice = needs(ctx.alice, "the user");
    const room = needs(ctx.room, "the room with the ghost");
    await bridge.stopListening();
    const sent = await alice.ok("PUT", `/rooms/${q(room)}/send/m.room.message/while-down`, { body: { msgtype: "m.text", body: "are you there?" } });
    await new Promise((r) => setTimeout(r, 300));
    const got = () => bridge.seen.messages.filter((m) => m.event.event_id === sent.event_id);
    assert.equal(got().length, 0, "delivered while the listener was closed");
    await bridge.start();
    await waitFor("the message after the appservice came back", () => got().length);
    await alice.syncUntil(room, "the echo of the retried message", (e) => e.content?.body === `${ECHO}are you there?` && e.sender === echo.userId);
    assert.equal(got().length, 1, "delivered more than once");
  });

  t.begin("user query");
  await t.check(`the profile of an unknown @${PREFIX}x is asked of the appservice (query.user), which creates it`, async () => {
    const alice = needs(ctx.alice, "the user");
    const profile = await alice.ok("GET", `/profile/${q(ghostId("x"))}`);
    assert.deepEqual(bridge.seen.userQueries.filter((u) => u === ghostId("x")), [ghostId("x")], "asked once");
    assert.equal(profile.displayname, "Bot x", JSON.stringify(profile));
    const who = await as.getIntentForUserId(ghostId("x")).underlyingClient.getWhoAmI();
    assert.equal(who.user_id, ghostId("x"));
  });
  await t.check("a user the appservice declines stays unknown (404 M_NOT_FOUND) after it was asked", async () => {
    const alice = needs(ctx.alice, "the user");
    await alice.expectError("GET", `/profile/${q(ghostId("nobody1"))}`, 404, "M_NOT_FOUND");
    assert.ok(bridge.seen.userQueries.includes(ghostId("nobody1")), `asked: ${JSON.stringify(bridge.seen.userQueries)}`);
  });
  await t.check("an unknown user outside the namespace is not asked about (404)", async () => {
    const alice = needs(ctx.alice, "the user");
    const before = bridge.seen.userQueries.length;
    await alice.expectError("GET", `/profile/${q(mxid("nobody_outside"))}`, 404, "M_NOT_FOUND");
    assert.equal(bridge.seen.userQueries.length, before, `asked: ${JSON.stringify(bridge.seen.userQueries)}`);
  });

  t.begin("alias query");
  await t.check(`resolving #${PREFIX}lobby asks the appservice (query.room), which creates the room: the alias resolves`, async () => {
    const alice = needs(ctx.alice, "the user");
    const resolved = await alice.ok("GET", `/directory/room/${q(alias("lobby"))}`);
    assert.deepEqual(bridge.seen.aliasQueries, [alias("lobby")]);
    assert.match(resolved.room_id, /^!/);
    // The bot created it (createRoom with room_alias_name, as matrix-bot-sdk does).
    const members = await as.botClient.getJoinedRoomMembers(resolved.room_id);
    assert.ok(members.includes(as.botUserId), `the bot is in the room: ${members}`);
    ctx.lobby = resolved.room_id;
  });
  await t.check(`the user joins #${PREFIX}lobby by its alias`, async () => {
    const alice = needs(ctx.alice, "the user");
    const lobby = needs(ctx.lobby, "the lobby");
    const joined = await alice.ok("POST", `/join/${q(alias("lobby"))}`, { body: {} });
    assert.equal(joined.room_id, lobby);
    assert.equal(bridge.seen.aliasQueries.length, 1, `asked again: ${JSON.stringify(bridge.seen.aliasQueries)}`);
  });
  await t.check("an alias the appservice declines stays unknown (404 M_NOT_FOUND), and joining it fails", async () => {
    const alice = needs(ctx.alice, "the user");
    await alice.expectError("GET", `/directory/room/${q(alias("nothing"))}`, 404, "M_NOT_FOUND");
    assert.ok(bridge.seen.aliasQueries.includes(alias("nothing")), `asked: ${JSON.stringify(bridge.seen.aliasQueries)}`);
    const r = await alice.req("POST", `/join/${q(alias("nothing"))}`, { body: {} });
    assert.equal(r.status, 404, r.describe().message);
  });

  t.begin("more of the bot-sdk");
  await t.check("timestamp massaging: unstableApis.sendEventWithTimestamp keeps ts as origin_server_ts", async () => {
    const alice = needs(ctx.alice, "the user");
    const room = needs(ctx.room, "the room with the ghost");
    const ts = Date.UTC(2020, 0, 2, 3, 4, 5);
    const id = await echo.unstableApis.sendEventWithTimestamp(room, "m.room.message", { msgtype: "m.notice", body: "from the past" }, ts);
    const ev = await alice.ok("GET", `/rooms/${q(room)}/event/${q(id)}`);
    assert.equal(ev.origin_server_ts, ts);
    assert.equal(ev.sender, echo.userId);
  });
  await t.check("timestamp massaging of state: sendStateEventWithTimestamp (the bot in its lobby)", async () => {
    const alice = needs(ctx.alice, "the user");
    const lobby = needs(ctx.lobby, "the lobby");
    const ts = Date.UTC(2021, 5, 6, 7, 8, 9);
    const id = await as.botIntent.unstableApis.sendStateEventWithTimestamp(lobby, "m.room.topic", "", { topic: "bridged since 2021" }, ts);
    const ev = await alice.ok("GET", `/rooms/${q(lobby)}/event/${q(id)}`);
    assert.equal(ev.origin_server_ts, ts);
    const topic = await alice.ok("GET", `/rooms/${q(lobby)}/state/m.room.topic`);
    assert.equal(topic.topic, "bridged since 2021");
  });
  await t.check("ping: matrix-bot-sdk serves no /_matrix/app/v1/ping, and Parvis reports its 404 (502 M_BAD_STATUS)", async () => {
    const err = await rejection("POST /appservice/{id}/ping", () =>
      as.botClient.doRequest("POST", `/_matrix/client/v1/appservice/${registration.id}/ping`, null, { transaction_id: "botsdk-ping" }),
    );
    assertMatrixError(err, 502, "M_BAD_STATUS");
    assert.equal(err.body.status, 404, JSON.stringify(err.body));
    assert.match(String(err.body.body), /M_UNRECOGNIZED/, JSON.stringify(err.body));
  });
  await t.check("the ghost leaves: its leave reaches the appservice (room.leave)", async () => {
    const room = needs(ctx.room, "the room with the ghost");
    await echo.leaveRoom(room);
    await waitFor("room.leave of the ghost", () => bridge.seen.leaves.find((l) => l.roomId === room && l.event.state_key === echo.userId));
  });
  await t.check("a message after the ghost left is not sent to the appservice (no member of its namespace)", async () => {
    const alice = needs(ctx.alice, "the user");
    const room = needs(ctx.room, "the room with the ghost");
    const sent = await alice.ok("PUT", `/rooms/${q(room)}/send/m.room.message/after-leave`, { body: { msgtype: "m.text", body: "anyone?" } });
    // A later event that is sent (the lobby is the bot's room) shows the queue moved past it.
    const later = await alice.ok("PUT", `/rooms/${q(needs(ctx.lobby, "the lobby"))}/send/m.room.message/lobby1`, { body: { msgtype: "m.text", body: "in the lobby" } });
    await waitFor("the lobby message in a transaction", () => bridge.seen.messages.find((m) => m.event.event_id === later.event_id));
    assert.ok(!bridge.seen.events.some((e) => e.event.event_id === sent.event_id), "the message after the leave was sent to the appservice");
  });
  await t.check("no handler of the appservice failed (room.invite joins, room.message echoes)", async () => {
    assert.deepEqual(bridge.errors, []);
  });
} finally {
  await bridge.stopListening();
}
process.exit(t.summary((Date.now() - started) / 1000));
