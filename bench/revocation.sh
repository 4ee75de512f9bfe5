#!/usr/bin/env bash
# Revocation across instances (SPEC §9): two `keygate serve` instances on
# one PostgreSQL database, a key deactivated through one and polled through
# the other every 5 ms (bench/revocation.py), TRIALS times for each way
# the change can travel:
#
#   postgres   LISTEN/NOTIFY       (--invalidation postgres)
#   redis      Redis pub/sub       (--invalidation redis --redis-url ...)
#   poll       the cache TTL alone (--invalidation poll, TTL 1 s), with --poll
#
# With push, the instances cache keys for 60 s (--cache-ttl 60000), so only
# the push can explain a change seen sooner.
#
#   bench/revocation.sh [--poll] [--smoke]
#
# Env: TRIALS (default 100; 5 with --smoke), PG_URL (default
#      postgres://postgres@127.0.0.1:5432/test; a database keygate_revocation_<pid>
#      is created on that server and dropped after), REDIS_URL (default
#      redis://127.0.0.1:6379), KEYGATE_BIN (default target/release/keygate,
#      built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

POLL=0 TRIALS=${TRIALS:-100}
for arg in "$@"; do
  case $arg in
    --poll) POLL=1 ;;
    --smoke) TRIALS=5 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${KEYGATE_BIN:-}" ]; then
  cargo build --release --quiet -p keygate-cli
  KEYGATE_BIN=$TARGET/release/keygate
fi

WORK=$(mktemp -d /tmp/keygate-revocation.XXXXXX)
DB=keygate_revocation_$$
# Servers are started inside `$(start …)` (a subshell), so their pids go to
# files, not to a variable of this shell.
stop_all() {
  local f pid
  for f in "$WORK"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$f"
  done
}
cleanup() {
  stop_all
  psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL=${PG_URL%/*}/$DB
API_KEY_PEPPER=$("$KEYGATE_BIN" pepper | sed -n "s/^API_KEY_PEPPER=//p")
export API_KEY_PEPPER
ADMIN_KEY=$("$KEYGATE_BIN" --json create --name revocation-admin --scopes keygate:admin |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')

start() { # name args... ; prints the address
  local name=$1; shift
  "$KEYGATE_BIN" serve --bind 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 1 200); do
    if grep -q "listening on" "$WORK/$name.out" 2>/dev/null; then
      sed -n 's/^listening on //p' "$WORK/$name.out"
      return 0
    fi
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

run() { # label args...
  local label=$1; shift
  local a b
  a=$(start "$label-a" "$@")
  b=$(start "$label-b" "$@")
  python3 bench/revocation.py --a "$a" --b "$b" --admin-key "$ADMIN_KEY" \
    --trials "$TRIALS" --label "$label"
  stop_all
}

run postgres --invalidation postgres --cache-ttl 60000
run redis --invalidation redis --redis-url "$REDIS_URL" --cache-ttl 60000
if [ "$POLL" = 1 ]; then
  run "poll (TTL 1 s)" --invalidation poll
fi
