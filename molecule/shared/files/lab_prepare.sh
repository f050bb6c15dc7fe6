#!/bin/bash
# Lay out filesystems on a lab guest's pmem (run as root on the guest; tasks/lab_prepare.yml).
# Idempotent: does nothing when /etc/pmem-lab/layout.json exists. Prints the layout as JSON.
#
# Both flavours (stock layout):
#   e820 pmem (512 MiB, a write clears poison), GPT-partitioned:
#     p1 336 MiB  XFS reflink=1,rmapbt=1  -o dax  /mnt/pmem-xfs
#     p2 172 MiB  ext4 -b 4096            -o dax  /mnt/pmem-ext4
#   QEMU NVDIMM (ACPI.NFIT; poison there cannot be cleared by a write):
#     fsdax namespace (512 MiB, whole device) XFS reflink,rmapbt -o dax /mnt/pmem-nvdimm
#     devdax namespace (the rest of the region)  /dev/daxX.Y, no filesystem
# nfit_test flavour, in addition (emulated NFIT bus: inject-error, scrub, clear-errors work):
#   first fsdax namespace on nfit_test.0   XFS reflink,rmapbt -o dax  /mnt/nfit-xfs
#   second fsdax namespace, if any          ext4 -b 4096       -o dax  /mnt/nfit-ext4
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
for b in buses:
    for r in b.get("regions", []):
        for n in sorted(r.get("namespaces", []), key=lambda n: n["dev"]):
            if n.get("mode") in ("fsdax", "devdax") and (n.get("blockdev") or n.get("chardev")):
                print(b.get("provider"), r["dev"], n["dev"], n["mode"], n.get("blockdev") or n.get("chardev"))
')
pick() { # pick PROVIDER MODE INDEX -> device name
  local i=0 row p m d
  for row in "${rows[@]}"; do
    read -r p _ _ m d <<<"$row"
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
nvdimm=$(pick ACPI.NFIT fsdax 0)
devdax=$(pick ACPI.NFIT devdax 0)
nfit0=$(pick nfit_test.0 fsdax 0)
nfit1=$(pick nfit_test.0 fsdax 1)
[[ -n $e820 ]] || { echo "no e820 pmem"; exit 1; }

mkxfs() { # small devices need the xfstests escape hatch
  TEST_DIR=/tmp TEST_DEV="$1" QA_CHECK_FS=xfs mkfs.xfs -q -f -m reflink=1,rmapbt=1 -L "$2" "$1"
}
mnt() {
  mkdir -p "$2"
  mount -o dax "$1" "$2"
}
# e820: GPT, 2 MiB-aligned partitions whose sizes are whole pages (DAX refuses unaligned ones).
sfdisk -q -X gpt "/dev/$e820" <<EOS
start=4096, size=688128, name=pmem-xfs
start=692224, size=352256, name=pmem-ext4
EOS
blockdev --rereadpt "/dev/$e820" || partprobe "/dev/$e820" || true
udevadm settle
mkxfs "/dev/${e820}p1" pmem-xfs
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "/dev/${e820}p2"
mnt "/dev/${e820}p1" /mnt/pmem-xfs
mnt "/dev/${e820}p2" /mnt/pmem-ext4
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
                                            "dax": "dax" in opts.split(",")}
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
