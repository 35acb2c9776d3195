#!/usr/bin/env bash
# Benchmark: tests/bench/run.sh BINARY   (make bench)
#
# Measures BINARY (luaproxy) against other proxies on this machine, all
# relaying to the same origin:
#
#   no-proxy    wrk straight at the origin (nginx): the baseline
#   luaproxy    BINARY with its default workers (one per CPU); also with a
#               no-op hook, a header-rewriting hook and a body chunk hook
#   haproxy     a reverse proxy in front of nginx: the ceiling for relaying
#   nginx       a second nginx, as a reverse proxy with pooled upstream
#               connections (listed as nginx-proxy)
#   tinyproxy, squid (no cache), privoxy: forward proxies, like luaproxy
#
# Scenarios: small response over keep-alive, a new connection per request,
# 16 KiB and 10 MiB bodies, 2,000 idle keep-alive connections (RSS per
# connection), CONNECT tunnel throughput, and the hooks. HTTPS interception
# (https-ka, https-new, https-10m) is measured with tests/bench/tls_load.c
# against luaproxy --intercept and mitmdump, beside luaproxy's plain-HTTP
# figure from the same client, and reported as ratios. Contenders take
# turns within each round (the order reverses every round) and the best
# round counts, so a slow moment of the machine does not hit one contender
# only. Every proxy runs pinned to one core (the last one, with taskset; one
# worker, process or thread where it has a choice), so the CPU time it
# spends per request, read from /proc, compares like with like. The report
# goes to standard output and build/bench/report.txt, with every raw wrk
# output in build/bench/raw/; the previous run's results are kept in
# build/bench-previous/ and the report shows them beside today's.
#
# Environment: BENCH_SECONDS (default 5) is the length of each wrk run,
# BENCH_ROUNDS (2) the number of rounds, BENCH_IDLE (10000) the idle
# connections, BENCH_TUNNEL_MIB (256) what goes through each tunnel, and
# BENCH_ONLY (all) a space-separated list of the scenarios to run: small-ka
# close 16k 10m hooks-small hooks-10m capture-small tunnel idle https-ka
# https-new https-10m.
#
# Loopback only. Missing tools are installed with apt-get when run as root
# (with services kept from starting); a peer that cannot be installed or
# started is reported and left out. Every server runs in the foreground from
# a config in a scratch directory, never the system's, and everything
# started here is stopped by PID on exit. A missed target is reported, not
# failed: the exit status is non-zero only when the harness itself broke.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BINARY" >&2
  exit 2
fi
binary=$1
if [ ! -x "$binary" ]; then
  echo "$0: not an executable: $binary" >&2
  exit 2
fi
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
cd "$(dirname "$0")/../.."
repo=$(pwd)
bench_dir=$repo/tests/bench
# shellcheck source=tests/bench/nginx.sh
. "$bench_dir/nginx.sh"

seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-2}
idle_count=${BENCH_IDLE:-10000}
tunnel_mib=${BENCH_TUNNEL_MIB:-256}
only=${BENCH_ONLY:-}
for v in "$seconds" "$rounds" "$idle_count" "$tunnel_mib"; do
  case $v in
    '' | *[!0-9]* | 0) echo "$0: BENCH_SECONDS, BENCH_ROUNDS, BENCH_IDLE and BENCH_TUNNEL_MIB must be positive whole numbers" >&2; exit 2 ;;
  esac
done

export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
out=$repo/build/bench
tmp=$(mktemp -d /tmp/luaproxy-bench.XXXXXX)
# nginx's workers and the peers drop root; they must reach the files here.
chmod 755 "$tmp"
created_policy=""
started=()   # PIDs of the servers, stopped in reverse order on exit
helpers=()   # PIDs of wrk, samplers and clients while they run

# True while process <pid> runs (an exited child not yet reaped, a zombie,
# does not count).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Stops process <pid> and everything under it: SIGTERM, up to 5 s, then
# SIGKILL for whatever is left. The children are listed first, because
# nginx's workers, for one, outlive a master killed with SIGKILL.
stop_tree() {
  local pid=$1 kids="" p
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive "$pid" || break
    sleep 0.1
  done
  for p in $pid $kids; do
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait "$pid" 2>/dev/null || true
}

# Prints the PIDs of every descendant of <pid>.
descendants() {
  local f kid kids
  for f in /proc/"$1"/task/*/children; do
    [ -r "$f" ] || continue
    read -r -a kids <"$f" 2>/dev/null || true # one line of PIDs
    for kid in ${kids[@]+"${kids[@]}"}; do
      echo "$kid"
      descendants "$kid"
    done
  done
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for i in "${helpers[@]}"; do stop_tree "$i"; done
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_tree "${started[$i]}"; done
  if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ -d "$tmp" ]; then
    mkdir -p "$out/logs"
    find "$tmp" -name '*.log' -size -1M -exec cp {} "$out/logs/" \; 2>/dev/null || true
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- install

# Command name -> Debian package. The first four are needed; the rest are
# peers, left out if they cannot be had.
declare -A pkg_of=([wrk]=wrk [nginx]=nginx [lua5.4]=lua5.4 [curl]=curl
  [haproxy]=haproxy [tinyproxy]=tinyproxy [squid]=squid [privoxy]=privoxy [mitmdump]=mitmproxy)
missing=()
for cmd in wrk nginx lua5.4 curl haproxy tinyproxy squid privoxy mitmdump; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
done
if ! lua5.4 -e 'require "socket"' >/dev/null 2>&1; then
  missing+=(lua-socket)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "bench: installing ${missing[*]}"
    # Debian packages start their services on install; a policy-rc.d that
    # answers 101 ("action not allowed") stops that. Only ours is removed.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    apt-get update -qq || say "bench: apt-get update failed"
    # All at once; if that fails, one by one, so one missing peer does not
    # keep the others out.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
      for p in "${missing[@]}"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 ||
          say "bench: could not install $p"
      done
    fi
    if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; created_policy=""; fi
  else
    say "bench: not root, so not installing: ${missing[*]}"
  fi
fi
for cmd in wrk nginx lua5.4 curl; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    say "bench: $cmd is required and missing; stopping"
    exit 1
  fi
done
if ! lua5.4 -e 'require "socket"' 2>/dev/null; then
  say "bench: luasocket (lua-socket) is required and missing; stopping"
  exit 1
fi

# 10,000 idle connections need that many descriptors in the client, the
# proxy and, for some proxies, the origin.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_count * 2 + 200)) ]; then
  say "bench: ulimit -n is $(ulimit -n), too low for $idle_count idle connections through a proxy"
fi

# The previous run's figures, for the side-by-side columns of the report.
previous=$repo/build/bench-previous
if [ -s "$out/results.txt" ] && [ -s "$out/meta.txt" ]; then
  rm -rf "$previous"
  mkdir -p "$previous"
  cp "$out/results.txt" "$out/meta.txt" "$previous/"
fi
rm -rf "$out"
mkdir -p "$out/raw"
results=$out/results.txt
: >"$results"

# ---------------------------------------------------------------- ports

picked=" "
# Sets $free to a port between 20000 and 31999 (below Linux's ephemeral
# range, so outgoing connections do not take it) that nothing listens on and
# that was not handed out before: it is checked by binding it. (It sets a
# variable rather than printing, since $(...) would lose $picked.)
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    case $picked in *" $port "*) continue ;; esac
    if lua5.4 -e "os.exit(require('socket').tcp():bind('127.0.0.1', $port) and 0 or 1)" 2>/dev/null; then
      picked="$picked$port "
      free=$port
      return 0
    fi
  done
  say "bench: no free port found"
  exit 1
}

# Waits up to <tenths> tenths of a second for something to accept on
# <port>, giving up early if process <pid> exits.
wait_port() {
  for _ in $(seq 1 "$2"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    alive "$3" || return 1
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- origin

free_port
origin_port=$free
origin=127.0.0.1:$origin_port
mkdir -p "$tmp/www"
head -c 100 /dev/urandom | base64 -w0 | head -c 99 >"$tmp/www/small"
echo >>"$tmp/www/small"
head -c 16384 /dev/urandom >"$tmp/www/16k"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$tmp/www/10m"
# Sparse: it costs no disk, and nginx sends it from the page cache.
truncate -s $((tunnel_mib * 1024 * 1024)) "$tmp/www/tunnel"
chmod 644 "$tmp"/www/*
chmod 755 "$tmp/www"
# Into the page cache now, so no contender pays for the first read.
cat "$tmp"/www/* >/dev/null

# The HTTPS origin for the interception scenarios: the same files over TLS,
# with a certificate from a CA made here (the proxies trust it as their
# upstream CA).
free_port
tls_origin_port=$free
mkdir -p "$tmp/tls"
(
  cd "$tmp/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 30 -subj '/CN=luaproxy bench CA' >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout origin.key \
    -out origin.csr -subj /CN=localhost >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >origin.ext
  openssl x509 -req -in origin.csr -CA ca.pem -CAkey ca.key -days 30 -extfile origin.ext \
    -out origin.pem >/dev/null 2>&1
  chmod 644 ./*
)

# One worker (nginx_conf): on a 2-core machine the origin then takes at most
# one core and leaves the other to wrk and the proxy (all three share both
# cores anyway).
nginx_conf "$tmp/nginx" 16384 <<EOF
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server {
        listen $origin backlog=4096;
        root $tmp/www;
    }
    server {
        listen 127.0.0.1:$tls_origin_port ssl backlog=4096;
        ssl_certificate $tmp/tls/origin.pem;
        ssl_certificate_key $tmp/tls/origin.key;
        ssl_session_cache shared:bench:10m;
        root $tmp/www;
    }
EOF

nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
  >"$tmp/nginx/stdout.log" 2>&1 &
origin_pid=$!
started+=("$origin_pid")
if ! wait_port "$origin_port" 50 "$origin_pid"; then
  say "bench: nginx (the origin) did not start:"
  cat "$tmp/nginx/error.log" "$tmp/nginx/stdout.log" >&2 || true
  exit 1
fi

# ---------------------------------------------------------------- contenders

# Per contender: its port, the PID of its root process, and whether it is a
# forward proxy (requests carry absolute URLs) or a server (paths).
declare -A port_of pid_of kind_of
contenders=()   # the ones running, in start order
notes=()        # lines for the report: what was left out and why

port_of[no-proxy]=$origin_port
pid_of[no-proxy]=$origin_pid
kind_of[no-proxy]=server
contenders+=(no-proxy)

# True when contender <name> is running.
is_up() { [ -n "${pid_of[$1]:-}" ] && case " ${contenders[*]} " in *" $1 "*) true ;; *) false ;; esac; }

# Checks that <name> answers a request for /small with 200 and the right
# length; prints the problem and returns 1 otherwise.
check_contender() {
  local name=$1 got
  if [ "${kind_of[$name]}" = forward ]; then
    got=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' \
      -x "http://127.0.0.1:${port_of[$name]}" "http://$origin/small" 2>/dev/null || true)
  else
    got=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' \
      "http://127.0.0.1:${port_of[$name]}/small" 2>/dev/null || true)
  fi
  if [ "$got" != "200 100" ]; then
    say "bench: $name answered '$got' instead of '200 100' for /small"
    return 1
  fi
}

# Starts contender <name> with the command that follows, logging to
# $tmp/<name>.log; on success it joins the contenders. <kind> is forward or
# server.
start_contender() {
  local name=$1 kind=$2 port=$3 pid
  shift 3
  "$@" >"$tmp/$name.log" 2>&1 &
  pid=$!
  started+=("$pid")
  port_of[$name]=$port
  pid_of[$name]=$pid
  kind_of[$name]=$kind
  if wait_port "$port" 100 "$pid" && check_contender "$name"; then
    contenders+=("$name")
    return 0
  fi
  say "bench: $name did not start; left out. Its log:"
  tail -n 20 "$tmp/$name.log" >&2 || true
  notes+=("$name: did not start (see build/bench/logs/$name.log)")
  stop_tree "$pid"
  return 1
}

# Every proxy runs on this one core (the last), the origin and wrk wherever
# the scheduler puts them. taskset is part of util-linux, always there.
pin_cpu=$(($(nproc) - 1))
pin=(taskset -c "$pin_cpu")

# luaproxy and its hook variants: one worker, and the defaults otherwise
# (the connection cap follows the descriptor limit raised above).
cat >"$tmp/noop.lua" <<'EOF'
function on_request(tx) end
EOF
cat >"$tmp/headers.lua" <<'EOF'
function on_request(tx)
  tx.req.headers["X-Bench"] = "1"
  tx.req.headers["User-Agent"] = nil
end
function on_response(tx)
  tx.res.headers:add("X-Proxied-By", "luaproxy")
end
EOF
cat >"$tmp/chunk.lua" <<'EOF'
function on_response_chunk(tx, c, eof) return c end
EOF
lua_args=(--workers 1 --connect-ports "$origin_port")
# luaproxy+capture: the admin listener on, so every exchange is captured
# for the flow viewer with the default limits (one process: the store is
# in the proxy's own CPU time).
for variant in luaproxy luaproxy+noop luaproxy+headers luaproxy+chunk luaproxy+capture; do
  free_port
  script=()
  case $variant in
    luaproxy+noop) script=(-s "$tmp/noop.lua") ;;
    luaproxy+headers) script=(-s "$tmp/headers.lua") ;;
    luaproxy+chunk) script=(-s "$tmp/chunk.lua") ;;
    luaproxy+capture) script=(--admin 127.0.0.1:0) ;;
  esac
  start_contender "$variant" forward "$free" \
    "${pin[@]}" "$binary" --listen "127.0.0.1:$free" "${lua_args[@]}" ${script[@]+"${script[@]}"} || true
done
# Without luaproxy itself there is nothing to measure: that is a broken
# setup, not a missed target.
if ! is_up luaproxy; then
  say "bench: $binary did not start; stopping"
  exit 1
fi

# The peers. Each gets a minimal config of its own in $tmp, runs in the
# foreground, and is sized for the idle test's 10,000 clients. When started
# as root they drop to an unprivileged user, so their log directories are
# world-writable.
as_root=""
if [ "$(id -u)" = 0 ]; then as_root=1; fi

if command -v haproxy >/dev/null 2>&1; then
  # A reverse proxy: wrk sends it origin-form requests, as to nginx.
  free_port
  mkdir -p "$tmp/haproxy"
  # haproxy refuses to start unless it has two descriptors per connection;
  # where the limit is lower than that for the idle test, the clients it
  # cannot take wait in the backlog and its idle row says so.
  ha_maxconn=$((idle_count + 100))
  if [ "$(ulimit -n)" != unlimited ] && [ $((ha_maxconn * 2 + 200)) -gt "$(ulimit -n)" ]; then
    ha_maxconn=$((($(ulimit -n) - 200) / 2))
  fi
  cat >"$tmp/haproxy/haproxy.cfg" <<EOF
global
    maxconn $ha_maxconn
    nbthread 1
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
frontend bench
    bind 127.0.0.1:$free
    default_backend origin
backend origin
    http-reuse always
    server nginx $origin
EOF
  start_contender haproxy server "$free" "${pin[@]}" haproxy -db -f "$tmp/haproxy/haproxy.cfg" || true
else
  notes+=("haproxy: not installed")
fi

# nginx as a reverse proxy, one worker, keeping upstream connections open
# like the others; bodies stream through its memory buffers, never to disk.
free_port
mkdir -p "$tmp/nginx-proxy"
chmod 1777 "$tmp/nginx-proxy"
nginx_conf "$tmp/nginx-proxy" 16384 <<EOF
    upstream origin {
        server $origin;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$free backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }
    }
EOF
start_contender nginx-proxy server "$free" "${pin[@]}" nginx -e "$tmp/nginx-proxy/error.log" \
  -p "$tmp/nginx-proxy" -c "$tmp/nginx-proxy/nginx.conf" -g 'daemon off;' || true

if command -v tinyproxy >/dev/null 2>&1; then
  free_port
  mkdir -p "$tmp/tinyproxy"
  chmod 1777 "$tmp/tinyproxy"
  {
    if [ -n "$as_root" ]; then printf 'User nobody\nGroup nogroup\n'; fi
    cat <<EOF
Port $free
Listen 127.0.0.1
Timeout 120
MaxClients 4096
Allow 127.0.0.1
ConnectPort $origin_port
LogFile "$tmp/tinyproxy/tinyproxy.log"
LogLevel Error
EOF
  } >"$tmp/tinyproxy/tinyproxy.conf"
  start_contender tinyproxy forward "$free" "${pin[@]}" tinyproxy -d -c "$tmp/tinyproxy/tinyproxy.conf" || true
else
  notes+=("tinyproxy: not installed")
fi

if command -v squid >/dev/null 2>&1; then
  free_port
  mkdir -p "$tmp/squid"
  chmod 1777 "$tmp/squid"
  cat >"$tmp/squid/squid.conf" <<EOF
http_port 127.0.0.1:$free
acl lo src 127.0.0.0/8
http_access allow lo
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $tmp/squid/cache.log
pid_filename none
coredump_dir $tmp/squid
netdb_filename none
pinger_enable off
shutdown_lifetime 1 seconds
max_filedescriptors 32768
client_persistent_connections on
server_persistent_connections on
EOF
  start_contender squid forward "$free" "${pin[@]}" squid -N -f "$tmp/squid/squid.conf" || true
else
  notes+=("squid: not installed")
fi

if command -v privoxy >/dev/null 2>&1; then
  free_port
  mkdir -p "$tmp/privoxy"
  chmod 1777 "$tmp/privoxy"
  # No filters; the one action lets CONNECT reach the origin's port.
  printf '{+limit-connect{%s}}\n/\n' "$origin_port" >"$tmp/privoxy/bench.action"
  cat >"$tmp/privoxy/config" <<EOF
confdir $tmp/privoxy
logdir $tmp/privoxy
logfile privoxy.log
actionsfile bench.action
listen-address 127.0.0.1:$free
toggle 1
enable-remote-toggle 0
enable-remote-http-toggle 0
enable-edit-actions 0
max-client-connections 12000
keep-alive-timeout 120
default-server-timeout 120
connection-sharing 1
socket-timeout 120
EOF
  start_contender privoxy forward "$free" "${pin[@]}" privoxy --no-daemon "$tmp/privoxy/config" || true
else
  notes+=("privoxy: not installed")
fi

# ---------------------------------------------------------------- runs

# Prints the contenders of <list> that are running, in its order.
available() {
  local c
  for c in "$@"; do if is_up "$c"; then printf '%s ' "$c"; fi; done
}

# run_wrk SCENARIO NAME ROUND PATH CONNS CLOSE: one wrk run at NAME while
# sample.lua watches NAME's processes; appends a line to $results.
run_wrk() {
  local sc=$1 name=$2 r=$3 path=$4 conns=$5 close=$6
  local raw=$out/raw/$sc.$name.r$r.txt target port=${port_of[$2]} wpid spid wrc=0 bench sample
  if [ "${kind_of[$name]}" = forward ]; then target=http://$origin$path; else target=$path; fi
  wait_quiet
  BENCH_PATH=$target BENCH_HOST=$origin BENCH_CLOSE=$close \
    timeout -k 5 $((seconds + 30)) wrk -t2 -c"$conns" -d"${seconds}s" --timeout 10s --latency \
    -s "$bench_dir/wrk.lua" "http://127.0.0.1:$port/" >"$raw" 2>&1 &
  wpid=$!
  lua5.4 "$bench_dir/sample.lua" "$seconds" "${pid_of[$name]}" "$origin_pid" "$wpid" >"$tmp/sample.out" 2>&1 &
  spid=$!
  helpers=("$spid" "$wpid")
  wait "$wpid" || wrc=$?
  wait "$spid" || true
  helpers=()
  cat "$tmp/sample.out" >>"$raw"
  bench=$(grep '^BENCH ' "$raw" || true)
  sample=$(grep '^SAMPLE ' "$tmp/sample.out" || true)
  if [ -z "$bench" ]; then
    say "  $sc round $r $name: wrk failed (exit $wrc), see $raw"
    echo "scenario=$sc contender=$name round=$r failed=wrk-exit-$wrc" >>"$results"
    return 0
  fi
  echo "scenario=$sc contender=$name round=$r conns=$conns ${bench#BENCH } ${sample#SAMPLE }" >>"$results"
  echo "${bench#BENCH } ${sample#SAMPLE }" | awk -v sc="$sc" -v r="$r" -v n="$name" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    s = v["duration_us"] / 1e6
    printf "  %-11s round %d  %-17s %7.0f req/s  %7.1f MB/s  p99 %7.2f ms  errors %d  closed %d  cpu %s%% (other %s%%)\n",
      sc, r, n, v["requests"] / s, v["bytes"] / s / 1e6, v["p99_us"] / 1000,
      v["status"] + v["connect"] + v["write"] + v["timeout"], v["read"], v["cpu_pct"], v["other_cpu_pct"] }' >&2
}

# Machine-wide busy share over the next half second, in per cent.
busy_pct() {
  local a b
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat
  sleep 0.5
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
  a=$(((u2 + n2 + s2 + q2 + sq2 + st2) - (u1 + n1 + s1 + q1 + sq1 + st1)))
  b=$((a + (i2 + w2) - (i1 + w1)))
  echo $((b > 0 ? 100 * a / b : 0))
}

# Before each run: lets the previous run's closed connections and CPU
# settle (1 s), then waits while something else keeps the machine busy
# (other programs' tests, say): up to 10 s per run and $quiet_budget s in
# all, so the benchmark stays bounded. What was waited is in the report.
quiet_budget=120
quiet_waited=0
busy_starts=0
wait_quiet() {
  local i
  sleep 1
  for ((i = 0; i < 20; i++)); do
    if [ "$(busy_pct)" -lt 25 ]; then return 0; fi
    if ((quiet_waited >= quiet_budget * 2)); then break; fi
    quiet_waited=$((quiet_waited + 1))
  done
  busy_starts=$((busy_starts + 1))
}

# True when scenario <name> is to run (BENCH_ONLY).
want() {
  [ -z "$only" ] && return 0
  case " $only " in *" $1 "*) return 0 ;; esac
  return 1
}

# Sets $order to the running contenders of CONTENDER... for round <round>:
# in the given order in odd rounds, reversed in even ones.
round_order() {
  local r=$1 list i
  shift
  read -r -a list <<<"$(available "$@")"
  order=()
  if ((r % 2 == 1)); then
    order=(${list[@]+"${list[@]}"})
  else
    for ((i = ${#list[@]} - 1; i >= 0; i--)); do order+=("${list[$i]}"); done
  fi
}

# run_scenario SCENARIO PATH CONNS CLOSE CONTENDER...: ROUNDS rounds over the
# contenders, the order reversed every other round.
run_scenario() {
  local sc=$1 path=$2 conns=$3 close=$4 r name
  shift 4
  want "$sc" || return 0
  say "scenario $sc: $path, $conns connections$([ "$close" = 1 ] && echo ', Connection: close')"
  for ((r = 1; r <= rounds; r++)); do
    round_order "$r" "$@"
    for name in ${order[@]+"${order[@]}"}; do run_wrk "$sc" "$name" "$r" "$path" "$conns" "$close"; done
  done
}

# run_tunnel NAME ROUND: one download of /tunnel with curl, through a
# CONNECT tunnel for a forward proxy (curl -p), a plain GET otherwise.
run_tunnel() {
  local name=$1 r=$2 got code size secs
  local expected=$((tunnel_mib * 1024 * 1024))
  if [ "${kind_of[$name]}" = forward ]; then
    got=$(curl -s -o /dev/null --max-time 120 -w '%{http_code} %{size_download} %{time_total}' \
      -p -x "http://127.0.0.1:${port_of[$name]}" "http://$origin/tunnel" 2>/dev/null || true)
  else
    got=$(curl -s -o /dev/null --max-time 120 -w '%{http_code} %{size_download} %{time_total}' \
      "http://127.0.0.1:${port_of[$name]}/tunnel" 2>/dev/null || true)
  fi
  read -r code size secs <<<"${got:-000 0 0}"
  echo "scenario=tunnel contender=$name round=$r http_code=$code bytes=$size expected=$expected seconds=$secs" >>"$results"
  awk -v n="$name" -v r="$r" -v c="$code" -v b="$size" -v e="$expected" -v s="$secs" 'BEGIN {
    printf "  tunnel      round %d  %-17s %8.1f MB/s  (HTTP %s, %d of %d bytes)\n",
      r, n, (s > 0 ? b / s / 1e6 : 0), c, b, e }' >&2
}

main_set=(no-proxy luaproxy haproxy nginx-proxy tinyproxy squid privoxy)
hook_set=(no-proxy luaproxy luaproxy+noop luaproxy+headers luaproxy+chunk)
capture_set=(luaproxy luaproxy+capture)
main_n=0
hook_n=0
capture_n=0
want capture-small && capture_n=1
for sc in small-ka close 16k 10m; do want "$sc" && main_n=$((main_n + 1)); done
for sc in hooks-small hooks-10m; do want "$sc" && hook_n=$((hook_n + 1)); done
total_runs=$(((main_n * $(available "${main_set[@]}" | wc -w) + hook_n * $(available "${hook_set[@]}" | wc -w) + capture_n * $(available "${capture_set[@]}" | wc -w)) * rounds))
say "bench: ${#contenders[@]} contenders running (${contenders[*]}); $total_runs wrk runs of ${seconds} s, about $((total_runs * (seconds + 2) / 60 + 1)) min"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
run_scenario small-ka /small 50 0 "${main_set[@]}"
run_scenario close /small 50 1 "${main_set[@]}"
run_scenario 16k /16k 50 0 "${main_set[@]}"
# Fewer connections for 10 MiB: 50 at once would only measure queueing, and
# the slower peers would hit wrk's timeout.
run_scenario 10m /10m 10 0 "${main_set[@]}"
run_scenario hooks-small /small 50 0 "${hook_set[@]}"
run_scenario hooks-10m /10m 10 0 "${hook_set[@]}"
run_scenario capture-small /small 50 0 "${capture_set[@]}"

if want tunnel; then
  say "scenario tunnel: $tunnel_mib MiB through CONNECT (curl -p)"
  # One download first, not counted: the first one after the wrk runs is
  # slow for whoever comes first (page cache, socket memory).
  curl -s -o /dev/null --max-time 120 "http://$origin/tunnel" || true
  for ((r = 1; r <= rounds; r++)); do
    round_order "$r" "${main_set[@]}"
    for name in ${order[@]+"${order[@]}"}; do wait_quiet; run_tunnel "$name" "$r"; done
  done
fi

want idle && say "scenario idle: $idle_count idle keep-alive connections"
for name in $(want idle && available "${main_set[@]}"); do
  wait_quiet
  if [ "${kind_of[$name]}" = forward ]; then target=http://$origin/small; else target=/small; fi
  line=$(timeout -k 5 300 lua5.4 "$bench_dir/idle_clients.lua" 127.0.0.1 "${port_of[$name]}" \
    "$target" "$origin" "$idle_count" "${pid_of[$name]}" 2>"$tmp/idle.err" || true)
  if [ -z "$line" ]; then line="IDLE failed=harness"; fi
  echo "scenario=idle contender=$name round=1 ${line#IDLE }" >>"$results"
  say "  idle        $name: ${line#IDLE } $(cat "$tmp/idle.err")"
done

# ---------------------------------------------------------------- https

# HTTPS interception: luaproxy --intercept against mitmdump, both trusting
# the bench CA for the upstream, driven by tls_load (C, OpenSSL, one thread
# per connection). luaproxy's plain-HTTP keep-alive figure comes from the
# same client, so the ratio compares like with like.
https_report=$out/https.txt
: >"$https_report"
if want https-ka || want https-new || want https-10m; then
  https_ok=1
  if ! cc -O2 -o "$out/tls_load" "$bench_dir/tls_load.c" -lssl -lcrypto -lpthread 2>"$tmp/tls_load.log"; then
    say "bench: tls_load did not build:"; cat "$tmp/tls_load.log" >&2; https_ok=""
  fi
  if [ -n "$https_ok" ]; then
    free_port
    "$binary" --listen "127.0.0.1:$free" --intercept '*' \
      --ca-dir "$tmp/luaproxy-ca" --upstream-ca "$tmp/tls/ca.pem" \
      --connect-ports "$tls_origin_port" >"$tmp/luaproxy-https.log" 2>&1 &
    pid_of[luaproxy-https]=$!
    port_of[luaproxy-https]=$free
    started+=("${pid_of[luaproxy-https]}")
    if wait_port "$free" 100 "${pid_of[luaproxy-https]}"; then
      contenders+=(luaproxy-https)
    else
      say "bench: luaproxy --intercept did not start"; https_ok=""
    fi
  fi
  https_set=(luaproxy-https)
  if [ -n "$https_ok" ] && command -v mitmdump >/dev/null 2>&1; then
    free_port
    mkdir -p "$tmp/mitm"
    # Its own confdir (CA and settings) in the scratch directory, never ~/.mitmproxy.
    mitmdump -q --listen-host 127.0.0.1 --listen-port "$free" --set confdir="$tmp/mitm" \
      --set ssl_verify_upstream_trusted_ca="$tmp/tls/ca.pem" >"$tmp/mitmdump.log" 2>&1 &
    pid_of[mitmdump]=$!
    port_of[mitmdump]=$free
    started+=("${pid_of[mitmdump]}")
    if wait_port "$free" 300 "${pid_of[mitmdump]}"; then
      https_set+=(mitmdump)
      contenders+=(mitmdump)
    else
      notes+=("mitmdump: did not start (see build/bench/logs/mitmdump.log)")
    fi
  elif [ -n "$https_ok" ]; then
    notes+=("mitmdump: not installed")
  fi

  # run_tls SCENARIO NAME ROUND MODE PATH CONNS: one tls_load run.
  run_tls() {
    local sc=$1 name=$2 r=$3 mode=$4 path=$5 conns=$6 line
    wait_quiet
    line=$(timeout -k 5 $((seconds + 60)) "$out/tls_load" "$mode" "${port_of[$name]}" 127.0.0.1 \
      "$([ "$mode" = plain ] && echo "$origin_port" || echo "$tls_origin_port")" "$path" "$conns" \
      "$seconds" 2>>"$tmp/tls_load.log" || true)
    [ -n "$line" ] || line="TLSLOAD requests=0 bytes=0 errors=-1 seconds=1"
    echo "scenario=$sc contender=$name round=$r ${line#TLSLOAD }" >>"$https_report"
    echo "${line#TLSLOAD }" | awk -v sc="$sc" -v r="$r" -v n="$name" '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "  %-11s round %d  %-17s %7.0f req/s  %7.1f MB/s  errors %s\n",
        sc, r, n, v["requests"] / v["seconds"], v["bytes"] / v["seconds"] / 1e6, v["errors"] }' >&2
  }
  if [ -n "$https_ok" ]; then
    for ((r = 1; r <= rounds; r++)); do
      if want https-ka; then
        say "scenario https-ka: /small over one kept-alive TLS connection each, 32 connections"
        round_order "$r" "${https_set[@]}"
        for name in ${order[@]+"${order[@]}"}; do run_tls https-ka "$name" "$r" ka /small 32; done
        run_tls plain-ka luaproxy "$r" plain /small 32
      fi
      if want https-new; then
        say "scenario https-new: a new TLS connection (full handshake) per request, 16 connections"
        round_order "$r" "${https_set[@]}"
        for name in ${order[@]+"${order[@]}"}; do run_tls https-new "$name" "$r" new /small 16; done
      fi
      if want https-10m; then
        say "scenario https-10m: /10m over kept-alive TLS, 4 connections"
        round_order "$r" "${https_set[@]}"
        for name in ${order[@]+"${order[@]}"}; do run_tls https-10m "$name" "$r" ka /10m 4; done
      fi
    done
    # The best round of each, then the ratios the targets are stated in.
    awk '
      { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        k = v["scenario"] " " v["contender"]
        rps = v["requests"] / v["seconds"]; mbs = v["bytes"] / v["seconds"] / 1e6
        if (rps > best_rps[k]) best_rps[k] = rps
        if (mbs > best_mbs[k]) best_mbs[k] = mbs }
      function ratio(a, b) { return b > 0 ? sprintf("%.1fx", a / b) : "n/a" }
      function verdict(a, b, t) { return b > 0 ? (a / b >= t ? "met" : "MISSED") : "n/a" }
      END {
        print "HTTPS interception (tls_load; best round; luaproxy-https = luaproxy --intercept)"
        for (k in best_rps) printf "  %-28s %9.0f req/s %9.1f MB/s\n", k, best_rps[k], best_mbs[k]
        a = best_rps["https-ka luaproxy-https"]; m = best_rps["https-ka mitmdump"]; p = best_rps["plain-ka luaproxy"]
        printf "  keep-alive small:  %s mitmdump (target 10x: %s), %s of plain luaproxy (target 0.5x: %s)\n",
          ratio(a, m), verdict(a, m, 10), ratio(a, p), verdict(a, p, 0.5)
        a = best_rps["https-new luaproxy-https"]; m = best_rps["https-new mitmdump"]
        printf "  new TLS per request: %s mitmdump (target 5x: %s)\n", ratio(a, m), verdict(a, m, 5)
        a = best_mbs["https-10m luaproxy-https"]; m = best_mbs["https-10m mitmdump"]
        printf "  10 MiB body:       %s mitmdump MB/s (target 3x: %s)\n", ratio(a, m), verdict(a, m, 3)
      }' "$https_report" >"$out/https-summary.txt"
  fi
fi

# ---------------------------------------------------------------- report

{
  echo "cores=$(nproc)"
  echo "load_start=$load_start"
  echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quiet_waited=$((quiet_waited / 2))"
  echo "busy_starts=$busy_starts"
  echo "seconds=$seconds"
  echo "rounds=$rounds"
  echo "idle=$idle_count"
  echo "tunnel_mib=$tunnel_mib"
  echo "version=luaproxy: $("$binary" --version 2>&1 | head -n 1 || true)"
  echo "version=nginx (origin): $(nginx -v 2>&1 | head -n 1 || true)"
  for c in haproxy tinyproxy squid privoxy wrk; do
    if command -v "$c" >/dev/null 2>&1; then
      # (wrk -v exits 1 after printing its version)
      case $c in
        privoxy) v=$(privoxy --version 2>&1 | head -n 1 || true) ;;
        *) v=$("$c" -v 2>&1 | head -n 1 || true) ;;
      esac
      echo "version=$c: $v"
    fi
  done
  for n in ${notes[@]+"${notes[@]}"}; do echo "note=$n"; done
} >"$out/meta.txt"

prev_args=()
if [ -s "$previous/results.txt" ]; then prev_args=("$previous/meta.txt" "$previous/results.txt"); fi
if ! lua5.4 "$bench_dir/report.lua" "$out/meta.txt" "$results" ${prev_args[@]+"${prev_args[@]}"} >"$out/report.txt"; then
  say "bench: report.lua failed"
  exit 1
fi
if [ -s "$out/https-summary.txt" ]; then
  { echo; cat "$out/https-summary.txt"; } >>"$out/report.txt"
fi
cat "$out/report.txt"
echo "(written to ${out#"$repo"/}/report.txt; raw wrk output in ${out#"$repo"/}/raw/)"
