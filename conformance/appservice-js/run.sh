#!/usr/bin/env bash
# matrix-bot-sdk appservice suite: writes a registration file for an application service listening on a
# free loopback port, starts its own parvis with it (loopback allowed for outgoing requests), runs main.mjs
# (the appservice and the checks) with the Node 22 of the npm package `node` (pinned in package-lock.json),
# stops the server.
#   PARVIS_BIN   path of the parvis binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis)
#   AS_KEEP_LOGS=1  keep the temporary directory (server.log, botsdk.log, registration.yaml) even when all passed
# Exits non-zero when a check fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${PARVIS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis}"
if [ ! -x "$bin" ]; then
  echo "parvis binary not found or not executable: $bin (set PARVIS_BIN)" >&2
  exit 2
fi

# npm ci only when the lockfile changed since the last install (a stamp inside node_modules). Install
# scripts are off: that of @matrix-org/matrix-sdk-crypto-nodejs downloads a native library from GitHub
# (unreachable; the suite runs without it, see lib/without-crypto.mjs); the one script the suite needs,
# that of the npm package `node` (it fetches the Node 22 binary package from the npm registry), is run
# by `npm rebuild node`.
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$here/node_modules/.parvis-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || [ ! -x "$here/node_modules/.bin/node" ]; then
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm rebuild node --loglevel=error >/dev/null)
  if [ ! -x "$here/node_modules/.bin/node" ]; then
    echo "npm rebuild node did not install node_modules/.bin/node (the npm package 'node' brings it with its preinstall script)" >&2
    exit 2
  fi
  echo "$want" > "$stamp"
fi
node22="$here/node_modules/.bin/node"

work="$(mktemp -d "${TMPDIR:-/tmp}/parvis-appservice-js-XXXXXX")"
keep_logs="${AS_KEEP_LOGS:-}"
logs_kept_message="logs kept: $work/server.log (parvis), $work/botsdk.log (matrix-bot-sdk), $work/registration.yaml"
# shellcheck source=../tools/node_suite_server.sh
source "$here/../tools/node_suite_server.sh"

# Two free ports (the server's, the appservice's): bound by the OS, released, then handed out (as
# conformance/helpers.py does).
read -r port as_port < <("$node22" -e '
  const net = require("net");
  const one = () => new Promise((r) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  (async () => { const a = await one(); let b = await one(); while (b === a) b = await one(); console.log(a, b); })();')
export PARVIS_SERVER_NAME="127.0.0.1:$port" AS_PORT="$as_port"
AS_TOKEN="as-$("$node22" -e 'console.log(require("crypto").randomBytes(16).toString("hex"))')"
HS_TOKEN="hs-$("$node22" -e 'console.log(require("crypto").randomBytes(16).toString("hex"))')"
export AS_TOKEN HS_TOKEN
"$node22" "$here/lib/registration.mjs" > "$work/registration.yaml"

mkdir -p "$work/data"
# The appservice listens on loopback, which [network] deny_ranges holds by default (spec/appservices.md).
PARVIS_LISTEN__CLIENT="127.0.0.1:$port" \
PARVIS_STORAGE__PATH="$work/data" \
PARVIS_RATE_LIMITS__ENABLED=false \
PARVIS_FEDERATION__LISTEN="127.0.0.1:0" \
PARVIS_NETWORK__ALLOW_RANGES='["127.0.0.0/8"]' \
PARVIS_APPSERVICES__REGISTRATION_FILES="[\"$work/registration.yaml\"]" \
  "$bin" serve </dev/null >"$work/server.log" 2>&1 &
pid=$!

url="http://127.0.0.1:$port"
wait_until_ready "$url"

status=0
# In the background so that a signal to this script runs its cleanup at once (bash defers traps while a
# foreground command runs). DEP0060: util._extend, used by the bot-sdk's dependencies.
BOTSDK_LOG_FILE="$work/botsdk.log" PARVIS_URL="$url" \
  "$node22" --disable-warning=DEP0060 --import "$here/lib/without-crypto.mjs" "$here/main.mjs" &
suite=$!
wait "$suite" || status=$?
suite=""
stop_server
[ "$status" -eq 0 ] || keep=1
exit "$status"
