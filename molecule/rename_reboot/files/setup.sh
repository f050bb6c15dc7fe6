#!/usr/bin/env bash
# Lay out the stock lab guest for the rename proof and poison three ranges (run as root on the
# guest; one remote task). Idempotent: a second run prints the saved state. Prints one JSON object.
#
#   e820 320 MiB  GPT  p1 XFS rmapbt=1 -o dax /mnt/pmem-xfs (victim poisoned at 8192)
#                      p2 raw, 8 MiB of random data: the decoy (same partition geometry as below)
#   e820 176 MiB  GPT  p1 raw; p2 raw, 8 MiB of random data, poisoned at partition sector 2048
#   QEMU NVDIMM   fsdax XFS reflink,rmapbt -o dax /mnt/pmem-nvdimm (victim poisoned at 8192)
# Both p2 partitions have the same size, so the raw range's partition offset exists on both: a
# write that followed the old name (pmemXp2) instead of the identity would land on the decoy.
# Devices are picked by bus and size, never by name.
# Environment: POISON_SCRIPT (molecule/shared/files/inject_poison.sh), DEVICES_SCRIPT (devices.py)
set -euo pipefail
exec 3>&1 1>&2
state=/etc/pmem-lab/rename-state.json
if [[ -s $state ]]; then
  cat "$state" >&3
  exit 0
fi
pick() { # PROVIDER -> fsdax block devices of that bus, largest first
  ndctl list -N -R -B | python3 -c '
import json, sys
d = json.load(sys.stdin)
found = []
for b in (d if isinstance(d, list) else [d]):
    if b.get("provider") != sys.argv[1]:
        continue
    for r in b.get("regions", []):
        for n in r.get("namespaces", []):
            if n.get("mode") == "fsdax" and n.get("blockdev"):
                found.append((-int(n.get("size", 0)), n["blockdev"]))
print(" ".join(dev for _s, dev in sorted(found)))
' "$1"
}
mkxfs() { TEST_DIR=/tmp TEST_DEV="$1" QA_CHECK_FS=xfs mkfs.xfs -q -f -m "$3" -L "$2" "$1"; }
mnt() {
  mkdir -p "$2"
  mountpoint -q "$2" || mount -o dax,noatime "$1" "$2"
}
read -r -a e820s <<<"$(pick e820)"
nvdimm=$(pick ACPI.NFIT | awk '{print $1}')
((${#e820s[@]} == 2)) || { echo "need the two e820 devices of the stock layout, got: ${e820s[*]}"; exit 1; }
[[ -n $nvdimm ]] || { echo "no fsdax namespace on the QEMU NVDIMM"; exit 1; }
big=${e820s[0]} small=${e820s[1]}
# 2 MiB-aligned partitions; p2 is 58 MiB on both
sfdisk -q -X gpt "/dev/$big" <<EOS
start=4096, size=524288, name=rn-xfs
start=528384, size=118784, name=rn-decoy
EOS
sfdisk -q -X gpt "/dev/$small" <<EOS
start=4096, size=196608, name=rn-spare
start=200704, size=118784, name=rn-raw
EOS
for d in "$big" "$small"; do blockdev --rereadpt "/dev/$d" || true; done
udevadm settle
for p in "${big}p2" "${small}p2"; do
  dd if=/dev/urandom of="/dev/$p" bs=1M count=8 oflag=direct conv=fsync status=none
done
mkxfs "/dev/${big}p1" rn-xfs reflink=0,rmapbt=1
mkxfs "/dev/$nvdimm" rn-nvdimm reflink=1,rmapbt=1
mnt "/dev/${big}p1" /mnt/pmem-xfs
mnt "/dev/$nvdimm" /mnt/pmem-nvdimm
mkdir -p /root/backup /etc/pmem-lab
injected=()
for fs in xfs nvdimm; do
  head -c 65536 /dev/urandom >"/root/backup/$fs-victim"
  cp "/root/backup/$fs-victim" "/mnt/pmem-$fs/victim"
  sync -f "/mnt/pmem-$fs/victim"
  injected+=("$(POISON_FILE=/mnt/pmem-$fs/victim POISON_FILE_OFFSET=8192 bash -c "$POISON_SCRIPT")")
done
injected+=("$(POISON_DEVICE=${small}p2 POISON_SECTOR=2048 POISON_SECTORS=8 bash -c "$POISON_SCRIPT")")
devices=$(python3 -c "$DEVICES_SCRIPT")
DEVICES=$devices python3 - "$state" "${injected[@]}" <<'EOS' >&3
import json, os, sys
devices = json.loads(os.environ["DEVICES"])
injected = [json.loads(x) for x in sys.argv[2:]]
for inj in injected:  # the physical device behind the name it was injected through
    inj["identity"] = devices[inj["device"]]["identity"]
out = {"devices": devices, "injected": injected}
text = json.dumps(out, sort_keys=True)
with open(sys.argv[1], "w") as f:
    f.write(text + "\n")
print(text)
EOS
