#!/usr/bin/env bash
# Lay out pmem for the badblocks scenarios (run as root on a lab guest). Idempotent; prints JSON.
# Same layout as molecule/shared/files/lab_prepare.sh, except that XFS on a partition is made with
# reflink=0: kernel 6.1 refuses "-o dax" for a reflink XFS on a partition ("DAX and reflink cannot
# work with multi-partitions!").
#   e820 pmem, GPT: p1 XFS (rmapbt=1, reflink=0) /mnt/pmem-xfs, p2 ext4 -b 4096 /mnt/pmem-ext4 (both -o dax)
#   ACPI.NFIT fsdax (whole device): XFS reflink=1,rmapbt=1 -o dax /mnt/pmem-nvdimm
#   ACPI.NFIT devdax: left alone
#   nfit_test.0 fsdax (nfit_test flavour): XFS -o dax /mnt/nfit-xfs
set -euo pipefail
exec 3>&1 1>&2
layout=/etc/pmem-lab/badblocks-layout.json
if [[ -s $layout ]]; then
  cat "$layout" >&3
  exit 0
fi
pick() { # PROVIDER MODE -> first device name
  ndctl list -N -R -B | python3 -c '
import json, sys
d = json.load(sys.stdin)
buses = d if isinstance(d, list) else [d]
for b in buses:
    if b.get("provider") != sys.argv[1]:
        continue
    for r in b.get("regions", []):
        for n in sorted(r.get("namespaces", []), key=lambda n: n["dev"]):
            if n.get("mode") == sys.argv[2] and (n.get("blockdev") or n.get("chardev")):
                print(n.get("blockdev") or n.get("chardev"))
                sys.exit(0)
' "$1" "$2"
}
mkxfs() {
  TEST_DIR=/tmp TEST_DEV="$1" QA_CHECK_FS=xfs mkfs.xfs -q -f -m "$3" -L "$2" "$1"
}
mnt() {
  mkdir -p "$2"
  mountpoint -q "$2" || mount -o dax "$1" "$2"
}
e820=$(pick e820 fsdax)
nvdimm=$(pick ACPI.NFIT fsdax)
devdax=$(pick ACPI.NFIT devdax)
nfit=$(pick nfit_test.0 fsdax)
[[ -n $e820 ]] || { echo "no e820 pmem"; exit 1; }
# 2 MiB-aligned partitions whose sizes are whole 2 MiB units (DAX refuses unaligned ones): 60 % / rest
total=$(blockdev --getsz "/dev/$e820")
p1=$(((total - 8192) * 6 / 10 / 4096 * 4096))
p2start=$((4096 + p1))
p2=$(((total - p2start - 4096) / 4096 * 4096))
sfdisk -q -X gpt "/dev/$e820" <<EOS
start=4096, size=$p1, name=pmem-xfs
start=$p2start, size=$p2, name=pmem-ext4
EOS
blockdev --rereadpt "/dev/$e820" || true
udevadm settle
mkxfs "/dev/${e820}p1" pmem-xfs reflink=0,rmapbt=1
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "/dev/${e820}p2"
mnt "/dev/${e820}p1" /mnt/pmem-xfs
mnt "/dev/${e820}p2" /mnt/pmem-ext4
if [[ -n $nvdimm ]]; then
  mkxfs "/dev/$nvdimm" pmem-nvdimm reflink=1,rmapbt=1
  mnt "/dev/$nvdimm" /mnt/pmem-nvdimm
fi
if [[ -n $nfit ]]; then
  mkxfs "/dev/$nfit" nfit-xfs reflink=1,rmapbt=1
  mnt "/dev/$nfit" /mnt/nfit-xfs
fi
mkdir -p /etc/pmem-lab
printf '{"e820": "%s", "nvdimm": "%s", "devdax": "%s", "nfit": "%s"}\n' "$e820" "$nvdimm" "$devdax" "$nfit" >"$layout"
cat "$layout" >&3
