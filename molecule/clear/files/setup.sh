#!/usr/bin/env bash
# Lay out pmem, write victim files with known-good copies off pmem, poison pages under them.
# Run as root on a stock lab guest (one remote task). Idempotent: a second run prints the saved
# state. Prints one JSON object: {layout, injected: [...]}.
#
# Same layout as molecule/shared/files/lab_prepare.sh except that XFS on a partition is made with
# reflink=0 (kernel 6.1 refuses "-o dax" for a reflink XFS on a partition: "DAX and reflink
# cannot work with multi-partitions!").
#   e820 pmem (a page-aligned write clears), one device (memmap=512M): GPT
#       p1 XFS rmapbt=1 -o dax /mnt/pmem-xfs, p2 ext4 -b 4096 -o dax /mnt/pmem-ext4;
#     two devices (memmap=320M + 176M): XFS on the larger, ext4 on the other, whole devices
#   QEMU NVDIMM (ACPI.NFIT, cannot clear): fsdax, XFS reflink,rmapbt -o dax /mnt/pmem-nvdimm
# Environment:
#   POISON_SCRIPT   the text of molecule/shared/files/inject_poison.sh
#   CLEAR_VICTIMS   "fs:offset ..." victims to create and poison, e.g. "xfs:8192 ext4:8192"
#   CLEAR_SPARE     "fs ..." victims to create (with copies) but not poison, e.g. "nvdimm"
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
state=/etc/pmem-lab/clear-state.json
layout_done "$state"
read -r -a e820s <<<"$(layout_devices e820 fsdax)"
nvdimm=$(layout_device ACPI.NFIT fsdax)
((${#e820s[@]} > 0)) || layout_die "no e820 pmem"
if ((${#e820s[@]} >= 2)); then
  # two e820 devices: XFS on the larger, ext4 on the other (whole devices)
  e820=${e820s[0]}
  xfsdev=/dev/${e820s[0]}
  ext4dev=/dev/${e820s[1]}
  layout_mkxfs "$xfsdev" pmem-xfs reflink=1,rmapbt=1
else
  # one e820 device (512 MiB): GPT, p1 XFS, p2 ext4
  e820=${e820s[0]}
  sfdisk -q -X gpt "/dev/$e820" <<EOS
start=4096, size=688128, name=pmem-xfs
start=692224, size=352256, name=pmem-ext4
EOS
  blockdev --rereadpt "/dev/$e820" || true
  udevadm settle
  xfsdev=/dev/${e820}p1
  ext4dev=/dev/${e820}p2
  layout_mkxfs "$xfsdev" pmem-xfs reflink=0,rmapbt=1
fi
mkfs.ext4 -q -F -b 4096 -L pmem-ext4 "$ext4dev"
layout_mount "$xfsdev" /mnt/pmem-xfs
layout_mount "$ext4dev" /mnt/pmem-ext4
if [[ -n $nvdimm ]]; then
  layout_mkxfs "/dev/$nvdimm" pmem-nvdimm reflink=1,rmapbt=1
  layout_mount "/dev/$nvdimm" /mnt/pmem-nvdimm
fi
mkdir -p /root/backup /etc/pmem-lab
victim() {
  [[ -d /mnt/pmem-$1 ]] || return 1
  head -c 65436 /dev/urandom >"/root/backup/$1-victim"
  cp "/root/backup/$1-victim" "/mnt/pmem-$1/victim"
  sync -f "/mnt/pmem-$1/victim"
}
for fs in ${CLEAR_SPARE:-}; do
  victim "$fs" || true
done
injected=()
for v in ${CLEAR_VICTIMS:-xfs:8192 ext4:8192 nvdimm:8192}; do
  fs=${v%%:*}
  off=${v#*:}
  victim "$fs" || continue
  injected+=("$(POISON_FILE=/mnt/pmem-$fs/victim POISON_FILE_OFFSET=$off bash -c "$POISON_SCRIPT")")
done
E820=$e820 NVDIMM=$nvdimm XFSDEV=$xfsdev EXT4DEV=$ext4dev python3 - "$state" "${injected[@]}" <<'EOS' >&3
import json, os, sys
out = {"e820": os.environ["E820"], "nvdimm": os.environ.get("NVDIMM") or None,
       "xfs_device": os.environ["XFSDEV"], "ext4_device": os.environ["EXT4DEV"],
       "injected": [json.loads(x) for x in sys.argv[2:]]}
text = json.dumps(out, sort_keys=True)
with open(sys.argv[1], "w") as f:
    f.write(text + "\n")
print(text)
EOS
