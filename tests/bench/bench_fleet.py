# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet bench: the remediate converge of a simulated fleet against `ansible -m ping`, same
inventory, same forks, same run; the report's generation time and memory; and the rollout
(canary, serial batches, max_fail_percentage) at that size.

The fleet (tests/awx/fleet.py): BENCH_FLEET_SIZES inventory hosts (default "200 1000"), local
connections, each with its own ledger, running the real modules: 85 % clean, 10 % with an open
entry needing a decision, 5 % failed (no Python). Hosts with ranges in their kernel lists are not
simulated (this machine has no pmem). The controller does per host what it does for a real host;
the module runs themselves also land on this machine, so the converge figures are an upper bound
of the controller's cost. Timings are printed, never asserted; the rollout's behaviour is asserted.
BENCH_FORKS (default 10). First, BENCH_FLEET_REPORT_SIZES (default "1000"): the report playbook
alone on canned results at that size (the controller's own path: set_fact + one fleet_report).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "awx"))
import fleet  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.pmem.poison.plugins.plugin_utils import report  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_FLEET_SIZES", "200 1000").split()]
REPORT_SIZES = [int(s) for s in os.environ.get("BENCH_FLEET_REPORT_SIZES", "1000").split()]
FORKS = int(os.environ.get("BENCH_FORKS", "10"))
# BENCH_FLEET_ONE_BATCH=0 skips the one-batch converge (the largest single cost at 1000 hosts)
ONE_BATCH = os.environ.get("BENCH_FLEET_ONE_BATCH", "1") != "0"
# BENCH_FLEET_FULL=0 runs only the rollout checks (max_fail_percentage 0 and the failed canary: a
# few hundred hosts run at 1000), not ping, the full converges and the in-process report
FULL = os.environ.get("BENCH_FLEET_FULL", "1") != "0"

# Records each host's task outcomes and the report action's batches (one JSON line per event).
CALLBACK = '''
import json, os, time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "pmem_fleet_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._out = open(os.environ["PMEM_FLEET_EVENTS"], "a")
        self._started = {}

    def _write(self, **kw):
        self._out.write(json.dumps(kw) + "\\n")
        self._out.flush()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.monotonic()

    def _host(self, result, status):
        task = result._task
        extra = {}
        if task.action == "pmem.poison.fleet_report":
            extra["seconds"] = time.monotonic() - self._started.get(task._uuid, time.monotonic())
            extra["totals"] = result._result.get("report", {}).get("totals")
        self._write(host=result._host.get_name(), action=task.action, status=status,
                    module="invocation" in result._result, **extra)

    def v2_runner_on_ok(self, result):
        self._host(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._host(result, "unreachable")
'''


def run(cmd, env, events=None):
    env = dict(env)
    if events:
        env["PMEM_FLEET_EVENTS"] = events
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                          check=False)
    return time.monotonic() - t0, proc


def rollout(names, kinds, first, rest_pct, max_fail):
    """Ansible's documented rollout: a batch of ``first`` hosts, then batches of ``rest_pct`` % of the
    play's hosts (rounded down, at least 1); the play stops after the first batch in which more than
    ``max_fail`` % of the batch's hosts failed. Returns (batches run, hosts that ran)."""
    n = len(names)
    size = max(1, int(rest_pct / 100.0 * n))
    start, batches = 0, 0
    while start < n:
        end = min(n, start + (first if batches == 0 else size))
        batches += 1
        failed = len([h for h in names[start:end] if kinds[h] == "failed"])
        stop = failed * 100.0 / (end - start) > max_fail
        start = end
        if stop:
            break
    return batches, names[:start]


def read_events(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def converge(inv, env, report_dir, events, **extra):
    cmd = ["ansible-playbook", "-i", inv, "-f", str(FORKS), "pmem.poison.remediate",
           "-e", "pmem_poison_report_dir=%s" % report_dir]
    for key, value in extra.items():
        cmd += ["-e", json.dumps({key: value})]
    return run(cmd, env, events)


def load_report(report_dir):
    with open(os.path.join(report_dir, "pmem-poison-report.json")) as handle:
        return json.load(handle)


def bench_size(n, workdir, env):
    root = os.path.join(workdir, "fleet-%d" % n)
    counts = {"clean": n - n // 10 - n // 20, "decision": n // 10, "failed": n // 20}
    kinds = fleet.make_fleet(root, counts)
    inv = os.path.join(root, "inventory.yml")
    names = list(kinds)  # inventory order
    sys.stdout.flush()
    print("fleet of %d hosts (%s), forks %d" % (n, ", ".join("%d %s" % (c, k) for k, c in counts.items()), FORKS))

    t_ping = t_conv = None
    if FULL:
        # 1. ping, and the converge as the playbook rolls out (canary 1, then 25 %) with
        #    max_fail_percentage 10: 5 % failed hosts spread over the batches never stop it
        t_ping, proc = run(["ansible", "all", "-i", inv, "-f", str(FORKS), "-m", "ansible.builtin.ping"], env)
        ping_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        assert proc.stdout.count("SUCCESS") == n - counts["failed"], proc.stdout[-2000:]
        events = os.path.join(root, "converge.jsonl")
        report_dir = os.path.join(root, "report-full")
        t_conv, proc = converge(inv, env, report_dir, events, pmem_poison_max_fail_percentage=10)
        conv_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        ev = read_events(events)
        full = load_report(report_dir)
        batches, ran = rollout(names, kinds, 1, 25, 10)
        assert len(ran) == n, "the bench's fleet must not trip max_fail_percentage 10"
        assert proc.returncode != 0  # the failed hosts fail the run, after every batch ran
        assert full["totals"]["hosts"] == n and full["totals"]["not_run"] == 0, full["totals"]
        assert full["totals"]["clean"] == counts["clean"]
        assert full["totals"]["failed"] == counts["failed"]
        assert full["totals"]["needs_decision"] == counts["decision"]
        per_kind = {}
        for e in ev:
            if e["module"] and e["status"] == "ok":
                per_kind.setdefault(kinds[e["host"]], []).append(e["action"])
        assert set(per_kind["clean"]) == {"pmem.poison.pmem_clear"} and len(per_kind["clean"]) == counts["clean"]
        reports = [e for e in ev if e["action"] == "pmem.poison.fleet_report"]
        assert len(reports) == batches, (len(reports), batches)
        print("  ansible -m ping                      %7.1f s" % t_ping)
        print("  remediate converge, %d batches        %7.1f s   ratio %.2f   (canary 1, then 25 %%; "
              "max_fail_percentage 10: every batch ran)" % (batches, t_conv, t_conv / t_ping))
        # the same converge in one batch: the role's own cost, without the rollout's pauses between batches
        if ONE_BATCH:
            t_one, proc = converge(inv, env, os.path.join(root, "report-one"), os.path.join(root, "one.jsonl"),
                                   pmem_poison_serial="100%", pmem_poison_max_fail_percentage=10)
            one = load_report(os.path.join(root, "report-one"))
            assert one["totals"]["not_run"] == 0 and one["totals"]["clean"] == counts["clean"]
            print("  remediate converge, one batch         %7.1f s   ratio %.2f" % (t_one, t_one / t_ping))
        print("  module runs on a clean host: 1 (pmem_clear with scan); controller peak RSS (largest process): "
              "ping %d MiB, converge %d MiB" % (ping_rss // 1024, conv_rss // 1024))
        print("  fleet_report task (in the playbook, %d hosts): first batch %.2f s, last batch %.2f s"
              % (n, reports[0]["seconds"], reports[-1]["seconds"]))

        # 2. the report alone, in process: aggregate + write the three files
        summaries = dict((h["host"], h) for h in full["hosts"])
        tracemalloc.start()
        t0 = time.monotonic()
        agg = report.fleet_summary(summaries, generated_at="bench")
        files = report.write_report(agg, os.path.join(root, "report-inproc"), run_id="bench")
        t_report = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sizes = dict((os.path.basename(f).rsplit(".", 1)[-1], os.path.getsize(f)) for f in files[:3])
        print("  report generation in process: %.3f s, peak traced memory %.1f MiB; files: %s"
              % (t_report, peak / 2.0 ** 20, ", ".join("%s %d KiB" % (k, v // 1024) for k, v in sorted(sizes.items()))))

    # 3. max_fail_percentage 0 (the playbook's default): the first batch with a failure is the last
    batches, ran = rollout(names, kinds, 1, 25, 0)
    events = os.path.join(root, "stop.jsonl")
    report_dir = os.path.join(root, "report-stop")
    t_stop, proc = converge(inv, env, report_dir, events)
    stopped = load_report(report_dir)
    assert proc.returncode != 0
    assert sorted(h["host"] for h in stopped["hosts"] if h["status"] != "not_run") == sorted(ran)
    assert len([e for e in read_events(events) if e["action"] == "pmem.poison.fleet_report"]) == batches
    assert set(stopped["hosts_not_run"]) == set(names[len(ran):])
    print("  max_fail_percentage 0: stopped after batch %d: %d hosts ran, %d reported not_run, %.1f s"
          % (batches, len(ran), n - len(ran), t_stop))

    # 4. the canary: a failed first host stops the rollout before any other host is touched
    first_failed = [h for h in names if kinds[h] == "failed"][0]
    canary_inv = os.path.join(root, "canary.yml")
    with open(inv) as handle:
        data = json.load(handle)
    hosts = data["all"]["hosts"]
    data["all"]["hosts"] = dict([(first_failed, hosts[first_failed])] + [(h, v) for h, v in hosts.items() if h != first_failed])
    with open(canary_inv, "w") as handle:
        json.dump(data, handle)
    events = os.path.join(root, "canary.jsonl")
    report_dir = os.path.join(root, "report-canary")
    t_canary, proc = converge(canary_inv, env, report_dir, events)
    canary = load_report(report_dir)
    touched = set(e["host"] for e in read_events(events) if e["module"] or e["status"] == "failed")
    assert proc.returncode != 0 and canary["hosts_failed"] == [first_failed]
    assert canary["totals"]["not_run"] == n - 1 and touched == {first_failed}, touched
    print("  canary failed: 1 host ran, %d reported not_run, %.1f s" % (n - 1, t_canary))
    return t_ping, t_conv


def bench_report_playbook(n, workdir, env):
    """The controller-side path alone at fleet size: playbooks/report.yml over n hosts whose module
    results are canned (pmem_poison_report_fixture: no module runs), so what is timed is the
    per-host set_fact and the one fleet_report action, exactly as the playbook runs them."""
    root = os.path.join(workdir, "report-%d" % n)
    os.makedirs(root)
    hosts = {}
    for i in range(n):
        facts = {"bad_ranges": [], "open_entries": []}
        if i % 10 == 3:
            facts["open_entries"] = [{"id": "region0@0x10000+0x1000|/dev/pmem0|ino=%d|off=0" % (100 + i),
                                      "state": "open", "owner": {"kind": "file", "length": 4096,
                                                                 "paths": ["/mnt/pmem0/f%d" % i]}}]
        hosts["node%04d" % i] = {"pmem_poison_report_fixture": {"facts": facts}}
    inv = os.path.join(root, "inventory.yml")
    with open(inv, "w") as handle:
        json.dump({"all": {"vars": {"ansible_connection": "local", "ansible_become": False,
                                    "ansible_python_interpreter": sys.executable}, "hosts": hosts}}, handle)
    events = os.path.join(root, "events.jsonl")
    t, proc = run(["ansible-playbook", "-i", inv, "-f", str(FORKS), "pmem.poison.report",
                   "-e", "pmem_poison_report_dir=%s" % os.path.join(root, "out")], env, events)
    assert proc.returncode == 0, proc.stdout[-3000:]
    ev = read_events(events)
    assert not [e for e in ev if e["module"]], "the report playbook on canned results ran a module"
    reports = [e for e in ev if e["action"] == "pmem.poison.fleet_report"]
    assert len(reports) == 1 and reports[0]["totals"]["hosts"] == n
    assert reports[0]["totals"]["needs_decision"] == len([i for i in range(n) if i % 10 == 3])
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print("report playbook on %d hosts with canned results (no module runs): %.1f s in all, fleet_report "
          "task %.2f s, controller peak RSS %d MiB" % (n, t, reports[0]["seconds"], rss))


def main():
    workdir = tempfile.mkdtemp(prefix="pmem-bench-fleet.")
    cbdir = os.path.join(workdir, "callback_plugins")
    os.makedirs(cbdir)
    with open(os.path.join(cbdir, "pmem_fleet_events.py"), "w") as handle:
        handle.write(CALLBACK)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_CALLBACK_PLUGINS=cbdir,
               ANSIBLE_CALLBACKS_ENABLED="pmem_fleet_events", ANSIBLE_HOST_KEY_CHECKING="False")
    try:
        for n in REPORT_SIZES:
            bench_report_playbook(n, workdir, env)
        for n in SIZES:
            bench_size(n, workdir, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
