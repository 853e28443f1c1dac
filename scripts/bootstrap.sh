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
