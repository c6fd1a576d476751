#!/usr/bin/env bash
# Log pipeline throughput, end to end: a child process writes BYTES (default
# 1 GiB) of 100-byte lines to its stdout; berth's log hub splits them, feeds a
# live subscriber (the terminal printer, formatting into a counting sink) and
# writes rotated CRI files (10 MiB x 3). Prints MB/s. Goal: >= 100 MB/s.
#
# usage: bench/logs.sh [BYTES] [--no-printer] [--timestamps]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p "${BERTH_BENCH_PKG:-berth-engine}" --example logs_bench -- "$@"
