#!/usr/bin/env bash
# matrix-js-sdk suite: starts its own parvis on a free loopback port with a temporary data directory, runs
# main.mjs with the Node 22 of the npm package `node` (pinned in package-lock.json), stops the server.
#   PARVIS_BIN   path of the parvis binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis)
#   JS_KEEP_LOGS=1  keep the temporary directory (server.log, sdk.log: all the SDK's logging) even when all passed
# Arguments: scenario names to run (default: all). Exits non-zero when a check fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${PARVIS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis}"
if [ ! -x "$bin" ]; then
  echo "parvis binary not found or not executable: $bin (set PARVIS_BIN)" >&2
  exit 2
fi

# npm ci only when the lockfile changed since the last install (a stamp inside node_modules).
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$here/node_modules/.parvis-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || [ ! -x "$here/node_modules/.bin/node" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  if [ ! -x "$here/node_modules/.bin/node" ]; then
    echo "npm ci did not install node_modules/.bin/node (the npm package 'node' brings it with its preinstall script: were install scripts disabled?)" >&2
    exit 2
  fi
  echo "$want" > "$stamp"
fi
node22="$here/node_modules/.bin/node"

work="$(mktemp -d "${TMPDIR:-/tmp}/parvis-js-XXXXXX")"
keep_logs="${JS_KEEP_LOGS:-}"
logs_kept_message="logs kept: $work/server.log (parvis), $work/sdk.log (matrix-js-sdk)"
# shellcheck source=../tools/node_suite_server.sh
source "$here/../tools/node_suite_server.sh"

# A free port: bound by the OS, released, then given to parvis (as conformance/helpers.py does).
port="$("$node22" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
mkdir -p "$work/data"
PARVIS_SERVER_NAME="127.0.0.1:$port" \
PARVIS_LISTEN__CLIENT="127.0.0.1:$port" \
PARVIS_STORAGE__PATH="$work/data" \
PARVIS_RATE_LIMITS__ENABLED=false \
PARVIS_FEDERATION__LISTEN="127.0.0.1:0" \
  "$bin" serve </dev/null >"$work/server.log" 2>&1 &
pid=$!

url="http://127.0.0.1:$port"
wait_until_ready "$url"

status=0
# In the background so that a signal to this script runs its cleanup at once (bash defers traps while a
# foreground command runs).
JS_SDK_LOG_FILE="$work/sdk.log" PARVIS_URL="$url" PARVIS_SERVER_NAME="127.0.0.1:$port" "$node22" "$here/main.mjs" "$@" &
suite=$!
wait "$suite" || status=$?
suite=""
stop_server
[ "$status" -eq 0 ] || keep=1
exit "$status"
