#!/usr/bin/env bash
# The dashboard's live stream under load: a service prints 1,000 lines a
# second (each carrying the time it was printed), berth runs with the
# dashboard on (`berth up -d`, release build, its log files and supervisor
# as always), and pages' event streams (`GET /api/stream`, what each
# browser tab holds open: an SSE client per page, bench/dashboard_client.py)
# receive them. Measured:
#   - latency from print to arrival on the stream, median and p99 over
#     every line every page got (goal: p99 < 200 ms); and the same in one
#     real page in headless Chromium, its EventSource timing each line with
#     the page's clock (bench/dashboard_browser.py; needs chromium and
#     chromium-driver);
#   - berth's CPU (utime + stime of its process) with no page open and with
#     5 open, alternated rounds, medians; the difference is what 5
#     dashboards add (goal: < 5 % of a core).
#
# usage: bench/dashboard.sh [ROUNDS] [SECONDS]     (default 3 rounds of 15 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-15}
cargo build --release -q
target=$(realpath "${CARGO_TARGET_DIR:-target}")
berth=$target/release/berth
client=$(realpath bench/dashboard_client.py)

work=$(mktemp -d)
cleanup() {
  (cd "$work" && "$berth" down >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/talker.py" <<'PY'
import sys, time
rate = 1000
tick = 0.01
per_tick = rate // 100
n = 0
next_at = time.monotonic()
while True:
    for _ in range(per_tick):
        n += 1
        sys.stdout.write("t=%d n=%d some text to make the line look like a log line\n" % (time.time_ns(), n))
    sys.stdout.flush()
    next_at += tick
    time.sleep(max(0, next_at - time.monotonic()))
PY
cat >"$work/compose.yaml" <<'YAML'
name: dashbench
services:
  talker:
    command: ["python3", "talker.py"]
x-berth:
  dashboard:
    listen: "127.0.0.1:0"
YAML

cd "$work"
"$berth" up -d >/dev/null
pid=$("$berth" ps --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
url=$("$berth" dashboard --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["urls"][0])')
token=$(tr -d '\n' < .berth/dashboard.token)
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$pid/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Warm up: the stack settles, the ring fills.
sleep 3
idle=() ; open=() ; p50=() ; p99=()
for r in $(seq 1 "$rounds"); do
  a=$(cpu); sleep "$seconds"; b=$(cpu)
  idle+=("$(awk -v a="$a" -v b="$b" -v s="$seconds" 'BEGIN {printf "%.2f", 100*(b-a)/s}')")
  a=$(cpu)
  out=$(python3 "$client" "$url" "$token" 5 "$seconds")
  b=$(cpu)
  open+=("$(awk -v a="$a" -v b="$b" -v s="$seconds" 'BEGIN {printf "%.2f", 100*(b-a)/s}')")
  p50+=("$(echo "$out" | awk '/^p50/ {print $2}')")
  p99+=("$(echo "$out" | awk '/^p99/ {print $2}')")
  echo "round $r: berth CPU ${idle[-1]} % idle, ${open[-1]} % with 5 pages; $(echo "$out" | tr '\n' ' ')" >&2
done
# One real page in Chromium, timing lines with the page's own clock.
link=$("$berth" dashboard --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["login"][0])')
browser=$(python3 "$(dirname "$client")/dashboard_browser.py" "$link" "$seconds")
echo "browser: $(echo "$browser" | tr '\n' ' ')" >&2
mi=$(printf '%s\n' "${idle[@]}" | median)
mo=$(printf '%s\n' "${open[@]}" | median)
echo "| berth CPU, no page open | ${mi} % of a core |"
echo "| berth CPU, 5 pages open | ${mo} % of a core |"
echo "| added by 5 pages | $(awk -v a="$mi" -v b="$mo" 'BEGIN {printf "%.2f", b-a}') % of a core |"
echo "| print → page, median | $(printf '%s\n' "${p50[@]}" | median) ms |"
echo "| print → page, p99 | $(printf '%s\n' "${p99[@]}" | median) ms |"
echo "| print → Chromium page (EventSource), median | $(echo "$browser" | awk '/^p50/ {print $2}') ms |"
echo "| print → Chromium page (EventSource), p99 | $(echo "$browser" | awk '/^p99/ {print $2}') ms |"
