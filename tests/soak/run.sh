#!/usr/bin/env bash
# Fault soak: tests/soak/run.sh SECONDS BINARY  (make soak SOAK_SECONDS=N)
#
# Runs tests/soak/soak.lua against BINARY (meant for the ASan/UBSan build)
# with every sanitizer report sent to a file in a scratch directory, and
# fails if soak.lua fails or any report appears (they are printed). Loopback
# only; bounded by SECONDS plus a fixed margin; everything started here is
# stopped by PID on exit, including what soak.lua started if it died early
# (it lists those PIDs in $SOAK_PIDS).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SECONDS BINARY" >&2
  exit 2
fi
seconds=$1
binary=$2
case $seconds in
  '' | *[!0-9]*) echo "$0: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
if [ ! -x "$binary" ]; then
  echo "$0: not an executable: $binary" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."

# Setup, the drain after the load, the fd wait and two clean exits per pass
# fit well inside this; it only matters if something hangs.
margin=120

tmp=$(mktemp -d /tmp/luaproxy-soak.XXXXXX)
soak_pid=""

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT
  if [ -n "$soak_pid" ]; then stop_pid "$soak_pid"; fi
  if [ -f "$tmp/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && stop_pid "$pid"
    done <"$tmp/pids"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap still cleans up.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

export ASAN_OPTIONS="detect_leaks=1:log_path=$tmp/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$tmp/ubsan"
export SOAK_PIDS="$tmp/pids"

status=0
timeout --kill-after=10 $((seconds + margin)) lua5.4 tests/soak/soak.lua "$seconds" "$binary" &
soak_pid=$!
wait "$soak_pid" || status=$?
soak_pid=""
if [ "$status" -eq 124 ]; then
  echo "soak: did not finish within $((seconds + margin)) s; stopped"
fi

reports=$(find "$tmp" -maxdepth 1 -type f \( -name 'asan*' -o -name 'ubsan*' \) | sort)
if [ -n "$reports" ]; then
  for f in $reports; do
    echo "==== sanitizer report $f"
    cat "$f"
  done
  echo "soak: sanitizer reports found (above)"
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "soak: FAILED"
  exit 1
fi
echo "soak: ok"
