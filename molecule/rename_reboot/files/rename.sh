#!/usr/bin/env bash
# Rename every pmem device without a reboot, deterministically: unmount the pmem filesystems,
# unbind the e820 and ACPI NFIT bus providers, then bind them again in the other order (NFIT
# first). Region ids are allocated in probe order, so the NVDIMM's region takes id 0 and the e820
# regions 1 and 2: pmem0/1/2 (e820 320M, e820 176M, NVDIMM) come back as pmem1/2/0, dax2.1 as
# dax0.1 - the renaming issue 10 saw after a reboot. The disks are new, so their software
# badblocks are gone: re-inject each at the same physical place (the file ranges through the same
# file offsets, the raw range at the same sector of the device with the same identity), then
# mount again by label. Prints {devices_before, devices_after, lists_after_rebind, reinjected}.
# Environment: POISON_SCRIPT, DEVICES_SCRIPT (as setup.sh)
set -euo pipefail
exec 3>&1 1>&2
state=/etc/pmem-lab/rename-state.json
before=$(python3 -c "$DEVICES_SCRIPT")
for m in /mnt/pmem-xfs /mnt/pmem-nvdimm; do
  if mountpoint -q "$m"; then umount "$m"; fi
done
bound() { # DRIVER_DIR -> devices bound to it
  local d
  for d in "$1"/*; do
    [[ -L $d && $(basename "$d") != module ]] && basename "$d"
  done
  return 0
}
e820_drv=/sys/bus/platform/drivers/e820_pmem
nfit_drv=/sys/bus/acpi/drivers/nfit
mapfile -t e820_devs < <(bound $e820_drv)
mapfile -t nfit_devs < <(bound $nfit_drv)
((${#e820_devs[@]} && ${#nfit_devs[@]})) || { echo "e820_pmem or nfit has nothing bound"; exit 1; }
for d in "${e820_devs[@]}"; do echo "$d" >$e820_drv/unbind; done
for d in "${nfit_devs[@]}"; do echo "$d" >$nfit_drv/unbind; done
for d in "${nfit_devs[@]}"; do echo "$d" >$nfit_drv/bind; done
udevadm settle
for d in "${e820_devs[@]}"; do echo "$d" >$e820_drv/bind; done
udevadm settle
for _ in $(seq 1 50); do  # the partitions of both e820 disks are back
  [[ $(find /sys/class/block -maxdepth 1 -name 'pmem*p2' | wc -l) -ge 2 ]] && break
  sleep 0.2
done
udevadm settle
after=$(python3 -c "$DEVICES_SCRIPT")
lists=$(for f in /sys/block/pmem*/badblocks; do printf '%s\t%s\n' "$f" "$(tr '\n' ';' <"$f")"; done)
mkdir -p /mnt/pmem-xfs /mnt/pmem-nvdimm
mount -o dax,noatime LABEL=rn-xfs /mnt/pmem-xfs
mount -o dax,noatime LABEL=rn-nvdimm /mnt/pmem-nvdimm
reinjected=()
while read -r kind a b; do
  if [[ $kind == file ]]; then
    reinjected+=("$(POISON_FILE=$a POISON_FILE_OFFSET=$b bash -c "$POISON_SCRIPT")")
  else
    reinjected+=("$(POISON_DEVICE=$a POISON_SECTOR=$b POISON_SECTORS=8 bash -c "$POISON_SCRIPT")")
  fi
done < <(AFTER=$after python3 - "$state" <<'EOS'
import json, os, sys
after = json.loads(os.environ["AFTER"])
by_identity = dict((d["identity"], name) for name, d in after.items())
for inj in json.load(open(sys.argv[1]))["injected"]:
    if inj["file"]:
        print("file", inj["file"], inj["file_offset"])
    else:  # the same sector of the device that has the same identity now
        print("device", by_identity[inj["identity"]], inj["sector"])
EOS
)
BEFORE=$before AFTER=$after LISTS=$lists python3 - "${reinjected[@]}" <<'EOS' >&3
import json, os, sys
after = json.loads(os.environ["AFTER"])
reinjected = [json.loads(x) for x in sys.argv[1:]]
for inj in reinjected:
    inj["identity"] = after[inj["device"]]["identity"]
lists = dict(line.split("\t", 1) for line in os.environ["LISTS"].splitlines() if line)
print(json.dumps({"devices_before": json.loads(os.environ["BEFORE"]), "devices_after": after,
                  "lists_after_rebind": lists, "reinjected": reinjected}, sort_keys=True))
EOS
