# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On real XFS (reflink) and ext4 loop filesystems: restores of reflinked owners (unshare), one
range spanning two files (verified per owner), two converges at once, and SIGKILL at every
containment write-ahead point."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

from .conftest import extents_of, sh
from .fixtures_clear import HARNESS, listed, make_damaged, read, run_module

PAGE = 4096


def _fake(fs, workdir, phys, length):
    dev = os.path.basename(fs.dev)
    bb = os.path.join(workdir, "badblocks.json")
    with open(bb, "w") as f:
        json.dump({"devices": {dev: [[phys // 512, length // 512]]}, "write_clears": True}, f)
    return dev, bb


def _owner(fs, path, rid, file_offset, phys, length, shared=False):
    st = os.stat(path)
    return {"kind": "file", "range_id": rid, "device": fs.dev, "mountpoint": fs.mnt,
            "fstype": fs.fstype, "inode": st.st_ino, "generation": None, "paths": [path],
            "file_offset": file_offset, "length": length, "repair_offset": file_offset,
            "repair_length": PAGE, "shared": shared, "attr_fork": False, "fs_offset": phys}


def _phys(path, file_offset):
    for logical, p, length in extents_of(path):
        if logical <= file_offset < logical + length:
            return p + file_offset - logical
    raise AssertionError("not mapped")


def listed_in(bb):
    with open(bb) as f:
        return [x for v in json.load(f)["devices"].values() for x in v]


def _caps(dev):
    return {"kernel": os.uname()[2], "devices": {dev: {"bus_kind": "e820", "write_clears": True}}}


def test_reflinked_owners_restored_by_unshare(clearfs):
    if clearfs.fstype != "xfs":
        pytest.skip("reflink needs XFS")
    good = os.urandom(4 * PAGE)
    a, b = clearfs.path("a"), clearfs.path("b")
    with open(a, "wb") as f:
        f.write(good)
    sh("cp", "--reflink=always", a, b)
    sh("sync")
    phys = _phys(a, PAGE)
    assert phys == _phys(b, PAGE)  # one block, two owners
    src = os.path.join(clearfs.workdir, "good")
    with open(src, "wb") as f:
        f.write(good)
    dev, bb = _fake(clearfs, clearfs.workdir, phys, PAGE)
    rid = "%s@%#x+%#x" % (dev, phys, PAGE)
    rng = {"id": rid, "blockdev": dev, "blockdev_offset": phys, "length": PAGE, "area": "data",
           "filesystem": {"device": clearfs.dev, "mountpoint": clearfs.mnt, "fstype": "xfs",
                          "dax": False, "offset": phys}}
    owners = [_owner(clearfs, p, rid, PAGE, phys, PAGE, shared=True) for p in (a, b)]
    ledger = os.path.join(clearfs.workdir, "state", "ledger.json")
    base = {"ledger_path": ledger, "capabilities": _caps(dev), "bad_ranges": [rng],
            "results": [{"range_id": rid, "owners": owners}]}
    fakes = {"badblocks": bb}
    # a copy for a only: a is unshared (punched, written into a fresh block) and restored
    res, p = run_module("pmem_clear", dict(base, policy={"restore_sources": {a: src}}),
                        clearfs.workdir, fakes)
    assert res and not res.get("failed"), (res, p.stderr)
    assert [x["method"] for x in res["plan"] if x["action"] == "rewrite"] == ["unshare"]
    assert read(a) == good and _phys(a, PAGE) != phys and _phys(b, PAGE) == phys
    assert listed_in(bb)  # the poison stays in the block b still owns
    entries = dict((e["owner"]["paths"][0], e) for e in L.load(ledger)["entries"])
    assert entries[a]["closure"]["how"] == "restored" and entries[b]["state"] == "open"
    assert "device did not clear" not in json.dumps(res)
    # then b too: every owner restored away, the range is left to free space, not a failure
    res, p = run_module("pmem_clear", dict(base, policy={"restore_sources": {a: src, b: src}}),
                        clearfs.workdir, fakes)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(b) == good and _phys(b, PAGE) != phys
    assert [e["state"] for e in L.load(ledger)["entries"]] == ["closed", "closed", "open"]
    verdict = res["ranges"][0]
    assert verdict["listed"] and "free space" in verdict["cause"]
    free_entry = L.find_entry(L.load(ledger), verdict["free_space_entry"])
    assert free_entry["state"] == "open" and free_entry["owner"]["kind"] == "free"
    # the next resolve says free space: an offline plan, not failed; and again: changed=0
    free = dict(base, results=[{"range_id": rid, "owners": [free_entry["owner"]]}])
    res, p = run_module("pmem_clear", free, clearfs.workdir, fakes)
    assert res and not res.get("failed"), (res, p.stderr)
    assert res["plan"][-1]["action"] == "offline_required"
    assert res["changed"] is False  # already recorded by the run that restored the last owner
    assert len(L.load(ledger)["entries"]) == 3


def test_range_over_two_files_verified_per_owner(clearfs):
    """Last page of x and first page of y are one bad range; restoring x closes x while y's
    half is still listed; restoring y then clears the range."""
    x, y = clearfs.path("x"), clearfs.path("y")
    gx, gy = os.urandom(2 * PAGE), os.urandom(2 * PAGE)
    # allocate x then y back to back on an empty filesystem
    for path, data in ((x, gx), (y, gy)):
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    px, py = _phys(x, PAGE), _phys(y, 0)
    if py != px + PAGE:
        pytest.skip("allocator did not place y right after x (%d, %d)" % (px, py))
    srcs = {}
    for path, data in ((x, gx), (y, gy)):
        srcs[path] = os.path.join(clearfs.workdir, os.path.basename(path) + ".good")
        with open(srcs[path], "wb") as f:
            f.write(data)
    dev, bb = _fake(clearfs, clearfs.workdir, px, 2 * PAGE)
    rid = "%s@%#x+%#x" % (dev, px, 2 * PAGE)
    rng = {"id": rid, "blockdev": dev, "blockdev_offset": px, "length": 2 * PAGE, "area": "data",
           "filesystem": {"device": clearfs.dev, "mountpoint": clearfs.mnt,
                          "fstype": clearfs.fstype, "dax": False, "offset": px}}
    owners = [_owner(clearfs, x, rid, PAGE, px, PAGE), _owner(clearfs, y, rid, 0, py, PAGE)]
    ledger = os.path.join(clearfs.workdir, "state", "ledger.json")
    base = {"ledger_path": ledger, "capabilities": _caps(dev), "bad_ranges": [rng],
            "results": [{"range_id": rid, "owners": owners}]}
    res, p = run_module("pmem_clear", dict(base, policy={"restore_sources": {x: srcs[x]}}),
                        clearfs.workdir, {"badblocks": bb})
    assert res and not res.get("failed"), (res, p.stderr)
    by_path = dict((e["owner"]["paths"][0], e) for e in L.load(ledger)["entries"])
    assert by_path[x]["closure"]["how"] == "restored" and by_path[y]["state"] == "open"
    assert read(x) == gx
    assert listed_in(bb) == [[py // 512 + i, 1] for i in range(8)]  # y's half
    assert res["ranges"][0]["open_owners"] == [by_path[y]["id"]]
    res, p = run_module("pmem_clear", dict(base, policy={"restore_sources": srcs}),
                        clearfs.workdir, {"badblocks": bb})
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(y) == gy and listed_in(bb) == []
    assert all(e["state"] == "closed" for e in L.load(ledger)["entries"])
    assert res["ranges"][0]["listed"] is False


def _converge(d, workdir, tag):
    """One remediate-like converge: record+mark, then clear from the copy, as two modules."""
    q = {"ledger_path": d.ledger, "results": d.args["results"],
         "bad_ranges": d.args["bad_ranges"], "containment": ["chmod"]}
    out = []
    for name, args in (("pmem_quarantine", q), ("pmem_clear", d.args)):
        argfile = os.path.join(workdir, "args-%s-%s.json" % (name, tag))
        with open(argfile, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, lock_timeout=60)}, f)
        fakefile = os.path.join(workdir, "fakes-%s-%s.json" % (name, tag))
        with open(fakefile, "w") as f:
            json.dump(d.env, f)
        out.append([sys.executable, HARNESS, name, argfile, fakefile])
    return out


def test_two_converges_at_once_act_once(clearfs):
    d = make_damaged(clearfs, clearfs.workdir)
    runs = [_converge(d, clearfs.workdir, t) for t in ("a", "b")]
    script = "import subprocess,sys,json\nfor argv in json.loads(sys.argv[1]):\n" \
             "    p = subprocess.run(argv, stdout=subprocess.PIPE, universal_newlines=True)\n" \
             "    print(p.stdout.strip())\n"
    procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps(r)],
                              stdout=subprocess.PIPE, universal_newlines=True) for r in runs]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    results = [json.loads(line) for o in outs for line in o.splitlines() if line.strip()]
    assert len(results) == 4 and not any(r.get("failed") for r in results), results
    assert read(d.path) == d.good and listed(d) == []
    led = L.load(d.ledger)
    assert len(led["entries"]) == 1
    events = [h["event"] for h in led["entries"][0]["history"]]
    for once in ("clear_planned", "cleared", "restored"):
        assert events.count(once) == 1, events
    assert "detected" == events[0] and events.count("detected") == 1  # never reopened
    assert led["entries"][0]["state"] == "closed"
    assert stat.S_IMODE(os.stat(d.path).st_mode) == 0o644  # chmod released once restored
    skipped = [r for out in results for r in out.get("results", [])
               if r.get("status") == "skipped"]
    assert all("already" in r["details"]["reason"] for r in skipped)


POINTS = ["before_chmod", "after_chmod", "before_rename", "after_rename", "before_immutable",
          "after_immutable"]


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_during_containment_then_release_finds_everything(clearfs, point):
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"],
         "bad_ranges": d.args["bad_ranges"], "containment": ["chmod", "rename", "immutable"]}
    res, p = run_module("pmem_quarantine", q, clearfs.workdir, dict(d.env, kill_at=point))
    assert p.returncode == -signal.SIGKILL and res is None, (p.returncode, p.stderr)
    cont = L.load(d.ledger)["entries"][0].get("containment") or {}
    step = point.split("_", 1)[1]
    if point.startswith("after"):
        assert [x["step"] for x in cont.get("pending", [])] == [step]  # announced, not closed
    # the rerun finishes the containment
    res, p = run_module("pmem_quarantine", q, clearfs.workdir, d.env)
    assert res and not res["entries"][0]["skipped"], (res, p.stderr)
    entry = L.load(d.ledger)["entries"][0]
    assert sorted(k for k in entry["containment"]) == ["chmod", "immutable", "rename"]
    qpath = entry["containment"]["rename"][0]["to"]
    assert os.path.exists(qpath) and not os.path.exists(d.path)
    assert entry["containment"]["chmod"]["mode"] == 0o644
    # accept the loss, release: the file is back where it was, with its mode
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "accepted_lost",
                                            "entry_ids": [entry["id"]], "by": "ops",
                                            "why": "test"}, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "released"},
                        clearfs.workdir, d.env)
    assert res and res["changed"], (res, p.stderr)
    assert os.path.exists(d.path) and stat.S_IMODE(os.stat(d.path).st_mode) == 0o644
    open(d.path, "ab").close()  # not immutable any more
    assert L.load(d.ledger)["entries"][0]["containment"] == {}


RELEASE_POINTS = ["before_unimmutable", "after_unimmutable", "before_unrename",
                  "after_unrename", "before_unchmod", "after_unchmod"]


@pytest.mark.parametrize("point", RELEASE_POINTS)
def test_sigkill_during_release_then_rerun_finishes(clearfs, point):
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"],
         "bad_ranges": d.args["bad_ranges"], "containment": ["chmod", "rename", "immutable"]}
    run_module("pmem_quarantine", q, clearfs.workdir, d.env)
    eid = L.load(d.ledger)["entries"][0]["id"]
    run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "accepted_lost",
                                   "entry_ids": [eid], "by": "ops", "why": "test"},
               clearfs.workdir, d.env)
    rel = {"ledger_path": d.ledger, "state": "released"}
    res, p = run_module("pmem_quarantine", rel, clearfs.workdir, dict(d.env, kill_at=point))
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    res, p = run_module("pmem_quarantine", rel, clearfs.workdir, d.env)
    assert res and not any(e.get("skipped") for e in res["entries"]), (res, p.stderr)
    assert os.path.exists(d.path) and stat.S_IMODE(os.stat(d.path).st_mode) == 0o644
    open(d.path, "ab").close()
    assert L.load(d.ledger)["entries"][0]["containment"] == {}


def test_unshare_on_a_device_that_cannot_clear_only_while_shared(clearfs):
    """On a bus whose writes cannot clear (QEMU NVDIMM), a shared owner may still be restored
    into a fresh block; once it is the last owner, punching would free the poisoned block for
    reuse: refused, the file untouched."""
    if clearfs.fstype != "xfs":
        pytest.skip("reflink needs XFS")
    good = os.urandom(4 * PAGE)
    a, b = clearfs.path("qa"), clearfs.path("qb")
    with open(a, "wb") as f:
        f.write(good)
    sh("cp", "--reflink=always", a, b)
    sh("sync")
    phys = _phys(a, PAGE)
    src = os.path.join(clearfs.workdir, "qgood")
    with open(src, "wb") as f:
        f.write(good)
    dev, bb = _fake(clearfs, clearfs.workdir, phys, PAGE)
    rid = "%s@%#x+%#x" % (dev, phys, PAGE)
    rng = {"id": rid, "blockdev": dev, "blockdev_offset": phys, "length": PAGE, "area": "data",
           "filesystem": {"device": clearfs.dev, "mountpoint": clearfs.mnt, "fstype": "xfs",
                          "dax": False, "offset": phys}}
    owners = [_owner(clearfs, p, rid, PAGE, phys, PAGE, shared=True) for p in (a, b)]
    ledger = os.path.join(clearfs.workdir, "state", "ledger.json")
    caps = {"kernel": os.uname()[2], "devices": {dev: {
        "write_clears": False, "description": "%s (QEMU NVDIMM)" % dev}}}
    args = {"ledger_path": ledger, "capabilities": caps, "bad_ranges": [rng],
            "results": [{"range_id": rid, "owners": owners}],
            "policy": {"restore_sources": {a: src}}}
    res, p = run_module("pmem_clear", args, clearfs.workdir, {"badblocks": bb})
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(a) == good and _phys(b, PAGE) == phys
    before = read(b)
    args["policy"] = {"restore_sources": {a: src, b: src}}
    res, p = run_module("pmem_clear", args, clearfs.workdir, {"badblocks": bb})
    assert res["failed"] and "no longer shared" in res["msg"] and dev in res["msg"], res
    assert "Next step" in res["msg"]
    assert read(b) == before and _phys(b, PAGE) == phys
