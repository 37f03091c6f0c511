// Loaded instead of @matrix-org/matrix-sdk-crypto-nodejs (lib/without-crypto.mjs redirects it here).
// Any use of one of that library's exports throws; merely loading it does not.
"use strict";

const why =
  "@matrix-org/matrix-sdk-crypto-nodejs is not available in conformance/appservice-js (its native library " +
  "is only published on GitHub): this suite's application service runs without encryption";

module.exports = new Proxy(
  {},
  {
    get(_target, prop) {
      // Looked at by module loaders and inspection, not uses of the library.
      if (typeof prop === "symbol" || prop === "__esModule" || prop === "then") return undefined;
      throw new Error(`${why} (used: ${String(prop)})`);
    },
  },
);
