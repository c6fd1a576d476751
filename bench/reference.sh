#!/usr/bin/env bash
# The reference stack (examples/reference/compose.yaml), natively: `berth up
# -d` (release) until every service is healthy and the API answers through
# the TLS edge, medians of ROUNDS cold starts (fresh volumes: initdb
# included), then berth's own memory (RSS of the berth process, with the
# proxy, TLS, the dashboard, metrics and the log pipeline on) while it runs.
#
# Not measured yet: the same stack in the Docker runtime and `docker compose
# up --wait` of the equivalent container stack (issue 18: PostgreSQL and
# Redis images built from the host's packages).
#
# usage: bench/reference.sh [ROUNDS]     (default 5)
# needs: postgresql, redis-server (Debian)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
command -v redis-server >/dev/null || { echo "bench/reference.sh: redis-server is missing (apt-get install -y redis-server)" >&2; exit 2; }
cargo build --release -q -p berth -p demo-api
root=$PWD
berth=$root/target/release/berth
work=$(mktemp -d)
chmod 755 "$work"
export COMPOSE_FILE="$root/examples/reference/compose.yaml:$work/override.yaml"
export DB_PORT=55432 REDIS_PORT=56379
cat >"$work/override.yaml" <<YAML
x-berth:
  state_dir: $work/state
  proxy:
    listen: !override ["127.0.0.1:58080"]
    listen_tls: !override ["127.0.0.1:58443"]
YAML
cleanup() { "$berth" down -v >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
times=() ; rss=()
for r in $(seq 1 "$rounds"); do
  start=$(date +%s.%N)
  "$berth" up -d --wait --no-build >/dev/null
  until curl -skf https://127.0.0.1:58443/api/items?limit=1 >/dev/null; do sleep 0.01; done
  end=$(date +%s.%N)
  times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b-a}')")
  # Some traffic and a dashboard stream first, so every part has run.
  for _ in $(seq 1 200); do curl -sk -o /dev/null https://127.0.0.1:58443/api/items?limit=1; done
  pid=$("$berth" ps --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  rss+=("$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")")
  echo "round $r: healthy and answering in ${times[-1]} s, berth RSS ${rss[-1]} MiB" >&2
  "$berth" down -v >/dev/null
done
echo "| reference stack natively: up -d --wait until the API answers over TLS (cold, initdb included) | $(printf '%s\n' "${times[@]}" | median) s |"
echo "| berth's RSS with proxy, TLS, dashboard, metrics and logs on | $(printf '%s\n' "${rss[@]}" | median) MiB |"
