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

# Both commands need the pinned Node packages in ledger/contracts: anvil (the chain node the
# demo runs and the tests start), cast (the tests verify anchors from outside with it, as the
# README tells an auditor to) and solc (the tests prove the committed contract build is
# current). Reinstalled only when the lock file changed.
npm_stamp="ledger/contracts/node_modules/.installed-$(sha256sum ledger/contracts/package-lock.json | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> installing Debian packages: nodejs npm"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    else
      echo "npm is needed to install the chain node (anvil): install Node.js and npm, then run this again" >&2
      exit 1
    fi
  fi
  echo "==> installing anvil, cast and solc into ledger/contracts/node_modules"
  npm ci --prefix ledger/contracts --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi

# The portal's browser libraries, served by the platform itself (no CDN): Leaflet (maps),
# Apache ECharts (charts) and axe-core (the accessibility check the tests run in the page).
# The files the pages load are copied into frontend/vendor/, served under /static/vendor/.
frontend_stamp="frontend/node_modules/.installed-$(sha256sum frontend/package-lock.json | cut -c1-16)"
if [ ! -f "$frontend_stamp" ] || [ ! -f frontend/vendor/.complete ]; then
  echo "==> installing Leaflet, ECharts and axe-core into frontend/node_modules"
  npm ci --prefix frontend --no-audit --no-fund --loglevel=error
  rm -rf frontend/vendor
  mkdir -p frontend/vendor/leaflet frontend/vendor/echarts frontend/vendor/axe-core
  cp -R frontend/node_modules/leaflet/dist/leaflet.js frontend/node_modules/leaflet/dist/leaflet.js.map frontend/node_modules/leaflet/dist/leaflet.css \
    frontend/node_modules/leaflet/dist/images frontend/node_modules/leaflet/LICENSE frontend/vendor/leaflet/
  cp frontend/node_modules/echarts/dist/echarts.min.js frontend/node_modules/echarts/LICENSE frontend/vendor/echarts/
  cp frontend/node_modules/axe-core/axe.min.js frontend/node_modules/axe-core/LICENSE frontend/vendor/axe-core/
  touch "$frontend_stamp" frontend/vendor/.complete
fi

# The test command also needs the outside verifier in Node.js (canonicalize, ethers), which a
# test runs on an export as the README tells an auditor to.
if [ -n "$extras" ]; then
  verify_js_stamp="ledger/verify-js/node_modules/.installed-$(sha256sum ledger/verify-js/package-lock.json | cut -c1-16)"
  if [ ! -f "$verify_js_stamp" ]; then
    echo "==> installing canonicalize and ethers into ledger/verify-js/node_modules"
    npm ci --prefix ledger/verify-js --no-audit --no-fund --loglevel=error
    touch "$verify_js_stamp"
  fi
  # tests/deploy checks deploy/'s compose files with Debian's docker-compose (`config` needs no
  # Docker engine); its other validators are Python packages of the test extra.
  if ! command -v docker-compose >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> installing Debian packages: docker-compose"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    else
      echo "docker-compose is needed by tests/deploy: install Debian's docker-compose, then run this again" >&2
      exit 1
    fi
  fi
fi
