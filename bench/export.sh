#!/usr/bin/env bash
# Time for `berth export kubernetes -o DIR` on a generated 500-service file
# (health checks, depends_on chains and one-shot jobs, named volumes,
# environments, proxy routes), end to end: process start, loading and
# validating the file, the export, writing one file per object and the
# kustomization. Median of repeated runs (hyperfine when installed, else a
# loop timed with date). Goal: under 100 ms. Compared with kompose when it
# is installed.
#
# usage: bench/export.sh [SERVICES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
services=${1:-500}
runs=${2:-21}

cargo build --release -q
berth=$PWD/target/release/berth
work=$(mktemp -d)
if [ -z "${BERTH_BENCH_KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work"; fi

{
  echo "name: bench"
  echo "services:"
  for i in $(seq 1 "$services"); do
    if [ $((i % 50)) -eq 1 ]; then
      # A one-shot job the next services wait for.
      cat <<SVC
  migrate$i:
    image: example/app:1.0
    command: ["./bin/migrate", "--step", "$i"]
    volumes: ["data$i:/data"]
SVC
    fi
    cat <<SVC
  svc$i:
    image: example/app:1.0
    command: ["./bin/app", "--port", "8000", "--name", "svc$i"]
    environment:
      SERVICE: svc$i
      DATABASE_URL: postgres://app:secret@db:5432/app
      LOG_LEVEL: info
      WORKERS: "4"
    expose: ["$((10000 + i))"]
    volumes: ["data$i:/data", "/tmp/cache"]
    deploy:
      replicas: $((i % 3 + 1))
      resources: {limits: {cpus: "0.5", memory: 256M}}
    labels: [com.example.service=svc$i, com.example.tier=backend]
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://localhost:$((10000 + i))/health || exit 1"]
      interval: 10s
      timeout: 2s
      retries: 3
      start_period: 20s
    x-berth:
      ready: {http: /ready}
SVC
    deps=()
    [ "$i" -gt 1 ] && deps+=("svc$((i - 1)): {condition: service_healthy}")
    base=$(( (i - 1) / 50 * 50 + 1 ))
    [ "$i" -ne "$base" ] && deps+=("migrate$base: {condition: service_completed_successfully}")
    if [ ${#deps[@]} -gt 0 ]; then
      echo "    depends_on:"
      for d in "${deps[@]}"; do echo "      $d"; done
    fi
  done
  echo "volumes:"
  for i in $(seq 1 "$services"); do echo "  data$i: {}"; done
  echo "x-berth:"
  echo "  proxy:"
  echo "    routes:"
  for i in $(seq 1 5 "$services"); do echo "      - {path: /svc$i, service: svc$i}"; done
} > "$work/compose.yaml"

cd "$work"
"$berth" export kubernetes -o out 2>/dev/null
objects=$(grep -c '^  - ' out/kustomization.yaml)
size=$(wc -c < compose.yaml)
count=$(grep -c '^  [a-z0-9]*:$' compose.yaml)
printf 'export: %d services (%d bytes) -> %d objects, median of %d runs, goal < 100 ms\n' \
  "$count" "$size" "$objects" "$runs"

# time_runs LABEL PREPARE COMMAND: the median and the fastest run, in ms.
time_runs() {
  local label=$1 prepare=$2 command=$3 median min
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 2 --runs "$runs" --prepare "$prepare" --export-json times.json \
      "$command" >/dev/null 2>&1
    median=$(python3 -c 'import json,statistics;r=json.load(open("times.json"))["results"][0]["times"];print(statistics.median(r)*1e3)')
    min=$(python3 -c 'import json;r=json.load(open("times.json"))["results"][0]["times"];print(min(r)*1e3)')
  else
    local times=() start end
    for _ in $(seq 1 "$runs"); do
      sh -c "$prepare"
      start=$(date +%s%N)
      sh -c "$command" >/dev/null 2>&1
      end=$(date +%s%N)
      times+=($(( (end - start) / 1000 )))
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] / 1000}')
    min=$(printf '%s\n' "${times[@]}" | sort -n | head -1 | awk '{print $1 / 1000}')
  fi
  printf '  %-58s median %6.1f ms, min %6.1f ms\n' "$label" "$median" "$min"
}

time_runs "-o DIR, the directory holds the same export (nothing written)" "true" \
  "$berth export kubernetes -o out"
time_runs "-o DIR, a fresh directory each run (every file written)" "rm -rf $work/fresh" \
  "$berth export kubernetes -o fresh"
time_runs "the stream to stdout (no files)" "true" "$berth export kubernetes"
time_runs "berth config -q (loading the file alone)" "true" "$berth config -q"
echo "  (timed with $(command -v hyperfine >/dev/null && echo hyperfine || echo 'a date loop'); files under $work)"

if command -v kompose >/dev/null; then
  mkdir -p kompose-out
  start=$(date +%s%N)
  kompose convert -f compose.yaml -o kompose-out >/dev/null 2>&1 || true
  end=$(date +%s%N)
  printf 'kompose convert, same file, one run: %.1f ms\n' "$(echo "($end - $start) / 1000000" | bc -l)"
else
  echo "kompose: not installed here, no comparison"
fi
