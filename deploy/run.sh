#!/usr/bin/env bash
# Three `keygate serve` instances on PostgreSQL + Redis behind nginx, on
# this machine, with the files of this directory (nginx.conf).
#
#   deploy/run.sh up                 start them; Ctrl-C stops everything
#   deploy/run.sh rolling-restart    start them, put wrk load through nginx
#                                    for DURATION s and restart the three
#                                    instances one after another (SIGTERM,
#                                    start again, wait for /readyz); fails
#                                    unless every request succeeded
#
# Env: PG_URL (default postgres://postgres@127.0.0.1:5432/test; a database
#      keygate_deploy_<pid> is created on that server and dropped after),
#      REDIS_URL (default redis://127.0.0.1:6379), DURATION (default 60),
#      KEYGATE_BIN (default target/release/keygate, built if missing).
# Ports: free ones, picked at start (nothing fixed, nothing shared).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-up}
case $MODE in
  up|rolling-restart) ;;
  -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
  *) echo "usage: deploy/run.sh up|rolling-restart" >&2; exit 2 ;;
esac

PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
DURATION=${DURATION:-60}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${KEYGATE_BIN:-}" ]; then
  cargo build --release --quiet -p keygate-cli
  KEYGATE_BIN=$TARGET/release/keygate
fi
for tool in nginx psql; do
  command -v "$tool" >/dev/null || { echo "deploy/run.sh needs $tool" >&2; exit 1; }
done
if [ "$MODE" = rolling-restart ] && ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian packages" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

WORK=$(mktemp -d /tmp/keygate-deploy.XXXXXX)
DB=keygate_deploy_$$
DB_URL=${PG_URL%/*}/$DB
PIDS=(0 0 0)
NGINX_PID=

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do [ "$pid" != 0 ] && kill "$pid" 2>/dev/null; done
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
  wait 2>/dev/null
  psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() { # port
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "instance on port $1 not ready; its log:" >&2
  cat "$WORK/keygate-$1.log" >&2
  exit 1
}

psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL=$DB_URL REDIS_URL
API_KEY_PEPPER=$("$KEYGATE_BIN" pepper | sed -n "s/^API_KEY_PEPPER=//p")
export API_KEY_PEPPER
ADMIN=$("$KEYGATE_BIN" --json create --name deploy-admin --scopes keygate:admin)
ADMIN_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$ADMIN")
ADMIN_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["entity"]["id"])' <<<"$ADMIN")

PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
NGINX_PORT=$(free_port)

start_instance() { # index
  local port=${PORTS[$1]}
  "$KEYGATE_BIN" serve --bind "127.0.0.1:$port" >>"$WORK/keygate-$port.out" 2>>"$WORK/keygate-$port.log" &
  PIDS[$1]=$!
  wait_ready "$port"
}

for i in 0 1 2; do start_instance "$i"; done

sed -e "s/127.0.0.1:8100/127.0.0.1:$NGINX_PORT/" \
    -e "s/127.0.0.1:8101/127.0.0.1:${PORTS[0]}/" \
    -e "s/127.0.0.1:8102/127.0.0.1:${PORTS[1]}/" \
    -e "s/127.0.0.1:8103/127.0.0.1:${PORTS[2]}/" \
    deploy/nginx.conf >"$WORK/nginx.conf"
mkdir -p "$WORK/nginx"
nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" \
  -g "daemon off; worker_processes 2; pid $WORK/nginx.pid; error_log $WORK/nginx-error.log warn;" &
NGINX_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$NGINX_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fsS "http://127.0.0.1:$NGINX_PORT/readyz" >/dev/null

echo "nginx on http://127.0.0.1:$NGINX_PORT -> keygate on ports ${PORTS[*]} (PostgreSQL database $DB, Redis $REDIS_URL)"

if [ "$MODE" = up ]; then
  echo "admin key (shown once): $ADMIN_KEY"
  echo "try: curl -H 'Authorization: Bearer <admin key>' http://127.0.0.1:$NGINX_PORT/api-keys"
  echo "Ctrl-C stops everything and drops the database"
  wait "$NGINX_PID"
  exit 0
fi

# Rolling restart under load: wrk for DURATION s; instance i is restarted
# at DURATION*(i+1)/4 s.
URL="http://127.0.0.1:$NGINX_PORT/api-keys/$ADMIN_ID"
wrk -t2 -c32 -d"${DURATION}s" --latency -s deploy/statuses.lua -H "Authorization: Bearer $ADMIN_KEY" "$URL" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
RESTARTS=()
for i in 0 1 2; do
  sleep $((DURATION / 4))
  port=${PORTS[$i]}
  started=$(date +%s.%N)
  kill -TERM "${PIDS[$i]}"
  code=0; wait "${PIDS[$i]}" || code=$?
  [ "$code" = 0 ] || { echo "instance on port $port exited with $code after SIGTERM" >&2; cat "$WORK/keygate-$port.log" >&2; exit 1; }
  start_instance "$i"
  RESTARTS+=("$(python3 -c "import time; print(f'{(time.time()-$started)*1000:.0f}')")")
  echo "instance on port $port: stopped (exit 0) and ready again in ${RESTARTS[-1]} ms"
done
wait "$WRK_PID"
cat "$WORK/wrk.txt"

python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
total = int(re.search(r"(\d+) requests in", text).group(1))
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
socket = sum(map(int, m.groups())) if (m := re.search(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)) else 0
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)
print(f"rolling restart: {total} requests, {rps} req/s, p99 {p99}, "
      f"non-2xx {non2xx}, socket errors {socket}")
if total == 0 or non2xx or socket:
    sys.exit("FAILED: requests failed during the rolling restart")
PY
if grep -qi "error" "$WORK/nginx-error.log" 2>/dev/null; then
  echo "nginx logged (retried upstream errors, not failed requests):"
  grep -ci "upstream" "$WORK/nginx-error.log" || true
fi
