#!/usr/bin/env bash
# Runs every test: unit and integration tests (cargo test; tests/oidc.rs runs a real OpenID provider
# from npm, tests/email.rs a real SMTP server from PyPI), the black-box conformance suite
# (matrix-nio against a live server), the matrix-js-sdk suite (conformance/js, Node 22 from npm), the
# matrix-rust-sdk suite (conformance/rust-sdk, its own Cargo workspace),
# the matrix-bot-sdk application service suite (conformance/appservice-js) and the federation
# interop suite (Parvis and Synapse on loopback, both directions); the integration tests and the
# matrix-nio suite run again on the PostgreSQL engine, and the matrix-nio suite once more on a group
# of two processes behind a round-robin proxy. Installs what the build needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system.sh --tests
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parvis-target}"

# The OpenID provider of tests/oidc.rs (node-oidc-provider, and the Node 22 that runs it, pinned in
# tests/oidc/package-lock.json): npm ci when the lockfile changed since the last install.
oidc_want="$(cat tests/oidc/package.json tests/oidc/package-lock.json | sha256sum | cut -d' ' -f1)"
oidc_stamp=tests/oidc/node_modules/.parvis-lock.sha256
if [ "$(cat "$oidc_stamp" 2>/dev/null || true)" != "$oidc_want" ] || [ ! -x tests/oidc/node_modules/.bin/node ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
  echo "$oidc_want" > "$oidc_stamp"
fi

# The SMTP server of tests/email.rs (aiosmtpd, pinned in tests/smtp/requirements.txt) in its own
# virtualenv, installed when the requirements changed.
smtp_venv="${PARVIS_SMTP_VENV:-$HOME/.cache/parvis-smtp-venv}"
[ -x "$smtp_venv/bin/python" ] || python3 -m venv "$smtp_venv"
smtp_want="$(sha256sum tests/smtp/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$smtp_venv/.parvis-requirements.sha256" 2>/dev/null || true)" != "$smtp_want" ]; then
  "$smtp_venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/smtp/requirements.txt
  echo "$smtp_want" > "$smtp_venv/.parvis-requirements.sha256"
fi

cargo build --bins --tests
# A failing cargo test must not stop the other suites (set -e with pipefail would).
set +e
cargo test --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/parvis-cargo-test.log"
cargo_status=${PIPESTATUS[0]}
set -e

conformance_status=0
PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" bash conformance/run.sh || conformance_status=$?

# The Rust integration tests and the matrix-nio suite a second time, on the PostgreSQL engine: a
# throwaway cluster (scripts/with-postgres.sh), each test server in its own schema. Then the
# matrix-nio suite a third time with every server a group of two processes on one schema, behind
# a round-robin proxy (PARVIS_TEST_CLUSTER, conformance/tools/round_robin_proxy.py).
postgres_status=0
PARVIS_TEST_ENGINE=postgres PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" bash scripts/with-postgres.sh \
  bash -c 'cargo test --no-fail-fast --test "*"; rust=$?; bash conformance/run.sh; nio=$?;
           PARVIS_TEST_CLUSTER=2 bash conformance/run.sh; group=$?;
           [ $rust -eq 0 ] && [ $nio -eq 0 ] && [ $group -eq 0 ]' \
  || postgres_status=$?

# matrix-js-sdk (the engine of Element Web) with threads on, against its own live server.
js_status=0
PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" bash conformance/js/run.sh || js_status=$?

# matrix-rust-sdk (the engine of Element X): its own Cargo workspace and target folder
# (conformance/rust-sdk; about 12 minutes to build cold, 25 s to run), against its own live server.
rust_sdk_status=0
PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" bash conformance/rust-sdk/run.sh || rust_sdk_status=$?

# A matrix-bot-sdk application service (registration file, transactions, ghosts, queries), its own server.
appservice_js_status=0
PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" bash conformance/appservice-js/run.sh || appservice_js_status=$?

# Federation interop with a real Synapse 1.163.2 (installed from PyPI on first use), both directions.
federation_status=0
FEDERATION_PAIRS="${FEDERATION_PAIRS:-synapse-parvis,parvis-synapse}" PARVIS_BIN="$CARGO_TARGET_DIR/debug/parvis" \
  bash conformance/federation/run.sh || federation_status=$?

if [ "$cargo_status" -ne 0 ] || [ "$conformance_status" -ne 0 ] || [ "$postgres_status" -ne 0 ] || [ "$js_status" -ne 0 ] || [ "$rust_sdk_status" -ne 0 ] || [ "$appservice_js_status" -ne 0 ] || [ "$federation_status" -ne 0 ]; then
  echo "tests failed: cargo test exit $cargo_status, conformance exit $conformance_status, on PostgreSQL exit $postgres_status, matrix-js-sdk exit $js_status, matrix-rust-sdk exit $rust_sdk_status, matrix-bot-sdk appservice exit $appservice_js_status, federation exit $federation_status" >&2
  exit 1
fi
