#!/usr/bin/env bash
# Print the path of a mkfs.xfs that knows `-n parent=1` (xfsprogs 6.10+), for host tests and
# `make bench` on hosts whose own xfsprogs is older (bookworm: 6.1).
# If the host's mkfs.xfs already does, print that. Otherwise unpack trixie's xfsprogs and the
# libraries it needs (from the lab's package cache, $PMEM_LAB_CACHE/debs) into $DIR with `dpkg -x`
# and write wrappers that run each tool through trixie's own loader (host glibc is too old).
# Nothing is installed on the host. Exit 1 (and say why) when no such mkfs.xfs can be had.
set -euo pipefail
DIR=${1:-/var/tmp/pmem-poison-xfsprogs}
CACHE=${PMEM_LAB_CACHE:-/var/cache/pmem-poison-lab}/debs
probe() {  # does "$1" make a filesystem with parent pointers? (-N: print only, writes nothing)
  local img
  img=$(mktemp /var/tmp/pmem-pp-probe.XXXXXX)
  truncate -s 512M "$img"
  "$1" -N -f -n parent=1 "$img" >/dev/null 2>&1 && rm -f "$img" && return 0
  rm -f "$img"
  return 1
}
if probe mkfs.xfs; then command -v mkfs.xfs; exit 0; fi
if [ -x "$DIR/bin/mkfs.xfs" ] && probe "$DIR/bin/mkfs.xfs"; then echo "$DIR/bin/mkfs.xfs"; exit 0; fi
shopt -s nullglob
debs=()
for pkg in xfsprogs libc6 libblkid1 libuuid1 libinih1 liburcu8t64; do
  # the newest cached version of each (trixie's sorts after bookworm's)
  cand=("$CACHE"/"${pkg}"_*_amd64.deb)
  [ ${#cand[@]} -gt 0 ] || { echo "no ${pkg} .deb in $CACHE (build the stock-7 lab once)" >&2; exit 1; }
  debs+=("$(printf '%s\n' "${cand[@]}" | sort -V | tail -n 1)")
done
mkdir -p "$DIR/bin"
for d in "${debs[@]}"; do dpkg -x "$d" "$DIR"; done
LIB=$DIR/usr/lib/x86_64-linux-gnu
for t in mkfs.xfs xfs_db xfs_repair; do
  printf '#!/bin/sh\n# trixie %s through trixie'"'"'s loader and libraries (scripts/xfsprogs-parent.sh)\nexec %s --library-path %s %s "$@"\n' \
    "$t" "$LIB/ld-linux-x86-64.so.2" "$LIB" "$DIR/usr/sbin/$t" > "$DIR/bin/$t"
  chmod +x "$DIR/bin/$t"
done
if probe "$DIR/bin/mkfs.xfs"; then echo "$DIR/bin/mkfs.xfs"; exit 0; fi
echo "$DIR/bin/mkfs.xfs does not make parent=1 filesystems" >&2
exit 1
