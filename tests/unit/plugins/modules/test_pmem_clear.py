# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pmem_clear as Ansible runs it: a subprocess fed ANSIBLE_MODULE_ARGS, JSON on stdout."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.tests.support.module_harness import run_subprocess as run_module

E820 = {"kernel": "6.1.0", "devices": {"pmem9": {"write_clears": True}}}
GOOD = os.urandom(12288)


@pytest.fixture
def setup(tmp_path):
    f = tmp_path / "fs" / "f.bin"
    f.parent.mkdir()
    f.write_bytes(GOOD[:4096] + b"\0" * 4096 + GOOD[8192:])
    src = tmp_path / "good.bin"
    src.write_bytes(GOOD)
    bb = tmp_path / "bb.json"
    bb.write_text(json.dumps({"devices": {"pmem9": [[16, 8]]}}))
    rid = "pmem9@0x2000+0x1000"
    owner = {"kind": "file", "range_id": rid, "device": "/dev/pmem9", "mountpoint": str(f.parent),
             "fstype": "xfs", "inode": os.stat(str(f)).st_ino, "paths": [str(f)],
             "file_offset": 4096, "length": 4096, "repair_offset": 4096, "repair_length": 4096}
    rng = {"id": rid, "blockdev": "pmem9", "blockdev_offset": 8192, "length": 4096,
           "filesystem": {"mountpoint": str(f.parent), "fstype": "xfs", "dax": False}}
    args = {"ledger_path": str(tmp_path / "l" / "ledger.json"), "source": str(src),
            "entry_ids": [L.entry_id(rid, owner)],
            "results": [{"range_id": rid, "owners": [owner]}], "bad_ranges": [rng],
            "capabilities": E820}
    return f, args, {"badblocks": str(bb)}


def test_module_rewrite_check_diff_idempotent(setup, tmp_path):
    f, args, env = setup
    res, p = run_module("pmem_clear", args, tmp_path, env, check=True, diff=True)
    assert res and res["changed"] and not res.get("failed"), p.stderr
    assert not os.path.exists(args["ledger_path"])
    assert res["plan"][-1]["action"] == "rewrite"
    res, p = run_module("pmem_clear", args, tmp_path, env, diff=True)
    assert res["changed"] and not res.get("failed"), (res, p.stderr)
    assert f.read_bytes() == GOOD
    assert '"restored"' in res["diff"]["after"] and res["open_entries"] == []
    with open(env["badblocks"]) as fake:
        assert json.load(fake)["devices"]["pmem9"] == []  # the fake list saw the write
    again = dict(args)
    del again["results"], again["bad_ranges"]
    res, p = run_module("pmem_clear", again, tmp_path, env)
    assert res["changed"] is False and not res.get("failed"), res


def test_module_failure_is_json_with_partial_result(setup, tmp_path):
    f, args, env = setup
    args["capabilities"] = {"kernel": "6.1.0", "devices": {"pmem9": {
        "write_clears": False, "description": "pmem9 (QEMU NVDIMM)"}}}
    res, p = run_module("pmem_clear", args, tmp_path, env)
    assert res["failed"] and "QEMU" in res["msg"] and "Next step" in res["msg"]
    assert "Traceback" not in p.stderr
    assert [e["state"] for e in L.load(args["ledger_path"])["entries"]] == ["open"]


def test_module_locked(setup, tmp_path):
    _f, args, env = setup
    store = L.LedgerStore(args["ledger_path"], timeout=1)
    store.acquire()
    try:
        args["lock_timeout"] = 0.2
        res, _p = run_module("pmem_clear", args, tmp_path, env)
        assert res["failed"] and "locked" in res["msg"] and "pid %d" % os.getpid() in res["msg"]
    finally:
        store.release()


def test_module_accepted_by_and_reason(setup, tmp_path):
    """accepted_reason goes into the closure's why; accepted_by alone still works (old use)."""
    f, args, env = setup
    del args["source"]
    args["policy"] = {"accepted_loss": [str(f)]}
    args["accepted_by"] = "jdoe"
    args["accepted_reason"] = "scratch data, regenerated nightly"
    res, p = run_module("pmem_clear", args, tmp_path, env)
    assert res and not res.get("failed"), (res, p.stderr)
    closure = L.load(args["ledger_path"])["entries"][0]["closure"]
    assert closure["how"] == "accepted_lost" and closure["by"] == "jdoe"
    assert closure["why"] == "scratch data, regenerated nightly"
    assert f.read_bytes()[4096:8192] == b"\0" * 4096  # zeros over the accepted loss


def test_module_accepted_loss_without_reason_is_refused(setup, tmp_path):
    """Consent needs a reason: accepted_by alone (the old default why) is refused, nothing done."""
    f, args, env = setup
    del args["source"]
    args["policy"] = {"accepted_loss": [str(f)]}
    args["accepted_by"] = "ops"
    before = f.read_bytes()
    res, p = run_module("pmem_clear", args, tmp_path, env)
    assert res["failed"] and "accepted_reason is required" in res["msg"], (res, p.stderr)
    assert "Next step" in res["msg"] and "Traceback" not in p.stdout + p.stderr
    assert f.read_bytes() == before and not os.path.exists(args["ledger_path"])


def _entries_as_recorded(ledger_path):
    """What a user reads in the ledger, without the times and pids of the run."""
    return [(e["id"], e["state"], sorted(e.get("containment") or {}), e["owner"]["paths"],
             [h["event"] for h in e.get("history") or []])
            for e in L.load(ledger_path)["entries"]]


def test_module_quarantine_folded_in_is_the_two_tasks_in_one(setup, tmp_path):
    """quarantine=true records, marks and contains as pmem_quarantine does, then plans and
    clears: the ledger and the file end up as with the two tasks; check mode writes nothing;
    a second run changes nothing."""
    f, args, env = setup
    del args["source"], args["entry_ids"]
    args["policy"] = {"containment": ["chmod"]}
    try:
        os.setxattr(str(f), "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs here")
    two = tmp_path / "two"
    two.mkdir()
    two_ledger = str(two / "l" / "ledger.json")
    g = two / "f.bin"
    g.write_bytes(f.read_bytes())
    owner2 = dict(args["results"][0]["owners"][0], inode=os.stat(str(g)).st_ino,
                  paths=[str(g)], mountpoint=str(two))
    two_args = dict(args, ledger_path=two_ledger,
                    results=[{"range_id": args["results"][0]["range_id"], "owners": [owner2]}])
    res, p = run_module("pmem_quarantine", {
        "ledger_path": two_ledger, "results": two_args["results"],
        "bad_ranges": args["bad_ranges"], "containment": ["chmod"]}, tmp_path, env)
    assert res and res["changed"], p.stderr
    res, p = run_module("pmem_clear", two_args, tmp_path, env)
    assert res and not res.get("failed"), (res, p.stderr)

    res, p = run_module("pmem_clear", dict(args, quarantine=True), tmp_path, env, check=True)
    assert res and res["changed"] and not res.get("failed"), (res, p.stderr)
    assert res["quarantine"]["changed"] and not os.path.exists(args["ledger_path"])
    assert stat.S_IMODE(os.stat(str(f)).st_mode) != 0
    res, p = run_module("pmem_clear", dict(args, quarantine=True), tmp_path, env, diff=True)
    assert res and res["changed"] and not res.get("failed"), (res, p.stderr)
    assert res["quarantine"]["entries"][0]["marked"] == [str(f)]
    assert res["quarantine"]["recorded"][0]["change"] == "new"
    assert stat.S_IMODE(os.stat(str(f)).st_mode) == 0
    assert json.loads(os.getxattr(str(f), "user.pmem_poison.lost_ranges"))["ranges"]
    one_run = _entries_as_recorded(args["ledger_path"])
    two_runs = _entries_as_recorded(two_ledger)
    assert [e[1:3] + (e[4],) for e in one_run] == [e[1:3] + (e[4],) for e in two_runs]
    assert one_run[0][1] == "open" and one_run[0][2] == ["chmod"]
    res, p = run_module("pmem_clear", dict(args, quarantine=True), tmp_path, env)
    assert res and res["changed"] is False and not res.get("failed"), (res, p.stderr)
