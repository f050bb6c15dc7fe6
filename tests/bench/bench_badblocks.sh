#!/usr/bin/env bash
# Benchmark pmem_badblocks next to `ansible -m ping`, in the same run, on a lab guest (issue 3).
#
# usage: tests/bench/bench_badblocks.sh [LAB_NAME]
#   LAB_NAME  a running lab instance (lab/up.sh FLAVOUR NAME); without it a fresh stock instance
#             "bench-bb" is started from the snapshot (a host with no poison) and stopped afterwards.
#   BENCH_RUNS=N  repetitions (default 5); medians are printed.
# Prints, for ping and pmem_badblocks: the wall time of one ad-hoc `ansible` run (controller + SSH +
# module) and the module time on the guest (running the module's AnsiballZ payload with python3 on
# the guest, as Ansible does), plus `python3 -c pass` on the guest and the ratios. Asserts nothing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=/dev/null
source scripts/env.sh
runs=${BENCH_RUNS:-5}
name=${1:-}
if [[ -z $name ]]; then
  name=bench-bb
  lab/up.sh stock "$name" >/dev/null
  trap 'lab/down.sh "$name" >/dev/null 2>&1 || true' EXIT
fi
inv=lab/.run/$name/inventory.yml
[[ -f $inv ]] || { echo "no inventory for lab instance $name ($inv)" >&2; exit 1; }
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_STDOUT_CALLBACK=ansible.builtin.minimal

# 1. the wall time of one ad-hoc run each, interleaved so both see the same guest state
python3 - "$inv" "$runs" <<'PY'
import json, statistics, subprocess, sys, time
inv, runs = sys.argv[1], int(sys.argv[2])
cmds = {
    "ping": ["ansible", "all", "-i", inv, "-m", "ansible.builtin.ping"],
    "pmem_badblocks": ["ansible", "all", "-i", inv, "-m", "pmem.poison.pmem_badblocks"],
}
times = {k: [] for k in cmds}
last = {}
for _ in range(runs):
    for key, cmd in cmds.items():
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        times[key].append(time.monotonic() - t0)
        if proc.returncode != 0:
            sys.exit("%s failed:\n%s%s" % (" ".join(cmd), proc.stdout, proc.stderr))
        last[key] = proc.stdout
out = last["pmem_badblocks"]
result = json.loads(out[out.index("{"):])
facts = result["ansible_facts"]["pmem"]
print("pmem_badblocks gathering time inside the module (result 'elapsed'): %.3f s" % result["elapsed"])
print("guest: clean=%s bad_ranges=%d buses=%d regions=%d namespaces=%d as_root=%s ndctl=%s" % (
    facts["clean"], len(facts["bad_ranges"]), len(facts["buses"]), len(facts["regions"]),
    len(facts["namespaces"]), facts["gathered_as_root"], facts["ndctl"]["used"]))
ping = statistics.median(times["ping"])
bb = statistics.median(times["pmem_badblocks"])
print("ansible ad-hoc wall time, median of %d:" % runs)
print("  ansible -m ping                        %7.3f s" % ping)
print("  ansible -m pmem.poison.pmem_badblocks  %7.3f s   ratio %.2f" % (bb, bb / ping))
PY

# 2. module time on the guest: keep the AnsiballZ payloads (no pipelining) and time them there
ANSIBLE_KEEP_REMOTE_FILES=1 ansible all -i "$inv" -e ansible_ssh_pipelining=false -m ansible.builtin.ping >/dev/null
ANSIBLE_KEEP_REMOTE_FILES=1 ansible all -i "$inv" -e ansible_ssh_pipelining=false -m pmem.poison.pmem_badblocks >/dev/null
lab/ssh.sh "$name" python3 - "$runs" <<'PY'
import glob, os, statistics, subprocess, sys, time
runs = int(sys.argv[1])
def newest(name):
    found = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/ansible-tmp-*/" + name)), key=os.path.getmtime)
    return found[-1]
def timed(argv):
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.monotonic() - t0)
    return statistics.median(out)
base = timed(["python3", "-c", "pass"])
ping = timed(["python3", newest("AnsiballZ_ping.py")])
bb = timed(["python3", newest("AnsiballZ_pmem_badblocks.py")])
print("module time on the guest (python3 + AnsiballZ payload), median of %d:" % runs)
print("  python3 -c pass                        %7.3f s" % base)
print("  ping                                   %7.3f s" % ping)
print("  pmem_badblocks                         %7.3f s   ratio %.2f   (%.3f s more than ping)" % (bb, bb / ping, bb - ping))
for d in glob.glob(os.path.expanduser("~/.ansible/tmp/ansible-tmp-*")):
    subprocess.run(["rm", "-rf", d])
PY
