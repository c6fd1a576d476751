#!/usr/bin/env bash
# Builds the reference stack's container images from this machine's own
# packages, for `berth up --runtime docker` (there is no registry to pull
# from, and none is needed): each image is FROM scratch around the host's
# binaries, the shared libraries `ldd` says they load, and busybox for the
# shells the compose file's commands and health checks run.
#
#   PREFIX-postgres   PostgreSQL 15 (apt-get install postgresql)
#   PREFIX-redis      Redis (apt-get install redis-server)
#   PREFIX-api        demo-api, linked statically (built here unless
#                     DEMO_API names one)
#
# usage: examples/reference/images.sh [PREFIX]      (default berth-reference)
# env:   DEMO_API=PATH   a statically linked demo-api to use
#        LABEL=KEY=VALUE a label for every image (the tests mark theirs)
# needs: docker, busybox-static, postgresql, redis-server; for demo-api,
#        glibc's static library (libc6-dev)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prefix=${1:-berth-reference}
pg=${PG_BIN:-/usr/lib/postgresql/15/bin}
pg_root=$(dirname "$pg")
pg_share=/usr/share/postgresql/$(basename "$pg_root")

for need in docker busybox redis-server redis-cli "$pg/postgres"; do
  command -v "$need" >/dev/null || {
    echo "images.sh: $need is missing (apt-get install docker.io busybox-static postgresql redis-server)" >&2
    exit 2
  }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Copies a file or directory to the same path under a rootfs.
place() {
  local root=$1 path=$2
  mkdir -p "$root$(dirname "$path")"
  cp -a "$path" "$root$path"
}

# Copies each file, then every shared library it loads (and the loader),
# at the same path under the context's rootfs.
with_libraries() {
  local root=$1; shift
  local f lib
  for f in "$@"; do
    place "$root" "$f"
    { ldd "$f" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
      [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"; }
    done
  done
}

# A rootfs with busybox's shell and tools, and the host's lines of
# /etc/passwd and /etc/group for `users` (their IDs match the host's, so
# files in volumes keep their owners whichever runtime wrote them).
base_rootfs() {
  local root=$1; shift
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/usr/bin"
  chmod 1777 "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  local tool
  for tool in sh cat grep ls mkdir rm sleep test touch env id ps kill; do
    ln -s busybox "$root/bin/$tool"
  done
  grep -E "^root:" /etc/passwd > "$root/etc/passwd"
  grep -E "^root:" /etc/group > "$root/etc/group"
  local user
  for user in "$@"; do
    getent passwd "$user" >> "$root/etc/passwd"
    getent group "$(id -gn "$user")" >> "$root/etc/group"
  done
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
}

build() {
  local name=$1 context=$2
  local label=()
  [ -n "${LABEL:-}" ] && label=(--label "$LABEL")
  # The engine's own words only when it fails (not its legacy-builder notice).
  docker build -q "${label[@]}" -t "$prefix-$name" -f "$here/images/$name.Dockerfile" "$context" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
  echo "built $prefix-$name"
}

# PostgreSQL: the server, initdb and the client tools in their Debian
# places (the compose file's PG_BIN), the extension libraries initdb loads,
# the share directory, the time zones; /usr/bin has the tools by name.
ctx=$work/postgres
base_rootfs "$ctx/rootfs" postgres
# Not llvmjit.so: JIT is off without it, and its LLVM is 100 MB.
with_libraries "$ctx/rootfs" "$pg"/* $(find "$pg_root/lib" -maxdepth 1 -name '*.so' ! -name llvmjit.so)
place "$ctx/rootfs" "$pg_share"
place "$ctx/rootfs" /usr/share/zoneinfo
# The host's time zone, as a link into zoneinfo: without /etc/localtime
# initdb scores every zone to guess one (7 s here).
zone=$(readlink -f /etc/localtime 2>/dev/null || true)
case "$zone" in
  /usr/share/zoneinfo/*) ln -s "$zone" "$ctx/rootfs/etc/localtime" ;;
  *) ln -s /usr/share/zoneinfo/Etc/UTC "$ctx/rootfs/etc/localtime" ;;
esac
for tool in "$pg"/*; do ln -s "$tool" "$ctx/rootfs/usr/bin/$(basename "$tool")"; done
install -d -m 0700 "$ctx/data"
build postgres "$ctx"

ctx=$work/redis
base_rootfs "$ctx/rootfs" redis
with_libraries "$ctx/rootfs" "$(readlink -f "$(command -v redis-server)")" "$(readlink -f "$(command -v redis-cli)")"
for tool in redis-server redis-cli; do
  [ -e "$ctx/rootfs$(command -v $tool)" ] || place "$ctx/rootfs" "$(command -v $tool)"
done
install -d -m 0750 "$ctx/data"
build redis "$ctx"

ctx=$work/api
mkdir -p "$ctx/rootfs/etc"
grep -E "^(root|nobody):" /etc/passwd > "$ctx/rootfs/etc/passwd"
grep -E "^(root|nogroup):" /etc/group > "$ctx/rootfs/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$ctx/rootfs/etc/nsswitch.conf"
demo=${DEMO_API:-}
if [ -z "$demo" ]; then
  case "$(cc -print-file-name=libc.a 2>/dev/null)" in
    /*) ;;
    *) echo "images.sh: linking demo-api statically needs glibc's static library (apt-get install libc6-dev), or set DEMO_API" >&2; exit 2 ;;
  esac
  triple=$(rustc -vV | sed -n 's/^host: //p')
  (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release -p demo-api --target "$triple")
  demo=${CARGO_TARGET_DIR:-$repo/target}/$triple/release/demo-api
fi
ldd "$demo" 2>&1 | grep -q 'not a dynamic executable\|statically linked' || {
  echo "images.sh: $demo is not statically linked" >&2
  exit 2
}
cp "$demo" "$ctx/demo-api"
build api "$ctx"
