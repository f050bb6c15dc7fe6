#!/usr/bin/env bash
# Runs in the booted guest (over SSH) once per flavour build, just before the snapshot is saved.
# usage: firstboot.sh LAYOUT      (stock or nfit_test: the flavour's device layout, lib.sh)
set -euo pipefail
exec 2>&1
layout=$1
log() { echo "[guest] $*"; }
udevadm settle

if [[ $layout == stock ]]; then
  # QEMU NVDIMM (bus ACPI.NFIT): label-less raw namespace at first. Initialise labels, then split
  # the region: an fsdax namespace (512 MiB) and a devdax namespace (the rest).
  log "ACPI.NFIT: init labels, fsdax 512M + devdax rest"
  ndctl disable-region -b ACPI.NFIT all
  ndctl init-labels -f -b ACPI.NFIT all
  ndctl enable-region -b ACPI.NFIT all
  ndctl create-namespace -b ACPI.NFIT -m fsdax -s 512M -n lab-fsdax >/dev/null
  ndctl create-namespace -b ACPI.NFIT -m devdax -n lab-devdax >/dev/null
fi

if [[ $layout == nfit_test ]]; then
  log "nfit_test: load, init labels, fsdax namespaces"
  modprobe nfit_test # also loaded at boot (modules-load.d)
  udevadm settle
  ndctl disable-region -b nfit_test.0 all
  ndctl init-labels -f -b nfit_test.0 all
  ndctl enable-region -b nfit_test.0 all
  # One fsdax namespace in every pmem region of nfit_test.0 that has room.
  regions=$(ndctl list -b nfit_test.0 -R | python3 -c '
import json, sys
d = json.load(sys.stdin)
regions = d.get("regions", [d]) if isinstance(d, dict) else d
print(" ".join(r["dev"] for r in regions if r.get("type") == "pmem" and r.get("available_size", 0) >= 16 << 20))
')
  for region in $regions; do
    ndctl create-namespace -b nfit_test.0 -r "$region" -m fsdax >/dev/null || log "no fsdax namespace on $region"
  done
fi
udevadm settle
ndctl list -RN | python3 -c '
import json, sys
d = json.load(sys.stdin)
regions = d.get("regions", [d]) if isinstance(d, dict) else d
for r in regions:
    ns = ", ".join("%s %s %s" % (n["dev"], n.get("mode"), n.get("blockdev", n.get("chardev", ""))) for n in r.get("namespaces", []))
    print("[guest] %s %d MiB: %s" % (r["dev"], r["size"] >> 20, ns))
' 
sync
