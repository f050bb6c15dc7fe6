#!/usr/bin/env bash
# The remediate story on a stock lab guest (run as root on the guest; scripts/demo.sh pipes it over
# SSH, molecule/default/prepare.yml runs it as one task). Idempotent: a second run prints the
# recorded layout and does nothing. Prints one JSON object on stdout (also /etc/pmem-demo/layout.json).
#
# Layout (kernel 6.1 refuses "-o dax" for a reflink XFS on a partition, so each filesystem gets a
# whole device):
#   e820 pmem (a page-aligned write clears poison)  XFS reflink=1,rmapbt=1  -o dax  /mnt/pmem-xfs
#   QEMU NVDIMM fsdax (a write cannot clear)        ext4 -b 4096            -o dax  /mnt/pmem-ext4
# Files (64 KiB each) and the poison (one 4 KiB page each, written to /sys/block/pmemX/badblocks):
#   /mnt/pmem-xfs/db/table.dat      page 2; known-good copy /srv/backup/db/table.dat -> restored
#   /mnt/pmem-xfs/logs/app.log      page 1; no copy                                  -> quarantined
#   /mnt/pmem-xfs/vm/base.img       page 3; shared with vm/clone.img (cp --reflink)  -> both quarantined
#   /mnt/pmem-ext4/scratch/results.bin  page 0; no copy                              -> quarantined
#   free space in the middle of the ext4 filesystem's last free extent              -> offline window
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
state=/etc/pmem-demo
layout_done "$state/layout.json"
e820=$(layout_device e820 fsdax)
nvdimm=$(layout_device ACPI.NFIT fsdax)
[[ -n $e820 && -n $nvdimm ]] || layout_die "need the e820 pmem and the QEMU NVDIMM fsdax namespace (stock lab)"

for m in /mnt/pmem-xfs /mnt/pmem-ext4; do
  if mountpoint -q "$m"; then umount "$m"; fi
done
wipefs -q -a "/dev/$e820" "/dev/$nvdimm"
blockdev --rereadpt "/dev/$e820" 2>/dev/null || true
layout_mkxfs "/dev/$e820" pmem-xfs
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "/dev/$nvdimm"
layout_mount "/dev/$e820" /mnt/pmem-xfs
layout_mount "/dev/$nvdimm" /mnt/pmem-ext4

mkdir -p /mnt/pmem-xfs/db /mnt/pmem-xfs/logs /mnt/pmem-xfs/vm /mnt/pmem-ext4/scratch /srv/backup/db
for f in /mnt/pmem-xfs/db/table.dat /mnt/pmem-xfs/logs/app.log /mnt/pmem-xfs/vm/base.img \
  /mnt/pmem-ext4/scratch/results.bin; do
  head -c 65536 /dev/urandom >"$f"
done
cp --reflink=always /mnt/pmem-xfs/vm/base.img /mnt/pmem-xfs/vm/clone.img
cp /mnt/pmem-xfs/db/table.dat /srv/backup/db/table.dat
sync

inject() { # DEVICE SECTOR (whole-device 512-byte sectors): one 4 KiB page
  echo "$2 8" >"/sys/block/$1/badblocks"
  printf '{"device": "%s", "sector": %d, "sectors": 8, "offset": %d, "length": 4096}' "$1" "$2" "$(($2 * 512))"
}
file_sector() { # FILE OFFSET -> device sector of that file offset (FIEMAP, 512-byte units)
  xfs_io -r -c 'fiemap -v' "$1" | awk -v s=$(($2 / 512)) '
    $1 ~ /^[0-9]+:$/ && $3 != "hole" {
      split($2, l, /[][.:]+/); split($3, p, /[.:]+/)
      if (s >= l[2] && s <= l[3]) { print p[1] + (s - l[2]); exit }
    }'
}
inject_file() { # FILE OFFSET DEVICE
  local s
  s=$(file_sector "$1" "$2")
  [[ $s =~ ^[0-9]+$ ]] || layout_die "offset $2 of $1 is not allocated"
  printf '"%s": ' "$1"
  inject "$3" "$s"
}
# Free space: the middle of the ext4 filesystem's last free extent (GETFSMAP via xfs_io: lines
# "N: MAJ:MIN [start..end]: free space LEN" in 512-byte units). On XFS, kernel 6.1's GETFSMAP
# returns nothing for a query that lies inside a free extent, so the free range goes on ext4.
free_sector=$(xfs_io -c fsmap /mnt/pmem-ext4 | awk '/free space/ { split($3, a, /[][.:]+/); s = a[2]; e = a[3] }
  END { if (e != "") print int((s + e) / 2 / 8) * 8 }')
[[ $free_sector =~ ^[0-9]+$ ]] || layout_die "no free-space extent found on /mnt/pmem-ext4"

sha() { sha256sum "$1" | cut -d' ' -f1; }
{
  printf '{"devices": {"xfs": "%s", "ext4": "%s"},\n' "$e820" "$nvdimm"
  printf ' "sha256": {"/mnt/pmem-xfs/db/table.dat": "%s", "/srv/backup/db/table.dat": "%s"},\n' \
    "$(sha /mnt/pmem-xfs/db/table.dat)" "$(sha /srv/backup/db/table.dat)"
  printf ' "poison": {'
  inject_file /mnt/pmem-xfs/db/table.dat 8192 "$e820"
  printf ', '
  inject_file /mnt/pmem-xfs/logs/app.log 4096 "$e820"
  printf ', '
  inject_file /mnt/pmem-xfs/vm/base.img 12288 "$e820"
  printf ', '
  inject_file /mnt/pmem-ext4/scratch/results.bin 0 "$nvdimm"
  printf ', "free": '
  inject "$nvdimm" "$free_sector"
  printf '}}\n'
} >/tmp/pmem-demo-layout.json
sync
echo 3 >/proc/sys/vm/drop_caches
mkdir -p "$state"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(json.dumps(d, sort_keys=True))' \
  /tmp/pmem-demo-layout.json >"$state/layout.json"
cat "$state/layout.json" >&3
