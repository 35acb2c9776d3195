# shellcheck shell=bash
# Sourced by run.sh and count.sh: the nginx configuration they share, for
# the origin both measure against and for run.sh's nginx contender.
#
# nginx_conf DIR CONNECTIONS writes DIR/nginx.conf: one worker taking up to
# CONNECTIONS connections, its PID file, error log and temporary files in
# DIR (never the system's), no access log, and keep-alive connections that
# nginx never ends during a run (no request cap, 300 s idle), so a figure
# never includes reconnecting to nginx. What differs between the callers
# (sendfile, the servers, an upstream) comes on standard input and goes
# into the http block as it is.
nginx_conf() {
  local dir=$1 connections=$2
  mkdir -p "$dir"
  {
    cat <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $connections; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
    cat
    echo "}"
  } >"$dir/nginx.conf"
}
