#!/usr/bin/env bash
# A health-gated chain of 10 container services (s1 <- s2 <- ... <- s10, each
# `depends_on` the previous one with `condition: service_healthy`), the
# same file and the same locally built image (FROM scratch + busybox) for
# both, each service healthy once a file exists that it creates at once:
#
#   berth:  `berth up -d --wait` (returns once every service is healthy);
#   docker: `docker-compose up -d` (which starts each service once the one
#           before is healthy), then polling `docker inspect` until all ten
#           are healthy (docker-compose 1.x has no --wait).
#
# Measured per round: the time to all healthy, and the mean time per link
# of the chain, from one service's container starting to its dependent's
# (start, first health check passing, dependent created and started;
# berth's from its log, docker's from `docker inspect` start times). Rounds
# alternate; medians. Goal (issue 12): at least 5x faster to healthy.
#
# A last berth round is profiled from the engine's own events (`docker
# events`): per link, the passing health probe (exec created -> exec died),
# berth's share (exec died -> the dependent's container created) and the
# engine's start (created -> started), medians over the nine links.
#
# usage: bench/docker.sh [ROUNDS] [INTERVAL]   (default 5 rounds, health check
#        interval 1s; needs docker, docker-compose, busybox; builds berth in
#        release mode, or takes the binary in $BERTH)
set -euo pipefail

ROUNDS=${1:-5}
INTERVAL=${2:-1s}
cd "$(dirname "$0")/.."
for tool in docker docker-compose busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench/docker.sh needs $tool" >&2; exit 1; }
done
if [ -z "${BERTH:-}" ]; then
  cargo build --release --quiet
  BERTH=$PWD/target/release/berth
fi
WORK=$(mktemp -d)
IMAGE=berth-bench-chain:latest

cleanup() {
  (cd "$WORK/berth" && "$BERTH" down --timeout 2 >/dev/null 2>&1) || true
  (cd "$WORK/docker" && docker-compose -p berthchain down -t 1 >/dev/null 2>&1) || true
  docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/image" "$WORK/berth" "$WORK/docker"
cp "$(command -v busybox)" "$WORK/image/busybox"
cat > "$WORK/image/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/sh", "-c", "mkdir -p /tmp"]
EOF
docker build -q -t "$IMAGE" "$WORK/image" >/dev/null

# Docker runs a container's first health check one interval after it
# starts (the engine here predates start_interval); 1 s is as short as
# people set it, and the default is 30 s. berth checks at once, then every
# start_interval (100 ms by default) until the first pass, then every
# interval. The same file for both.
{
  echo "services:"
  for i in $(seq 1 10); do
    echo "  s$i:"
    echo "    image: $IMAGE"
    echo "    command: [\"sh\", \"-c\", \"touch /tmp/ok; exec sleep 600\"]"
    echo "    healthcheck:"
    echo "      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]"
    echo "      interval: $INTERVAL"
    echo "      timeout: 1s"
    echo "      retries: 3"
    if [ "$i" -gt 1 ]; then
      echo "    depends_on:"
      echo "      s$((i - 1)): {condition: service_healthy}"
    fi
  done
} > "$WORK/compose.yaml"
cp "$WORK/compose.yaml" "$WORK/berth/compose.yaml"
cp "$WORK/compose.yaml" "$WORK/docker/compose.yaml"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

berth_round() { # prints "total_ms gap_ms"
  local start end
  start=$(now_ms)
  (cd "$WORK/berth" && "$BERTH" up -d --wait >/dev/null 2>&1)
  end=$(now_ms)
  # Gaps from the log: "sN healthy" to "sN+1 started", timestamps in ms.
  local gap
  gap=$(cd "$WORK/berth" && "$BERTH" logs --timestamps 2>/dev/null | python3 -c '
import sys, re, datetime
healthy, started = {}, {}
for line in sys.stdin:
    m = re.match(r"(s\d+)-1\s+(\S+)\s+(healthy|started)", line)
    if not m:
        continue
    stamp = m.group(2).rstrip("Z")
    whole, frac = stamp.split(".") if "." in stamp else (stamp, "0")
    t = datetime.datetime.fromisoformat(whole + "." + frac[:6]).timestamp()
    (healthy if m.group(3) == "healthy" else started)[int(m.group(1)[1:])] = t
gaps = [started[i + 1] - started[i] for i in range(1, 10) if i in started and i + 1 in started]
print(int(1000 * sum(gaps) / len(gaps)) if gaps else -1)
')
  (cd "$WORK/berth" && "$BERTH" down --timeout 2 >/dev/null 2>&1)
  echo "$((end - start)) $gap"
}

docker_round() { # prints "total_ms gap_ms"
  local start end
  start=$(now_ms)
  (cd "$WORK/docker" && docker-compose -p berthchain up -d >/dev/null 2>&1)
  until [ "$(docker ps --filter label=com.docker.compose.project=berthchain --filter health=healthy -q | wc -l)" -ge 10 ]; do
    sleep 0.05
  done
  end=$(now_ms)
  local gap
  gap=$(docker inspect $(docker ps -q --filter label=com.docker.compose.project=berthchain) | python3 -c '
import sys, json, datetime
def t(s):
    # "2026-12-01T14:49:09.361762341Z" and "2026-12-01 14:49:10.400198245 +0000 UTC"
    s = s.replace("T", " ").replace("Z", "").split(" +")[0].strip()
    whole, frac = s.split(".") if "." in s else (s, "0")
    return datetime.datetime.fromisoformat(whole + "." + frac[:6]).timestamp()
healthy, started = {}, {}
for c in json.load(sys.stdin):
    i = int(c["Config"]["Labels"]["com.docker.compose.service"][1:])
    started[i] = t(c["State"]["StartedAt"])
gaps = [started[i + 1] - started[i] for i in range(1, 10) if i in started and i + 1 in started]
print(int(1000 * sum(gaps) / len(gaps)) if gaps else -1)
')
  (cd "$WORK/docker" && docker-compose -p berthchain down -t 1 >/dev/null 2>&1)
  echo "$((end - start)) $gap"
}

: > "$WORK/berth.times"
: > "$WORK/docker.times"
for r in $(seq 1 "$ROUNDS"); do
  berth_round >> "$WORK/berth.times"
  docker_round >> "$WORK/docker.times"
  echo "round $r: berth $(tail -1 "$WORK/berth.times")  docker-compose $(tail -1 "$WORK/docker.times")  (ms to all healthy, ms per link)" >&2
done
b_total=$(cut -d' ' -f1 "$WORK/berth.times" | median)
d_total=$(cut -d' ' -f1 "$WORK/docker.times" | median)
b_gap=$(cut -d' ' -f2 "$WORK/berth.times" | median)
d_gap=$(cut -d' ' -f2 "$WORK/docker.times" | median)
echo "10-service health-gated container chain (health check interval $INTERVAL), median of $ROUNDS alternated rounds:"
echo "  time to all healthy:            berth ${b_total} ms   docker-compose ${d_total} ms   ($(awk -v a="$d_total" -v b="$b_total" 'BEGIN { printf "%.1f", a / b }')x)"
echo "  per link (started -> dependent started): berth ${b_gap} ms   docker-compose ${d_gap} ms"

# One more berth round, profiled from the engine's events.
since=$(date +%s.%N)
(cd "$WORK/berth" && "$BERTH" up -d --wait >/dev/null 2>&1)
until=$(date +%s.%N)
docker events --since "$since" --until "$until" --filter type=container \
  --format '{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "com.docker.compose.service"}}' |
  python3 -c '
import sys, statistics
seen = {}
for line in sys.stdin:
    words = line.split()
    seen.setdefault((words[1].rstrip(":"), words[-1]), []).append(int(words[0]) / 1e6)
def last(key, before):
    return max(t for t in seen.get(key, []) if t <= before)
probe, mine, start = [], [], []
for i in range(1, 10):
    s, d = "s%d" % i, "s%d" % (i + 1)
    try:
        created = seen[("create", d)][0]
        passed = last(("exec_die", s), created)
        probe.append(passed - last(("exec_create", s), passed))
        mine.append(created - passed)
        start.append(seen[("start", d)][0] - created)
    except (KeyError, ValueError):
        pass
if start:
    m = statistics.median
    print("  per link, from the engine events of one more berth round: health probe %.0f ms, berth %.0f ms, engine create->start %.0f ms" % (m(probe), m(mine), m(start)))
'
(cd "$WORK/berth" && "$BERTH" down --timeout 2 >/dev/null 2>&1)
