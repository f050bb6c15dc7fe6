# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.tests.support.module_harness import run_subprocess as run_module


@pytest.fixture
def setup(tmp_path):
    f = tmp_path / "fs" / "f.bin"
    f.parent.mkdir()
    f.write_bytes(b"a" * 8192)
    os.chmod(str(f), 0o644)
    try:
        os.setxattr(str(f), "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs here")
    rid = "pmem9@0x2000+0x1000"
    owner = {"kind": "file", "range_id": rid, "device": "/dev/pmem9", "mountpoint": str(f.parent),
             "inode": os.stat(str(f)).st_ino, "paths": [str(f)], "file_offset": 4096,
             "length": 4096, "repair_offset": 4096, "repair_length": 4096}
    args = {"ledger_path": str(tmp_path / "l" / "ledger.json"),
            "results": [{"range_id": rid, "owners": [owner]}],
            "bad_ranges": [{"id": rid, "blockdev": "pmem9", "length": 4096}]}
    return f, args


def test_present_accept_release(setup, tmp_path):
    f, args = setup
    res, p = run_module("pmem_quarantine", dict(args, containment=["chmod"]), tmp_path,
                        check=True)
    assert res["changed"] and not os.path.exists(args["ledger_path"]), p.stderr
    res, p = run_module("pmem_quarantine", dict(args, containment=["chmod"]), tmp_path, diff=True)
    assert res["changed"] and res["entries"][0]["marked"] == [str(f)], (res, p.stderr)
    assert res["recorded"][0]["change"] == "new" and "quarantined" in res["diff"]["after"]
    assert stat.S_IMODE(os.stat(str(f)).st_mode) == 0
    assert json.loads(os.getxattr(str(f), "user.pmem_poison.lost_ranges"))["ranges"]
    res, _proc = run_module("pmem_quarantine", dict(args, containment=["chmod"]), tmp_path)
    assert res["changed"] is False, res
    eid = L.load(args["ledger_path"])["entries"][0]["id"]
    res, _proc = run_module("pmem_quarantine", {"ledger_path": args["ledger_path"],
                                                "state": "released"}, tmp_path)
    assert res["changed"] is False  # still open
    res, p = run_module("pmem_quarantine", {"ledger_path": args["ledger_path"],
                                            "state": "accepted_lost", "entry_ids": [eid],
                                            "by": "alice", "why": "scratch"}, tmp_path)
    assert res["changed"], p.stderr
    closure = L.load(args["ledger_path"])["entries"][0]["closure"]
    assert closure["how"] == "accepted_lost" and closure["by"] == "alice"
    res, _proc = run_module("pmem_quarantine", {"ledger_path": args["ledger_path"],
                                                "state": "released"}, tmp_path)
    assert res["changed"] and stat.S_IMODE(os.stat(str(f)).st_mode) == 0o644
    m = json.loads(os.getxattr(str(f), "user.pmem_poison.lost_ranges"))
    assert m["ranges"][0]["state"] == "accepted_lost"


def test_accept_requires_by_why(setup, tmp_path):
    _f, args = setup
    res, _proc = run_module("pmem_quarantine", {"ledger_path": args["ledger_path"],
                                                "state": "accepted_lost", "entry_ids": ["x"]},
                            tmp_path)
    assert res["failed"] and "by" in res["msg"]


def test_unknown_entry(setup, tmp_path):
    _f, args = setup
    res, _proc = run_module("pmem_quarantine", {"ledger_path": args["ledger_path"],
                                                "state": "accepted_lost", "entry_ids": ["nope"],
                                                "by": "a", "why": "b"}, tmp_path)
    assert res["failed"] and "no such ledger entries" in res["msg"]
