# Sourced by conformance/run.sh and conformance/federation/run.sh: creates or reuses the test driver's
# virtualenv and installs conformance/requirements.txt when it changed. Sets $venv.
conformance_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PARVIS_VENV:-$HOME/.cache/parvis-conformance-venv}"
export PARVIS_BIN="${PARVIS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}/debug/parvis}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
_want="$(sha256sum "$conformance_dir/requirements.txt" | cut -d' ' -f1)"
_stamp="$venv/.parvis-requirements.sha256"
if [ "$(cat "$_stamp" 2>/dev/null || true)" != "$_want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$conformance_dir/requirements.txt"
  echo "$_want" > "$_stamp"
fi

# Runs pytest on `$1` (a folder) unless test paths are among the other arguments (relative to the
# caller's directory), passing every argument on; the exit code is pytest's.
run_pytest() {
  local folder="$1"; shift
  local targets=("$folder")
  for arg in "$@"; do
    case "$arg" in -*) ;; *) if [ -e "${arg%%::*}" ]; then targets=(); break; fi ;; esac
  done
  set +e
  "$venv/bin/python" -m pytest -c "$folder/pytest.ini" --rootdir "$folder" "${targets[@]}" -q -p no:cacheprovider "$@"
  local rc=$?
  set -e
  return "$rc"
}
