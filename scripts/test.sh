#!/usr/bin/env bash
# Runs every test: unit and integration tests (cargo test), then the black-box conformance suite
# (matrix-nio against a live server). Installs what the build needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}"

cargo build --bins --tests
cargo test --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/parvis-cargo-test.log"
cargo_status=${PIPESTATUS[0]}

conformance_status=0
if [ -f conformance/run.sh ]; then
  PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" bash conformance/run.sh || conformance_status=$?
fi

if [ "$cargo_status" -ne 0 ] || [ "$conformance_status" -ne 0 ]; then
  echo "tests failed: cargo test exit $cargo_status, conformance exit $conformance_status" >&2
  exit 1
fi
