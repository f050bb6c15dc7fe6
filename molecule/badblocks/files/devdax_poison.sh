#!/usr/bin/env bash
# nfit_test flavour: make a small devdax namespace on nfit_test.0 and inject region-level poison into
# it (ndctl inject-error + scrub). Idempotent. Prints and stores /etc/pmem-lab/badblocks-devdax.json:
# {"namespace", "dax", "region", "block", "sectors"}.
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
out=/etc/pmem-lab/badblocks-devdax.json
layout_done "$out"
block=${DEVDAX_BLOCK:-64}
sectors=${DEVDAX_SECTORS:-8}
# a region with room for a new namespace, else an unmounted fsdax namespace reconfigured in place
region=$(ndctl list -R -b nfit_test.0 | python3 -c '
import json, sys
d = json.load(sys.stdin)
regions = d if isinstance(d, list) else [d]
for r in sorted(regions, key=lambda r: -r.get("available_size", 0)):
    if r.get("type") == "pmem" and r.get("available_size", 0) >= 16 << 20:
        print(r["dev"]); break
')
if [[ -n $region ]]; then
  ns_json=$(ndctl create-namespace -r "$region" -m devdax -s 16M -a 4K)
else
  victim=$(ndctl list -N -b nfit_test.0 | python3 -c '
import json, subprocess, sys
d = json.load(sys.stdin)
mounted = subprocess.run(["findmnt", "-rn", "-o", "SOURCE"], stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
for n in sorted(d if isinstance(d, list) else [d], key=lambda n: n["dev"]):
    if n.get("mode") == "fsdax" and "/dev/" + n.get("blockdev", "?") not in mounted:
        print(n["dev"]); break
')
  [[ -n $victim ]] || { echo "no room for a devdax namespace on nfit_test.0"; exit 1; }
  ns_json=$(ndctl create-namespace -f -e "$victim" -m devdax -a 4K)
fi
read -r ns dax region < <(python3 -c '
import json, sys
n = json.loads(sys.argv[1])
dax = n.get("chardev") or n["daxregion"]["devices"][0]["chardev"]
print(n["dev"], dax, "region" + n["dev"][len("namespace"):].split(".")[0])
' "$ns_json")
ndctl inject-error -B "$block" -n "$sectors" "$ns" >/dev/null
ndctl start-scrub nfit_test.0 >/dev/null 2>&1 || true
ndctl wait-scrub nfit_test.0 >/dev/null
mkdir -p /etc/pmem-lab
printf '{"namespace": "%s", "dax": "%s", "region": "%s", "block": %d, "sectors": %d}\n' \
  "$ns" "$dax" "$region" "$block" "$sectors" >"$out"
cat "$out" >&3
