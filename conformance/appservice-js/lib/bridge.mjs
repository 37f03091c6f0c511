// The application service under test: a small echo bridge built the way matrix-bot-sdk bots are, on its
// `Appservice` class (its own express listener receives Parvis's transactions and queries).
// - room.invite of one of its ghosts: the ghost joins;
// - room.message from a real user in a room with a ghost: the ghost answers "echo: <body>";
// - query.user for @_bot_<name>: created with display name "Bot <name>", unless <name> starts with "nobody";
// - query.room for #_bot_lobby: a public room is created with that alias; any other alias is declined.
// Everything it receives and does is recorded in `seen` for the checks; an error in a handler is recorded
// in `errors` (an EventEmitter would otherwise drop it).

import { Appservice, LogService, LogLevel, MemoryStorageProvider } from "matrix-bot-sdk";
import { appendFileSync } from "node:fs";
import { format } from "node:util";
import { PREFIX } from "./registration.mjs";

/** All of the bot-sdk's logging to BOTSDK_LOG_FILE (run.sh keeps it beside the server's log). */
function logToFile(path) {
  const write = (level) => (module, ...args) => {
    if (path) appendFileSync(path, `${new Date().toISOString()} ${level} [${module}] ${format(...args)}\n`);
  };
  LogService.setLogger({ trace: write("trace"), debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") });
  LogService.setLevel(LogLevel.DEBUG);
}

export const ECHO = "echo: ";

export class EchoBridge {
  constructor({ registration, homeserverUrl, serverName, port, logFile }) {
    logToFile(logFile);
    this.seen = { invites: [], joins: [], leaves: [], messages: [], events: [], userQueries: [], aliasQueries: [] };
    this.errors = [];
    this.appservice = new Appservice({
      port,
      bindAddress: "127.0.0.1",
      homeserverName: serverName,
      homeserverUrl,
      registration,
      storage: new MemoryStorageProvider(),
    });
    const as = this.appservice;
    const on = (name, fn) =>
      as.on(name, (...args) => {
        Promise.resolve()
          .then(() => fn(...args))
          .catch((e) => this.errors.push(`${name} handler: ${e?.stack ?? e}`));
      });

    on("room.event", (roomId, event) => this.seen.events.push({ roomId, event }));
    on("room.invite", async (roomId, event) => {
      this.seen.invites.push({ roomId, event });
      if (as.isNamespacedUser(event.state_key)) await as.getIntentForUserId(event.state_key).joinRoom(roomId);
    });
    on("room.join", (roomId, event) => this.seen.joins.push({ roomId, event }));
    on("room.leave", (roomId, event) => this.seen.leaves.push({ roomId, event }));
    on("room.message", async (roomId, event) => {
      this.seen.messages.push({ roomId, event });
      const body = event.content?.body;
      if (as.isNamespacedUser(event.sender) || event.sender === as.botUserId || typeof body !== "string") return;
      // The room's ghosts, as the bridge knows them from the joins it was sent.
      const ghosts = new Set(this.seen.joins.filter((j) => j.roomId === roomId && as.isNamespacedUser(j.event.state_key)).map((j) => j.event.state_key));
      for (const ghost of ghosts) await as.getIntentForUserId(ghost).sendText(roomId, `${ECHO}${body}`);
    });
    as.on("query.user", (userId, createUser) => {
      this.seen.userQueries.push(userId);
      const name = as.getSuffixForUserId(userId);
      createUser(name && !name.startsWith("nobody") ? { display_name: `Bot ${name}` } : false);
    });
    as.on("query.room", (alias, createRoom) => {
      this.seen.aliasQueries.push(alias);
      createRoom(alias.startsWith(`#${PREFIX}lobby:`) ? { name: "Bridged lobby", preset: "public_chat", visibility: "private" } : false);
    });
  }

  /** Opens the appservice's HTTP listener (Appservice.begin); again after stopListening. */
  start() {
    return this.appservice.begin();
  }

  /** Closes the listener (Appservice.stop) and waits until it is closed: Parvis then cannot reach it. */
  async stopListening() {
    const server = this.appservice.appServer;
    if (!server?.listening) return;
    const closed = new Promise((resolve) => server.once("close", resolve));
    this.appservice.stop();
    server.closeAllConnections();
    await closed;
  }
}
