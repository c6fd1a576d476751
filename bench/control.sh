#!/usr/bin/env bash
# The control plane:
#  1. `berth ps` latency against a running 50-replica stack (median of RUNS),
#     table and JSON, process start included;
#  2. a rolling restart of 3 replicas, against the service's own start time
#     (the same program started by hand until it answers /health): what berth
#     adds beyond starting three processes one after the other.
#
# usage: bench/control.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-21}
root=$PWD
cargo build --release -q -p berth -p demo-api
berth=$root/target/release/berth
demo=$root/target/release/demo-api
work=$(mktemp -d)
cleanup() { (cd "$work/ps" 2>/dev/null && "$berth" down >/dev/null 2>&1) || true; (cd "$work/roll" 2>/dev/null && "$berth" down >/dev/null 2>&1) || true; rm -rf "$work"; }
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- 1. ps against 50 replicas --------------------------------------------------
mkdir -p "$work/ps"
cat > "$work/ps/compose.yaml" <<EOF
services:
  worker:
    command: ["sleep", "600"]
    deploy: {replicas: 50}
EOF
(cd "$work/ps" && "$berth" up -d --wait >/dev/null)
for format in table json; do
  times=()
  for _ in $(seq 1 "$runs"); do
    t0=$(now_ns)
    (cd "$work/ps" && "$berth" ps --format "$format" >/dev/null)
    t1=$(now_ns)
    times+=($(( (t1 - t0) / 1000 )))
  done
  m=$(printf '%s\n' "${times[@]}" | median)
  printf 'ps (%s) against 50 replicas: median %.1f ms over %d runs\n' "$format" "$(echo "$m/1000" | bc -l)" "$runs"
done
(cd "$work/ps" && "$berth" down >/dev/null)

# --- 2. rolling restart of 3 replicas ----------------------------------------------
own() { # start demo-api by hand until it listens, 3 times in a row (as a rolling restart does)
  DEMO_DB=$work/roll/own.sqlite "$demo" migrate >/dev/null
  DEMO="$demo" DB="$work/roll/own.sqlite" python3 - <<'PY'
import os, subprocess, time
env = dict(os.environ, DEMO_DB=os.environ["DB"], PORT="0")
t0 = time.monotonic_ns()
for i in (1, 2, 3):
    p = subprocess.Popen([os.environ["DEMO"]], env=dict(env, BERTH_REPLICA=str(i)), stdout=subprocess.PIPE, text=True)
    p.stdout.readline()   # "demo-api replica N listening on ..."
    p.terminate(); p.wait()
print((time.monotonic_ns() - t0) // 1000)
PY
}
mkdir -p "$work/roll"
port=$(free_port)
cat > "$work/roll/compose.yaml" <<EOF
services:
  migrate:
    command: ["$demo", "migrate"]
    environment: {DEMO_DB: ./demo.sqlite}
  api:
    command: ["$demo"]
    environment: {DEMO_DB: ./demo.sqlite}
    expose: ["$port"]
    deploy: {replicas: 3}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-berth:
      ready: {http: /health}
EOF
(cd "$work/roll" && "$berth" up -d --wait >/dev/null)
own_t=(); roll_t=()
for _ in $(seq 1 "$runs"); do
  own_t+=("$(own)")
  t0=$(now_ns)
  (cd "$work/roll" && "$berth" restart api >/dev/null)
  t1=$(now_ns)
  roll_t+=($(( (t1 - t0) / 1000 )))
done
(cd "$work/roll" && "$berth" down >/dev/null)
o=$(printf '%s\n' "${own_t[@]}" | median)
r=$(printf '%s\n' "${roll_t[@]}" | median)
printf 'rolling restart of 3 replicas: %.0f ms; the program started 3 times by hand until it listens: %.0f ms; berth adds %.0f ms (medians of %d)\n' \
  "$(echo "$r/1000" | bc -l)" "$(echo "$o/1000" | bc -l)" "$(echo "($r-$o)/1000" | bc -l)" "$runs"
