#!/usr/bin/env bash
# Run a command against throwaway services: PostgreSQL and Redis from Debian packages and
# an anvil chain node from npm, all on free loopback ports, removed afterwards.
# Usage: scripts/services.sh COMMAND [ARGS...]  (the test command and the benchmarks use it)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-noto-cjk)  # Chinese in the browser tests' screenshots
command -v jq >/dev/null || need+=(jq)  # the README's lineage verification with cast, which a test runs
compgen -G "/usr/lib/*/libseccomp.so.2" >/dev/null || need+=(libseccomp2)  # the jail's seccomp filter (pyseccomp)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_dir=$(mktemp -d /tmp/miliao-services.XXXXXX)
chmod 755 "$run_dir"
pg_port=$(free_port)
redis_port=$(free_port)
anvil_port=$(free_port)
pg_data="$run_dir/pg"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  set +e
  as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1
  [ -f "$run_dir/redis.pid" ] && kill "$(cat "$run_dir/redis.pid")" 2>/dev/null
  [ -n "${anvil_pid:-}" ] && kill "$anvil_pid" 2>/dev/null
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

echo "==> starting anvil (chain id 31337) on 127.0.0.1:$anvil_port"
ledger/contracts/node_modules/.bin/anvil --host 127.0.0.1 --port "$anvil_port" --chain-id 31337 \
  >"$run_dir/anvil.log" 2>&1 &
anvil_pid=$!
for _ in $(seq 1 100); do
  .venv/bin/python - "$anvil_port" <<'PY' && break
import json, sys, urllib.request
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}", body, {"content-type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=1).read()
except OSError:
    sys.exit(1)
PY
  kill -0 "$anvil_pid" 2>/dev/null || { echo "anvil did not start:"; cat "$run_dir/anvil.log"; exit 1; }
  sleep 0.2
done

export DATABASE_URL="postgres://miliao:miliao@127.0.0.1:$pg_port/miliao"
export CELERY_BROKER_URL="redis://127.0.0.1:$redis_port/0"
export MILIAO_STATE_DIR="$run_dir/state"
export MILIAO_CHROMIUM=$(command -v chromium)
export CHAIN_RPC_URL="http://127.0.0.1:$anvil_port"
export CHAIN_ID=31337

set +e
"$@"
rc=$?
set -e
exit $rc
