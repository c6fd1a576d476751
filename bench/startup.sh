#!/usr/bin/env bash
# berth up: how fast dependents start, how much berth adds to a stack's start,
# how much memory berth uses, and how fast it moves a service's output.
#
#  1. dependency ready -> dependent spawned (goal < 50 ms), median of RUNS:
#     a) `x-berth.ready: {log: ...}`   b) `x-berth.ready: {http: ...}` (25 ms polls)
#     c) `healthcheck` (CMD, first probe at once)
#  2. demo stack: `up` until every replica is healthy, minus the services' own
#     start time measured by running them by hand (goal < 1 s)
#  3. berth's RSS while supervising the demo stack (goal < 20 MB)
#  4. a service printing 1 GiB through `berth up` to the terminal pipe, against
#     the same command piped straight to /dev/null (goal >= 100 MB/s)
#
# usage: bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-11}
root=$PWD
cargo build --release -q -p berth -p demo-api
berth=$root/target/release/berth
demo=$root/target/release/demo-api
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_ns() { date +%s%N; }

# --- 1. dependency ready -> dependent spawn -----------------------------------
latency_run() { # $1 = stack dir; prints dependent start - dependency ready (us)
  local dir=$1
  (cd "$dir" && exec "$berth" up --no-build > "$dir/out" 2>&1) &
  local pid=$!
  until grep -q 'START [0-9]' "$dir/out" 2>/dev/null; do sleep 0.01; done
  kill -INT $pid; wait $pid 2>/dev/null || true
  local ready start
  ready=$(grep -h -o 'READY [0-9]*' "$dir/ready.ts" | awk '{print $2}')
  start=$(grep -o 'START [0-9]*' "$dir/out" | head -1 | awk '{print $2}')
  echo $(( (start - ready) / 1000 ))
}

mk_latency_stack() { # $1 = dir, $2 = ready settings (yaml lines for dep)
  mkdir -p "$1"
  # The dependency stamps the moment it is ready (listening, and saying so)
  # into ready.ts; the dependent prints the moment it runs.
  cat > "$1/dep.py" <<'PY'
import http.server, os, sys, time
server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.SimpleHTTPRequestHandler)
stamp = time.time_ns()
open("ready.ts", "w").write("READY %d\n" % stamp)
print("READY", flush=True)
server.serve_forever()
PY
  cat > "$1/compose.yaml" <<EOF
services:
  dep:
    command: ["python3", "dep.py"]
$2
  app:
    command: ["sh", "-c", "echo START \$\$(date +%s%N)"]
    depends_on: {dep: {condition: service_healthy}}
EOF
}

mk_latency_stack "$work/log" "    x-berth: {ready: {log: READY}}"
mk_latency_stack "$work/http" "    x-berth: {ready: {http: /}}"
mk_latency_stack "$work/hc" "    healthcheck: {test: [CMD, test, -f, ready.ts], interval: 30s, start_interval: 50ms}"

for kind in log http hc; do
  results=()
  for _ in $(seq 1 "$runs"); do
    rm -f "$work/$kind/ready.ts" "$work/$kind/out"
    results+=("$(latency_run "$work/$kind")")
  done
  m=$(printf '%s\n' "${results[@]}" | median)
  printf 'ready->spawn %-4s: median %6.1f ms over %d runs (all: %s us)\n' "$kind" "$(echo "$m/1000" | bc -l)" "$runs" "${results[*]}"
done

# --- 2 & 3. the demo stack ----------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
own_start() { # the services by hand: migrate, then 3 replicas until each says it listens
  rm -rf "$work/own"; mkdir -p "$work/own"
  DEMO="$demo" DB="$work/own/demo.sqlite" python3 - <<'PY'
import os, subprocess, time
demo, db = os.environ["DEMO"], os.environ["DB"]
env = dict(os.environ, DEMO_DB=db)
t0 = time.monotonic_ns()
subprocess.run([demo, "migrate"], env=env, stdout=subprocess.DEVNULL, check=True)
procs = [subprocess.Popen([demo], env=dict(env, PORT="0", BERTH_REPLICA=str(i)), stdout=subprocess.PIPE, text=True)
         for i in (1, 2, 3)]
for p in procs:
    p.stdout.readline()   # "demo-api replica N listening on ..."
t1 = time.monotonic_ns()
for p in procs:
    p.terminate(); p.wait()
print((t1 - t0) // 1000)
PY
}

berth_start() { # berth up until "stack is up"; also samples berth's RSS
  rm -rf "$work/demo-state"
  cat > "$work/override.yaml" <<EOF
services:
  api:
    expose: !override ["$port"]
x-berth:
  state_dir: $work/demo-state
  proxy:
    listen: ["127.0.0.1:0"]
EOF
  local t0; t0=$(now_ns)
  "$berth" -f "$root/compose.yaml" -f "$work/override.yaml" up --no-build > "$work/up.log" 2>&1 &
  local pid=$!
  until grep -q 'stack is up' "$work/up.log" 2>/dev/null; do
    if ! kill -0 $pid 2>/dev/null; then cat "$work/up.log" >&2; exit 1; fi
    sleep 0.001
  done
  local t1; t1=$(now_ns)
  sleep 2 # let it settle into supervising
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill -INT $pid; wait $pid 2>/dev/null || true
  echo "$(( (t1 - t0) / 1000 )) $rss"
}

own=(); total=(); rsses=()
for _ in $(seq 1 "$runs"); do
  own+=("$(own_start)")
  read -r t r <<<"$(berth_start)"
  total+=("$t"); rsses+=("$r")
done
own_m=$(printf '%s\n' "${own[@]}" | median)
total_m=$(printf '%s\n' "${total[@]}" | median)
rss_m=$(printf '%s\n' "${rsses[@]}" | median)
printf 'demo stack: services by hand %.0f ms, berth up to all healthy %.0f ms, berth adds %.0f ms (median of %d)\n' \
  "$(echo "$own_m/1000" | bc -l)" "$(echo "$total_m/1000" | bc -l)" "$(echo "($total_m-$own_m)/1000" | bc -l)" "$runs"
printf 'berth RSS supervising the demo stack: median %.1f MB\n' "$(echo "$rss_m/1024" | bc -l)"

# --- 4. a service printing 1 GiB -------------------------------------------------
mkdir -p "$work/loud"
cat > "$work/loud/compose.yaml" <<'EOF'
services:
  loud:
    command: ["sh", "-c", "yes 'a log line of about one hundred bytes, as a busy service would print them over and over' | head -c 1073741824"]
EOF
t0=$(now_ns)
(cd "$work/loud" && "$berth" up --no-build > /dev/null 2>&1)
t1=$(now_ns)
direct0=$(now_ns)
sh -c "yes 'a log line of about one hundred bytes, as a busy service would print them over and over' | head -c 1073741824" > /dev/null
direct1=$(now_ns)
printf 'log throughput: 1 GiB through berth up in %.2f s = %.0f MB/s (files + terminal); the command alone into /dev/null: %.2f s\n' \
  "$(echo "($t1-$t0)/1000000000" | bc -l)" "$(echo "1073.741824/(($t1-$t0)/1000000000)" | bc -l)" \
  "$(echo "($direct1-$direct0)/1000000000" | bc -l)"
