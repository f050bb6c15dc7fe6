#!/usr/bin/env bash
# XFS (reflink=1, rmapbt=1) -o dax on the largest e820 pmem device, three files sharing every
# extent (cp --reflink), known-good copies in /root/backup/reflink, poison under page 1 of `a`
# (the page all three share). One remote task; idempotent (a second run prints the saved state).
# Environment: POISON_SCRIPT (the text of molecule/shared/files/inject_poison.sh).
set -euo pipefail
exec 3>&1 1>&2
state=/etc/pmem-lab/reflink-state.json
if [[ -s $state ]]; then
  cat "$state" >&3
  exit 0
fi
dev=$(ndctl list -N -b e820 | python3 -c '
import json, sys
ns = json.load(sys.stdin)
ns = ns if isinstance(ns, list) else [ns]
print(sorted((n for n in ns if n.get("blockdev")), key=lambda n: -int(n["size"]))[0]["blockdev"])')
mnt=/mnt/pmem-reflink
grep -q "^/dev/$dev " /proc/mounts && { echo "/dev/$dev is already mounted"; exit 1; }
TEST_DIR=/tmp TEST_DEV=/dev/$dev QA_CHECK_FS=xfs mkfs.xfs -q -f -m reflink=1,rmapbt=1 -L reflink "/dev/$dev"
mkdir -p "$mnt" /root/backup/reflink
mount -o dax "/dev/$dev" "$mnt"
head -c 16384 /dev/urandom >/root/backup/reflink/a
cp /root/backup/reflink/a /root/backup/reflink/b
cp /root/backup/reflink/a /root/backup/reflink/c
cp /root/backup/reflink/a "$mnt/a"
cp --reflink=always "$mnt/a" "$mnt/b"
cp --reflink=always "$mnt/a" "$mnt/c"
sync
out=$(POISON_FILE="$mnt/a" POISON_FILE_OFFSET=4096 POISON_LENGTH=4096 POISON_METHOD=sysfs \
  bash -c "$POISON_SCRIPT" | tail -1)
mkdir -p /etc/pmem-lab
printf '%s\n' "$out" >>/etc/pmem-lab/injected.jsonl
printf '{"device": "%s", "mount": "%s", "injected": %s}\n' "$dev" "$mnt" "$out" >"$state"
cat "$state" >&3
