# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A recorded file replaced between record and clear, on real filesystems: the clear is refused
with a message naming the file, and nothing is written to what is there now."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

from .conftest import sh
from .fixtures_clear import PAGE, make_damaged, read, run_module


def _recorded_by_clear(fs):
    """A damaged file recorded by pmem_clear alone (no restore source: recorded and left open),
    its owner carrying the generation the resolver reads."""
    d = make_damaged(fs, fs.workdir)
    fd = os.open(d.path, os.O_RDONLY)
    d.owner["generation"] = fiemap.get_generation(fd)
    os.close(fd)
    d.args["results"] = [{"range_id": d.owner["range_id"], "owners": [d.owner]}]
    record = dict(d.args)
    del record["source"]
    res, p = run_module("pmem_clear", record, fs.workdir, d.env, tag="record")
    assert res and not res.get("failed") and L.load(d.ledger)["entries"], (res, p.stderr)
    return d


def _refused(res, p, d):
    assert res is not None and "Traceback" not in p.stderr, p.stderr
    assert res.get("failed") and d.path in res["msg"] and "nothing was written" in res["msg"], res


def _refused_and_unchanged(fs, d, runs):
    """Run pmem_clear once per ``(tag, args)``: each run fails, reports changed=false and leaves
    the damaged file and the ledger byte-identical (a scheduled rerun refused for the same reason
    changes nothing either). Returns ``[(result, process)]`` for the callers' message checks."""
    before = read(d.path)
    with open(d.ledger, "rb") as f:
        ledger_before = f.read()
    out = []
    for tag, args in runs:
        res, p = run_module("pmem_clear", args, fs.workdir, d.env, tag=tag)
        assert res is not None and "Traceback" not in p.stderr, p.stderr
        assert res.get("failed") and res["changed"] is False, (tag, res)
        assert read(d.path) == before
        with open(d.ledger, "rb") as f:
            assert f.read() == ledger_before, tag
        out.append((res, p))
    return out


def test_inode_number_reused_by_a_new_file_is_not_written(clearfs):
    # ext4 gives the next file made the inode number just freed: a resolver run after the
    # replacement names the same inode at the same offset (the same entry id) with another
    # generation. The old file's good copy must not land in the new file.
    if clearfs.fstype != "ext4":
        pytest.skip("inode numbers are reused at once on ext4")
    d = _recorded_by_clear(clearfs)
    os.unlink(d.path)
    with open(d.path, "wb") as f:
        f.write(os.urandom(len(d.good)))  # same name, same size, new content
    sh("sync")
    assert os.stat(d.path).st_ino == d.owner["inode"]
    fd = os.open(d.path, os.O_RDONLY)
    now = dict(d.owner, generation=fiemap.get_generation(fd))
    os.close(fd)
    assert now["generation"] != d.owner["generation"]
    before = read(d.path)
    res, p = run_module("pmem_clear", dict(d.args, results=[{"range_id": now["range_id"], "owners": [now]}]),
                        clearfs.workdir, d.env)
    _refused(res, p, d)
    assert "generation" in res["msg"]
    assert read(d.path) == before
    entry = L.load(d.ledger)["entries"][0]
    assert entry["state"] == "open" and entry["owner"]["generation"] == d.owner["generation"]
    # the way out the refusal names (re-resolving would name the new file again): accept the
    # loss of the entry; its zeros then have no file left to go to, and the run does not fail
    assert "Accept the loss of entry %s" % entry["id"] in res["msg"], res["msg"]
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "accepted_lost",
                                            "entry_ids": [entry["id"]], "by": "ops",
                                            "why": "the file was deleted"}, clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    zeros = dict(d.args)
    del zeros["source"]
    for attempt in ("first", "rerun"):
        res, p = run_module("pmem_clear", zeros, clearfs.workdir, d.env, tag=attempt)
        assert res is not None and "Traceback" not in p.stderr, p.stderr
        assert not res.get("failed") and res["changed"] is False, (attempt, res)
        assert [r["status"] for r in res["results"]] == ["skipped"], res["results"]
        assert "no longer at any recorded path" in res["results"][0]["details"]["reason"]
        assert read(d.path) == before  # the new file's data
    entry = L.load(d.ledger)["entries"][0]
    assert entry["state"] == "closed" and entry["closure"]["how"] == "accepted_lost"


def test_accepted_loss_not_zeroed_into_a_file_rewritten_since_the_record(clearfs):
    # the same inode and generation, but its user truncated it and wrote new content: zeros for
    # the recorded loss would now destroy data nobody gave up
    d = _recorded_by_clear(clearfs)
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "accepted_lost",
                                            "entry_ids": d.args["entry_ids"], "by": "ops", "why": "test"},
                        clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    with open(d.path, "r+b") as f:
        f.truncate(0)
        f.write(os.urandom(5 * PAGE))
    before = read(d.path)
    zeros = dict(d.args)
    del zeros["source"]
    res, p = run_module("pmem_clear", zeros, clearfs.workdir, d.env)
    _refused(res, p, d)
    assert "bytes" in res["msg"]
    assert read(d.path) == before


def test_a_refused_clear_leaves_the_ledger_as_it_was_and_a_rerun_is_changed_0(clearfs):
    # the guard refuses before the clear is planned in the ledger: nothing in the record says a
    # write was about to happen, and a scheduled rerun refused again reports no change
    d = _recorded_by_clear(clearfs)
    other = os.path.join(os.path.dirname(d.path), "other.bin")
    with open(other, "wb") as f:
        f.write(os.urandom(len(d.good)))
    os.rename(other, d.path)  # renamed over the recorded file
    for res, p in _refused_and_unchanged(clearfs, d, [("first", d.args), ("rerun", d.args)]):
        _refused(res, p, d)


def test_a_copy_of_the_wrong_size_is_refused_before_the_ledger_changes(clearfs):
    # the source is checked before the clear is planned, as the write would check it
    d = _recorded_by_clear(clearfs)
    short = os.path.join(clearfs.workdir, "short-copy.bin")
    with open(short, "wb") as f:
        f.write(os.urandom(PAGE + 17))
    args = dict(d.args, source=short)
    for res, _p in _refused_and_unchanged(clearfs, d, [("first", args), ("rerun", args)]):
        assert short in res["msg"] and "not a copy" in res["msg"], res


def test_zeros_for_an_accepted_loss_of_a_deleted_file_go_nowhere(clearfs):
    # the file was deleted after its loss was recorded: before the loss is accepted the refusal
    # says how to go on; after, its zeros have no file to go to (another file now at its path
    # must not get them) and the converge does not fail on every run
    d = _recorded_by_clear(clearfs)
    eid = L.load(d.ledger)["entries"][0]["id"]
    os.unlink(d.path)
    zeros = dict(d.args)
    del zeros["source"]
    res, p = run_module("pmem_quarantine", {"ledger_path": d.ledger, "state": "accepted_lost",
                                            "entry_ids": [eid], "by": "ops", "why": "deleted"},
                        clearfs.workdir, d.env)
    assert res and not res.get("failed"), (res, p.stderr)
    with open(d.path, "wb") as f:
        f.write(os.urandom(len(d.good)))  # a new file at the old path
    before = read(d.path)
    res, p = run_module("pmem_clear", zeros, clearfs.workdir, d.env)
    assert res is not None and "Traceback" not in p.stderr, p.stderr
    assert not res.get("failed") and res["changed"] is False, res
    assert [r["status"] for r in res["results"]] == ["skipped"], res["results"]
    assert read(d.path) == before


def test_a_renamed_file_is_refused_with_re_resolving_as_the_way_on(clearfs):
    d = _recorded_by_clear(clearfs)
    os.rename(d.path, d.path + ".moved")
    res, p = run_module("pmem_clear", d.args, clearfs.workdir, d.env)
    assert res is not None and "Traceback" not in p.stderr, p.stderr
    assert res.get("failed") and "no longer exists" in res["msg"], res
    assert "re-run pmem_resolve" in res["msg"] and "nothing was written" in res["msg"]
    assert L.load(d.ledger)["entries"][0]["state"] == "open"


@pytest.mark.parametrize("name", ["itself", "hard link"])
def test_the_damaged_file_itself_is_no_restore_source(clearfs, name):
    # source: the damaged file (or another name of its inode) would "restore" the file from its
    # own lost pages and close the entry as restored: refused before the ledger changes
    d = _recorded_by_clear(clearfs)
    src = d.path
    if name == "hard link":
        src = clearfs.path("victim-link")
        os.link(d.path, src)
    runs = [(method, dict(d.args, source=src, method=method)) for method in ("rewrite", "reallocate")]
    for res, _p in _refused_and_unchanged(clearfs, d, runs):
        assert src in res["msg"] and "damaged file itself" in res["msg"], res
    assert L.load(d.ledger)["entries"][0]["state"] == "open"


@pytest.mark.parametrize("flag", ["+i", "+a"])
def test_a_file_made_immutable_or_append_only_by_its_owner_is_refused_before_the_ledger_changes(
        clearfs, flag):
    # chattr +i / +a by someone else than our containment: the write would fail with EPERM
    # (after clear_planned, so every scheduled rerun added clear_planned + clear_failed); the
    # preflight refuses it, names the file and the chattr to run
    d = _recorded_by_clear(clearfs)
    sh("chattr", flag, d.path)
    try:
        for res, p in _refused_and_unchanged(clearfs, d, [("first", d.args), ("rerun", d.args)]):
            _refused(res, p, d)
            assert ("chattr -%s %s" % (flag[1], d.path)) in res["msg"], res
    finally:
        sh("chattr", "-" + flag[1], d.path)
    res, p = run_module("pmem_clear", d.args, clearfs.workdir, d.env, tag="after")
    assert res and not res.get("failed"), (res, p.stderr)
    assert read(d.path) == d.good
