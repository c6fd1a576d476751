#!/usr/bin/env bash
# Deploying a changed file: a 3-replica service behind a proxy gets a new
# environment value, under constant client load (wrk). Measured per round:
# requests that failed (non-2xx answers and socket errors) and the time the
# deploy command took to complete.
#
#   berth:  `berth up` again on the running stack (its reconcile), the
#           service's replicas running natively behind berth's proxy;
#   docker: `docker-compose up -d` of the same change, three containers of
#           one locally built image behind nginx (an upstream of the three
#           published ports, nginx's default retries on a refused connection),
#           the way a compose stack fronted by nginx is updated.
#
# Rounds alternate between the two; the summary gives medians.
#
# usage: bench/deploy.sh [ROUNDS]          (default 5; needs docker, docker-compose,
#        nginx, wrk and busybox; builds berth in release mode)
set -euo pipefail

ROUNDS=${1:-5}
cd "$(dirname "$0")/.."
for tool in docker docker-compose nginx wrk busybox; do
  command -v "$tool" >/dev/null || { echo "bench/deploy.sh needs $tool" >&2; exit 1; }
done
cargo build --release --quiet
BERTH=$PWD/target/release/berth
WORK=$(mktemp -d)
IMAGE=berth-bench-deploy:latest
B_PORT=18300 B_DECL=18310 D_PORT=18200 D_FIRST=18201

cleanup() {
  (cd "$WORK/berth" && "$BERTH" down --timeout 2 >/dev/null 2>&1) || true
  (cd "$WORK/docker" && docker-compose -p berthbench down -t 1 >/dev/null 2>&1) || true
  [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
  docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The same static site for both: busybox httpd, natively or in an image
# built FROM scratch.
mkdir -p "$WORK/image/www" "$WORK/image/bin" "$WORK/berth/www" "$WORK/docker" "$WORK/nginx"
echo hello > "$WORK/image/www/index.html"
cp "$WORK/image/www/index.html" "$WORK/berth/www/"
cp "$(command -v busybox)" "$WORK/image/bin/busybox"
cat > "$WORK/image/Dockerfile" <<'EOF'
FROM scratch
COPY bin/busybox /bin/busybox
COPY www /www
ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
EOF
docker build -q -t "$IMAGE" "$WORK/image" >/dev/null

berth_file() {
  cat > "$WORK/berth/compose.yaml" <<EOF
name: berthbench
x-berth:
  proxy:
    listen: ["127.0.0.1:$B_PORT"]
    access_log: false
    routes: [{path: /, service: web}]
services:
  web:
    command: [sh, -c, 'exec busybox httpd -f -p \$\$PORT -h www']
    environment: {V: "$1"}
    expose: ["$B_DECL"]
    deploy: {replicas: 3}
    x-berth: {ready: {tcp: true}}
EOF
}

docker_file() {
  {
    echo "services:"
    for i in 0 1 2; do
      echo "  web$i: {image: \"$IMAGE\", init: true, environment: {V: \"$1\"}, ports: [\"127.0.0.1:$((D_FIRST + i)):8080\"]}"
    done
  } > "$WORK/docker/docker-compose.yml"
}

cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
  access_log off;
  upstream web {
    server 127.0.0.1:$D_FIRST;
    server 127.0.0.1:$((D_FIRST + 1));
    server 127.0.0.1:$((D_FIRST + 2));
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$D_PORT;
    location / {
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

until_answers() {
  local deadline=$((SECONDS + 30))
  until curl -sf "http://127.0.0.1:$1/" >/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "nothing answers on $1" >&2; exit 1; }
    sleep 0.1
  done
}

berth_file 0
(cd "$WORK/berth" && "$BERTH" up -d --wait >/dev/null)
docker_file 0
(cd "$WORK/docker" && docker-compose -p berthbench up -d >/dev/null 2>&1)
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
until_answers $B_PORT
until_answers $D_PORT

# One round: load from a second before the deploy until a second after it.
# Prints "<failed> <requests> <deploy seconds>".
round() {
  local kind=$1 value=$2 port deploy
  if [ "$kind" = berth ]; then
    port=$B_PORT; berth_file "$value"
    deploy=(bash -c "cd '$WORK/berth' && '$BERTH' up >/dev/null")
  else
    port=$D_PORT; docker_file "$value"
    deploy=(bash -c "cd '$WORK/docker' && docker-compose -p berthbench up -d >/dev/null 2>&1")
  fi
  # wrk prints its summary when interrupted.
  wrk -t1 -c8 -d300s "http://127.0.0.1:$port/" > "$WORK/wrk.$kind" 2>&1 &
  local wrk_pid=$!
  sleep 1
  local start end
  start=$(date +%s.%N)
  "${deploy[@]}"
  end=$(date +%s.%N)
  sleep 1
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  python3 - "$WORK/wrk.$kind" "$start" "$end" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
total = int(re.search(r"(\d+) requests in", text).group(1))
non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", text) or [0, 0])[1])
errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
socket = sum(int(g) for g in errs.groups()) if errs else 0
print(non2xx + socket, total, "%.2f" % (float(sys.argv[3]) - float(sys.argv[2])))
PY
}

echo "round  berth: failed/requests deploy_s   docker-compose+nginx: failed/requests deploy_s"
: > "$WORK/results"
for r in $(seq 1 "$ROUNDS"); do
  read -r bf bt bs < <(round berth "$r")
  read -r df dt ds < <(round docker "$r")
  echo "$bf $bt $bs $df $dt $ds" >> "$WORK/results"
  printf "%5d  %6d/%-8d %6s      %6d/%-8d %6s\n" "$r" "$bf" "$bt" "$bs" "$df" "$dt" "$ds"
done
python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
col = lambda i: statistics.median(r[i] for r in rows)
print(f"median berth:  {col(0):.0f} failed of {col(1):.0f} requests, deploy {col(2):.2f}s")
print(f"median docker: {col(3):.0f} failed of {col(4):.0f} requests, deploy {col(5):.2f}s")
PY
