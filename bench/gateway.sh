#!/usr/bin/env bash
# Gateway-mode benchmark: what nginx `auth_request` to `keygate serve
# --policy` costs, against the same nginx proxying without auth.
#
#   bench/gateway.sh            ROUNDS interleaved pairs of wrk runs
#   bench/gateway.sh --smoke    one short round, to check the script works
#
# nginx runs examples/gateway/nginx.conf (addresses changed) plus two
# servers: the upstream, nginx itself answering {"ok":true} (a Python
# service would be the bottleneck and hide the auth request's cost), and a
# plain proxy to it without auth. wrk sends `Authorization: Bearer KEY` (a
# key with `read`, cached after the first request) to both.
#
# Env: DURATION (s, default 10), ROUNDS (default 2), CONNS (default 64),
#      THREADS (default 2); RUST_LOG=warn drops keygate's per-request log line.
# Prints req/s, p50, p99 and the CPU time per request of keygate and of
# nginx for both, and the req/s ratio (goal >= 0.70). On a small machine
# shared by wrk, nginx and keygate, req/s follows the total CPU per request.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10} ROUNDS=${ROUNDS:-2} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
for arg in "$@"; do
  case $arg in
    --smoke) DURATION=1 ROUNDS=1 CONNS=8 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing nginx and wrk from Debian packages" >&2
    (apt-get update -qq && apt-get install -y -qq nginx wrk) >/dev/null
    nginx -s stop 2>/dev/null || true
    break
  fi
done

# Cargo's target directory, wherever CARGO_TARGET_DIR puts it.
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$TARGET"
WORK=$(cd "$TARGET" && pwd)/bench-gateway
rm -rf "$WORK" && mkdir -p "$WORK/nginx"
cargo build --release --quiet -p keygate-cli
BIN=$TARGET/release/keygate

KEYGATE=127.0.0.1:18101 UPSTREAM=127.0.0.1:18102 AUTH=127.0.0.1:18103 PLAIN=127.0.0.1:18104

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { # host:port log
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1; log:" >&2
  cat "$2" >&2 || true
  exit 1
}

export DATABASE_URL="sqlite://$WORK/keygate.db" API_KEY_PEPPER=bench-gateway-pepper
KEY=$("$BIN" --json create --name bench --scopes read | grep -o '"api_key":"[^"]*"' | cut -d'"' -f4)
cat >"$WORK/policy.toml" <<'EOF'
[[route]]
methods = ["GET", "HEAD"]
path = "/reports/*"
scopes = ["read"]
EOF
"$BIN" serve --bind "$KEYGATE" --policy "$WORK/policy.toml" >"$WORK/keygate.out" 2>"$WORK/keygate.log" &
PIDS+=($!) KEYGATE_PID=$!
wait_port "$KEYGATE" "$WORK/keygate.log"

# The example, its addresses changed, with the upstream and the plain
# proxy added to its `http { }` (whose closing brace is the last line).
CONF=$WORK/nginx/nginx.conf
[ "$(tail -n 1 examples/gateway/nginx.conf)" = "}" ] || { echo "nginx.conf must end with the http block's }" >&2; exit 1; }
sed -e '$d' -e "s/127.0.0.1:8000/$KEYGATE/; s/127.0.0.1:9000/$UPSTREAM/; s/127.0.0.1:8080/$AUTH/" \
  examples/gateway/nginx.conf >"$CONF"
cat >>"$CONF" <<EOF

    # bench/gateway.sh: the upstream.
    server {
        listen $UPSTREAM;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }

    # bench/gateway.sh: the same upstream, without auth.
    server {
        listen $PLAIN;
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }
    }
}
EOF
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$CONF" -g 'daemon off;' &
PIDS+=($!) NGINX_PID=$!
wait_port "$AUTH" "$WORK/nginx/error.log"
wait_port "$PLAIN" "$WORK/nginx/error.log"

# CPU time (clock ticks) used so far by a process and its children
# (nginx's workers).
ticks() { # pid
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

# Prints "req/s p50_ms p99_ms keygate_us nginx_us" for one wrk run (the
# last two: CPU microseconds per request); fails on any non-2xx.
load() { # url [seconds]
  local k0 n0
  k0=$(ticks "$KEYGATE_PID") n0=$(ticks "$NGINX_PID")
  wrk -t"$THREADS" -c"$CONNS" -d"${2:-$DURATION}s" --latency -H "Authorization: Bearer $KEY" "$1" >"$WORK/wrk.txt"
  awk -v k=$(( $(ticks "$KEYGATE_PID") - k0 )) -v n=$(( $(ticks "$NGINX_PID") - n0 )) -v hz="$HZ" '
      function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
      /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
      /^Requests\/sec/ { rps = $2 }
      / requests in / { n_req = $1 }
      /Non-2xx/ { bad = $NF }
      END {
        if (bad > 0) { printf "%s non-2xx responses\n", bad > "/dev/stderr"; exit 1 }
        printf "%.0f %.3f %.3f %.1f %.1f\n", rps, p50, p99, k * 1e6 / hz / n_req, n * 1e6 / hz / n_req
      }' "$WORK/wrk.txt"
}

# Warm-up: the first verify of the key pays its Argon2 hash.
load "http://$AUTH/reports/q1" 1 >/dev/null
load "http://$PLAIN/reports/q1" 1 >/dev/null

declare -A SUM P50 P99
printf '\n%-6s %-14s %9s %8s %8s %15s %13s\n' round target req/s p50_ms p99_ms keygate_cpu_us nginx_cpu_us
for r in $(seq 1 "$ROUNDS"); do
  for t in "no_auth $PLAIN" "keygate_auth $AUTH"; do
    read -r label addr <<<"$t"
    read -r rps p50 p99 kus nus < <(load "http://$addr/reports/q1")
    printf '%-6s %-14s %9s %8s %8s %15s %13s\n' "$r" "$label" "$rps" "$p50" "$p99" "$kus" "$nus"
    SUM[$label]=$(( ${SUM[$label]:-0} + rps )) P50[$label]=$p50 P99[$label]=$p99
  done
done

echo
echo "(*_cpu_us: CPU time per request of keygate and of nginx, the auth request's cost whatever else the machine runs)"
awk -v a="${SUM[no_auth]}" -v b="${SUM[keygate_auth]}" -v p99a="${P99[no_auth]}" -v p99b="${P99[keygate_auth]}" \
  'BEGIN { printf "nginx + keygate auth_request / nginx without auth, req/s: %.3f (goal >= 0.70); last round p99 %s ms vs %s ms\n", b/a, p99b, p99a }'
