# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""device_write on a real (loop) block device: refused while mounted, clears whole sectors of a
free-space range when unmounted, verified against the (fake) list."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

from ansible_collections.pmem.poison.tests.support.pmem_fakes import pmem_topology
from .fixtures_clear import run_module


def _setup(fs):
    dev = os.path.basename(fs.dev)
    off = fs.size() - 1024 * 1024  # near the end: free space on a fresh filesystem
    bb = os.path.join(fs.workdir, "bb.json")
    with open(bb, "w") as f:
        json.dump({"devices": {dev: [[off // 512 + 1, 2]]},
                   "topology": pmem_topology(dev, fs.size())}, f)
    fd = os.open(fs.dev, os.O_WRONLY)
    os.pwrite(fd, b"\xff" * 4096, off)
    os.fsync(fd)
    os.close(fd)
    rid = "%s@%#x+0x400" % (dev, off + 512)
    # recorded by physical address (pmem_topology's data area starts at 0x100000000): the guard
    # never writes for a record of names only
    rng = {"id": rid, "blockdev": dev, "blockdev_offset": off + 512, "length": 1024,
           "absolute": 0x100000000 + off + 512, "area": "data", "filesystem": None}
    args = {"ledger_path": os.path.join(fs.workdir, "l", "ledger.json"),
            "method": "device_write", "results": [{"range_id": rid, "owners": [
                {"kind": "free", "range_id": rid, "device": fs.dev}]}],
            "entry_ids": [L.entry_id(rid, {"kind": "free", "device": fs.dev})],
            "policy": {"offline_window_allowed": True},
            "bad_ranges": [rng],
            "capabilities": {"kernel": "6.1", "devices": {dev: {"write_clears": True}}}}
    return off, bb, args


def test_device_write_refused_mounted_then_clears(clearfs):
    off, bb, args = _setup(clearfs)
    env = {"badblocks": bb}
    # mounted: the plan says offline (range given as on a mounted filesystem) ...
    mounted = dict(args, bad_ranges=[dict(args["bad_ranges"][0], filesystem={
        "device": clearfs.dev, "mountpoint": clearfs.mnt, "fstype": clearfs.fstype})])
    res, p = run_module("pmem_clear", mounted, clearfs.workdir, env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert [a["action"] for a in res["plan"]][-1] == "offline_required"
    # ... and even when told it is unmounted, the O_EXCL open refuses while it is mounted
    res, p = run_module("pmem_clear", args, clearfs.workdir, env)
    assert res["failed"] and ("in use" in res["msg"] or "mounted" in res["msg"]), res
    assert listed_sectors(bb)
    clearfs.unmount()
    res, p = run_module("pmem_clear", dict(args, results=[]), clearfs.workdir, env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert listed_sectors(bb) == []
    with open(clearfs.dev, "rb") as f:
        f.seek(off)
        blk = f.read(4096)
    assert blk[:512] == b"\xff" * 512 and blk[512:1536] == b"\0" * 1024 and \
        blk[1536:] == b"\xff" * 2560  # only the listed sectors were written
    entry = L.load(args["ledger_path"])["entries"][0]
    assert entry["state"] == "closed" and entry["closure"]["how"] == "not_file_data_cleared"
    res, _proc = run_module("pmem_clear", dict(args, results=[], bad_ranges=[]), clearfs.workdir, env)
    assert res["changed"] is False


def listed_sectors(bb):
    with open(bb) as f:
        return [x for v in json.load(f)["devices"].values() for x in v]
