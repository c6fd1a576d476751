#!/usr/bin/env bash
# Time for `berth config -q` to load, validate and normalize a generated
# 500-service compose file, end to end (process start included), median of
# repeated runs. Goal: under 50 ms. Then the same for one service publishing
# the full port range `1-65535:1-65535` (65,535 port entries; the checks
# must stay linear: it took 18.7 s when they were quadratic).
#
# usage: bench/config.sh [SERVICES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
services=${1:-500}
runs=${2:-21}

cargo build --release -q
berth=target/release/berth
work=$(mktemp -d)
if [ -z "${BERTH_BENCH_KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work"; fi

{
  echo "name: bench"
  echo "x-common: &common"
  echo "  restart: on-failure"
  echo "  logging: {driver: json-file, options: {max-size: 10m, max-file: \"3\"}}"
  echo "services:"
  for i in $(seq 1 "$services"); do
    cat <<SVC
  svc$i:
    <<: *common
    image: example/app:\${TAG:-1.0}
    command: ["./bin/app", "--port", "8000", "--name", "svc$i"]
    environment:
      SERVICE: svc$i
      DATABASE_URL: postgres://app:\${DB_PASSWORD:-secret}@localhost:5432/app
      LOG_LEVEL: info
      WORKERS: "4"
    expose: ["$((10000 + i))"]
    ports: ["127.0.0.1:$((20000 + i)):$((10000 + i))"]
    volumes: ["./data/svc$i:/data", "cache$i:/cache"]
    labels: [com.example.service=svc$i, com.example.tier=backend]
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
      timeout: 2s
      retries: 3
SVC
    if [ "$i" -gt 1 ]; then
      echo "    depends_on: {svc$((i - 1)): {condition: service_started}}"
    fi
  done
  echo "volumes:"
  for i in $(seq 1 "$services"); do echo "  cache$i: {}"; done
} > "$work/compose.yaml"

# time_config FILE: sets $median and $min (microseconds) over $runs runs of
# `berth config -q`, after one run that warms the page cache.
time_config() {
  "$berth" -f "$1" config -q 2>/dev/null
  local times=() start end
  for _ in $(seq 1 "$runs"); do
    start=$(date +%s%N)
    "$berth" -f "$1" config -q 2>/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  min=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
}

time_config "$work/compose.yaml"
size=$(wc -c < "$work/compose.yaml")
printf 'config: %d services (%d bytes), %d runs: median %.1f ms, min %.1f ms (goal < 50 ms)\n' \
  "$services" "$size" "$runs" "$(echo "$median / 1000" | bc -l)" "$(echo "$min / 1000" | bc -l)"

printf 'services:\n  web:\n    command: [sleep, "1"]\n    ports: ["1-65535:1-65535"]\n' > "$work/range.yaml"
time_config "$work/range.yaml"
printf 'config: one 1-65535 port range, %d runs: median %.1f ms\n' "$runs" "$(echo "$median / 1000" | bc -l)"
