#!/usr/bin/env bash
# Benchmark: converge time of the remediate playbook on a CLEAN (or a POISONED) host divided by
# `ansible -m ping` time, both measured in the same run against the same lab guest (issues 6, 14).
# Asserts nothing.
#
# usage: tests/bench/bench_converge.sh [LAB_NAME]
#   LAB_NAME      a running lab instance (lab/up.sh FLAVOUR NAME) with no known poison; without it a
#                 fresh stock instance "bench-conv-<pid>" is started from the snapshot and stopped on exit.
#   BENCH_RUNS=N  repetitions (default 3), ping and converge interleaved; medians are printed.
#   BENCH_POISONED=1  lay out molecule/default's demo first (files on XFS and ext4, five poisoned
#                 pages): after the warm-up run (which records and restores what it can) every run is
#                 a host with open entries and listed poison, the role's most expensive steady state.
#   BENCH_BYTECODE_AB=1  also time the converge with the guest's bytecode cache unusable (its
#                 directory made group/other-writable before that run, so the finder refuses it and
#                 every module run compiles, as before the cache; restored after), interleaved.
#   BENCH_BASELINE_REF=<git ref>  also time the converge with the collection as it was at that
#                 commit (git archive into a temporary directory), interleaved in the same run.
# Converge = `ansible-playbook pmem.poison.remediate` as an operator runs it (report written to a
# temporary directory on the controller). Also printed: the module invocations the converge made on
# the host (every host, clean or poisoned, must cost exactly one: pmem_clear with scan).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=/dev/null
source scripts/env.sh
runs=${BENCH_RUNS:-3}
name=${1:-}
tmp=$(mktemp -d /tmp/pmem-bench-converge.XXXXXX)
started=
cleanup() {
  if [[ -n $started ]]; then lab/down.sh "$name" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
if [[ -z $name ]]; then
  name=bench-conv-$$
  started=1
  lab/up.sh stock "$name" >/dev/null
fi
inv=lab/.run/$name/inventory.yml
[[ -f $inv ]] || {
  echo "no inventory for lab instance $name ($inv)" >&2
  exit 1
}
export ANSIBLE_HOST_KEY_CHECKING=False
if [[ -n ${BENCH_POISONED:-} ]]; then
  # the layout script runs after the shared layout library (as molecule/default/prepare.yml runs it)
  cat molecule/shared/files/layout_lib.sh molecule/default/files/demo_layout.sh |
    lab/ssh.sh "$name" bash -s >"$tmp/layout.json"
fi
baseline=
if [[ -n ${BENCH_BASELINE_REF:-} ]]; then
  baseline=$tmp/baseline/ansible_collections/pmem/poison
  mkdir -p "$baseline"
  git archive "$BENCH_BASELINE_REF" | tar -x -C "$baseline"
  baseline=$tmp/baseline
fi
export BENCH_BASELINE_COLLECTIONS=$baseline

python3 - "$inv" "$runs" "$tmp" "$name" <<'PY'
import json, os, statistics, subprocess, sys, time
inv, runs, tmp, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal")
poisoned = bool(os.environ.get("BENCH_POISONED"))
converge = ["ansible-playbook", "-i", inv, "pmem.poison.remediate",
            "-e", "pmem_poison_report_dir=%s/report" % tmp]
if poisoned:  # the demo's known-good copy, as molecule/default gives it
    converge += ["-e", '{"remediate_restore_sources": {"/mnt/pmem-xfs/db/*": "/srv/backup/db"}}']
cmds = {
    "ping": ["ansible", "all", "-i", inv, "-m", "ansible.builtin.ping"],
    "converge": converge,
}
envs = {"ping": env, "converge": env}
if os.environ.get("BENCH_BASELINE_COLLECTIONS"):
    # Two collection versions install two watcher versions: interleaved, each converge would
    # reinstall its own (one more module run per converge, both sides): neither side installs
    # it here, so both time the steady state of a host whose watcher is current.
    converge += ["-e", "remediate_watcher=false"]
    cmds["converge"] = converge
    cmds["baseline"] = converge
    envs["baseline"] = dict(env, ANSIBLE_COLLECTIONS_PATH=os.environ["BENCH_BASELINE_COLLECTIONS"])
# shell commands run on the guest (untimed) around one kind of run
before, after = {}, {}
if os.environ.get("BENCH_BYTECODE_AB"):
    cmds["compiling"] = converge
    envs["compiling"] = env
    cache = "/var/cache/pmem-poison/bytecode"
    before["compiling"] = "mkdir -p %s && chmod 0777 %s" % (cache, cache)
    after["compiling"] = "chmod 0700 %s" % cache


def on_guest(command):
    subprocess.run(["lab/ssh.sh", name, command], stdin=subprocess.DEVNULL, check=True,
                   stdout=subprocess.DEVNULL)


times = {k: [] for k in cmds}
for i in range(runs + 1):  # run 0 warms up SSH, caches and the guest's page cache; not counted
    for key, cmd in cmds.items():
        if key in before:
            on_guest(before[key])
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, env=envs[key])
        dt = time.monotonic() - t0
        if key in after:
            on_guest(after[key])
        if proc.returncode != 0:
            sys.exit("%s failed (rc %d):\n%s" % (key, proc.returncode, proc.stdout[-3000:]))
        if i:
            times[key].append(dt)

# one more converge with a small callback that lists the modules run on the host (not skipped)
cbdir = os.path.join(tmp, "callback_plugins")
os.makedirs(cbdir, exist_ok=True)
with open(os.path.join(cbdir, "pmem_count_modules.py"), "w") as f:
    f.write("""
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "pmem_count_modules"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result):
        action = result._task.action or ""
        with open(%r, "a") as out:
            # a module ran on the host: its result carries the invocation (fleet_report is an
            # action that runs no module and connects nowhere)
            if "invocation" in result._result and not result._task.delegate_to:
                out.write("module " + action + "\\n")
            if result._result.get("changed"):
                out.write("changed " + action + "\\n")
""" % os.path.join(tmp, "modules.txt"))
proc = subprocess.run(cmds["converge"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      universal_newlines=True,
                      env=dict(env, ANSIBLE_CALLBACK_PLUGINS=cbdir,
                               ANSIBLE_CALLBACKS_ENABLED="pmem_count_modules"))
if proc.returncode != 0:
    sys.exit("converge failed:\n" + proc.stdout[-3000:])
try:
    lines = [line.split() for line in open(os.path.join(tmp, "modules.txt"))]
except IOError:
    lines = []
modules = [a for k, a in lines if k == "module"]
changed = len([a for k, a in lines if k == "changed"])
host = os.path.basename(os.path.dirname(inv))

ping = statistics.median(times["ping"])
conv = statistics.median(times["converge"])
print("lab instance %s (%s host), %d runs each (after one warm-up), medians"
      % (host, "poisoned" if poisoned else "clean", runs))
print("  ansible -m ping                      %6.2f s   (%s)" % (ping, " ".join("%.2f" % t for t in times["ping"])))
print("  ansible-playbook pmem.poison.remediate %4.2f s   (%s)" % (conv, " ".join("%.2f" % t for t in times["converge"])))
print("  ratio converge / ping                %6.2f" % (conv / ping))
if "baseline" in times:
    base = statistics.median(times["baseline"])
    print("  the same converge at %-15s %6.2f s   (%s)" % (
        os.environ.get("BENCH_BASELINE_REF"), base, " ".join("%.2f" % t for t in times["baseline"])))
    print("  ratio baseline converge / ping       %6.2f" % (base / ping))
if "compiling" in times:
    comp = statistics.median(times["compiling"])
    print("  the same converge, bytecode cache unusable %5.2f s   (%s)" % (
        comp, " ".join("%.2f" % t for t in times["compiling"])))
    print("  ratio compiling converge / ping      %6.2f" % (comp / ping))
print("  module invocations on the %s host: %d (%s); changed=%s" % (
    "poisoned" if poisoned else "clean", len(modules), ", ".join(modules) or "none", changed))
PY
