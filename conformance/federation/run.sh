#!/usr/bin/env bash
# Federation interop harness: Synapse 1.163.2 (PyPI) and/or Parvis as a pair of homeservers on loopback.
#   FEDERATION_PAIRS  comma-separated pairs "<A>-<B>" (A creates the rooms, B is the remote side);
#                     default synapse-synapse; with Parvis: synapse-parvis,parvis-synapse
#   PARVIS_BIN        the parvis binary (default ${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis)
#   PARVIS_VENV       virtualenv of the test driver (default $HOME/.cache/parvis-conformance-venv, shared with
#                     the client-side suite in ../)
#   PARVIS_SYNAPSE_VENV  virtualenv holding matrix-synapse (default $HOME/.cache/parvis-synapse-venv)
# Extra arguments are passed to pytest; the exit code is pytest's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$(dirname "$here")/venv.sh"
export FEDERATION_PAIRS="${FEDERATION_PAIRS:-synapse-synapse}"

# Synapse's venv (installed once from PyPI wheels; also needed for Parvis pairs: it makes the certificates).
"$venv/bin/python" -c "import sys; sys.path.insert(0, sys.argv[1]); import homeservers; homeservers.ensure_synapse()" "$here"

run_pytest "$here" "$@"
