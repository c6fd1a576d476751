#!/usr/bin/env bash
# The cost of confinement per replica start: `berth up` of a stack of N
# one-shot services (`true`), which ends once they all exited, with the
# confinement berth applies today on every service (user nobody, a group,
# cap_drop ALL + cap_add NET_BIND_SERVICE, no-new-privileges, three
# ulimits, oom_score_adj) and without. Rounds alternate; medians; the
# difference divided by N is what confinement adds to one start.
# Goal (issue 11): under 5 ms per start.
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
      fi
    done
  } > "$1/compose.yaml"
}
stack "$work/off" no
stack "$work/on" yes

run() { # $1 = dir; prints the run's wall time in microseconds
  local start end
  start=$(date +%s%N)
  (cd "$1" && "$berth" up > /dev/null 2>&1)
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
