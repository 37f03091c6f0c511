#!/usr/bin/env bash
# Runs the Synapse-vs-Parvis benchmark (benches/versus.rs) in release mode.
# Usage: bench/run.sh [OPTIONS]   (options as in `bench/run.sh --help`, e.g. --only parvis)
# Results are printed and written to bench/results.md. When PostgreSQL is installed
# (scripts/ensure-system.sh --tests) and no --postgres / PARVIS_TEST_PG is given, a throwaway
# cluster with PostgreSQL's default durability serves the column "Parvis on PostgreSQL".
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}"
if [ -z "${PARVIS_TEST_PG:-}" ] && [[ " $* " != *" --postgres"* ]] && ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  exec env PARVIS_PG_DURABLE=1 scripts/with-postgres.sh cargo bench --bench versus -- "$@"
fi
exec cargo bench --bench versus -- "$@"
