#!/usr/bin/env bash
# The cost of confinement per replica start: `berth up` of a stack of N
# one-shot services (`true`), which ends once they all exited, with all
# the confinement berth applies on every service (user nobody, a group,
# cap_drop ALL + cap_add NET_BIND_SERVICE, no-new-privileges, three
# ulimits, oom_score_adj, read_only through Landlock, a tmpfs mounted in a
# mount namespace of its own, and a cgroup with memory, CPU and process
# limits) and without any (no fields, BERTH_CGROUP=off,
# BERTH_TMPFS_MOUNT=0). Rounds alternate; medians; the difference divided
# by N is what confinement adds to one start. Goal (issue 11): under 5 ms
# per start.
#
# Then berth's own CPU while it runs 20 replicas under limits (and while
# `berth ps` reads their cgroups once a second, as a dashboard would), over
# 10 s, against the same 20 replicas without cgroups.
#
# usage: sudo bench/isolation.sh [RUNS] [SERVICES]     (default 21 runs of 20 services)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-21}
services=${2:-20}
[ "$(id -u)" = 0 ] || { echo "bench/isolation.sh switches users: run it as root" >&2; exit 2; }
cargo build --release -q -p berth
berth=$PWD/target/release/berth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

stack() { # $1 = dir, $2 = confined (yes/no)
  mkdir -p "$1"
  {
    echo "services:"
    for i in $(seq 1 "$services"); do
      echo "  s$i:"
      echo "    command: [\"true\"]"
      if [ "$2" = yes ]; then
        echo "    user: nobody"
        echo "    group_add: [\"100\"]"
        echo "    cap_drop: [ALL]"
        echo "    cap_add: [NET_BIND_SERVICE]"
        echo "    security_opt: [no-new-privileges]"
        echo "    ulimits: {nofile: 1024, nproc: 512, core: 0}"
        echo "    oom_score_adj: 100"
        echo "    read_only: true"
        echo "    tmpfs: [\"/run:size=1m\"]"
        echo "    mem_limit: 64m"
        echo "    cpus: \"0.5\""
        echo "    pids_limit: 64"
      fi
    done
  } > "$1/compose.yaml"
}
stack "$work/off" no
stack "$work/on" yes

unconfined=(env BERTH_CGROUP=off BERTH_TMPFS_MOUNT=0)
run() { # $1 = dir; prints the run's wall time in microseconds
  local start end
  local how=()
  [ "$(basename "$1")" = off ] && how=("${unconfined[@]}")
  start=$(date +%s%N)
  (cd "$1" && "${how[@]}" "$berth" up > /dev/null 2>&1)
  end=$(date +%s%N)
  echo $(((end - start) / 1000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run "$work/off" > /dev/null
run "$work/on" > /dev/null
: > "$work/off.times"
: > "$work/on.times"
for _ in $(seq 1 "$runs"); do
  run "$work/off" >> "$work/off.times"
  run "$work/on" >> "$work/on.times"
done
off=$(median < "$work/off.times")
on=$(median < "$work/on.times")
echo "berth up of $services one-shot services, median of $runs alternated runs:"
echo "  without confinement: $((off / 1000)) ms"
echo "  with confinement:    $((on / 1000)) ms"
awk -v on="$on" -v off="$off" -v n="$services" \
  'BEGIN { printf "  added per replica start: %.2f ms\n", (on - off) / n / 1000 }'

# berth's CPU with 20 long-running replicas, limits enforced or not.
replicas() { # $1 = dir, $2 = limits (yes/no)
  mkdir -p "$1"
  {
    echo "services:"
    echo "  w:"
    echo "    command: [sleep, \"600\"]"
    echo "    deploy: {replicas: 20}"
    if [ "$2" = yes ]; then
      echo "    mem_limit: 64m"
      echo "    cpus: \"0.5\""
      echo "    pids_limit: 64"
    fi
  } > "$1/compose.yaml"
}
cpu_of_berth() { # $1 = dir, rest = env; prints berth's CPU ms over 10 s
  local dir=$1; shift
  (cd "$dir" && "$@" "$berth" up -d --wait > /dev/null 2>&1)
  local pid
  pid=$(cd "$dir" && "$berth" ps --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  local tck before after
  tck=$(getconf CLK_TCK)
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  for _ in $(seq 1 10); do
    (cd "$dir" && "$berth" ps > /dev/null)
    sleep 1
  done
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  (cd "$dir" && "$berth" down > /dev/null 2>&1)
  echo $(((after - before) * 1000 / tck))
}
replicas "$work/idle-off" no
replicas "$work/idle-on" yes
: > "$work/idle-off.times"
: > "$work/idle-on.times"
for _ in 1 2 3; do
  cpu_of_berth "$work/idle-off" "${unconfined[@]}" >> "$work/idle-off.times"
  cpu_of_berth "$work/idle-on" env >> "$work/idle-on.times"
done
echo "berth's own CPU over 10 s with 20 replicas and \`berth ps\` each second, median of 3:"
echo "  without cgroups:           $(median < "$work/idle-off.times") ms"
echo "  enforcing limits (cgroup): $(median < "$work/idle-on.times") ms"
