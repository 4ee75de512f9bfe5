#!/usr/bin/env bash
# Property-based test of `keygate serve` against its own OpenAPI document:
# schemathesis generates requests from /openapi.json (valid and invalid
# ones, then stateful sequences following the document's links) and runs
# every check (`--checks all`): no 5xx, only documented statuses, content
# types and headers, bodies matching their schemas, invalid data refused,
# valid data accepted, deleted keys gone, unsupported methods 405, ...
#
#   tools/schemathesis/run.sh            about 4 minutes (MAX_TIME seconds of generation)
#
# Env: MAX_TIME (s, default 240), SEED (default: random;
# the seed is printed, so a failure can be replayed with SEED=...),
# KEYGATE_BIN (default: target/release/keygate, built if needed),
# REPORT_DIR (if set: a HAR file of every request and the server's log
# are written there).
# Exits non-zero on any failure or warning (see schemathesis.toml).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
MAX_TIME=${MAX_TIME:-240}
HERE=tools/schemathesis
TARGET=${CARGO_TARGET_DIR:-target}

# Our own virtualenv, reused while the pinned version stays the same.
VENV=$TARGET/schemathesis-venv
if [ ! -f "$VENV/.installed-$SCHEMATHESIS_VERSION" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
  touch "$VENV/.installed-$SCHEMATHESIS_VERSION"
fi

# The release binary (already built by bench/http.sh in CI: then this is
# a no-op).
if [ -z "${KEYGATE_BIN:-}" ]; then
  cargo build --release --quiet -p keygate-cli
  KEYGATE_BIN=$TARGET/release/keygate
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$WORK/keygate.db"
API_KEY_PEPPER=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export API_KEY_PEPPER

# The admin key schemathesis authenticates with, made the way an operator
# makes the first one.
"$KEYGATE_BIN" --json create --name schemathesis-admin --scopes keygate:admin >"$WORK/admin.json"
read -r ADMIN_KEY ADMIN_ID < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["api_key"], d["entity"]["id"])' "$WORK/admin.json")
rm "$WORK/admin.json"

# Port 0: the server picks a free port and prints the address it bound.
"$KEYGATE_BIN" serve --bind 127.0.0.1:0 >"$WORK/stdout.log" 2>"$WORK/server.log" &
SERVER_PID=$!
BASE=
for _ in $(seq 1 100); do
  BASE=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$WORK/stdout.log")
  [ -n "$BASE" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$BASE" ]; then
  echo "keygate serve did not start; its log:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi
echo "keygate serve on $BASE (pid $SERVER_PID)"

EXTRA_ARGS=()
[ -n "${SEED:-}" ] && EXTRA_ARGS+=(--seed "$SEED")
if [ -n "${REPORT_DIR:-}" ]; then
  mkdir -p "$REPORT_DIR"
  REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
  EXTRA_ARGS+=(--report har --report-dir "$REPORT_DIR")
fi

# One worker: with several, hypothesis's lambda descriptions hit a CPython
# 3.11 `ast.parse` thread-safety bug ("AST constructor recursion depth
# mismatch"), which schemathesis reports as a runtime error.
# Run from the temporary directory: whatever schemathesis or hypothesis
# writes to the current directory goes away with it.
status=0
HERE=$(pwd)/$HERE VENV=$(cd "$VENV" && pwd)
(cd "$WORK" && KEYGATE_ADMIN_ID=$ADMIN_ID KEYGATE_ADMIN_KEY=$ADMIN_KEY KEYGATE_BASE_URL=$BASE \
  KEYGATE_DROPPED_LOG=$WORK/dropped.log \
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$HERE \
  "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $ADMIN_KEY" \
  --max-time "$MAX_TIME" \
  --workers 1 \
  --request-timeout 10 \
  "${EXTRA_ARGS[@]}") || status=$?
if [ -n "${REPORT_DIR:-}" ]; then cp "$WORK/server.log" "$REPORT_DIR/server.log"; fi
if [ -s "$WORK/dropped.log" ]; then
  echo "Failures dropped by tools/schemathesis/hooks.py (each a known false positive):"
  sort "$WORK/dropped.log" | uniq -c | sort -rn
fi

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "keygate serve died during the run; its log:" >&2
  tail -50 "$WORK/server.log" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "schemathesis: FAILED (exit $status); last lines of the server log:" >&2
  tail -20 "$WORK/server.log" >&2
fi
exit "$status"
