# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash safety: SIGKILL pmem_clear at every point between record and action, rerun, converge
with nothing lost and nothing done twice; and SIGKILL a ledger writer at random moments."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import random
import signal
import time

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import clearing as C
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

from .fixtures_clear import listed, make_damaged, read, run_module


def events(ledger_path):
    return [h["event"] for h in L.load(ledger_path)["entries"][0]["history"]]


@pytest.mark.parametrize("point", C.HOOK_POINTS)
def test_sigkill_then_rerun_converges(clearfs, point):
    d = make_damaged(clearfs, clearfs.workdir)
    env = dict(d.env, kill_at=point)
    res, p = run_module("pmem_clear", d.args, clearfs.workdir, env)
    assert p.returncode == -signal.SIGKILL and res is None, (p.returncode, p.stdout, p.stderr)
    # the record is intact and already says what was about to happen
    hist = events(d.ledger)
    assert "clear_planned" in hist
    if point in ("after_clear_planned", "before_write"):
        assert read(d.path) != d.good and listed(d)  # nothing written yet
    else:
        assert read(d.path) == d.good  # written before the kill
    mtime = os.stat(d.path).st_mtime_ns
    # rerun with fresh facts (what the list says now)
    fresh = dict(d.args, results=[], bad_ranges=[])
    res, p = run_module("pmem_clear", fresh, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(d.path) == d.good and listed(d) == []
    entry = L.load(d.ledger)["entries"][0]
    assert entry["state"] == "closed" and entry["closure"]["how"] == "restored"
    hist = events(d.ledger)
    assert hist.count("cleared") == 1 and hist.count("restored") == 1
    if point not in ("after_clear_planned", "before_write"):
        # the killed run had written: the rerun only recorded, it did not write again
        assert os.stat(d.path).st_mtime_ns == mtime
        assert hist.count("clear_planned") == 1
    if point in ("after_write", "after_verify"):
        cleared = [h for h in entry["history"] if h["event"] == "cleared"][0]
        assert cleared["details"]["completed_by_previous_run"] is True
    if point == "after_result":
        assert res["changed"] is False
    # and a third run changes nothing
    res, _proc = run_module("pmem_clear", fresh, clearfs.workdir, d.env)
    assert res["changed"] is False and not res.get("failed")


def _writer(path, n):
    led = L.empty_ledger("h")
    for i in range(n):
        led = L.merge_detections(led, [{"range_id": "r%d" % i, "owners": [
            {"kind": "free", "device": "/dev/x"}]}], at="t")[0]
        L.save(path, led)


def test_sigkill_during_saves_leaves_old_or_new(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("host tests run as root")
    path = str(tmp_path / "ledger.json")
    rnd = random.Random(5)
    for _attempt in range(25):
        pid = os.fork()
        if pid == 0:  # child: save forever-ish
            try:
                _writer(path, 10 ** 6)
            finally:
                os._exit(0)
        time.sleep(rnd.uniform(0.005, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if os.path.exists(path):
            data = L.load(path)  # parses and validates: never a torn file
            n = len(data["entries"])
            assert [e["range"]["id"] for e in data["entries"]] == ["r%d" % i for i in range(n)]
        os.unlink(path) if os.path.exists(path) else None
    # temp files of killed writers may stay behind; they are never read as the ledger
    leftovers = [f for f in os.listdir(str(tmp_path)) if f.endswith(".tmp")]
    assert all(f.startswith(".ledger.") for f in leftovers)
