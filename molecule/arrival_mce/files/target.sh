#!/usr/bin/env bash
# Guest side of arrival_mce (root): write the victim on the NVDIMM's XFS, find the physical address
# of its page at TARGET_OFFSET and the lists' state before; freeze the filesystem (nothing may write
# there while the machine check arrives). Prints one JSON line; also /etc/pmem-lab/mce-target.json.
set -euo pipefail
exec 3>&1 1>&2
mnt=/mnt/pmem-nvdimm
victim=$mnt/victim
offset=${TARGET_OFFSET:-8192}
dev=$(findmnt -n -o SOURCE "$mnt")
dev=${dev#/dev/}
[[ -n $dev && -e /sys/block/$dev ]] || { echo "no pmem device mounted at $mnt"; exit 1; }
xfs_io -f -c 'pwrite -q -S 0xab 0 65536' -c fsync "$victim"
# FIEMAP: first extent's physical start, in 512-byte sectors from the start of /dev/$dev.
phys=$(xfs_io -r -c 'fiemap -v' "$victim" | awk '$1 == "0:" { split($3, a, "[.:]"); print a[1]; exit }')
[[ $phys =~ ^[0-9]+$ ]] || { echo "no FIEMAP extent for $victim"; exit 1; }
# The fsdax data area starts at the pfn device's resource (namespace start + info block + memmap).
holder=$(readlink -f "/sys/block/$dev/device")
region=$(basename "$(readlink -f "$holder/..")")
data_start=$(cat "$holder/resource")
region_start=$(cat "/sys/bus/nd/devices/$region/resource")
fsync "$victim" 2>/dev/null || sync
fsfreeze -f "$mnt"
DEV=$dev REGION=$region PHYS=$phys OFFSET=$offset DATA_START=$data_start REGION_START=$region_start \
  VICTIM=$victim python3 - <<'EOS' >&3
import json, os
e = os.environ
dev_byte = int(e["PHYS"]) * 512 + int(e["OFFSET"])
addr = int(e["DATA_START"], 0) + dev_byte
hc = [int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("HardwareCorrupted:")][0]
out = {"file": e["VICTIM"], "file_offset": int(e["OFFSET"]), "device": e["DEV"], "region": e["REGION"],
       "dev_byte": dev_byte, "address": addr, "region_start": int(e["REGION_START"], 0),
       "data_start": int(e["DATA_START"], 0), "hardware_corrupted_kb_before": hc,
       "blockdev_list_before": open("/sys/block/%s/badblocks" % e["DEV"]).read(),
       "region_list_before": open("/sys/bus/nd/devices/%s/badblocks" % e["REGION"]).read()}
os.makedirs("/etc/pmem-lab", exist_ok=True)
with open("/etc/pmem-lab/mce-target.json", "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out))
EOS
