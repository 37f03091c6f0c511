#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL on loopback (Debian's, installed by
# scripts/ensure-system.sh --tests), exporting PARVIS_TEST_PG (its URL); stops and deletes it
# after. initdb refuses root: as root, the cluster runs as the `postgres` user.
#   scripts/with-postgres.sh cargo test
set -euo pipefail

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$pgbin" ]; then
  echo "PostgreSQL is not installed: run scripts/ensure-system.sh --tests" >&2
  exit 2
fi
dir="$(mktemp -d "${TMPDIR:-/tmp}/parvis-pg-XXXXXX")"
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${as_owner[@]}" "$pgbin/initdb" -D "$dir/data" -A trust -U parvis --no-sync >"$dir/initdb.log" 2>&1
# Durability is not what the tests check: no fsync, and no waiting for the WAL. The bench
# (PARVIS_PG_DURABLE=1) keeps PostgreSQL's defaults, as a real deployment would.
settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if [ "${PARVIS_PG_DURABLE:-0}" = 1 ]; then
  settings=""
fi
"${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
  "-k $dir -c listen_addresses=127.0.0.1 -p $port $settings -c max_connections=400" \
  start >/dev/null
stop() {
  "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
export PARVIS_TEST_PG="postgresql://parvis@127.0.0.1:$port/postgres"
"$@"
