#!/usr/bin/env bash
# XFS (reflink=1, rmapbt=1) -o dax on the largest e820 pmem device, three files sharing every
# extent (cp --reflink), known-good copies in /root/backup/reflink, poison under page 1 of `a`
# (the page all three share). One remote task; idempotent (a second run prints the saved state).
# Environment: POISON_SCRIPT (the text of molecule/shared/files/inject_poison.sh).
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
state=/etc/pmem-lab/reflink-state.json
layout_done "$state"
dev=$(layout_device e820 fsdax)
[[ -n $dev ]] || layout_die "no e820 fsdax namespace"
mnt=/mnt/pmem-reflink
grep -q "^/dev/$dev " /proc/mounts && layout_die "/dev/$dev is already mounted"
layout_mkxfs "/dev/$dev" reflink
mkdir -p /root/backup/reflink
layout_mount "/dev/$dev" "$mnt"
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
