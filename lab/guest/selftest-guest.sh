#!/usr/bin/env bash
# Runs in a lab guest (lab/selftest.sh pipes it over SSH): poison under a file on fsdax-mounted XFS,
# EIO on read, the range in the lists, cleared by a page-aligned whole-page write, lists empty.
# usage: selftest-guest.sh stock|nfit_test (the layout)      last line: "RESULT PASS <what>" or "RESULT FAIL <why>"
set -euo pipefail
exec 2>&1
layout=$1
mnt=/mnt/lab-selftest
step() { echo "[guest] $*"; }
fail() {
  echo "RESULT FAIL $*"
  exit 1
}

# fsdax namespace by bus (pmemN names move between boots and module sets).
case $layout in
  stock) bus=e820 ;;
  nfit_test) bus=nfit_test.0 ;;
  *) fail "unknown layout $layout" ;;
esac
read -r ns dev region < <(ndctl list -b "$bus" -N -R | python3 -c '
import json, sys
d = json.load(sys.stdin)
regions = d.get("regions", [d]) if isinstance(d, dict) else d
for r in regions:
    for n in r.get("namespaces", []):
        if n.get("mode") == "fsdax" and n.get("blockdev"):
            print(n["dev"], n["blockdev"], r["dev"]); sys.exit(0)
sys.exit(1)
') || fail "no fsdax namespace on bus $bus"
step "$bus: $ns /dev/$dev ($region), $(($(blockdev --getsize64 "/dev/$dev") >> 20)) MiB"

umount "$mnt" 2>/dev/null || true
mkdir -p "$mnt"
# mkfs.xfs refuses devices under 300 MB outside xfstests; these variables lift that for small ones.
TEST_DIR=/tmp TEST_DEV="/dev/$dev" QA_CHECK_FS=xfs mkfs.xfs -q -f "/dev/$dev"
mount -o dax "/dev/$dev" "$mnt"
grep -q "^/dev/$dev $mnt xfs .*dax" /proc/mounts || fail "XFS not mounted with dax"
f="$mnt/victim"
xfs_io -f -c 'pwrite -q -S 0xab 0 65536' -c fsync "$f"
# FIEMAP: first extent's physical start, in 512-byte sectors from the start of /dev/$dev.
phys=$(xfs_io -r -c 'fiemap -v' "$f" | awk '$1 == "0:" { split($3, a, "[.:]"); print a[1]; exit }')
[[ $phys =~ ^[0-9]+$ ]] || fail "no FIEMAP extent for $f"
page_off=4096
sector=$((phys + page_off / 512))
step "file $f page at offset $page_off -> /dev/$dev sector $sector (8 sectors)"

bb="/sys/block/$dev/badblocks"
rbb="/sys/bus/nd/devices/$region/badblocks"
# Frozen while injecting: on e820 pmem writeback over an injected sector would silently clear it.
fsfreeze -f "$mnt"
if [[ $layout == stock ]]; then
  echo "$sector 8" >"$bb"
else
  # On fsdax, inject-error's -B counts 512-byte blocks from the start of the data area, the same
  # origin as /sys/block/pmemX/badblocks (the region list is region-relative).
  ndctl inject-error -B "$sector" -n 8 "$ns" >/dev/null
  ndctl start-scrub nfit_test.0 >/dev/null 2>&1 || true
  ndctl wait-scrub nfit_test.0 >/dev/null
fi
fsfreeze -u "$mnt"

# 1. reading the poisoned page fails with EIO
sync
echo 3 >/proc/sys/vm/drop_caches
if out=$(xfs_io -r -c "pread -q $page_off 4096" "$f" 2>&1) && [[ $out != *"Input/output error"* ]]; then
  fail "read of the poisoned page succeeded: $out"
fi
[[ $out == *"Input/output error"* ]] || fail "read failed but not with EIO: $out"
step "read of the poisoned page: EIO"
xfs_io -r -c "pread -q 0 4096" "$f" 2>&1 | grep -q error && fail "read of a good page failed"

# 2. the range is listed
grep -q "^$sector 8$" "$bb" || fail "$bb lacks '$sector 8': $(tr '\n' ';' <"$bb")"
listed="$bb"
if [[ $layout == nfit_test ]]; then
  [[ -n $(cat "$rbb") ]] || fail "region list $rbb is empty"
  ndctl list -M -n "$ns" | grep -q '"badblocks"' || fail "ndctl list -M shows no badblocks for $ns"
  listed+=", $rbb ($(head -n1 "$rbb")), ndctl list -M"
fi
step "listed in $listed"

# 3. clear with a page-aligned whole-page write of good data
if [[ $layout == nfit_test ]]; then
  # nfit_test's DAX write over poison returns EIO (no recovery path there): write without DAX.
  umount "$mnt"
  mount "/dev/$dev" "$mnt"
fi
xfs_io -c "pwrite -q -S 0xcd $page_off 4096" -c fsync "$f" || fail "page-aligned rewrite failed"
sync
[[ -z $(cat "$bb") ]] || fail "$bb still lists: $(tr '\n' ';' <"$bb")"
if [[ $layout == nfit_test ]]; then
  [[ -z $(cat "$rbb") ]] || fail "$rbb still lists: $(tr '\n' ';' <"$rbb")"
  if ndctl list -M -n "$ns" | grep -q '"badblocks"'; then fail "ndctl list -M still shows badblocks"; fi
fi
echo 3 >/proc/sys/vm/drop_caches
xfs_io -r -c "pread -q -v $page_off 16" "$f" | grep -q 'cd cd' || fail "rewritten page does not read back"
step "cleared: lists empty, page reads back"
umount "$mnt"
echo "RESULT PASS (inject->EIO->listed->cleared)"
