#!/usr/bin/env bash
# The edge proxy against nginx, on the path users run: `berth up` (release,
# the supervisor running, the proxy routing to a stack service), access log
# off and on, side by side with nginx (Debian) off and on. Targets:
#   direct       the minimal hyper backend (bench_backend), no proxy
#   nginx-off    nginx, access log off
#   nginx-on     nginx, JSON access log (log_format escape=json, buffer=64k flush=1s)
#   berth-off    `berth up`, `x-berth.proxy.access_log: false`
#   berth-on     `berth up`, berth's default (access log on)
#   bench-proxy  the stripped berth-proxy example (bench_proxy.rs, log off)
#   floor        the same hyper server + hyper-util pooled client, nothing else
#   floor-h1     the same with a per-worker pool over hyper's http1 client
# The upstream is bench_backend run by each berth stack as its service (`bind:
# direct`, so nginx reaches the same process): nginx-off, berth-off,
# bench-proxy and the floors use the first stack's, nginx-on and berth-on the
# second's. Rounds alternate the targets; medians of requests/s, p99 and CPU
# per request (user+system time from /proc of the proxy: the berth process,
# all nginx processes, the example; for direct, the backend), then the rows
# of issue 15 (logs off on both; on on both; berth's default vs nginx off)
# and RSS per 1,000 idle keep-alive connections for berth and nginx.
#
# usage: bench/proxy.sh [ROUNDS] [DURATION]      (default 5 rounds of 10s)
# env:   THREADS (wrk -t, 1), CONNS (wrk -c, 32), BASE_PORT (18081),
#        BERTH (the berth binary; default: the release build),
#        TARGETS (names to run, default all), IDLE (idle connections, 1000; 0: skip)
# needs: wrk and nginx (Debian: apt-get install -y wrk nginx), python3
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
duration=${2:-10s}
threads=${THREADS:-1}
conns=${CONNS:-32}
base=${BASE_PORT:-18081}
idle=${IDLE:-1000}
backend_off=$base backend_on=$((base + 1)) nginx_off=$((base + 2)) nginx_on=$((base + 3))
berth_off=$((base + 4)) berth_on=$((base + 5)) bench_port=$((base + 6)) floor_port=$((base + 7)) floor_h1_port=$((base + 8))

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "bench/proxy.sh: $tool is missing (apt-get install -y wrk nginx)" >&2; exit 2; }
done
[ -n "${BERTH:-}" ] || cargo build --release -q --bin berth
cargo build --release -q -p berth-proxy --examples
target=$(realpath "${CARGO_TARGET_DIR:-target}")
bin=$target/release/examples
berth=$(realpath "${BERTH:-$target/release/berth}")
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
pids=()
cleanup() {
  for stack in off on; do
    (cd "$work/$stack" 2>/dev/null && "$berth" down >/dev/null 2>&1) || true
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# One stack: the backend as a service, one route to it; $2 = access_log.
stack() {
  mkdir -p "$work/$1"
  cat > "$work/$1/compose.yaml" <<YAML
name: proxybench-$1
services:
  backend:
    command: ["$bin/bench_backend", "127.0.0.1:$3"]
    expose: ["$3"]
    x-berth:
      bind: direct
      ready: {tcp: true}
x-berth:
  state_dir: $work/$1/state
  proxy:
    listen: ["127.0.0.1:$4"]
    access_log: $2
    routes:
      - {path: /, service: backend}
YAML
  (cd "$work/$1" && "$berth" up -d --wait >/dev/null)
  (cd "$work/$1" && "$berth" ps --format json) | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'
}

cat > "$work/nginx.conf" <<CONF
worker_processes auto;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  # berth has no per-connection request limit; nginx's default is 1,000.
  keepalive_requests 1000000;
  log_format json escape=json '{"time":"\$time_iso8601","method":"\$request_method",'
    '"path":"\$request_uri","status":\$status,"bytes":\$body_bytes_sent,'
    '"duration_ms":\$request_time,"upstream":"\$upstream_addr",'
    '"request_id":"\$request_id","client":"\$remote_addr"}';
  upstream off { server 127.0.0.1:$backend_off; keepalive 128; }
  upstream on { server 127.0.0.1:$backend_on; keepalive 128; }
  include $PWD/bench/nginx-proxy-headers.conf;
  server {
    listen 127.0.0.1:$nginx_off;
    access_log off;
    location / { proxy_pass http://off; }
  }
  server {
    listen 127.0.0.1:$nginx_on;
    access_log $work/access.log json buffer=64k flush=1s;
    location / { proxy_pass http://on; }
  }
}
CONF

berth_off_pid=$(stack off false "$backend_off" "$berth_off")
berth_on_pid=$(stack on true "$backend_on" "$berth_on")
backend_pid=$(pgrep -f "bench_backend 127.0.0.1:$backend_off\$")
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & nginx_pid=$!; pids+=($!)
"$bin/bench_proxy" "127.0.0.1:$bench_port" "127.0.0.1:$backend_off" >/dev/null & bench_pid=$!; pids+=($!)
"$bin/bench_floor" "127.0.0.1:$floor_port" "127.0.0.1:$backend_off" >/dev/null & floor_pid=$!; pids+=($!)
"$bin/bench_floor" "127.0.0.1:$floor_h1_port" "127.0.0.1:$backend_off" h1 >/dev/null & floor_h1_pid=$!; pids+=($!)

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/proxy.sh: nothing listens on port $1" >&2
  exit 1
}
declare -A port=([direct]=$backend_off [nginx-off]=$nginx_off [nginx-on]=$nginx_on [berth-off]=$berth_off
  [berth-on]=$berth_on [bench-proxy]=$bench_port [floor]=$floor_port [floor-h1]=$floor_h1_port)
read -r -a names <<<"${TARGETS:-direct nginx-off nginx-on berth-off berth-on bench-proxy floor floor-h1}"
for name in "${names[@]}"; do wait_port "${port[$name]}"; done

# Whose CPU time a run costs.
procs() {
  case $1 in
    direct) echo "$backend_pid" ;;
    nginx-*) echo "$nginx_pid" $(pgrep -P "$nginx_pid") ;;
    berth-off) echo "$berth_off_pid" ;;
    berth-on) echo "$berth_on_pid" ;;
    bench-proxy) echo "$bench_pid" ;;
    floor) echo "$floor_pid" ;;
    floor-h1) echo "$floor_h1_pid" ;;
  esac
}
# utime + stime, in clock ticks, of the given processes (all their threads).
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    read -r -a fields < "/proc/$pid/stat"
    total=$((total + fields[13] + fields[14]))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
rss_kib() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"))); done; echo "$total"; }

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in "${names[@]}"; do wrk -t"$threads" -c"$conns" -d2s "http://127.0.0.1:${port[$name]}/" >/dev/null; done

for round in $(seq 1 "$rounds"); do
  for name in "${names[@]}"; do
    before=$(cpu_ticks $(procs "$name"))
    out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:${port[$name]}/")
    after=$(cpu_ticks $(procs "$name"))
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$total" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    echo "$rps" >> "$work/$name.rps"
    echo "$p99" >> "$work/$name.p99"
    echo "$cpu" >> "$work/$name.cpu"
    printf 'round %d %-11s %10s req/s  p99 %8s ms  cpu %6s us/req %s\n' "$round" "$name" "$rps" "$p99" "$cpu" "$errors"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "wrk -t$threads -c$conns -d$duration --latency, $rounds alternated rounds, medians ($(nproc) CPUs shared by wrk, backend and proxy); berth: $berth"
printf '| %-11s | %12s | %10s | %18s |\n' target "req/s" "p99 ms" "CPU us/request"
printf '|%s|%s|%s|%s|\n' "-------------" "--------------" "------------" "--------------------"
for name in "${names[@]}"; do
  for m in rps p99 cpu; do median < "$work/$name.$m" > "$work/$name.$m.med"; done
  printf '| %-11s | %12s | %10s | %18s |\n' "$name" "$(cat "$work/$name.rps.med")" "$(cat "$work/$name.p99.med")" "$(cat "$work/$name.cpu.med")"
done
has() { [ -f "$work/$1.rps.med" ] && [ -f "$work/$2.rps.med" ]; }
ratio() { awk -v a="$(cat "$work/$1")" -v b="$(cat "$work/$2")" 'BEGIN { printf "%.2f", a / b }'; }
compare() {
  has "$2" "$3" || return 0
  printf '| %-48s | %6s | %6s | %6s |\n' "$1" "$(ratio "$2.rps.med" "$3.rps.med")" "$(ratio "$2.p99.med" "$3.p99.med")" "$(ratio "$2.cpu.med" "$3.cpu.med")"
}
echo
printf '| %-48s | %6s | %6s | %6s |\n' "berth / nginx" "req/s" "p99" "CPU/req"
printf '|%s|%s|%s|%s|\n' "--------------------------------------------------" "--------" "--------" "--------"
compare "access logs off on both" berth-off nginx-off
compare "access logs on on both" berth-on nginx-on
compare "berth default (log on) vs nginx log off" berth-on nginx-off
compare "stripped bench_proxy vs nginx log off" bench-proxy nginx-off
compare "floor vs nginx log off" floor nginx-off
compare "floor-h1 vs nginx log off" floor-h1 nginx-off
if has berth-on berth-off; then
  echo
  echo "access log cost, berth: $(awk -v a="$(cat "$work/berth-on.rps.med")" -v b="$(cat "$work/berth-off.rps.med")" 'BEGIN { printf "%.1f", (1 - a / b) * 100 }') % of req/s, CPU per request x$(ratio berth-on.cpu.med berth-off.cpu.med)"
fi
if has nginx-on nginx-off; then
  echo "access log cost, nginx: $(awk -v a="$(cat "$work/nginx-on.rps.med")" -v b="$(cat "$work/nginx-off.rps.med")" 'BEGIN { printf "%.1f", (1 - a / b) * 100 }') % of req/s, CPU per request x$(ratio nginx-on.cpu.med nginx-off.cpu.med)"
fi

# Memory of idle keep-alive connections: RSS before and after $idle
# connections that each made one request and stay open.
[ "$idle" -gt 0 ] || exit 0
echo
for name in berth-on nginx-on; do
  before=$(rss_kib $(procs "$name"))
  exec {to_py}> >(exec python3 bench/idle_conns.py "${port[$name]}" "$idle" > "$work/idle.out")
  for _ in $(seq 1 300); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$work/idle.out" || { echo "bench/proxy.sh: idle connections to $name failed" >&2; exit 1; }
  sleep 1
  after=$(rss_kib $(procs "$name"))
  exec {to_py}>&-
  rm -f "$work/idle.out"
  awk -v n="$name" -v b="$before" -v a="$after" -v c="$idle" 'BEGIN { printf "%-9s RSS %7.1f MiB -> %7.1f MiB with %d idle keep-alive connections: %.2f MiB per 1,000\n", n, b / 1024, a / 1024, c, (a - b) / 1024 / c * 1000 }'
  sleep 1
done
