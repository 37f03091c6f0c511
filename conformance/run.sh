#!/usr/bin/env bash
# Black-box conformance suite for Parvis: runs pytest with matrix-nio against the parvis binary.
#   PARVIS_BIN   path of the parvis binary (default: ${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis)
#   PARVIS_VENV  virtualenv to create/reuse (default: $HOME/.cache/parvis-conformance-venv)
# Extra arguments are passed to pytest; the exit code is pytest's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PARVIS_VENV:-$HOME/.cache/parvis-conformance-venv}"
req="$here/requirements.txt"
export PARVIS_BIN="${PARVIS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis}"

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

# Run the whole suite unless test paths were given (relative to the caller's directory).
targets=("$here")
for arg in "$@"; do
  case "$arg" in -*) ;; *) if [ -e "${arg%%::*}" ]; then targets=(); break; fi ;; esac
done
set +e
"$venv/bin/python" -m pytest "${targets[@]}" -q -p no:cacheprovider "$@"
rc=$?
set -e
exit "$rc"
