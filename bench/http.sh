#!/usr/bin/env bash
# HTTP benchmark: bare axum vs keygate (and optionally the Python original).
#
#   bench/http.sh                 bare axum vs keygate, interleaved rounds: a key
#                                 without limits (behind the RequireScopes layer,
#                                 and through the Scoped extractor), with an
#                                 in-process rate limit, with credits taken in
#                                 SQLite; and, when
#                                 PostgreSQL and Redis answer, the same on
#                                 PostgreSQL with the rate limit in Redis
#   bench/http.sh --flood         + valid requests under a flood of wrong secrets
#   bench/http.sh --keyshield     + keyshield (FastAPI, CachedApiKeyService) on the same route
#   bench/http.sh --smoke         one short round, to check the script works
#
# Each round loads bare axum before and after every other target, and each
# ratio to bare divides by the mean of those two neighbouring loads; rounds
# alternate the order of the targets (odd rounds as listed, even reversed).
# Env: DURATION (s, default 3), ROUNDS (default 8), CONNS (default 32),
#      PG_URL (default postgres://postgres@127.0.0.1:5432/test; the bench uses
#      its own schema keygate_bench), BENCH_REDIS_URL (default redis://127.0.0.1:6379),
#      SKIP_PG=1 (only the SQLite rows).
# Prints req/s, p50 and p99 per load and the ratios, measured in one run:
# the median of the per-round ratios, that of the summed req/s, and the
# lowest and highest round.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOD=0 KEYSHIELD=0
DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-8} CONNS=${CONNS:-32}
for arg in "$@"; do
  case $arg in
    --flood) FLOOD=1 ;;
    --keyshield) KEYSHIELD=1 ;;
    --smoke) DURATION=1 ROUNDS=1 CONNS=4 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian packages" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

# Cargo's target directory, wherever CARGO_TARGET_DIR puts it.
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$TARGET/bench-http
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release --quiet --example bench_server
BIN=$TARGET/release/examples/bench_server

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start; its log:" >&2
  cat "$WORK"/*.log >&2 || true
  exit 1
}

start() { # name port env...
  local name=$1 port=$2; shift 2
  env PORT="$port" KEY_FILE="$WORK/$name.key" "$@" "$BIN" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$name=$!"
  wait_port "$port"
}

# Prints "req/s p50_ms p99_ms" for one wrk run.
load() { # url key [seconds]
  wrk -t1 -c"$CONNS" -d"${3:-$DURATION}s" --latency -H "Authorization: Bearer $2" "$1" |
    awk '
      function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
      /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
      /^Requests\/sec/ { rps = $2 }
      /Non-2xx/ { bad = $NF }
      END { if (bad > 0) printf "WARNING: %s non-2xx responses\n", bad > "/dev/stderr"; printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start bare 18001 MODE=bare
start keygate 18002 MODE=keygate DATABASE_URL="sqlite://$WORK/keygate.db"
BARE_KEY=$(cat "$WORK/bare.key") KG_KEY=$(cat "$WORK/keygate.key")

# label port key-file [path]: what each round loads, in order (path
# /protected unless given).
TARGETS=(
  "bare 18001 bare.key"
  "unlimited 18002 keygate.key"
  "extractor 18002 keygate.key /scoped"
  "rate_local 18002 keygate.key.limited"
  "credits_sqlite 18002 keygate.key.metered"
)
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
if [ -z "${SKIP_PG:-}" ] && port_open 127.0.0.1 5432 && port_open 127.0.0.1 6379 && command -v psql >/dev/null; then
  psql "$PG_URL" -q -c 'DROP SCHEMA IF EXISTS keygate_bench CASCADE; CREATE SCHEMA keygate_bench' >/dev/null
  start keygate_pg 18004 MODE=keygate REDIS_URL="$BENCH_REDIS_URL" \
    DATABASE_URL="$PG_URL?options=-c%20search_path%3Dkeygate_bench"
  TARGETS+=(
    "pg_unlimited 18004 keygate_pg.key"
    "rate_redis 18004 keygate_pg.key.limited"
    "credits_pg 18004 keygate_pg.key.metered"
  )
else
  echo "PostgreSQL (5432) or Redis (6379) not answering: skipping the PostgreSQL/Redis rows" >&2
fi

# Warm-up: the first verify of a key pays its Argon2 hash; later ones hit the cache.
for t in "${TARGETS[@]}"; do
  read -r label port file path <<<"$t"
  load "http://127.0.0.1:$port${path:-/protected}" "$(cat "$WORK/$file")" 1 >/dev/null
done
echo "keygate idle RSS: $(rss_kb "$PID_keygate") kB"

declare -A P50 P99 RPS NEAR
printf '\n%-8s %-15s %10s %10s %10s\n' round target req/s p50_ms p99_ms
# Each round loads bare axum before and after every other target (bare, T1,
# bare, T2, …, bare): a target's ratio to bare uses the mean of the two bare
# loads around it, seconds apart, so the machine's drift (this box's speed
# moves by several percent within a minute) cancels to first order.
OTHERS=("${TARGETS[@]:1}")
REVERSED=()
for ((i = ${#OTHERS[@]} - 1; i >= 0; i--)); do REVERSED+=("${OTHERS[i]}"); done
bare_round() { # round
  local rps p50 p99
  read -r rps p50 p99 < <(load http://127.0.0.1:18001/protected "$BARE_KEY")
  printf '%-8s %-15s %10s %10s %10s\n' "$1" bare "$rps" "$p50" "$p99"
  P50[bare]=$p50 P99[bare]=$p99 BARE_RPS=$rps
}
for r in $(seq 1 "$ROUNDS"); do
  # Even rounds run the targets in reverse order: no target always follows
  # the same one (a server just loaded, a warm or cold CPU).
  ORDER=("${OTHERS[@]}")
  [ $((r % 2)) = 0 ] && ORDER=("${REVERSED[@]}")
  bare_round "$r"
  before=$BARE_RPS
  for t in "${ORDER[@]}"; do
    read -r label port file path <<<"$t"
    read -r rps p50 p99 < <(load "http://127.0.0.1:$port${path:-/protected}" "$(cat "$WORK/$file")")
    printf '%-8s %-15s %10s %10s %10s\n' "$r" "$label" "$rps" "$p50" "$p99"
    P50[$label]=$p50 P99[$label]=$p99 RPS[$label,$r]=$rps
    bare_round "$r"
    NEAR[$label,$r]=$(( (before + BARE_RPS) / 2 ))
    before=$BARE_RPS
  done
done
echo "keygate RSS after load: $(rss_kb "$PID_keygate") kB"

# Against bare: each round's req/s over the mean of the bare loads just
# before and after it. Against another target: the quotient of the two
# (each first taken against its own bare neighbours). Printed as the
# median over the rounds, and of the req/s summed over the rounds.
ratio() { # label baseline goal what
  [ -n "${RPS[$1,1]:-}" ] || return 0
  [ "$2" = bare ] || [ -n "${RPS[$2,1]:-}" ] || return 0
  local rounds=""
  for r in $(seq 1 "$ROUNDS"); do
    if [ "$2" = bare ]; then
      rounds+=" ${RPS[$1,$r]}:${NEAR[$1,$r]}:1:1"
    else
      rounds+=" ${RPS[$1,$r]}:${NEAR[$1,$r]}:${RPS[$2,$r]}:${NEAR[$2,$r]}"
    fi
  done
  awk -v g="$3" -v w="$4" -v p50="${P50[$1]}" -v p99="${P99[$1]}" -v rounds="$rounds" '
    BEGIN {
      n = split(rounds, rs, " ")
      for (i = 1; i <= n; i++) {
        split(rs[i], x, ":")
        q[i] = (x[1] / x[2]) / (x[3] / x[4])
        a += x[1]; b += (x[4] == 1 ? x[2] : x[3])
      }
      for (i = 2; i <= n; i++) for (j = i; j > 1 && q[j] < q[j-1]; j--) { t = q[j]; q[j] = q[j-1]; q[j-1] = t }
      median = n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
      printf "%-48s %.3f, summed %.3f, rounds %.3f..%.3f (goal >= %s; last round p50 %s ms, p99 %s ms)\n", w, median, a/b, q[1], q[n], g, p50, p99
    }'
}
echo
echo "req/s ratios over the $ROUNDS rounds of this run (median of the rounds; of the summed req/s; lowest..highest round):"
ratio unlimited bare 0.95 "key without limits / bare axum"
ratio extractor bare 0.95 "the same, Scoped extractor (no layer) / bare"
ratio rate_local bare 0.90 "in-process rate limit / bare axum"
ratio rate_redis pg_unlimited 0.50 "Redis rate limit / unlimited key (PG)"
ratio credits_sqlite unlimited 0.25 "credits in SQLite / unlimited key"
ratio credits_pg pg_unlimited 0.25 "credits in PostgreSQL / unlimited key (PG)"

if [ "$FLOOD" = 1 ]; then
  # Wrong secrets for the real key id: every one costs an Argon2 hash.
  WRONG="${KG_KEY%-*}-$(printf 'W%.0s' $(seq 1 64))"
  read -r calm_rps _ calm_p99 < <(load http://127.0.0.1:18002/protected "$KG_KEY")
  wrk -t1 -c16 -d"$((DURATION + 2))s" -H "Authorization: Bearer $WRONG" \
    http://127.0.0.1:18002/protected >"$WORK/flood.txt" 2>&1 &
  FLOOD_PID=$!
  sleep 1
  read -r storm_rps _ storm_p99 < <(load http://127.0.0.1:18002/protected "$KG_KEY")
  wait "$FLOOD_PID" || true
  flood_rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/flood.txt")
  echo
  echo "flood: valid req/s undisturbed $calm_rps (p99 ${calm_p99} ms), under flood $storm_rps (p99 ${storm_p99} ms); wrong-secret req/s served: $flood_rps"
  awk -v a="$calm_rps" -v b="$storm_rps" -v p="$storm_p99" \
    'BEGIN { printf "flood: kept %.1f%% of undisturbed req/s (goal >= 50%%), p99 %.1f ms (goal < 50 ms)\n", 100*b/a, p }'
fi

if [ "$KEYSHIELD" = 1 ]; then
  VENV=$TARGET/keyshield-venv
  if [ ! -f "$VENV/.installed" ]; then
    echo "installing keyshield from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "keyshield[aiocache]==2.0.1" fastapi uvicorn "sqlalchemy[asyncio]" aiosqlite argon2-cffi && touch "$VENV/.installed"
  fi
  DB_PATH="$WORK/keyshield.db" KEY_FILE="$WORK/keyshield.key" PORT=18003 \
    "$VENV/bin/python" bench/keyshield_app.py >"$WORK/keyshield.log" 2>&1 &
  PIDS+=($!)
  wait_port 18003
  read -r ks_rps ks_p50 ks_p99 < <(load http://127.0.0.1:18003/protected "$(cat "$WORK/keyshield.key")")
  read -r kg_rps kg_p50 kg_p99 < <(load http://127.0.0.1:18002/protected "$KG_KEY")
  echo
  printf '%-10s %10s %10s %10s\n' server req/s p50_ms p99_ms
  printf '%-10s %10s %10s %10s\n' keyshield "$ks_rps" "$ks_p50" "$ks_p99" keygate "$kg_rps" "$kg_p50" "$kg_p99"
  awk -v a="$ks_rps" -v b="$kg_rps" 'BEGIN { printf "keygate/keyshield req/s ratio: %.0fx (goal >= 200x)\n", b/a }'
fi
