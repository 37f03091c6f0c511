# Sourced by the Node suites' run.sh (conformance/js, conformance/appservice-js): stopping the live
# parvis (`pid`) and the suite's process (`suite`), and removing the temporary directory `work` on
# exit, unless the run failed (`keep` set) or `keep_logs` is non-empty, when `logs_kept_message` is
# printed and only the database is removed. The sourcing script sets `work`, `keep_logs` and
# `logs_kept_message` first.
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
