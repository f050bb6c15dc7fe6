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
set -euo pipefail
exec 3>&1 1>&2
layout=/etc/pmem-lab/layout.json
if [[ -s $layout ]]; then
  cat "$layout" >&3
  exit 0
fi
# Devices by bus (pmemN names move between boots and module sets).
mapfile -t rows < <(ndctl list -N -R -B | python3 -c '
import json, sys
d = json.load(sys.stdin)
buses = d if isinstance(d, list) else d.get("buses", [d])
rows = []
for b in buses:
    for r in b.get("regions", []):
        for n in sorted(r.get("namespaces", []), key=lambda n: n["dev"]):
            if n.get("mode") in ("fsdax", "devdax") and (n.get("blockdev") or n.get("chardev")):
                rows.append((b.get("provider"), -n.get("size", 0), n["mode"], n.get("blockdev") or n.get("chardev")))
for p, size, mode, dev in sorted(rows):
    print(p, -size, mode, dev)
')
pick() { # pick PROVIDER MODE INDEX -> device name (index 0 = the largest)
  local i=0 row p m d
  for row in "${rows[@]}"; do
    read -r p _ m d <<<"$row"
    if [[ $p == "$1" && $m == "$2" ]]; then
      if ((i == $3)); then
        echo "$d"
        return
      fi
      i=$((i + 1))
    fi
  done
}
e820=$(pick e820 fsdax 0)
e820b=$(pick e820 fsdax 1)
nvdimm=$(pick ACPI.NFIT fsdax 0)
devdax=$(pick ACPI.NFIT devdax 0)
nfit0=$(pick nfit_test.0 fsdax 0)
nfit1=$(pick nfit_test.0 fsdax 1)
[[ -n $e820 && -n $e820b ]] || { echo "expected two e820 pmem devices: ${rows[*]}"; exit 1; }

mkxfs() { # mkxfs DEV LABEL [-m options]; small devices need the xfstests escape hatch
  TEST_DIR=/tmp TEST_DEV="$1" QA_CHECK_FS=xfs mkfs.xfs -q -f -m "${3:-reflink=1,rmapbt=1}" -L "$2" "$1"
}
mnt() {
  mkdir -p "$2"
  mount -o dax "$1" "$2"
}
mkxfs "/dev/$e820" pmem-xfs
mnt "/dev/$e820" /mnt/pmem-xfs
# GPT with 2 MiB-aligned partitions whose sizes are whole pages (DAX refuses unaligned ones).
sfdisk -q -X gpt "/dev/$e820b" <<EOS
start=4096, size=196608, name=pmem-ext4
start=200704, size=155648, name=pmem-part-xfs
EOS
blockdev --rereadpt "/dev/$e820b" 2>/dev/null || true # sfdisk re-read it already
udevadm settle
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "/dev/${e820b}p1"
mnt "/dev/${e820b}p1" /mnt/pmem-ext4
mkxfs "/dev/${e820b}p2" pmem-pxfs reflink=0,rmapbt=1
mnt "/dev/${e820b}p2" /mnt/pmem-part-xfs
if [[ -n $nvdimm ]]; then
  mkxfs "/dev/$nvdimm" pmem-nvdimm
  mnt "/dev/$nvdimm" /mnt/pmem-nvdimm
fi
if [[ -n $nfit0 ]]; then
  mkxfs "/dev/$nfit0" nfit-xfs
  mnt "/dev/$nfit0" /mnt/nfit-xfs
fi
if [[ -n $nfit1 ]]; then
  mkfs.ext4 -q -F -b 4096 -L nfit-ext4 "/dev/$nfit1"
  mnt "/dev/$nfit1" /mnt/nfit-ext4
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
