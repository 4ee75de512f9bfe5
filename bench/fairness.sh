#!/usr/bin/env bash
# Fair hashing under a flood (issue "Hardening", item 2): `keygate serve`
# (SQLite, Argon2id defaults) is flooded by wrk with 256 connections of
# random keys and wrong secrets for a real key id on POST /api-keys/verify,
# while a second client creates keys and verifies each new key once (its
# first verification pays an Argon2 hash). Prints p50/p95 of those two
# operations idle and under the flood, and what the flood got.
#
#   bench/fairness.sh            30 s flood; up to 20 creates + 20 first verifies during it
#   bench/fairness.sh --smoke    3 s flood, 3 + 3 (checks the script works)
#
# Env: CONNS (default 256), DURATION (s, default 30), SAMPLES (default 20),
# KEYGATE_BIN (another build to measure, e.g. an older commit's).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-256} DURATION=${DURATION:-30} SAMPLES=${SAMPLES:-20}
case "${1:-}" in
  --smoke) CONNS=16 DURATION=3 SAMPLES=3 ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian packages" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

TARGET=${CARGO_TARGET_DIR:-target}
WORK=$TARGET/bench-fairness
rm -rf "$WORK" && mkdir -p "$WORK"
BIN=${KEYGATE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet -p keygate-cli
  BIN=$TARGET/release/keygate
fi
export DATABASE_URL="sqlite://$WORK/keys.db" API_KEY_PEPPER=bench-fairness-pepper
PORT=${PORT:-18090}

ADMIN=$("$BIN" --json create --name admin --scopes keygate:admin | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
VICTIM_ID=$("$BIN" --json create --name victim | python3 -c 'import json,sys; print(json.load(sys.stdin)["entity"]["key_id"])')

"$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

cat >"$WORK/flood.lua" <<'LUA'
-- Half random keys (unknown key ids), half wrong secrets for a real key id.
local alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local hex = "0123456789abcdef"
local known = os.getenv("VICTIM_ID")
local n = 0
local function rnd(set, len)
  local t = {}
  for i = 1, len do
    local k = math.random(#set)
    t[i] = set:sub(k, k)
  end
  return table.concat(t)
end
function init(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end
function request()
  n = n + 1
  local id = (n % 2 == 0) and known or rnd(hex, 16)
  local body = '{"api_key":"ak_v1-' .. id .. '-' .. rnd(alnum, 64) .. '"}'
  return wrk.format("POST", "/api-keys/verify", { ["Content-Type"] = "application/json" }, body)
end
LUA

# Creates SAMPLES keys and verifies each once; prints p50/p95 of both, in ms.
# With a flood's pid, stops when the flood ends (so no sample is taken
# after it) and says how many samples fit.
probe() { # label [flood pid]
  python3 - "$1" "$PORT" "$ADMIN" "$SAMPLES" "${2:-}" <<'PY'
import json, os, statistics, sys, time, urllib.request, urllib.error
label, port, admin, samples, flood = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
base = f"http://127.0.0.1:{port}"
def call(method, path, body, key=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, payload = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        status, payload = e.code, None
    return status, payload, (time.perf_counter() - start) * 1000
creates, verifies, errors = [], [], 0
for i in range(samples):
    if flood and not os.path.exists(f"/proc/{flood}"):
        break
    status, payload, ms = call("POST", "/api-keys", {"name": f"{label}-{i}"}, admin)
    creates.append(ms)
    if status != 201:
        errors += 1
        continue
    status, _, ms = call("POST", "/api-keys/verify", {"api_key": payload["api_key"]})
    verifies.append(ms)
    errors += status != 200
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
print(f"{label:>6} ({len(creates)} samples): create p50 {q(creates, .5):7.1f} ms  p95 {q(creates, .95):7.1f} ms | "
      f"first verify p50 {q(verifies, .5):7.1f} ms  p95 {q(verifies, .95):7.1f} ms | errors {errors}")
PY
}

echo "keygate serve, SQLite, Argon2id (m=19 MiB, t=2), $(nproc) cores; flood: $CONNS connections, ${DURATION}s"
probe idle
VICTIM_ID=$VICTIM_ID wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s -s "$WORK/flood.lua" \
  "http://127.0.0.1:$PORT" >"$WORK/wrk.txt" 2>&1 &
WRK=$!
sleep 2
probe flood "$WRK"
wait "$WRK" || true
awk '/Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF }
     END { printf "flood: %s req/s answered, %d of them non-2xx (401 for bad keys, 503 when a lane is full)\n", rps, bad }' "$WORK/wrk.txt"
grep -E "^ +Latency" "$WORK/wrk.txt" | sed 's/^/flood latency (avg, stdev, max):/' || true
