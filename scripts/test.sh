#!/usr/bin/env bash
# The test command: throwaway PostgreSQL and Redis from Debian packages, pytest against
# them (the suite starts its own Celery worker and Chromium), then cleanup.
# Arguments (or $PYTEST_ARGS, shell-quoted) go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_dir=$(mktemp -d /tmp/miliao-test.XXXXXX)
chmod 755 "$run_dir"
pg_port=$(free_port)
redis_port=$(free_port)
pg_data="$run_dir/pg"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  set +e
  as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1
  [ -f "$run_dir/redis.pid" ] && kill "$(cat "$run_dir/redis.pid")" 2>/dev/null
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

echo "==> starting PostgreSQL on 127.0.0.1:$pg_port and Redis on 127.0.0.1:$redis_port"
mkdir -p "$pg_data"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_data"
as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w \
  -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q \
  -c "CREATE ROLE miliao LOGIN SUPERUSER PASSWORD 'miliao'" -c "CREATE DATABASE miliao OWNER miliao"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize yes --pidfile "$run_dir/redis.pid" --dir "$run_dir" --logfile "$run_dir/redis.log"

export DATABASE_URL="postgres://miliao:miliao@127.0.0.1:$pg_port/miliao"
export CELERY_BROKER_URL="redis://127.0.0.1:$redis_port/0"
export MILIAO_STATE_DIR="$run_dir/state"
export MILIAO_CHROMIUM=$(command -v chromium)

args=("$@")
if [ ${#args[@]} -eq 0 ] && [ -n "${PYTEST_ARGS:-}" ]; then
  eval "args=($PYTEST_ARGS)"
fi
echo "==> pytest ${args[*]:-}"
set +e
.venv/bin/python -m pytest "${args[@]}"
rc=$?
set -e
exit $rc
