#!/usr/bin/env bash
# Inject a bad range on a lab guest (run as root on the guest; molecule/shared/tasks/inject_poison.yml).
#
# Environment (one of two forms):
#   POISON_FILE, POISON_FILE_OFFSET [, POISON_LENGTH=4096]   the range under a file (bytes)
#   POISON_DEVICE (pmem0 | /dev/pmem0 | pmem0p1), POISON_SECTOR [, POISON_SECTORS=8]
#   POISON_METHOD=auto|sysfs|ndctl   auto: ndctl on nfit_test buses, sysfs everywhere else
# Prints one JSON object: device, sector, sectors (whole-device 512-byte sectors), method, ...
# A range under a file is injected with the file's filesystem frozen (fsfreeze -f: dirty data and
# metadata are written first, nothing is written while it is frozen): on e820 pmem any write over an
# injected sector clears it, writeback included, so the poison would vanish before the test ran.
set -euo pipefail
die() { echo "inject_poison: $*" >&2; exit 1; }
method=${POISON_METHOD:-auto}
file=${POISON_FILE:-}
fs_sector=
off=
part_start=0

if [[ -n $file ]]; then
  [[ -f $file ]] || die "no such file: $file"
  off=${POISON_FILE_OFFSET:?POISON_FILE_OFFSET}
  len=${POISON_LENGTH:-4096}
  src=$(findmnt -n -o SOURCE --target "$file")
  [[ $src == /dev/* ]] || die "$file is not on a block device ($src)"
  part=$(basename "$src")
  # FIEMAP (xfs_io works on XFS and ext4): "N: [lstart..lend]: pstart..pend" in 512-byte units.
  sync "$file"
  fs_sector=$(xfs_io -r -c 'fiemap -v' "$file" | awk -v s=$((off / 512)) '
    $1 ~ /^[0-9]+:$/ && $3 != "hole" {
      split($2, l, /[][.:]+/); split($3, p, /[.:]+/)
      if (s >= l[2] && s <= l[3]) { print p[1] + (s - l[2]); exit }
    }')
  [[ $fs_sector =~ ^[0-9]+$ ]] || die "offset $off of $file is not allocated (hole or beyond EOF)"
  sectors=$(((off % 512 + len + 511) / 512))
  if [[ -f /sys/class/block/$part/partition ]]; then
    part_start=$(cat "/sys/class/block/$part/start")
    disk=$(basename "$(readlink -f "/sys/class/block/$part/..")")
  else
    disk=$part
  fi
  sector=$((part_start + fs_sector))
else
  dev=${POISON_DEVICE:?POISON_FILE or POISON_DEVICE}
  dev=${dev#/dev/}
  sector=${POISON_SECTOR:?POISON_SECTOR}
  sectors=${POISON_SECTORS:-8}
  if [[ -f /sys/class/block/$dev/partition ]]; then
    part_start=$(cat "/sys/class/block/$dev/start")
    disk=$(basename "$(readlink -f "/sys/class/block/$dev/..")")
    sector=$((part_start + sector))
  else
    disk=$dev
  fi
fi
[[ -e /sys/block/$disk/badblocks ]] || die "$disk is not a pmem block device"

# Which namespace and bus serve the disk.
read -r bus ns < <(ndctl list -N -R -B 2>/dev/null | python3 -c '
import json, sys
want = sys.argv[1]
d = json.load(sys.stdin)
buses = d if isinstance(d, list) else d.get("buses", [d])
for b in buses:
    regions = b.get("regions", [])
    for r in regions:
        for n in r.get("namespaces", []):
            if n.get("blockdev") == want:
                print(b.get("provider", b.get("dev")), n["dev"]); sys.exit(0)
print("unknown", "unknown")
' "$disk")
if [[ $method == auto ]]; then
  case $bus in nfit_test.*) method=ndctl ;; *) method=sysfs ;; esac
fi

frozen=
thaw() { if [[ -n $frozen ]]; then fsfreeze -u "$frozen"; frozen=; fi; }
trap thaw EXIT
if [[ -n $file ]]; then
  frozen=$(findmnt -n -o TARGET --target "$file")
  fsfreeze -f "$frozen"
fi
case $method in
  sysfs)
    echo "$sector $sectors" >"/sys/block/$disk/badblocks"
    ;;
  ndctl)
    # inject-error -B counts 512-byte blocks from the start of the namespace's data area on fsdax,
    # which is what /sys/block/pmemX/badblocks counts from too (checked by lab/selftest.sh).
    ndctl inject-error -B "$sector" -n "$sectors" "$ns" >/dev/null
    ndctl start-scrub "$bus" >/dev/null 2>&1 || true
    ndctl wait-scrub "$bus" >/dev/null
    ;;
  *) die "unknown POISON_METHOD $method" ;;
esac
thaw
# Non-DAX mounts would serve the page from the page cache: drop clean pages.
sync
echo 3 >/proc/sys/vm/drop_caches
awk -v s="$sector" -v n="$sectors" '$1 <= s && $1 + $2 >= s + n { found = 1 } END { exit !found }' \
  "/sys/block/$disk/badblocks" || die "/sys/block/$disk/badblocks does not list $sector+$sectors after $method injection: $(tr '\n' ';' <"/sys/block/$disk/badblocks")"
printf '{"device": "%s", "sector": %d, "sectors": %d, "offset": %d, "length": %d, "method": "%s", "bus": "%s", "namespace": "%s", "partition_start_sector": %d, "file": "%s", "file_offset": %s, "fs_sector": %s}\n' \
  "$disk" "$sector" "$sectors" "$((sector * 512))" "$((sectors * 512))" "$method" "$bus" "$ns" "$part_start" "$file" "${off:-null}" "${fs_sector:-null}"
