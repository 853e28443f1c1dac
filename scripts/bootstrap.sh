#!/usr/bin/env bash
# Create or reuse .venv at the repo root and install the pinned dependencies.
# Re-installs only when pyproject.toml changed. Usage: scripts/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras:+-test}"
if [ ! -f "$stamp" ]; then
  echo "==> installing dependencies into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is installed first and alone so that pip takes the local CPU wheel and never
  # resolves a CUDA build from the index.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".${extras}"
  rm -f .venv/.installed-*
  touch "$stamp"
  # The test extra also satisfies the plain demo.
  [ -n "$extras" ] && touch "${stamp%-test}"
fi

# The test command also needs Node packages: solc (to prove the committed contract build
# is current) and anvil (the chain node). Reinstalled only when the lock file changed.
if [ -n "$extras" ]; then
  npm_stamp="ledger/contracts/node_modules/.installed-$(sha256sum ledger/contracts/package-lock.json | cut -c1-16)"
  if [ ! -f "$npm_stamp" ]; then
    echo "==> installing solc and anvil into ledger/contracts/node_modules"
    npm ci --prefix ledger/contracts --no-audit --no-fund --loglevel=error
    touch "$npm_stamp"
  fi
  # The outside verifier in Node.js (canonicalize, ethers), which a test runs on an export.
  verify_js_stamp="ledger/verify-js/node_modules/.installed-$(sha256sum ledger/verify-js/package-lock.json | cut -c1-16)"
  if [ ! -f "$verify_js_stamp" ]; then
    echo "==> installing canonicalize and ethers into ledger/verify-js/node_modules"
    npm ci --prefix ledger/verify-js --no-audit --no-fund --loglevel=error
    touch "$verify_js_stamp"
  fi
fi
