#!/usr/bin/env bash
# make demo: the remediate story on the emulated-pmem lab, end to end.
#   1. boot a stock lab instance from its snapshot (lab/up.sh)
#   2. lay out XFS (reflink) and ext4, both -o dax, write files, keep a known-good copy of one, and
#      poison a page under five places (molecule/default/files/demo_layout.sh)
#   3. run the pmem.poison.remediate playbook with one restore source
#   4. print the Markdown report, then check the story: the restored file is byte-identical to its
#      copy, the others are marked and listed as needing a decision, the free range as needing an
#      offline window
# The instance is taken down on exit, whatever happens. Exit status 0 only when the story holds.
# Environment: DEMO_NAME (instance name, default demo-<pid>), DEMO_KEEP=1 (leave it running),
# DEMO_OUT (directory for the report and logs, default a temporary directory).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=/dev/null
source "$REPO/scripts/env.sh"

NAME=${DEMO_NAME:-demo-$$}
OUT=${DEMO_OUT:-$(mktemp -d /tmp/pmem-poison-demo.XXXXXX)}
mkdir -p "$OUT"
T0=$SECONDS
step() { printf '==> [%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail=0
check() { # DESCRIPTION COMMAND...: run a check, print ok/FAIL, remember failures
  local what=$1
  shift
  if "$@" >>"$OUT/checks.log" 2>&1; then
    printf '    ok    %s\n' "$what"
  else
    printf '    FAIL  %s\n' "$what"
    fail=1
  fi
}

cleanup() {
  local rc=$?
  if [[ ${DEMO_KEEP:-0} == 1 ]]; then
    step "leaving instance $NAME running (lab/down.sh $NAME)"
  else
    step "taking instance $NAME down"
    "$REPO/lab/down.sh" "$NAME" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "booting stock lab instance $NAME from its snapshot"
env_file=$("$REPO/lab/up.sh" stock "$NAME" 2>"$OUT/lab-up.log" | tail -n1) || {
  cat "$OUT/lab-up.log" >&2
  exit 1
}
inventory="$(dirname "$env_file")/inventory.yml"
guest() { "$REPO/lab/ssh.sh" "$NAME" "$@"; }

step "laying out XFS (reflink, e820 pmem) and ext4 (QEMU NVDIMM), both -o dax; writing files; injecting poison"
cat "$REPO/molecule/shared/files/layout_lib.sh" "$REPO/molecule/default/files/demo_layout.sh" |
  guest bash -s >"$OUT/layout.json" 2>"$OUT/layout.log" || {
  cat "$OUT/layout.log" >&2
  exit 1
}
python3 - "$OUT/layout.json" <<'EOS'
import json, sys
d = json.load(open(sys.argv[1]))
for what, p in sorted(d["poison"].items()):
    print("    poisoned %-40s /dev/%s byte %d (+%d)" % (what if what != "free" else "(free space on ext4)",
                                                    p["device"], p["offset"], p["length"]))
EOS

step "running: ansible-playbook pmem.poison.remediate (restore source for /mnt/pmem-xfs/db/*)"
cat >"$OUT/policy.yml" <<'EOS'
remediate_restore_sources:
  /mnt/pmem-xfs/db/*: /srv/backup/db
EOS
t_play=$SECONDS
if ! ANSIBLE_HOST_KEY_CHECKING=false ansible-playbook -i "$inventory" pmem.poison.remediate \
  -e @"$OUT/policy.yml" -e pmem_poison_report_dir="$OUT/report" >"$OUT/remediate.log" 2>&1; then
  tail -n 40 "$OUT/remediate.log"
  step "the remediate playbook failed (log: $OUT/remediate.log)"
  exit 1
fi
step "converged in $((SECONDS - t_play))s: $(grep -E '^[^ ]+ +: ok=' "$OUT/remediate.log" | tr -s ' ')"

step "the report ($OUT/report/pmem-poison-report.md)"
echo
cat "$OUT/report/pmem-poison-report.md"
echo

step "checking the story on the guest and in the report"
guest 'sha256sum /mnt/pmem-xfs/db/table.dat /srv/backup/db/table.dat' >"$OUT/sha256.txt"
check "restored /mnt/pmem-xfs/db/table.dat is byte-identical to /srv/backup/db/table.dat" \
  test "$(awk 'NR == 1 { print $1 }' "$OUT/sha256.txt")" = "$(awk 'NR == 2 { print $1 }' "$OUT/sha256.txt")"
p=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["poison"]["/mnt/pmem-xfs/db/table.dat"]; print(d["device"], d["sector"])' "$OUT/layout.json")
check "it carries no lost-ranges marker any more (good data again)" \
  guest "! getfattr --absolute-names -n user.pmem_poison.lost_ranges /mnt/pmem-xfs/db/table.dat"
check "its poison (sector ${p#* } of ${p% *}) is no longer listed" guest "! grep -q '^${p#* } ' /sys/block/${p% *}/badblocks"
for f in /mnt/pmem-xfs/logs/app.log /mnt/pmem-xfs/vm/base.img /mnt/pmem-xfs/vm/clone.img /mnt/pmem-ext4/scratch/results.bin; do
  check "$f carries the marker user.pmem_poison.lost_ranges" \
    guest "getfattr --absolute-names --only-values -n user.pmem_poison.lost_ranges $f | grep -q ino="
  check "$f still reads EIO (data lost, nothing papered over)" guest "! cat $f >/dev/null"
done
check "the ledger has the restored entry closed and five open" guest python3 - <<'EOS'
import json
d = json.load(open("/var/lib/pmem-poison/ledger.json"))
closed = [e for e in d["entries"] if e["state"] == "closed"]
opened = [e for e in d["entries"] if e["state"] == "open"]
assert [e["closure"]["how"] for e in closed] == ["restored"], closed
assert closed[0]["owner"]["paths"] == ["/mnt/pmem-xfs/db/table.dat"]
assert len(opened) == 5, [e["id"] for e in opened]
EOS
report_check() { # PYTHON-EXPRESSION over the report JSON as r
  python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$OUT/report/pmem-poison-report.json"
}
check "report: table.dat cleared (rewrite, verified)" \
  report_check "[c['path'] for h in r['hosts'] for c in h['cleared']] == ['/mnt/pmem-xfs/db/table.dat']"
check "report: four quarantined files need a decision (reflinked pair included)" \
  report_check "sorted(p for e in r['decisions'] if e['quarantined'] for p in e['paths']) == ['/mnt/pmem-ext4/scratch/results.bin', '/mnt/pmem-xfs/logs/app.log', '/mnt/pmem-xfs/vm/base.img', '/mnt/pmem-xfs/vm/clone.img']"
check "report: the free-space range needs an offline window" \
  report_check "[e['kind'] for e in r['offline_window']] == ['free']"
check "report: lost bytes 16384, nothing failed" \
  report_check "r['totals']['lost_bytes'] == 16384 and r['totals']['failed'] == 0"

if ((fail)); then
  step "the story does NOT hold (details: $OUT/checks.log, $OUT/remediate.log)"
  exit 1
fi
step "the story holds: 1 file restored byte-identical, 4 quarantined awaiting a decision, 1 free range awaiting an offline window ($((SECONDS - T0))s; files in $OUT)"
