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
parent="$(dirname "$here")"
venv="${PARVIS_VENV:-$HOME/.cache/parvis-conformance-venv}"
req="$parent/requirements.txt"
export PARVIS_BIN="${PARVIS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis}"
export FEDERATION_PAIRS="${FEDERATION_PAIRS:-synapse-synapse}"

# The driver's venv: same requirements and stamp as ../run.sh.
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.parvis-requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi

# Synapse's venv (installed once from PyPI wheels; also needed for Parvis pairs: it makes the certificates).
"$venv/bin/python" -c "import sys; sys.path.insert(0, sys.argv[1]); import homeservers; homeservers.ensure_synapse()" "$here"

# Run the whole folder unless test paths were given (relative to the caller's directory).
targets=("$here")
for arg in "$@"; do
  case "$arg" in -*) ;; *) if [ -e "${arg%%::*}" ]; then targets=(); break; fi ;; esac
done
set +e
"$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" "${targets[@]}" -q -p no:cacheprovider "$@"
rc=$?
set -e
exit "$rc"
