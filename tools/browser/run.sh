#!/usr/bin/env bash
# The dashboard (/ui of `keygate serve`) in a real headless Chromium:
# Playwright for Python (pinned in requirements.txt, in tools/browser/.venv)
# drives Debian's /usr/bin/chromium. Each test starts its own
# `keygate serve --bind 127.0.0.1:0` on a temporary SQLite database.
#
#   bash tools/browser/run.sh                     # builds target/release/keygate if missing
#   bash tools/browser/run.sh --keygate PATH      # test this binary
#   bash tools/browser/run.sh -- -k csrf -x       # arguments after -- go to pytest
#
# Writes docs/screenshots/*.png (1280×800 and 390×844) and prints the
# measured numbers (page weight, first render with 10 000 keys) in a
# `== numbers ==` block. Without /usr/bin/chromium: skipped (exit 0),
# unless CI=true (then it fails).
set -euo pipefail
cd "$(dirname "$0")/../.."

KEYGATE_BIN=${KEYGATE_BIN:-}
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --keygate) KEYGATE_BIN=$2; shift 2 ;;
    --keygate=*) KEYGATE_BIN=${1#--keygate=}; shift ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  if [ "${CI:-}" = true ]; then
    echo "browser tests: $CHROMIUM is not installed (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  echo "skipped: chromium not installed"
  exit 0
fi

HERE=tools/browser
VENV=$HERE/.venv
STAMP=$VENV/.installed-$(sha256sum "$HERE/requirements.txt" | cut -c1-16)
if [ ! -f "$STAMP" ]; then
  echo "installing $HERE/requirements.txt into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  touch "$STAMP"
fi

if [ -z "$KEYGATE_BIN" ]; then
  TARGET=${CARGO_TARGET_DIR:-target}
  KEYGATE_BIN=$TARGET/release/keygate
  # Reuse the release build of earlier CI steps; cargo rebuilds only what changed.
  cargo build --release --quiet -p keygate-cli
fi
[ -x "$KEYGATE_BIN" ] || { echo "no keygate binary at $KEYGATE_BIN" >&2; exit 1; }
KEYGATE_BIN=$(cd "$(dirname "$KEYGATE_BIN")" && pwd)/$(basename "$KEYGATE_BIN")
echo "browser tests: $("$CHROMIUM" --version 2>/dev/null), $KEYGATE_BIN"

export KEYGATE_BIN CHROMIUM
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$(pwd)/docs/screenshots}
unset RUST_LOG KEYGATE_ACTOR
start=$(date +%s)
status=0
(cd "$HERE" && .venv/bin/python -m pytest "${PYTEST_ARGS[@]}") || status=$?
echo "browser tests: $( [ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
exit $status
