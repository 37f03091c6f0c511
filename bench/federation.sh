#!/usr/bin/env bash
# Federation join bench (bench/federation_join.py): a Synapse user joins a big Parvis room, a Parvis user
# joins a big Synapse room, side by side with Synapse-to-Synapse (and Parvis-to-Parvis), on loopback.
# Builds Parvis in release mode first; Synapse 1.163.2 comes from PyPI (the interop harness's venv).
# Usage: bash bench/federation.sh [--members 1000] [--state 5000] [--pairs host-joiner,...]
# Results are printed and written to bench/federation-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}"
# The release binary as bench/run.sh builds it (`cargo bench` builds the package's binary with the
# dev-dependencies' features): one release build serves both benches.
cargo bench --bench versus --no-run
export PARVIS_BIN="${PARVIS_BIN:-$CARGO_TARGET_DIR/release/parvis}"
source conformance/venv.sh
"$venv/bin/python" -c "import sys; sys.path.insert(0, 'conformance/federation'); import homeservers; homeservers.ensure_synapse()"
exec "$venv/bin/python" bench/federation_join.py "$@"
