#!/usr/bin/env bash
# Builds and starts Parvis. With no arguments it runs on the embedded default configuration
# (server name localhost:8008, client API on http://127.0.0.1:8008, data in ./parvis-data).
# Arguments are passed to `parvis serve` (for example `--config config/parvis.example.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}"
profile="${PARVIS_PROFILE:-release}"
if [ "$profile" = "release" ]; then
  cargo build --release --bin parvis
  exec "$CARGO_TARGET_DIR/release/parvis" serve "$@"
else
  cargo build --bin parvis
  exec "$CARGO_TARGET_DIR/debug/parvis" serve "$@"
fi
