#!/usr/bin/env bash
# The TLS edge against nginx, on the path users run: `berth up` (release,
# supervisor, access log and metrics on) with a TLS listener, and nginx
# (Debian) with the same certificate (ECDSA P-256), the same protocols
# (TLS 1.2 + 1.3), HTTP/2, an access log, and the same upstream: one
# minimal hyper server (bench_backend) that berth runs as a service
# (`bind: direct`, so both proxies reach the same port). Three measures,
# alternated berth/nginx each round, medians:
#   keepalive   wrk over HTTPS on kept-alive connections (HTTP/1.1)
#   handshakes  wrk with `Connection: close`: a new connection and a full
#               TLS handshake per request (wrk does not resume sessions)
#   h2          h2load, HTTP/2 over TLS, 10 streams per connection
# and prints requests/s and p99 for each, and the berth/nginx ratios.
#
# usage: bench/tls.sh [ROUNDS] [DURATION]      (default 5 rounds of 10s)
# env:   THREADS (wrk -t, 2), CONNS (64), BASE_PORT (18181)
# needs: wrk, nginx, h2load, openssl (Debian: apt-get install -y wrk nginx nghttp2-client openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
duration=${2:-10s}
threads=${THREADS:-2}
conns=${CONNS:-64}
base=${BASE_PORT:-18181}
backend_port=$base berth_port=$((base + 1)) nginx_port=$((base + 2)) berth_plain=$((base + 3))
secs=${duration%s}

for tool in wrk nginx h2load openssl; do
  command -v "$tool" >/dev/null || { echo "bench/tls.sh: $tool is missing (apt-get install -y wrk nginx nghttp2-client openssl)" >&2; exit 2; }
done
cargo build --release -q
cargo build --release -q -p berth-proxy --examples
target=$(realpath "${CARGO_TARGET_DIR:-target}")
berth=$target/release/berth

work=$(mktemp -d)
pids=()
cleanup() {
  (cd "$work/stack" 2>/dev/null && "$berth" down >/dev/null 2>&1) || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/site.key" -out "$work/site.pem" 2>/dev/null

mkdir -p "$work/stack"
cat > "$work/stack/compose.yaml" <<YAML
name: tlsbench
services:
  backend:
    command: ["$target/release/examples/bench_backend", "127.0.0.1:$backend_port"]
    expose: ["$backend_port"]
    x-berth:
      bind: direct
      ready: {tcp: true}
x-berth:
  proxy:
    listen: ["127.0.0.1:$berth_plain"]
    listen_tls: ["127.0.0.1:$berth_port"]
    tls:
      certificates: [{cert: $work/site.pem, key: $work/site.key}]
    hsts: 0
    metrics_path: /metrics
    routes:
      - {path: /, service: backend}
YAML

cat > "$work/nginx.conf" <<CONF
worker_processes auto;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log $work/access.log;
  # nginx closes a connection after 1,000 requests by default (HTTP/1.1 and
  # HTTP/2 alike); h2load does not reconnect, and wrk would pay new
  # handshakes: berth has no such limit, so neither does nginx here.
  keepalive_requests 1000000;
  upstream backend {
    server 127.0.0.1:$backend_port;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$nginx_port ssl http2;
    ssl_certificate $work/site.pem;
    ssl_certificate_key $work/site.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1d;
    location / {
      proxy_pass http://backend;
      include $PWD/bench/nginx-proxy-headers.conf;
    }
  }
}
CONF

(cd "$work/stack" && "$berth" up -d --wait >/dev/null)
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/tls.sh: nothing listens on port $1" >&2
  exit 1
}
for p in $backend_port $berth_port $nginx_port; do wait_port "$p"; done

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A port=([berth]=$berth_port [nginx]=$nginx_port)
names=(berth nginx)
measures=(keepalive handshakes h2)

# One run of a measure against one target: "req/s p99_ms errors".
run() {
  local url="https://127.0.0.1:${port[$2]}/" out
  case $1 in
    keepalive|handshakes)
      local extra=()
      [ "$1" = handshakes ] && extra=(-H "Connection: close")
      out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "${extra[@]}" "$url")
      echo "$(awk '/^Requests\/sec/ { print $2 }' <<<"$out") $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")") $(awk '/Non-2xx|Socket errors/ { printf "%s;", $0 }' <<<"$out")"
      ;;
    h2)
      # The log has every request's duration (microseconds, third column).
      out=$(h2load -c "$conns" -m 10 -t "$threads" -D "$secs" --log-file="$work/h2.log" "$url")
      local p99
      p99=$(awk '{ print $3 / 1000 }' "$work/h2.log" | sort -g | awk '{ a[NR] = $1 } END { printf "%.3f", a[int(NR * 0.99)] }')
      echo "$(awk '/^finished in/ { print $4 }' <<<"$out") $p99 $(awk '/^requests:/ && $10 != 0 { printf "failed %s;", $10 }' <<<"$out")"
      ;;
  esac
}

for m in "${measures[@]}"; do for name in "${names[@]}"; do
  THREADS=$threads duration=2s secs=2 run "$m" "$name" >/dev/null
done; done

for round in $(seq 1 "$rounds"); do
  for m in "${measures[@]}"; do
    for name in "${names[@]}"; do
      read -r rps p99 errors <<<"$(run "$m" "$name")"
      echo "$rps" >> "$work/$m.$name.rps"
      echo "$p99" >> "$work/$m.$name.p99"
      printf 'round %d %-10s %-5s %10s req/s  p99 %8s ms %s\n' "$round" "$m" "$name" "$rps" "$p99" "${errors:-}"
    done
  done
done

echo
echo "$rounds alternated rounds of $duration, medians; wrk -t$threads -c$conns, h2load -c$conns -m10 -t$threads ($(nproc) CPUs shared by the load generator, the backend and the proxy)"
printf '| %-10s | %-6s | %12s | %10s |\n' measure target "req/s" "p99 ms"
printf '|%s|%s|%s|%s|\n' "------------" "--------" "--------------" "------------"
for m in "${measures[@]}"; do
  for name in "${names[@]}"; do
    for k in rps p99; do median < "$work/$m.$name.$k" > "$work/$m.$name.$k.med"; done
    printf '| %-10s | %-6s | %12s | %10s |\n' "$m" "$name" "$(cat "$work/$m.$name.rps.med")" "$(cat "$work/$m.$name.p99.med")"
  done
done
ratio() { awk -v a="$(cat "$work/$1")" -v b="$(cat "$work/$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo
for m in "${measures[@]}"; do
  echo "berth/nginx $m: req/s $(ratio "$m.berth.rps.med" "$m.nginx.rps.med"), p99 $(ratio "$m.berth.p99.med" "$m.nginx.p99.med")"
done
