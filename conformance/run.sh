#!/usr/bin/env bash
# Black-box conformance suite for Parvis: runs pytest with matrix-nio against the parvis binary.
#   PARVIS_BIN   path of the parvis binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis)
#   PARVIS_VENV  virtualenv to create/reuse (default: $HOME/.cache/parvis-conformance-venv)
# Extra arguments are passed to pytest; the exit code is pytest's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv.sh"
run_pytest "$here" "$@"
