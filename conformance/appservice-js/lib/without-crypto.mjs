// Preloaded by run.sh (`node --import ./lib/without-crypto.mjs main.mjs`), before matrix-bot-sdk loads.
//
// matrix-bot-sdk requires @matrix-org/matrix-sdk-crypto-nodejs as soon as it is loaded
// (lib/e2ee/CryptoClient.js), and that package's index.js throws at once unless its native library is
// there. The library is not on the npm registry: the package's install script downloads it from GitHub,
// which cannot be reached here, so run.sh installs with `npm ci --ignore-scripts` (then runs the one
// install script the suite needs, that of the npm package `node`). This suite's application service runs
// without encryption (no `intentOptions.encryption`, no crypto storage), so the bot-sdk never uses the
// library: the module is resolved to lib/crypto-unavailable.cjs, which loads and throws on any use.
// Everything else of the bot-sdk runs as published. module.registerHooks: Node >= 22.15, also for require().

import { registerHooks } from "node:module";

const CRYPTO = "@matrix-org/matrix-sdk-crypto-nodejs";
const replacement = new URL("./crypto-unavailable.cjs", import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === CRYPTO) return { url: replacement, format: "commonjs", shortCircuit: true };
    return nextResolve(specifier, context);
  },
});
