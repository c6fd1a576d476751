#!/usr/bin/env bash
# Backup throughput and downtime. 1 GiB of volume data (32 files of 16 MiB
# of random bytes, 32 of base64 text: half incompressible, half text),
# page-cached, archived by `berth backup -o` (release build, stack stopped:
# tar + zstd -3 + a SHA-256 of every file + the manifest, fsync, rename) and
# by `tar -cf - . | zstd -3` of the same directory (single-threaded zstd,
# its default; and with two threads, `-T2`, as berth compresses on a second
# thread while the first reads and hashes), alternated each round, medians. Then, with `stop: true` on
# a running stack, the service's downtime (stop, archive, start) against
# the whole backup's time.
#
# usage: bench/backup.sh [ROUNDS]      (default 5)
# needs: tar, zstd (Debian: apt-get install -y zstd)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
command -v zstd >/dev/null || { echo "bench/backup.sh: zstd is missing (apt-get install -y zstd)" >&2; exit 2; }
cargo build --release -q
target=$(realpath "${CARGO_TARGET_DIR:-target}")
berth=$target/release/berth

work=$(mktemp -d)
cleanup() {
  (cd "$work" && "$berth" down >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/compose.yaml" <<'YAML'
name: bench
services:
  app:
    command: [sleep, "3600"]
    volumes: ["data:/data"]
volumes:
  data: {}
YAML
vol=$work/.berth/volumes/bench_data
mkdir -p "$vol"
for i in $(seq 1 32); do
  head -c 16M /dev/urandom >"$vol/random-$i.bin"
  head -c 12M /dev/urandom | base64 -w 76 >"$vol/text-$i.txt"
done
bytes=$(du -sb "$vol" | cut -f1)
cat "$vol"/* >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mibs() { awk -v b="$bytes" -v s="$1" 'BEGIN {printf "%.0f", b/1048576/s}'; }

: >"$work/berth.t"; : >"$work/tar.t"; : >"$work/tar2.t"
for r in $(seq 1 "$rounds"); do
  rm -f "$work"/out.*
  t0=$(now); (cd "$work" && "$berth" backup -o out.berth.tar.zst >/dev/null); t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/berth.t"
  t0=$(now); tar -C "$vol" -cf - . | zstd -3 -q -o "$work/out.tar.zst"; sync -f "$work/out.tar.zst"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/tar.t"
  t0=$(now); tar -C "$vol" -cf - . | zstd -3 -T2 -q -o "$work/out.tar2.zst"; sync -f "$work/out.tar2.zst"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/tar2.t"
done
b=$(median <"$work/berth.t"); t=$(median <"$work/tar.t"); t2=$(median <"$work/tar2.t")
berth_size=$(stat -c %s "$work/out.berth.tar.zst"); tar_size=$(stat -c %s "$work/out.tar.zst")
printf 'data: %s bytes in %s files; %s rounds, medians\n' "$bytes" "$(ls "$vol" | wc -l)" "$rounds"
printf '%-24s %8.2f s  %6s MiB/s  archive %s bytes\n' "berth backup" "$b" "$(mibs "$b")" "$berth_size"
printf '%-24s %8.2f s  %6s MiB/s  archive %s bytes\n' "tar | zstd -3" "$t" "$(mibs "$t")" "$tar_size"
printf '%-24s %8.2f s  %6s MiB/s\n' "tar | zstd -3 -T2" "$t2" "$(mibs "$t2")"
awk -v b="$b" -v t="$t" -v t2="$t2" 'BEGIN {printf "berth / tar+zstd throughput: %.2fx (goal >= 0.9x); against zstd -T2: %.2fx\n", t/b, t2/b}'

# Downtime with stop: true, on a running stack.
sed -i 's|    volumes: \["data:/data"\]|    volumes: ["data:/data"]\n    x-berth: {backup: {stop: true}}|' "$work/compose.yaml"
(cd "$work" && "$berth" up -d --wait >/dev/null)
: >"$work/down.t"; : >"$work/all.t"
for r in $(seq 1 "$rounds"); do
  rm -f "$work"/out.*
  json=$(cd "$work" && "$berth" backup --json -o out.stop.tar.zst)
  echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["downtime_seconds"])' >>"$work/down.t"
  echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seconds"])' >>"$work/all.t"
done
(cd "$work" && "$berth" down >/dev/null)
d=$(median <"$work/down.t"); a=$(median <"$work/all.t")
printf 'stop: true: service down %.2f s of a %.2f s backup (archive alone: %.2f s)\n' "$d" "$a" "$b"
