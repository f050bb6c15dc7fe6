#!/usr/bin/env bash
# Lay out pmem for the badblocks scenarios (run as root on a lab guest). Idempotent; prints JSON.
# Same layout as molecule/shared/files/lab_prepare.sh, except that XFS on a partition is made with
# reflink=0: kernel 6.1 refuses "-o dax" for a reflink XFS on a partition ("DAX and reflink cannot
# work with multi-partitions!").
#   e820 pmem, GPT: p1 XFS (rmapbt=1, reflink=0) /mnt/pmem-xfs, p2 ext4 -b 4096 /mnt/pmem-ext4 (both -o dax)
#   ACPI.NFIT fsdax (whole device): XFS reflink=1,rmapbt=1 -o dax /mnt/pmem-nvdimm
#   ACPI.NFIT devdax: left alone
#   nfit_test.0 fsdax (nfit_test flavour): XFS -o dax /mnt/nfit-xfs
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
layout=/etc/pmem-lab/badblocks-layout.json
layout_done "$layout"
e820=$(layout_device e820 fsdax)
nvdimm=$(layout_device ACPI.NFIT fsdax)
devdax=$(layout_device ACPI.NFIT devdax)
nfit=$(layout_device nfit_test.0 fsdax)
[[ -n $e820 ]] || layout_die "no e820 pmem"
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
layout_mkxfs "/dev/${e820}p1" pmem-xfs reflink=0,rmapbt=1
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "/dev/${e820}p2"
layout_mount "/dev/${e820}p1" /mnt/pmem-xfs
layout_mount "/dev/${e820}p2" /mnt/pmem-ext4
if [[ -n $nvdimm ]]; then
  layout_mkxfs "/dev/$nvdimm" pmem-nvdimm reflink=1,rmapbt=1
  layout_mount "/dev/$nvdimm" /mnt/pmem-nvdimm
fi
if [[ -n $nfit ]]; then
  layout_mkxfs "/dev/$nfit" nfit-xfs reflink=1,rmapbt=1
  layout_mount "/dev/$nfit" /mnt/nfit-xfs
fi
mkdir -p /etc/pmem-lab
printf '{"e820": "%s", "nvdimm": "%s", "devdax": "%s", "nfit": "%s"}\n' "$e820" "$nvdimm" "$devdax" "$nfit" >"$layout"
cat "$layout" >&3
