#!/usr/bin/env bash
# The reference stack (examples/reference/compose.yaml), cold starts side
# by side in one run, alternated, medians of ROUNDS:
#   native   `berth up -d --wait` (release), PostgreSQL and Redis from the
#            host's packages, until the API answers through the TLS edge;
#   docker   the same file with `--runtime docker` and docker.env, images
#            made by examples/reference/images.sh, until the API answers
#            through the TLS edge;
#   compose  `docker-compose up -d` of the same services from the same
#            images (the file with what Compose 1.29 cannot read taken
#            out: `name`, `start_interval`), until every service is
#            healthy or completed, polled every 50 ms as `up --wait` does;
#            no edge in front (it has none: that is nginx's job there);
#   compose, 100 ms checks: the same with the health checks' `interval`
#            at 100 ms, the closest this engine (20.10, no
#            start_interval) comes to berth's start_interval.
# Every start is cold (fresh volumes: initdb included). Then berth's own
# memory (RSS of the berth process, with the proxy, TLS, the dashboard,
# metrics and the log pipeline on) in both runtimes.
#
# usage: bench/reference.sh [ROUNDS]     (default 5)
# needs: postgresql, redis-server, busybox-static, docker, docker-compose (Debian)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
for tool in redis-server busybox docker docker-compose; do
  command -v "$tool" >/dev/null || { echo "bench/reference.sh: $tool is missing (apt-get install -y redis-server busybox-static docker-compose)" >&2; exit 2; }
done
cargo build --release -q -p berth -p demo-api
root=$PWD
berth=$root/target/release/berth
work=$(mktemp -d)
chmod 755 "$work"
prefix=berth-bench-reference
LABEL=io.berth.bench=1 bash examples/reference/images.sh "$prefix" >&2
export DB_PORT=55432 REDIS_PORT=56379
cat >"$work/override.yaml" <<YAML
services:
  db-init: {image: $prefix-postgres}
  db: {image: $prefix-postgres}
  redis: {image: $prefix-redis}
  migrate: {image: $prefix-api}
  api: {image: $prefix-api}
x-berth:
  state_dir: $work/state
  proxy:
    listen: !override ["127.0.0.1:58080"]
    listen_tls: !override ["127.0.0.1:58443"]
YAML
export COMPOSE_FILE="$root/examples/reference/compose.yaml:$work/override.yaml"
# The Compose file: the merged one (as berth reads it, with docker.env),
# as Compose 1.29 takes it
# (nor `depends_on.required`), and berth's PORT in the environment.
"$berth" --env-file examples/reference/docker.env config --format json >"$work/merged.json"
python3 - "$work" <<'PY'
import json, sys, yaml
work = sys.argv[1]
merged = json.load(open(f"{work}/merged.json"))
# Interpolated already: what is left of "$" is the shell's, escaped again.
def escape(v):
    if isinstance(v, str):
        return v.replace("$", "$$")
    if isinstance(v, list):
        return [escape(x) for x in v]
    if isinstance(v, dict):
        return {k: escape(x) for k, x in v.items()}
    return v
merged = escape(merged)
merged.pop("name", None)
merged = {k: v for k, v in merged.items() if not k.startswith("x-")}
for s in merged["services"].values():
    for k in [k for k in s if k.startswith("x-")]:
        del s[k]
    s.get("healthcheck", {}).pop("start_interval", None)
    for dep in (s.get("depends_on") or {}).values():
        dep.pop("required", None)
    # berth's PORT, the declared port, which the commands and checks use.
    if s.get("expose"):
        s.setdefault("environment", {})["PORT"] = str(s["expose"][0]).split("/")[0]
# Volumes named by Compose's project, not the file's.
for v in merged.get("volumes", {}).values():
    v.pop("name", None)
yaml.safe_dump(merged, open(f"{work}/compose.yaml", "w"))
for s in merged["services"].values():
    if "healthcheck" in s:
        s["healthcheck"]["interval"] = "100ms"
yaml.safe_dump(merged, open(f"{work}/compose-fast.yaml", "w"))
PY
compose() { docker-compose -p berth-bench-reference --env-file "$root/examples/reference/docker.env" --project-directory "$root/examples/reference" "$@"; }

cleanup() {
  "$berth" down -v >/dev/null 2>&1 || true
  compose -f "$work/compose.yaml" down -v >/dev/null 2>&1 || true
  docker image ls -q --filter label=io.berth.bench=1 | xargs -r docker image rm -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b-a}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
answers() { until curl -skf https://127.0.0.1:58443/api/items?limit=1 >/dev/null; do sleep 0.01; done; }
berth_rss() {
  for _ in $(seq 1 200); do curl -sk -o /dev/null https://127.0.0.1:58443/api/items?limit=1; done
  local pid
  pid=$("$berth" ps --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status"
}
# Compose's `up --wait`: every container healthy, the one-shots exited 0.
compose_ready() {
  local states
  while :; do
    states=$(docker ps -a --filter label=com.docker.compose.project=berth-bench-reference --format '{{.Names}} {{.Status}}')
    if [ "$(grep -c . <<<"$states")" = 7 ] && ! grep -vqE '\(healthy\)|Exited \(0\)' <<<"$states"; then
      return 0
    fi
    grep -qE 'Exited \([1-9]' <<<"$states" && { echo "compose: a service failed: $states" >&2; return 1; }
    sleep 0.05
  done
}

native=() docker_t=() compose_t=() fast_t=() rss_native=() rss_docker=()
for r in $(seq 1 "$rounds"); do
  start=$(now); "$berth" up -d --wait --no-build >/dev/null; answers; native+=("$(since "$start")")
  rss_native+=("$(berth_rss)"); "$berth" down -v >/dev/null

  start=$(now)
  "$berth" --env-file examples/reference/docker.env up -d --wait --no-build --runtime docker >/dev/null
  answers; docker_t+=("$(since "$start")")
  rss_docker+=("$(berth_rss)"); "$berth" down -v >/dev/null

  start=$(now); compose -f "$work/compose.yaml" up -d >"$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; exit 1; }; compose_ready; compose_t+=("$(since "$start")")
  compose -f "$work/compose.yaml" down -v >/dev/null 2>&1

  start=$(now); compose -f "$work/compose-fast.yaml" up -d >"$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; exit 1; }; compose_ready; fast_t+=("$(since "$start")")
  compose -f "$work/compose-fast.yaml" down -v >/dev/null 2>&1
  echo "round $r: native ${native[-1]} s, docker ${docker_t[-1]} s, docker-compose ${compose_t[-1]} s, with 100 ms checks ${fast_t[-1]} s; berth RSS ${rss_native[-1]} / ${rss_docker[-1]} MiB" >&2
done
m_native=$(printf '%s\n' "${native[@]}" | median)
m_docker=$(printf '%s\n' "${docker_t[@]}" | median)
m_compose=$(printf '%s\n' "${compose_t[@]}" | median)
m_fast=$(printf '%s\n' "${fast_t[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a/b}'; }
echo "| start (cold, initdb included) | median s | docker-compose / this |"
echo "|---|---|---|"
echo "| berth, native, until the API answers over TLS | $m_native | $(ratio "$m_compose" "$m_native")× |"
echo "| berth, --runtime docker, until the API answers over TLS | $m_docker | $(ratio "$m_compose" "$m_docker")× |"
echo "| docker-compose up -d until all healthy (no edge) | $m_compose | 1.0× |"
echo "| docker-compose, health checks every 100 ms | $m_fast | $(ratio "$m_compose" "$m_fast")× |"
echo "| berth's RSS, everything on: native / docker | $(printf '%s\n' "${rss_native[@]}" | median) / $(printf '%s\n' "${rss_docker[@]}" | median) MiB | |"
