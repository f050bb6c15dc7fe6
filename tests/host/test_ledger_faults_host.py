# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ledger faults on real filesystems (loop devices): the ledger on a read-only mount, on a full
filesystem (ENOSPC), in an immutable directory. Each module run fails with a message naming the
path, the errno and the next step, without a traceback, and the previous ledger stays
byte-identical (no temp file left behind)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shutil
import tempfile

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

from tests.support.module_harness import snapshot

from .conftest import LoopFs, _require_host, sh
from .fixtures_clear import make_damaged, run_module

RID = "pmem9@0x2000+0x1000"


def _owner(ino, off):
    return {"kind": "file", "range_id": RID, "device": "/dev/pmem9", "mountpoint": "/nowhere",
            "fstype": "xfs", "inode": ino, "paths": ["/nowhere/f%d" % ino], "file_offset": off,
            "length": 4096, "repair_offset": off, "repair_length": 4096}


def _results(ino):
    return [{"range_id": RID, "owners": [_owner(ino, 4096)]}]


@pytest.fixture
def ledgerfs(request):
    """A small ext4 (no reserved blocks) holding a ledger with one open entry."""
    _require_host()
    workdir = tempfile.mkdtemp(prefix="pmem-ledgerfs-")
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    fs = LoopFs("ext4", workdir, size_mb=16, mkfs_args=("-m", "0"))
    request.addfinalizer(fs.destroy)
    fs.workdir = workdir
    fs.ledger = fs.path("state/ledger.json")
    res, p = run_module("pmem_quarantine", {"ledger_path": fs.ledger, "results": _results(1)},
                        workdir)
    assert res and not res.get("failed"), (res, p.stderr)
    return fs


def _state(fs):
    with open(fs.ledger, "rb") as f:
        data = f.read()
    return data, sorted(os.listdir(os.path.dirname(fs.ledger)))


def _assert_message(res, proc, words):
    assert res is not None, proc.stdout + proc.stderr
    assert res["failed"], res
    for word in words:
        assert word in res["msg"], (word, res["msg"])
    assert "Next step" in res["msg"]
    assert "Traceback" not in proc.stdout + proc.stderr


MODULE_ARGS = {
    "pmem_quarantine": lambda fs: {"ledger_path": fs.ledger, "results": _results(2)},
    "pmem_clear": lambda fs: {"ledger_path": fs.ledger, "results": _results(2),
                              "bad_ranges": [{"id": RID, "blockdev": "pmem9", "length": 4096}],
                              "capabilities": {"kernel": "6.1", "devices": {}}},
}


@pytest.mark.parametrize("module", sorted(MODULE_ARGS))
def test_read_only_mount(ledgerfs, module):
    before = _state(ledgerfs)
    sh("mount", "-o", "remount,ro", ledgerfs.mnt)
    try:
        res, p = run_module(module, MODULE_ARGS[module](ledgerfs), ledgerfs.workdir)
        _assert_message(res, p, [os.path.dirname(ledgerfs.ledger), "EROFS", "read-write"])
    finally:
        sh("mount", "-o", "remount,rw", ledgerfs.mnt)
    assert _state(ledgerfs) == before


@pytest.mark.parametrize("module", sorted(MODULE_ARGS))
def test_full_filesystem(ledgerfs, module):
    before = _state(ledgerfs)
    filler = _fill(ledgerfs)
    try:
        res, p = run_module(module, MODULE_ARGS[module](ledgerfs), ledgerfs.workdir)
        _assert_message(res, p, [ledgerfs.mnt, "ENOSPC", "free space"])
        assert _state(ledgerfs) == before  # no temp file left, the old ledger intact
    finally:
        os.unlink(filler)
    res, p = run_module(module, MODULE_ARGS[module](ledgerfs), ledgerfs.workdir)
    assert res and not res.get("failed") or module == "pmem_clear", (res, p.stderr)
    assert len(L.load(ledgerfs.ledger)["entries"]) == 2  # with room again, it records


@pytest.mark.parametrize("module", sorted(MODULE_ARGS))
def test_immutable_ledger_directory(ledgerfs, module):
    state = os.path.dirname(ledgerfs.ledger)
    os.unlink(os.path.join(state, "ledger.lock"))
    before = _state(ledgerfs)
    sh("chattr", "+i", state)
    try:
        res, p = run_module(module, MODULE_ARGS[module](ledgerfs), ledgerfs.workdir)
        _assert_message(res, p, [state, "EPERM", "immutable"])
    finally:
        sh("chattr", "-i", state)
    assert _state(ledgerfs) == before


def _fill(fs, room=0):
    """Fill ``fs`` to the last free byte, then give back ``room`` bytes (with 8 KiB a lock's pid
    fits, a ledger save does not). Returns the filler's path."""
    filler = fs.path("filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # down to the last free block
            try:
                while True:
                    os.write(fd, b"\xaa" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
            os.fsync(fd)
        if room:
            os.ftruncate(fd, os.fstat(fd).st_size - room)
            os.fsync(fd)
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("fault", ["nearly_full", "read_only"])
@pytest.mark.parametrize("module", ["pmem_quarantine", "pmem_clear"])
def test_ledger_fault_leaves_the_damaged_file_alone(clearfs, module, fault):
    """The ledger on a filesystem of its own that fills up (or goes read-only) after the entry was
    recorded: marking, containing and clearing the file on the data filesystem need a save first,
    so the run fails naming the ledger and nothing on the data filesystem changes."""
    small = LoopFs("ext4", clearfs.workdir, size_mb=16, mkfs_args=("-m", "0"), name="ledger")
    try:
        d = make_damaged(clearfs, clearfs.workdir)
        ledger = small.path("state/ledger.json")
        more = [{"range_id": RID, "owners": [_owner(ino, 4096) for ino in range(100, 130)]}]
        res, p = run_module("pmem_quarantine", {"ledger_path": ledger, "results": more}, clearfs.workdir)
        assert res and not res.get("failed"), (res, p.stderr)
        record = dict(d.args, ledger_path=ledger)
        del record["source"]  # recorded, left open
        res, p = run_module("pmem_clear", record, clearfs.workdir, d.env, tag="record")
        assert res and not res.get("failed"), (res, p.stderr)
        assert os.path.getsize(ledger) > 2 * 8192  # a save needs more room than is left
        with open(ledger, "rb") as f:
            before = f.read()
        data = snapshot(clearfs.mnt)
        if module == "pmem_quarantine":
            args = {"ledger_path": ledger, "containment": ["chmod", "rename", "immutable"]}
        else:
            args = dict(d.args, ledger_path=ledger, quarantine=True, policy={"containment": ["chmod"]})
            del args["results"]
        filler = None
        if fault == "read_only":
            sh("mount", "-o", "remount,ro", small.mnt)
        else:
            filler = _fill(small, 8192)
        try:
            res, p = run_module(module, args, clearfs.workdir, d.env)
        finally:
            if filler:
                os.unlink(filler)
            else:
                sh("mount", "-o", "remount,rw", small.mnt)
        _assert_message(res, p, [os.path.dirname(ledger), "ENOSPC" if filler else "EROFS"])
        with open(ledger, "rb") as f:
            assert f.read() == before
        assert snapshot(clearfs.mnt) == data  # no marker, no containment, no clear
        assert sorted(os.listdir(os.path.dirname(ledger))) == ["ledger.json", "ledger.lock"]
    finally:
        small.destroy()
