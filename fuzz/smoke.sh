#!/usr/bin/env bash
# Fuzz smoke run for CI (called by .ci/run) and by hand:
#
#   bash fuzz/smoke.sh                  # every target for 60 s
#   FUZZ_SECONDS=10 bash fuzz/smoke.sh key_parse scopes
#
# Installs the pinned cargo-fuzz when it is missing, builds every target on
# the stable toolchain (`-s none`: no sanitizer, so no nightly `-Z` flag is
# needed), then runs each target for FUZZ_SECONDS starting from its seeds in
# fuzz/corpus/TARGET (read only: new inputs go to a temporary directory).
#
# Fails on a crash, panic, timeout or out-of-memory found by a target, and
# when the targets do not build (the crates' API moved: fix fuzz/). A
# cargo-fuzz that cannot be installed (registry unreachable) only warns.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
ALL_TARGETS=(key_parse filter_json scopes http_body)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  if ! cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked; then
    echo "WARNING: cannot install cargo-fuzz $CARGO_FUZZ_VERSION: fuzz smoke skipped" >&2
    exit 0
  fi
fi

# Release build with debug assertions (cargo-fuzz's default), into fuzz/target.
cargo fuzz build -s none

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  echo "-- fuzz $t for ${SECONDS_PER_TARGET}s"
  mkdir -p "$work/$t"
  # -timeout: one input taking longer is a finding (CI machines are slow,
  # hence generous); -rss_limit_mb: libFuzzer's default, spelled out.
  if cargo fuzz run -s none "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=25 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$work/$t.log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$work/$t.log" || true
  else
    failed+=("$t")
    echo "FUZZ FAILURE in $t:" >&2
    grep -m1 -A3 'panicked at' "$work/$t.log" >&2 || true
    echo "... the end of its log:" >&2
    tail -n 45 "$work/$t.log" >&2
    for f in artifacts/"$t"/*; do
      [ -f "$f" ] || continue
      echo "input $f (base64): $(base64 -w0 "$f")" >&2
    done
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke failed: ${failed[*]} (inputs under fuzz/artifacts/; see fuzz/README.md)" >&2
  exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each, no failure"
