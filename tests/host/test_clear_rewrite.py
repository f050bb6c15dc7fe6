# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pmem_clear/pmem_quarantine mechanics on real XFS and ext4 (loop devices, fake badblocks)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from tests.support.module_harness import snapshot

from .conftest import sh
from .fixtures_clear import listed, make_damaged, read, run_module


def test_rewrite_restores_byte_identical(clearfs):
    d = make_damaged(clearfs, clearfs.workdir)
    before = (read(d.path), read(d.badblocks))
    res, p = run_module("pmem_clear", d.args, clearfs.workdir, d.env, check=True)
    assert res["changed"] and not res.get("failed"), p.stderr
    assert (read(d.path), read(d.badblocks)) == before and not os.path.exists(d.ledger)
    res, p = run_module("pmem_clear", d.args, clearfs.workdir, d.env, diff=True)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(d.path) == d.good and listed(d) == [], res
    entry = L.load(d.ledger)["entries"][0]
    assert entry["closure"]["how"] == "restored"
    # the data survives a remount (it is on the device, not only in the page cache)
    clearfs.unmount()
    clearfs.mount()
    assert read(d.path) == d.good
    # second run with fresh facts: nothing listed, nothing resolved
    fresh = dict(d.args, results=[], bad_ranges=[])
    res, _proc = run_module("pmem_clear", fresh, clearfs.workdir, d.env)
    assert res["changed"] is False and not res.get("failed"), res


def test_reallocate_keeps_entry_open(clearfs):
    d = make_damaged(clearfs, clearfs.workdir)
    with open(d.badblocks) as f:
        bb = json.load(f)
    bb["write_clears"] = False  # as on ext4+DAX: the new block is elsewhere, poison stays
    with open(d.badblocks, "w") as f:
        json.dump(bb, f)
    res, p = run_module("pmem_clear", dict(d.args, method="reallocate"), clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(d.path) == d.good
    entry = L.load(d.ledger)["entries"][0]
    assert entry["state"] == "open"
    last = entry["history"][-1]
    assert last["event"] == "clear_failed" and last["details"]["poison_remains_in_free_space"]
    res, _proc = run_module("pmem_clear", dict(d.args, method="reallocate"), clearfs.workdir, d.env)
    assert res["changed"] is False


def test_quarantine_contain_then_restore_then_release(clearfs):
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"], "bad_ranges": d.args["bad_ranges"],
         "containment": ["chmod", "rename", "immutable"]}
    res, p = run_module("pmem_quarantine", q, clearfs.workdir)
    assert res and res["changed"] and not res["entries"][0]["skipped"], (res, p.stderr)
    qpath = L.load(d.ledger)["entries"][0]["containment"]["rename"][0]["to"]
    assert not os.path.exists(d.path) and stat.S_IMODE(os.stat(qpath).st_mode) == 0
    assert json.loads(os.getxattr(qpath, "user.pmem_poison.lost_ranges"))["ranges"]
    res, _proc = run_module("pmem_quarantine", q, clearfs.workdir)
    assert res["changed"] is False
    # restore in place while contained (immutable lifted for the write, set again)
    clr = dict(d.args)
    del clr["results"]
    res, p = run_module("pmem_clear", clr, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    # the entry closed as restored: its containment is released in the same run (mode from the
    # write-ahead record), and the result says so
    assert sorted(res["results"][0]["released"]) == ["chmod", "immutable", "marker", "rename"]
    assert not os.path.exists(qpath)
    assert read(d.path) == d.good and stat.S_IMODE(os.stat(d.path).st_mode) == 0o644
    open(d.path, "ab").close()  # no longer immutable
    assert "user.pmem_poison.lost_ranges" not in os.listxattr(d.path)
    entry = L.load(d.ledger)["entries"][0]
    assert entry["closure"]["how"] == "restored" and entry["containment"] == {}
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "released"},
                        clearfs.workdir)
    assert res["changed"] is False, p.stderr


def test_readonly_mount_reported(clearfs):
    d = make_damaged(clearfs, clearfs.workdir)
    os.system("mount -o remount,ro %s" % clearfs.mnt)
    try:
        res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger,
                                                "results": d.args["results"]}, clearfs.workdir)
        assert res and "read-only" in " ".join(res["entries"][0]["skipped"]), (res, p.stderr)
        assert L.read_open_entries(d.ledger)  # still recorded
    finally:
        os.system("mount -o remount,rw %s" % clearfs.mnt)


def test_restore_without_containment_removes_the_marker(clearfs):
    # The role's default: quarantine marks the file (no containment), pmem_clear restores it in
    # the same run. The file is good data again: a "lost" marker left behind would send its
    # users to a backup for nothing.
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"], "bad_ranges": d.args["bad_ranges"]}
    res, p = run_module("pmem_quarantine", q, clearfs.workdir)
    assert res and res["changed"], (res, p.stderr)
    assert json.loads(os.getxattr(d.path, "user.pmem_poison.lost_ranges"))["ranges"]
    clr = dict(d.args)
    del clr["results"]
    res, p = run_module("pmem_clear", clr, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(d.path) == d.good
    assert "user.pmem_poison.lost_ranges" not in os.listxattr(d.path)
    assert L.load(d.ledger)["entries"][0]["closure"]["how"] == "restored"


def test_release_refreshes_a_stale_marker_of_a_restored_entry(clearfs):
    # A crash between the ledger's "restored" and the marker update leaves a stale marker;
    # `state: released` (nothing contained) puts the marker right.
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"], "bad_ranges": d.args["bad_ranges"]}
    run_module("pmem_quarantine", q, clearfs.workdir)
    stale = os.getxattr(d.path, "user.pmem_poison.lost_ranges")
    clr = dict(d.args)
    del clr["results"]
    run_module("pmem_clear", clr, clearfs.workdir, d.env)
    os.setxattr(d.path, "user.pmem_poison.lost_ranges", stale)  # as if the run died right there
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "released"},
                        clearfs.workdir)
    assert res["changed"], (res, p.stderr)
    assert "user.pmem_poison.lost_ranges" not in os.listxattr(d.path)
    res, _proc = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "released"},
                            clearfs.workdir)
    assert res["changed"] is False


def test_check_mode_leaves_files_xattrs_ledger_and_lock_alone(clearfs):
    # a quarantined, contained file: check mode of every acting call changes no byte of the
    # file, its xattrs and mode, the quarantine directory, the ledger or its lock, and says
    # what it would do; the real run's diff shows the ledger before and after
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"], "bad_ranges": d.args["bad_ranges"],
         "containment": ["chmod", "rename"]}
    res, p = run_module("pmem_quarantine", q, clearfs.workdir, d.env, tag="q")
    assert res and res["changed"], (res, p.stderr)
    before = (snapshot(clearfs.mnt), snapshot(os.path.dirname(d.ledger)))
    calls = [("pmem_clear", dict(d.args, quarantine=True, policy={"containment": ["chmod", "rename", "immutable"]})),
             ("pmem_quarantine", dict(q, containment=["chmod", "rename", "immutable"])),
             ("pmem_quarantine", {"ledger_path": d.ledger, "state": "accepted_lost", "entry_ids": d.args["entry_ids"],
                                  "by": "ops", "why": "test"})]
    for name, args in calls:
        res, p = run_module(name, args, clearfs.workdir, d.env, check=True, diff=True)
        assert res and res["changed"] and not res.get("failed"), (name, res, p.stderr)
        assert (snapshot(clearfs.mnt), snapshot(os.path.dirname(d.ledger))) == before, name
        if name == "pmem_clear":
            assert "contain 1" in res["summary"] and "rewrite %s from %s" % (d.path, d.source) in res["summary"], res
    res, p = run_module("pmem_clear", dict(d.args, results=[]), clearfs.workdir, d.env, diff=True)
    assert res and not res.get("failed"), (res, p.stderr)
    assert '"state": "open"' in res["diff"]["before"] and '"how": "restored"' in res["diff"]["after"]


def test_rename_containment_of_a_name_near_name_max(clearfs):
    # "ino<inode>.<i>." before a 250-byte name is longer than NAME_MAX: the rename failed with
    # ENAMETOOLONG, the file stayed in place and a pending rename stayed in the ledger
    d = make_damaged(clearfs, clearfs.workdir, name="x" * 250)
    link = clearfs.path(u"\u00e9" * 127)  # 254 bytes of two-byte characters
    os.link(d.path, link)
    owner = dict(d.owner, paths=[d.path, link])
    results = [{"range_id": owner["range_id"], "owners": [owner]}]
    q = {"ledger_path": d.ledger, "results": results, "bad_ranges": d.args["bad_ranges"],
         "containment": ["rename", "chmod"]}
    res, p = run_module("pmem_quarantine", q, clearfs.workdir)
    assert res and res["changed"] and not res["entries"][0]["skipped"], (res, p.stderr)
    entry = L.load(d.ledger)["entries"][0]
    assert not entry["containment"].get("pending"), entry["containment"]
    moved = [r["to"] for r in entry["containment"]["rename"]]
    assert len(moved) == 2 and all(os.path.exists(t) for t in moved)
    assert all(len(os.fsencode(os.path.basename(t))) <= 255 for t in moved)
    assert not os.path.exists(d.path) and not os.path.exists(link)
    res, p = run_module("pmem_quarantine", q, clearfs.workdir)
    assert res["changed"] is False, (res, p.stderr)
    clr = dict(d.args)
    del clr["results"]
    res, p = run_module("pmem_clear", clr, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(d.path) == d.good and os.path.samefile(d.path, link)
    assert stat.S_IMODE(os.stat(d.path).st_mode) == 0o644


def test_marker_removed_through_a_hard_link_when_the_first_name_is_another_file(clearfs):
    # the restore goes through the second recorded name (the first now holds another file);
    # the "lost" marker on the restored inode must go too, not be looked for at the first name only
    d = make_damaged(clearfs, clearfs.workdir)
    os.makedirs(clearfs.path("sub"))
    link = clearfs.path("sub/link")
    os.link(d.path, link)
    owner = dict(d.owner, paths=[d.path, link])
    q = {"ledger_path": d.ledger, "results": [{"range_id": owner["range_id"], "owners": [owner]}],
         "bad_ranges": d.args["bad_ranges"]}
    res, p = run_module("pmem_quarantine", q, clearfs.workdir)
    assert res and res["changed"], (res, p.stderr)
    assert "user.pmem_poison.lost_ranges" in os.listxattr(link)
    os.unlink(d.path)
    with open(d.path, "wb") as f:
        f.write(os.urandom(len(d.good)))
    other = read(d.path)
    clr = dict(d.args)
    del clr["results"]
    res, p = run_module("pmem_clear", clr, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(link) == d.good and read(d.path) == other
    assert L.load(d.ledger)["entries"][0]["closure"]["how"] == "restored"
    assert "user.pmem_poison.lost_ranges" not in os.listxattr(link)
    assert "user.pmem_poison.lost_ranges" not in os.listxattr(d.path)


def test_a_marker_that_cannot_be_written_leaves_no_pending_step_and_a_rerun_is_unchanged(clearfs):
    # setxattr refused (here EPERM: chattr +i by the file's owner; on ext4 also ENOSPC once the
    # marker outgrows the xattr block): the marker step announced in the ledger stayed pending,
    # so every rerun dropped it, logged another 'quarantined' event and said changed
    d = make_damaged(clearfs, clearfs.workdir)
    q = {"ledger_path": d.ledger, "results": d.args["results"], "bad_ranges": d.args["bad_ranges"]}
    sh("chattr", "+i", d.path)
    try:
        res, p = run_module("pmem_quarantine", q, clearfs.workdir, tag="1")
        assert res and not res.get("failed") and res["entries"][0]["skipped"], (res, p.stderr)
        entry = L.load(d.ledger)["entries"][0]
        assert not (entry.get("containment") or {}).get("pending"), entry
        with open(d.ledger, "rb") as f:
            ledger_before = f.read()
        for attempt in ("2", "3"):
            res, p = run_module("pmem_quarantine", q, clearfs.workdir, tag=attempt)
            assert res and res["changed"] is False, (attempt, res, p.stderr)
            with open(d.ledger, "rb") as f:
                assert f.read() == ledger_before, attempt
    finally:
        sh("chattr", "-i", d.path)
