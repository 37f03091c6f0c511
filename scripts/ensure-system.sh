#!/usr/bin/env bash
# Installs the system packages the build needs (libclang for RocksDB's bindings, a C++ compiler),
# when they are missing. With --tests, also what the tests need besides (Chromium, which opens the HTML
# transcript of a room export in tests/export.rs; slapd, the LDAP directory of tests/ldap.rs;
# PostgreSQL, the second storage engine). Safe
# to run repeatedly.
set -euo pipefail

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
# npm installs conformance/js (matrix-js-sdk and the Node 22 that runs it, from the npm registry).
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${1:-}" = "--tests" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # The LDAP directory of tests/ldap.rs (slapd started by the test, on loopback; slapadd loads it).
  [ -x /usr/sbin/slapd ] || need+=(slapd)
  # PostgreSQL: the second storage engine, tested by scripts/with-postgres.sh (a throwaway cluster).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
