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
# Runs after molecule/shared/files/layout_lib.sh (prepare.yml prepends it).
state=/etc/pmem-lab/rename-state.json
layout_done "$state"
nvdimm=$(layout_device ACPI.NFIT fsdax)
# The proof starts from the names of a boot that probed e820 first (pmem0/1 e820, pmem2 the
# NVDIMM): rename.sh then binds NFIT first and every name moves onto another device. Which bus
# probes first at boot is a race, and the lab snapshot keeps whichever order its first boot had
# (a snapshot saved with the NVDIMM as pmem0 made every name stay put). Bind e820 first here.
if [[ $nvdimm == pmem0 ]]; then
  e820_drv=/sys/bus/platform/drivers/e820_pmem nfit_drv=/sys/bus/acpi/drivers/nfit
  mapfile -t e820_bound < <(find "$e820_drv" -maxdepth 1 -type l ! -name module -printf '%f\n')
  mapfile -t nfit_bound < <(find "$nfit_drv" -maxdepth 1 -type l ! -name module -printf '%f\n')
  for d in "${e820_bound[@]}"; do echo "$d" >"$e820_drv/unbind"; done
  for d in "${nfit_bound[@]}"; do echo "$d" >"$nfit_drv/unbind"; done
  for d in "${e820_bound[@]}"; do echo "$d" >"$e820_drv/bind"; done
  udevadm settle
  for d in "${nfit_bound[@]}"; do echo "$d" >"$nfit_drv/bind"; done
  udevadm settle
  for _ in $(seq 1 50); do
    nvdimm=$(layout_device ACPI.NFIT fsdax)
    [[ -n $nvdimm && $nvdimm != pmem0 ]] && break
    sleep 0.2
  done
  [[ $nvdimm != pmem0 ]] || layout_die "the NVDIMM is still pmem0 after binding e820 first"
fi
read -r -a e820s <<<"$(layout_devices e820 fsdax)"
((${#e820s[@]} == 2)) || layout_die "need the two e820 devices of the stock layout, got: ${e820s[*]}"
[[ -n $nvdimm ]] || layout_die "no fsdax namespace on the QEMU NVDIMM"
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
layout_mkxfs "/dev/${big}p1" rn-xfs reflink=0,rmapbt=1
layout_mkxfs "/dev/$nvdimm" rn-nvdimm reflink=1,rmapbt=1
layout_mount "/dev/${big}p1" /mnt/pmem-xfs dax,noatime
layout_mount "/dev/$nvdimm" /mnt/pmem-nvdimm dax,noatime
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
