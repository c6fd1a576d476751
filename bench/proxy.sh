#!/usr/bin/env bash
# Edge proxy throughput: wrk against (a) a minimal hyper backend directly,
# (b) nginx proxying to it with upstream keep-alive, (c) berth-proxy
# proxying to it, (d) the floor under berth-proxy: the same hyper server and
# hyper-util pooled client on the same per-thread runtimes doing nothing
# else, (e) a second floor with a hand-made per-worker pool over hyper's
# http1 client instead of hyper-util's legacy client (what replacing the
# client would gain). Runs alternate (a,b,c,d,e,a,...) on the same machine;
# prints the median requests/s, p99 latency and CPU time per request (of
# the proxy; for direct, of the backend) of each, and the ratios. CPU per
# request is the figure least disturbed by other load on the machine.
#
# usage: bench/proxy.sh [ROUNDS] [DURATION]      (default 5 rounds of 10s)
# env:   THREADS (wrk -t, 2), CONNS (wrk -c, 64), BASE_PORT (18081)
# needs: wrk and nginx (Debian: apt-get install -y wrk nginx)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
duration=${2:-10s}
threads=${THREADS:-2}
conns=${CONNS:-64}
base=${BASE_PORT:-18081}
backend_port=$base nginx_port=$((base + 1)) berth_port=$((base + 2)) floor_port=$((base + 3)) floor_h1_port=$((base + 4))

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "bench/proxy.sh: $tool is missing (apt-get install -y wrk nginx)" >&2; exit 2; }
done
cargo build --release -q -p berth-proxy --examples
bin=${CARGO_TARGET_DIR:-target}/release/examples

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/nginx.conf" <<CONF
worker_processes auto;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend {
    server 127.0.0.1:$backend_port;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
CONF

"$bin/bench_backend" "127.0.0.1:$backend_port" >/dev/null & backend_pid=$!; pids+=($!)
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & nginx_pid=$!; pids+=($!)
"$bin/bench_proxy" "127.0.0.1:$berth_port" "127.0.0.1:$backend_port" >/dev/null & berth_pid=$!; pids+=($!)
"$bin/bench_floor" "127.0.0.1:$floor_port" "127.0.0.1:$backend_port" >/dev/null & floor_pid=$!; pids+=($!)
"$bin/bench_floor" "127.0.0.1:$floor_h1_port" "127.0.0.1:$backend_port" h1 >/dev/null & floor_h1_pid=$!; pids+=($!)

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/proxy.sh: nothing listens on port $1" >&2
  exit 1
}
for port in $backend_port $nginx_port $berth_port $floor_port $floor_h1_port; do wait_port "$port"; done

declare -A port=([direct]=$backend_port [nginx]=$nginx_port [berth]=$berth_port [floor]=$floor_port [floor-h1]=$floor_h1_port)
names=(direct nginx berth floor floor-h1)
# Whose CPU time a run costs: the backend, nginx (master and workers), berth.
procs() {
  case $1 in
    direct) echo "$backend_pid" ;;
    nginx) echo "$nginx_pid" $(pgrep -P "$nginx_pid") ;;
    berth) echo "$berth_pid" ;;
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

# Latency in wrk's units (us, ms, s) to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for name in "${names[@]}"; do wrk -t"$threads" -c"$conns" -d2s "http://127.0.0.1:${port[$name]}/" >/dev/null; done

for round in $(seq 1 "$rounds"); do
  for name in "${names[@]}"; do
    before=$(cpu_ticks $(procs "$name"))
    out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:${port[$name]}/")
    after=$(cpu_ticks $(procs "$name"))
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    # CPU time the proxy (or, for direct, the backend) spent per request, in microseconds.
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$total" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    echo "$cpu" >> "$work/$name.cpu"
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    echo "$rps" >> "$work/$name.rps"
    echo "$p99" >> "$work/$name.p99"
    printf 'round %d %-6s %10s req/s  p99 %8s ms  cpu %6s us/req %s\n' "$round" "$name" "$rps" "$p99" "$cpu" "$errors"
  done
done

echo
echo "wrk -t$threads -c$conns -d$duration --latency, $rounds alternated rounds, medians ($(nproc) CPUs shared by wrk, backend and proxy)"
printf '| %-8s | %12s | %10s | %18s |\n' target "req/s" "p99 ms" "CPU us/request"
printf '|%s|%s|%s|%s|\n' "----------" "--------------" "------------" "--------------------"
for name in "${names[@]}"; do
  for m in rps p99 cpu; do median < "$work/$name.$m" > "$work/$name.$m.med"; done
  printf '| %-8s | %12s | %10s | %18s |\n' "$name" "$(cat "$work/$name.rps.med")" "$(cat "$work/$name.p99.med")" "$(cat "$work/$name.cpu.med")"
done
ratio() { awk -v a="$(cat "$work/$1")" -v b="$(cat "$work/$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "berth/nginx: req/s $(ratio berth.rps.med nginx.rps.med), p99 $(ratio berth.p99.med nginx.p99.med), CPU per request $(ratio berth.cpu.med nginx.cpu.med)"
echo "berth/direct: req/s $(ratio berth.rps.med direct.rps.med), p99 $(ratio berth.p99.med direct.p99.med)"
echo "berth/floor: req/s $(ratio berth.rps.med floor.rps.med), CPU per request $(ratio berth.cpu.med floor.cpu.med)"
echo "floor-h1/floor: req/s $(ratio floor-h1.rps.med floor.rps.med), CPU per request $(ratio floor-h1.cpu.med floor.cpu.med)"
echo "floor-h1/nginx: req/s $(ratio floor-h1.rps.med nginx.rps.med), CPU per request $(ratio floor-h1.cpu.med nginx.cpu.med)"
