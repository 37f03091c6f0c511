#!/usr/bin/env bash
# Runs the Synapse-vs-Parvis benchmark (benches/versus.rs) in release mode.
# Usage: bench/run.sh [OPTIONS]   (options as in `bench/run.sh --help`, e.g. --only parvis)
# Results are printed and written to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}"
exec cargo bench --bench versus -- "$@"
