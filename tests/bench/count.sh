#!/usr/bin/env bash
# tests/bench/count.sh BINARY - instructions and system calls per exchange.
#
# The figures of the README's instruction-count table for luaproxy without
# a script, which, unlike CPU time, do not depend on what else the machine
# is doing. For each of "keep-alive" (one connection) and "new connection
# per request" (Connection: close), a client (serial.lua) sends GETs of a
# 100-byte file from a local nginx through BINARY --workers 1, one at a
# time:
#
#   instructions  callgrind, the whole run with COUNT_N + 200 requests less
#                 the whole run with 200, divided by COUNT_N: start-up and
#                 shutdown cancel out
#   system calls  strace -c -f attached after 200 requests, over COUNT_N
#
# and for "fifty clients" (keep-alive, wrk -c50 for COUNT_SECONDS, default
# 5), the instructions per request with callgrind's counting switched on
# (callgrind_control) only while wrk runs: not as repeatable as the serial
# counts (how the requests batch varies), but it shows what only many
# clients at once cost, such as allocator caches overflowing.
#
# COUNT_N (default 2000) sets the number of exchanges measured.
# COUNT_SCRIPT=path/to/script.lua runs the proxy with that script (-s), to
# count what a hook costs: the figures less those without a script. Loopback
# only; every process started here is stopped by PID on exit. Needs
# valgrind, strace, nginx and lua5.4 with luasocket; says what to install
# when one is missing.
set -euo pipefail
shopt -s inherit_errexit # a failing client inside $( ) stops the script too

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 BINARY" >&2
  exit 2
fi
binary=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
bench_dir=$(pwd)
# shellcheck source=tests/bench/nginx.sh
. "$bench_dir/nginx.sh"
n=${COUNT_N:-2000}
case $n in '' | *[!0-9]* | 0) echo "$0: COUNT_N must be a positive whole number" >&2; exit 2 ;; esac
seconds=${COUNT_SECONDS:-5}
case $seconds in '' | *[!0-9]* | 0) echo "$0: COUNT_SECONDS must be a positive whole number" >&2; exit 2 ;; esac
script=()
if [ -n "${COUNT_SCRIPT:-}" ]; then
  if [ ! -r "$COUNT_SCRIPT" ]; then
    echo "$0: COUNT_SCRIPT $COUNT_SCRIPT cannot be read" >&2
    exit 2
  fi
  script=(-s "$(cd "$(dirname "$COUNT_SCRIPT")" && pwd)/$(basename "$COUNT_SCRIPT")")
fi

export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
missing=()
for cmd in valgrind callgrind_control strace nginx lua5.4 wrk; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
lua5.4 -e 'require "socket"' >/dev/null 2>&1 || missing+=(lua-socket)
if [ ${#missing[@]} -gt 0 ]; then
  echo "$0: missing ${missing[*]} (apt-get install valgrind strace nginx-light lua5.4 lua-socket wrk)" >&2
  exit 1
fi

tmp=$(mktemp -d /tmp/luaproxy-count.XXXXXX)
chmod 755 "$tmp" # nginx's worker drops root and must reach the file
pids=()
cleanup() {
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    if lua5.4 -e "os.exit(require('socket').tcp():bind('127.0.0.1', $port) and 0 or 1)" 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "$0: no free port found" >&2
  exit 1
}

# The origin: one nginx worker serving a 100-byte file, as in run.sh.
origin_port=$(free_port)
origin=127.0.0.1:$origin_port
mkdir -p "$tmp/www"
head -c 100 /dev/zero | tr '\0' x >"$tmp/www/small"
nginx_conf "$tmp/nginx" 1024 <<CONF
    default_type application/octet-stream;
    server { listen $origin; root $tmp/www; }
CONF
nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
  >"$tmp/nginx/stdout.log" 2>&1 &
pids+=($!)

# Starts "$@" (the proxy, perhaps under a tool) on port 0; sets proxy_pid
# and proxy_port from its "listening on" line.
start_proxy() {
  local log=$1
  shift
  : >"$log" # emptied here: the last run's "listening on" must not be read
  "$@" --workers 1 -l 127.0.0.1:0 ${script[@]+"${script[@]}"} >"$log" 2>&1 &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 1 300); do
    proxy_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$proxy_port" ] && return 0
    kill -0 "$proxy_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$0: the proxy did not start:" >&2
  cat "$log" >&2
  exit 1
}

stop_proxy() {
  kill -TERM "$proxy_pid"
  wait "$proxy_pid" 2>/dev/null || true
}

client() { lua5.4 "$bench_dir/serial.lua" "$proxy_port" "$origin" "$1" "$2"; }

# Instructions of a whole run with $2 requests in mode $1, into $result.
# (Not called inside $( ): the proxy it starts must be known to cleanup.)
instructions() {
  local out=$tmp/callgrind.$1.$2
  start_proxy "$tmp/callgrind.log" valgrind --tool=callgrind --callgrind-out-file="$out" "$binary"
  client "$2" "$1"
  stop_proxy
  result=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
}

# strace -c -f over $n exchanges in mode $1: "calls-per-exchange name"
# lines into $result.
syscalls() {
  start_proxy "$tmp/strace.log" "$binary"
  client 200 "$1"
  strace -c -f -o "$tmp/strace.$1" -p "$proxy_pid" 2>"$tmp/strace.err" &
  local tracer=$!
  # The exchanges must start once strace is attached: it says so.
  for _ in $(seq 1 200); do
    grep -qs attached "$tmp/strace.err" && break
    sleep 0.05
  done
  client "$n" "$1"
  kill -INT "$tracer"
  wait "$tracer" 2>/dev/null || true
  stop_proxy
  result=$(awk -v n="$n" '$NF != "total" && $4 ~ /^[0-9]+$/ && $4 / n >= 0.005 {
    printf "%.2f %s\n", $4 / n, $NF }' "$tmp/strace.$1" | sort -rn)
}

for mode in ka close; do
  name=$([ "$mode" = ka ] && echo "keep-alive" || echo "new connection per request")
  instructions "$mode" $((n + 200))
  big=$result
  instructions "$mode" 200
  small=$result
  echo "$name: $(( (big - small) / n )) instructions per exchange"
  syscalls "$mode"
  calls=$result
  total=$(awk '{ t += $1 } END { printf "%.1f", t }' <<<"$calls")
  echo "$name: $total system calls per exchange:" $(awk '{ printf "%s %s, ", $2, $1 }' <<<"$calls" | sed 's/, $//')
done

# Fifty clients: callgrind counts only while wrk runs (after a first run
# that fills the proxy's caches), and wrk says how many requests it made.
start_proxy "$tmp/callgrind.log" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$tmp/callgrind.many" "$binary"
cat >"$tmp/wrk.lua" <<LUA
wrk.path = "http://$origin/small"
LUA
wrk -t1 -c50 -d2 -s "$tmp/wrk.lua" "http://127.0.0.1:$proxy_port/" >/dev/null
callgrind_control -i on "$proxy_pid" >/dev/null
wrk -t1 -c50 -d"$seconds" -s "$tmp/wrk.lua" "http://127.0.0.1:$proxy_port/" >"$tmp/wrk.out"
callgrind_control -i off "$proxy_pid" >/dev/null
stop_proxy
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
total=$(awk '/^totals:/ {print $2; exit}' "$tmp/callgrind.many")
echo "fifty keep-alive clients: $((total / requests)) instructions per request ($requests requests)"
