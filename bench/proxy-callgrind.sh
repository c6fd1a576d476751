#!/usr/bin/env bash
# Instructions per proxied request of `berth up` (the whole berth process:
# proxy, log pipeline, supervisor), counted by callgrind, which unlike
# requests/s is not disturbed by other load on the machine. One stack as in
# bench/proxy.sh (bench_backend as the service behind one route), run under
# valgrind as `berth up -d` runs its detached child; counters are zeroed after a warm-up, then
# h2load sends exactly N HTTP/1.1 keep-alive requests, and the total is
# divided by N. Once with the access log off, once on. Then the peers the
# same way, in front of the same backend: nginx (one worker process,
# `master_process off`, the headers and JSON access log of bench/proxy.sh,
# log off and on) and the floors (bench_floor: hyper's server with
# hyper-util's legacy client, and with a per-worker pool over hyper's
# http1 client). PEERS=0 skips them.
#
# usage: bench/proxy-callgrind.sh [N]      (default 20000 requests)
# env:   BERTH (the berth binary; default: the release build), CONNS (8), BASE_PORT (18181),
#        KEEP (a directory to keep the callgrind dumps in, for callgrind_annotate), PEERS (1)
# needs: valgrind, h2load, nginx (Debian: apt-get install -y valgrind nghttp2-client nginx)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
conns=${CONNS:-8}
base=${BASE_PORT:-18181}
for tool in valgrind callgrind_control h2load; do
  command -v "$tool" >/dev/null || { echo "bench/proxy-callgrind.sh: $tool is missing" >&2; exit 2; }
done
[ -n "${BERTH:-}" ] || cargo build --release -q --bin berth
cargo build --release -q -p berth-proxy --examples
target=$(realpath "${CARGO_TARGET_DIR:-target}")
berth=$(realpath "${BERTH:-$target/release/berth}")
work=$(mktemp -d)
vg=
cleanup() {
  [ -z "$vg" ] || kill -INT "$vg" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/proxy-callgrind.sh: nothing listens on port $1" >&2
  exit 1
}

for log in false true; do
  mkdir -p "$work/$log"
  cat > "$work/$log/compose.yaml" <<YAML
name: proxycg
services:
  backend:
    command: ["$target/release/examples/bench_backend", "127.0.0.1:$base"]
    expose: ["$base"]
    x-berth:
      bind: direct
      ready: {tcp: true}
x-berth:
  state_dir: $work/$log/state
  proxy:
    listen: ["127.0.0.1:$((base + 1))"]
    access_log: $log
    routes:
      - {path: /, service: backend}
YAML
  # As `berth up -d` runs it (the detached child: no log printer on a terminal).
  (cd "$work/$log" && BERTH_DETACHED=1 NO_COLOR=1 exec valgrind --tool=callgrind --callgrind-out-file="$work/cg.$log" "$berth" up < /dev/null > "$work/up.$log" 2>&1) & vg=$!
  wait_port $((base + 1))
  url="http://127.0.0.1:$((base + 1))/"
  h2load --h1 -n 2000 -c "$conns" "$url" >/dev/null
  callgrind_control -z "$vg" >/dev/null
  out=$(h2load --h1 -n "$n" -c "$conns" "$url")
  callgrind_control -d "$vg" >/dev/null
  ok=$(awk '/^status codes:/ { print $3 }' <<<"$out")
  [ -z "${KEEP:-}" ] || cp "$work"/cg.$log.* "$KEEP/"
  ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$work"/cg.$log.*)
  kill -INT "$vg"; wait "$vg" 2>/dev/null || true; vg=
  awk -v setting="$log" -v ir="$ir" -v n="$n" -v ok="$ok" 'BEGIN { printf "access_log %-5s %d requests (%d 2xx): %.0f instructions per request\n", setting, n, ok, ir / n }'
done

[ "${PEERS:-1}" = 1 ] || exit 0
# The peers, each under callgrind in front of a backend of its own.
backend=$((base + 2)) peer=$((base + 3))
"$target/release/examples/bench_backend" "127.0.0.1:$backend" >/dev/null & backend_pid=$!
trap 'kill "$backend_pid" 2>/dev/null || true; cleanup' EXIT
wait_port "$backend"
count() { # NAME: warm up, zero, N requests, instructions per request
  wait_port "$peer"
  url="http://127.0.0.1:$peer/"
  h2load --h1 -n 2000 -c "$conns" "$url" >/dev/null
  callgrind_control -z "$vg" >/dev/null
  out=$(h2load --h1 -n "$n" -c "$conns" "$url")
  callgrind_control -d "$vg" >/dev/null
  ok=$(awk '/^status codes:/ { print $3 }' <<<"$out")
  [ -z "${KEEP:-}" ] || cp "$work/cg.peer.1" "$KEEP/cg.${1//[^a-z0-9]/_}"
  ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$work/cg.peer.1")
  # TERM: a background job of a script ignores SIGINT unless it handles it.
  kill "$vg"; wait "$vg" 2>/dev/null || true; vg=
  rm -f "$work"/cg.peer*
  awk -v name="$1" -v ir="$ir" -v n="$n" -v ok="$ok" 'BEGIN { printf "%-16s %d requests (%d 2xx): %.0f instructions per request\n", name, n, ok, ir / n }'
}
for log in off on; do
  if [ "$log" = on ]; then access="access_log $work/access.log json buffer=64k flush=1s;"; else access="access_log off;"; fi
  cat > "$work/nginx.conf" <<CONF
master_process off;
worker_processes 1;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  keepalive_requests 1000000;
  log_format json escape=json '{"time":"\$time_iso8601","method":"\$request_method",'
    '"path":"\$request_uri","status":\$status,"bytes":\$body_bytes_sent,'
    '"duration_ms":\$request_time,"upstream":"\$upstream_addr",'
    '"request_id":"\$request_id","client":"\$remote_addr"}';
  upstream backend { server 127.0.0.1:$backend; keepalive 128; }
  include $PWD/bench/nginx-proxy-headers.conf;
  server {
    listen 127.0.0.1:$peer;
    $access
    location / { proxy_pass http://backend; }
  }
}
CONF
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.peer" nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 & vg=$!
  count "nginx, log $log"
done
for mode in legacy h1; do
  arg=; [ "$mode" = h1 ] && arg=h1
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.peer" "$target/release/examples/bench_floor" "127.0.0.1:$peer" "127.0.0.1:$backend" $arg >/dev/null 2>&1 & vg=$!
  count "floor, $mode"
done
