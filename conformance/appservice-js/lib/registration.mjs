// The application service's registration: one definition for both sides. run.sh writes it as the YAML
// file Parvis reads (`node lib/registration.mjs > registration.yaml`, PARVIS_APPSERVICES__REGISTRATION_FILES);
// main.mjs gives the same object to matrix-bot-sdk's Appservice. Both read it from the environment run.sh
// sets: PARVIS_SERVER_NAME, AS_PORT (the appservice's own HTTP listener), AS_TOKEN, HS_TOKEN.

import { pathToFileURL } from "node:url";

export const ID = "botsdk";
export const BOT_LOCALPART = "botsdk_bridge";
// Ghost users are @_bot_<name>:<server>, bridged rooms #_bot_<name>:<server>.
export const PREFIX = "_bot_";

const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function fromEnv(env = process.env) {
  const need = ["PARVIS_SERVER_NAME", "AS_PORT", "AS_TOKEN", "HS_TOKEN"];
  const missing = need.filter((k) => !env[k]);
  if (missing.length) throw new Error(`${missing.join(", ")} must be set (conformance/appservice-js/run.sh sets them)`);
  const server = escapeRegex(env.PARVIS_SERVER_NAME);
  return {
    id: ID,
    url: `http://127.0.0.1:${env.AS_PORT}`,
    as_token: env.AS_TOKEN,
    hs_token: env.HS_TOKEN,
    sender_localpart: BOT_LOCALPART,
    rate_limited: false,
    namespaces: {
      users: [{ exclusive: true, regex: `@${PREFIX}.*:${server}` }],
      aliases: [{ exclusive: true, regex: `#${PREFIX}.*:${server}` }],
      rooms: [],
    },
  };
}

/** Block-style YAML as bridges write it; strings single-quoted (a regex's backslashes stay literal). */
export function toYaml(value, indent = "") {
  const scalar = (v) => (typeof v === "string" ? `'${v.replace(/'/g, "''")}'` : JSON.stringify(v));
  const lines = [];
  for (const [key, v] of Object.entries(value)) {
    if (Array.isArray(v)) {
      if (!v.length) {
        lines.push(`${indent}${key}: []`);
        continue;
      }
      lines.push(`${indent}${key}:`);
      for (const item of v) {
        const body = toYaml(item, `${indent}    `).split("\n");
        lines.push(`${indent}  - ${body[0].trimStart()}`, ...body.slice(1));
      }
    } else if (v !== null && typeof v === "object") {
      lines.push(`${indent}${key}:`, toYaml(v, `${indent}  `));
    } else {
      lines.push(`${indent}${key}: ${scalar(v)}`);
    }
  }
  return lines.join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${toYaml(fromEnv())}\n`);
}
