#!/usr/bin/env bash
# The affirmative-steps story on a stock lab guest (run as root on the guest; prepare.yml runs it
# as one task). Idempotent: a second run prints the recorded layout and does nothing. Prints one
# JSON object on stdout (also /etc/pmem-affirmative/layout.json).
#
#   e820 pmem (a page-aligned write clears poison)  XFS -o dax  /mnt/pmem-xfs
#   /mnt/pmem-xfs/data/a.dat  page 2 poisoned; known-good copy /srv/golden/a.dat (restore.yml)
#   /mnt/pmem-xfs/data/b.dat  page 1 poisoned; no copy                      (accept_loss.yml)
# Neither file has a restore source in the policy: remediate quarantines both and leaves them open.
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
state=/etc/pmem-affirmative
layout_done "$state/layout.json"
# the largest: mkfs.xfs refuses the 176 MiB device
e820=$(layout_device e820 fsdax)
[[ -n $e820 ]] || layout_die "no e820 fsdax namespace (stock lab)"
if mountpoint -q /mnt/pmem-xfs; then umount /mnt/pmem-xfs; fi
wipefs -q -a "/dev/$e820"
mkfs.xfs -q -f -m reflink=1,rmapbt=1 -L pmem-xfs "/dev/$e820"
mkdir -p /mnt/pmem-xfs
mount -o dax "/dev/$e820" /mnt/pmem-xfs
mkdir -p /mnt/pmem-xfs/data /srv/golden
for f in a b; do head -c 65536 /dev/urandom >"/mnt/pmem-xfs/data/$f.dat"; done
chmod 0640 /mnt/pmem-xfs/data/a.dat /mnt/pmem-xfs/data/b.dat
cp /mnt/pmem-xfs/data/a.dat /srv/golden/a.dat
sync

file_sector() { # FILE OFFSET -> device sector of that file offset (FIEMAP, 512-byte units)
  xfs_io -r -c 'fiemap -v' "$1" | awk -v s=$(($2 / 512)) '
    $1 ~ /^[0-9]+:$/ && $3 != "hole" {
      split($2, l, /[][.:]+/); split($3, p, /[.:]+/)
      if (s >= l[2] && s <= l[3]) { print p[1] + (s - l[2]); exit }
    }'
}
inject() { # FILE OFFSET: one 4 KiB page
  local s
  s=$(file_sector "$1" "$2")
  [[ $s =~ ^[0-9]+$ ]] || layout_die "offset $2 of $1 is not allocated"
  echo "$s 8" >"/sys/block/$e820/badblocks"
  printf '"%s": {"device": "%s", "sector": %d, "sectors": 8, "file_offset": %d}' "$1" "$e820" "$s" "$2"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
{
  printf '{"device": "%s", "golden": "/srv/golden/a.dat",\n' "$e820"
  printf ' "sha256": {"/mnt/pmem-xfs/data/a.dat": "%s", "/mnt/pmem-xfs/data/b.dat": "%s"},\n' \
    "$(sha /mnt/pmem-xfs/data/a.dat)" "$(sha /mnt/pmem-xfs/data/b.dat)"
  # b.dat as accept_loss leaves it: the poisoned page rewritten with zeros, the rest unchanged
  printf ' "b_zero_filled_sha256": "%s",\n' "$(python3 -c 'import hashlib, sys
d = bytearray(open(sys.argv[1], "rb").read()); d[4096:8192] = bytes(4096)
print(hashlib.sha256(d).hexdigest())' /mnt/pmem-xfs/data/b.dat)"
  printf ' "poison": {'
  inject /mnt/pmem-xfs/data/a.dat 8192
  printf ', '
  inject /mnt/pmem-xfs/data/b.dat 4096
  printf '}}\n'
} >/tmp/pmem-affirmative-layout.json
sync
echo 3 >/proc/sys/vm/drop_caches
mkdir -p "$state"
python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' \
  /tmp/pmem-affirmative-layout.json >"$state/layout.json"
cat "$state/layout.json" >&3
