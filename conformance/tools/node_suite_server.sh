# Sourced by the Node suites' run.sh (conformance/js, conformance/appservice-js) and by
# conformance/rust-sdk/run.sh (which does not use `wait_until_ready`): waiting for the
# live parvis (`pid`, its log in `$work/server.log`) to answer, stopping it and the suite's process
# (`suite`), and removing the temporary directory `work` on exit, unless the run failed (`keep` set)
# or `keep_logs` is non-empty, when `logs_kept_message` is printed and only the database is removed.
# The sourcing script sets `work`, `keep_logs` and `logs_kept_message` first (and `node22` for
# `wait_until_ready`).
pid=""
stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
keep=""
suite=""
cleanup() {
  if [ -n "$suite" ] && kill -0 "$suite" 2>/dev/null; then
    kill -TERM "$suite" 2>/dev/null || true
    wait "$suite" 2>/dev/null || true
  fi
  stop_server
  if [ -n "$keep" ] || [ -n "$keep_logs" ]; then
    echo "$logs_kept_message" >&2
    rm -rf "$work/data"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Returns once GET <url>/_matrix/client/versions answers 200 (polled every 50 ms, 30 s limit); else
# prints the end of the server's log and exits 1 (logs kept).
wait_until_ready() {
  if ! PARVIS_PID="$pid" "$node22" -e '
    const url = process.argv[1] + "/_matrix/client/versions";
    const deadline = Date.now() + 30000;
    const alive = () => { try { process.kill(Number(process.env.PARVIS_PID), 0); return true; } catch { return false; } };
    (async () => {
      while (Date.now() < deadline && alive()) {
        try { if ((await fetch(url)).status === 200) process.exit(0); } catch {}
        await new Promise((r) => setTimeout(r, 50));
      }
      process.exit(1);
    })();' "$1"; then
    echo "parvis did not answer GET /_matrix/client/versions within 30 s; its log:" >&2
    tail -n 60 "$work/server.log" >&2
    keep=1
    exit 1
  fi
}
