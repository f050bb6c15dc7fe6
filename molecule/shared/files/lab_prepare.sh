#!/usr/bin/env bash
# Lay out filesystems on a lab guest's pmem (run as root on the guest; tasks/lab_prepare.yml).
# Idempotent: does nothing when /etc/pmem-lab/layout.json exists. Prints the layout as JSON.
#
# e820 legacy pmem (memmap=, two regions; a page-aligned write clears poison), both flavours:
#   320 MiB region, whole device   XFS reflink=1,rmapbt=1  -o dax  /mnt/pmem-xfs
#   176 MiB region, GPT:  p1  96 MiB  ext4 -b 4096          -o dax  /mnt/pmem-ext4
#                         p2  76 MiB  XFS rmapbt=1 (no reflink: XFS refuses DAX+reflink on a
#                                     partition)             -o dax  /mnt/pmem-part-xfs
# QEMU NVDIMM (ACPI.NFIT, stock only; a write cannot clear poison there):
#   fsdax namespace (512 MiB, whole device) XFS reflink,rmapbt -o dax /mnt/pmem-nvdimm
#   devdax namespace (the rest of the region)  /dev/daxX.Y, no filesystem
# nfit_test flavour (emulated NFIT bus: inject-error, scrub, clear-errors; clears without DAX):
#   fsdax namespace in the 64 MiB region of nfit_test.0   XFS reflink,rmapbt -o dax  /mnt/nfit-xfs
#   fsdax namespace in the 32 MiB region                   ext4 -b 4096       -o dax  /mnt/nfit-ext4
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
layout=/etc/pmem-lab/layout.json
layout_done "$layout"
e820=$(layout_device e820 fsdax 0)
e820b=$(layout_device e820 fsdax 1)
nvdimm=$(layout_device ACPI.NFIT fsdax 0)
devdax=$(layout_device ACPI.NFIT devdax 0)
nfit0=$(layout_device nfit_test.0 fsdax 0)
nfit1=$(layout_device nfit_test.0 fsdax 1)
[[ -n $e820 && -n $e820b ]] || layout_die "expected two e820 pmem devices: $(layout_devices e820 fsdax)"

layout_mkxfs "/dev/$e820" pmem-xfs
layout_mount "/dev/$e820" /mnt/pmem-xfs
# GPT with 2 MiB-aligned partitions whose sizes are whole pages (DAX refuses unaligned ones).
sfdisk -q -X gpt "/dev/$e820b" <<EOS
start=4096, size=196608, name=pmem-ext4
start=200704, size=155648, name=pmem-part-xfs
EOS
blockdev --rereadpt "/dev/$e820b" 2>/dev/null || true # sfdisk re-read it already
udevadm settle
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "/dev/${e820b}p1"
layout_mount "/dev/${e820b}p1" /mnt/pmem-ext4
layout_mkxfs "/dev/${e820b}p2" pmem-pxfs reflink=0,rmapbt=1
layout_mount "/dev/${e820b}p2" /mnt/pmem-part-xfs
if [[ -n $nvdimm ]]; then
  layout_mkxfs "/dev/$nvdimm" pmem-nvdimm
  layout_mount "/dev/$nvdimm" /mnt/pmem-nvdimm
fi
if [[ -n $nfit0 ]]; then
  layout_mkxfs "/dev/$nfit0" nfit-xfs
  layout_mount "/dev/$nfit0" /mnt/nfit-xfs
fi
if [[ -n $nfit1 ]]; then
  mkfs.ext4 -q -F -b 4096 -L nfit-ext4 "/dev/$nfit1"
  layout_mount "/dev/$nfit1" /mnt/nfit-ext4
fi
mkdir -p "$(dirname "$layout")"
DEVDAX="$devdax" python3 - "$layout" <<'EOS' >&3
import json, os, sys
mounts = {}
with open("/proc/self/mounts") as f:
    for line in f:
        dev, mp, fstype, opts = line.split()[:4]
        if mp.startswith("/mnt/"):
            mounts[os.path.basename(mp)] = {"device": dev, "mountpoint": mp, "fstype": fstype,
                                            "dax": bool({"dax", "dax=always"} & set(opts.split(",")))}
for name, m in mounts.items():
    base = os.path.basename(m["device"])
    part = "/sys/class/block/%s/partition" % base
    m["disk"] = os.path.basename(os.path.dirname(os.path.realpath("/sys/class/block/" + base))) if os.path.exists(part) else base
    m["partition_start_sector"] = int(open("/sys/class/block/%s/start" % base).read()) if os.path.exists(part) else 0
layout = {"mounts": mounts, "devdax": [d for d in os.environ.get("DEVDAX", "").split() if d]}
text = json.dumps(layout, indent=1, sort_keys=True)
with open(sys.argv[1], "w") as f:
    f.write(text + "\n")
print(json.dumps(layout, sort_keys=True))
EOS
