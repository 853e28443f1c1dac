#!/usr/bin/env bash
# The test command: pytest against throwaway PostgreSQL, Redis and anvil (scripts/services.sh);
# the suite starts its own Celery worker and Chromium.
# Arguments (or $PYTEST_ARGS, shell-quoted) go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
if [ ${#args[@]} -eq 0 ] && [ -n "${PYTEST_ARGS:-}" ]; then
  eval "args=($PYTEST_ARGS)"
fi
echo "==> pytest ${args[*]:-}"
exec bash scripts/services.sh .venv/bin/python -m pytest "${args[@]}"
