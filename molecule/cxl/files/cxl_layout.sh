#!/usr/bin/env bash
# Runs in a cxl-layout lab guest (lab/lib.sh: QEMU cxl-type3 mem0 behind root decoder decoder0.0):
# a pmem CXL region over the whole device and a devdax namespace on its nd region. Idempotent:
# an existing region and namespace are kept. Prints one JSON line: the names it left in place.
set -euo pipefail
exec 3>&1 1>&2
udevadm settle
region=$(cxl list -R 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read().strip()
regions = json.loads(text) if text else []
regions = regions if isinstance(regions, list) else [regions]
print(next((r["region"] for r in regions if r.get("type") == "pmem" or r.get("mode") == "pmem"), ""))')
if [[ -z $region ]]; then
  cxl create-region -m -d decoder0.0 -w 1 -t pmem mem0 >/dev/null
  udevadm settle
  region=$(find /sys/bus/cxl/devices/ -maxdepth 1 -name 'region*' -printf '%f\n' | sort | head -n1)
fi
# The nd region of a CXL pmem region starts at the same host physical address.
hpa=$(cat "/sys/bus/cxl/devices/$region/resource")
ndregion=
for r in /sys/bus/nd/devices/region*; do
  [[ $(cat "$r/resource" 2>/dev/null) == "$hpa" ]] && ndregion=$(basename "$r")
done
[[ -n $ndregion ]] || { echo "no nd region at $hpa for $region" >&2; exit 1; }
ns=$(ndctl list -r "$ndregion" -N | python3 -c '
import json, sys
text = sys.stdin.read().strip()
ns = json.loads(text) if text else []
ns = ns if isinstance(ns, list) else [ns]
print(next((n["dev"] for n in ns if n.get("mode") == "devdax"), ""))')
if [[ -z $ns ]]; then
  ndctl create-namespace -r "$ndregion" -m devdax >/dev/null
  udevadm settle
  ns=$(ndctl list -r "$ndregion" -N | python3 -c 'import json, sys; d = json.load(sys.stdin); d = d if isinstance(d, list) else [d]; print(d[0]["dev"])')
fi
dax=$(ndctl list -n "$ns" -N | python3 -c 'import json, sys; d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d; print(d.get("chardev", ""))')
printf '{"cxl_region": "%s", "nd_region": "%s", "namespace": "%s", "dax_device": "%s"}\n' "$region" "$ndregion" "$ns" "$dax" >&3
