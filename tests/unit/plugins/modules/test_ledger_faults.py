# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults around the ledger are messages: an untrusted, symlinked, corrupt or unwritable ledger
fails pmem_quarantine and pmem_clear with the path, what failed and the next step (no
traceback), makes pmem_badblocks report the host not clean, and the ledger stays
byte-identical."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import LedgerError
from ansible_collections.pmem.poison.plugins.modules import pmem_badblocks as B
from ansible_collections.pmem.poison.plugins.modules import pmem_clear as C
from ansible_collections.pmem.poison.plugins.modules import pmem_quarantine as Q
from ansible_collections.pmem.poison.tests.support.module_harness import (
    RID,
    run_inprocess,
    snapshot,
)

MODULES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")


def _edit_entry(w, change):
    data = json.loads(open(w.ledger).read())
    change(data["entries"][0])
    with open(w.ledger, "w") as f:
        json.dump(data, f)


def _edit_top(w, data):
    with open(w.ledger, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))


def _doubled(w):
    with open(w.ledger) as f:
        data = json.load(f)
    data["entries"] = 2 * data["entries"][:1]
    return data


def _pop(key):
    return lambda e: e.pop(key)


def _set(path, value):
    def change(entry):
        obj = entry
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return change


def _chmod(target, mode):
    def make(w):
        os.chmod(w.ledger if target == "file" else os.path.dirname(w.ledger), mode)
    return make


def _chown(w):
    os.chown(w.ledger, 12345, 12345)


def _symlink_ledger(w):
    real = w.ledger + ".real"
    os.rename(w.ledger, real)
    os.symlink(real, w.ledger)


def _symlink_lock(w):
    lock = os.path.join(os.path.dirname(w.ledger), "ledger.lock")
    if os.path.lexists(lock):
        os.unlink(lock)
    os.symlink(os.path.join(w.root, "elsewhere.lock"), lock)


# (id, how to break the world, words the failure names)
FAULTS = [
    ("file-0666", _chmod("file", 0o666), ["writable by group or others", "chmod go-w"]),
    ("file-0620", _chmod("file", 0o620), ["writable by group or others"]),
    ("dir-0777", _chmod("dir", 0o777), ["ledger directory", "writable by group or others"]),
    ("dir-0770", _chmod("dir", 0o770), ["ledger directory", "writable by group or others"]),
    ("other-owner", _chown, ["owned by uid 12345", "chown"]),
    ("symlinked-ledger", _symlink_ledger, ["is a symlink"]),
    ("not-json", lambda w: _edit_top(w, "{not json"), ["not JSON"]),
    ("top-level-list", lambda w: _edit_top(w, "[]"), ["top level is not an object"]),
    ("schema-99", lambda w: _edit_top(w, {"schema": 99, "entries": []}),
     ["schema 99", "upgrade"]),
    ("entries-not-list", lambda w: _edit_top(w, {"schema": 1, "entries": {}}),
     ["entries is not a list"]),
    ("owner-missing", lambda w: _edit_entry(w, _pop("owner")), ["owner is missing", RID]),
    ("owner-not-mapping", lambda w: _edit_entry(w, _set(["owner"], "file")),
     ["owner is 'file'"]),
    ("owner-kind-alien", lambda w: _edit_entry(w, _set(["owner", "kind"], "alien")),
     ["owner.kind 'alien'"]),
    ("owner-inode-text", lambda w: _edit_entry(w, _set(["owner", "inode"], "131")),
     ["owner.inode"]),
    ("repair-offset-text", lambda w: _edit_entry(w, _set(["owner", "repair_offset"], "4096")),
     ["owner.repair_offset"]),
    ("paths-string", lambda w: _edit_entry(w, _set(["owner", "paths"], "/a")), ["owner.paths"]),
    ("history-event-bogus", lambda w: _edit_entry(w, _set(["history", 0, "event"], "exploded")),
     ["history[0].event", "exploded"]),
    ("history-event-missing", lambda w: _edit_entry(w, lambda e: e["history"][1].pop("event")),
     ["history[1].event is missing"]),
    ("history-at-missing", lambda w: _edit_entry(w, lambda e: e["history"][0].pop("at")),
     ["history[0].at is missing"]),
    ("history-not-list", lambda w: _edit_entry(w, _set(["history"], {})), ["history is {}"]),
    ("range-missing", lambda w: _edit_entry(w, _pop("range")), ["range is missing"]),
    ("range-length-text", lambda w: _edit_entry(w, _set(["range", "length"], "4k")),
     ["range.length"]),
    ("state-pending", lambda w: _edit_entry(w, _set(["state"], "pending")), ["state is 'pending'"]),
    ("closed-no-closure", lambda w: _edit_entry(w, _set(["state"], "closed")),
     ["closed, but closure is None"]),
    ("open-with-closure", lambda w: _edit_entry(w, _set(["closure"], {"how": "restored"})),
     ["open, but has a closure"]),
    ("rename-without-to", lambda w: _edit_entry(w, _set(["containment"], {
        "rename": [{"from": "/a"}]})), ["containment.rename[0] needs from and to"]),
    ("chmod-mode-text", lambda w: _edit_entry(w, _set(["containment"], {
        "chmod": {"mode": "0644"}})), ["containment.chmod needs an integer mode"]),
    ("immutable-was-set-text", lambda w: _edit_entry(w, _set(["containment"], {
        "immutable": {"was_set": "no"}})), ["containment.immutable needs was_set"]),
    ("duplicate-id", lambda w: _edit_top(w, _doubled(w)), ["duplicate entry id"]),
]

LOCK_FAULTS = [
    ("symlinked-lock", _symlink_lock, ["lock file", "is a symlink", "rm "]),
]


def _module_args(w, module):
    if module is Q:
        return {"ledger_path": w.ledger, "state": "accepted_lost", "entry_ids": [w.eid],
                "by": "alice", "why": "scratch"}
    if module is C:
        return {"ledger_path": w.ledger, "entry_ids": [w.eid], "source": w.good,
                "capabilities": w.caps}
    return {"ledger_path": w.ledger, "use_ndctl": "never"}


def _check_failed(out, words):
    assert out.get("failed"), out
    for word in words:
        assert word in out["msg"], (word, out["msg"])
    assert "Next step" in out["msg"] and "Traceback" not in json.dumps(out, default=str)


@pytest.mark.parametrize("module", [Q, C], ids=["pmem_quarantine", "pmem_clear"])
@pytest.mark.parametrize("breaker,words", [f[1:] for f in FAULTS + LOCK_FAULTS],
                         ids=[f[0] for f in FAULTS + LOCK_FAULTS])
def test_ledger_fault_fails_the_module_and_changes_nothing(world, monkeypatch, module, breaker,
                                                           words):
    breaker(world)
    before = snapshot(world.root)
    out = run_inprocess(module, _module_args(world, module), monkeypatch)
    _check_failed(out, words)
    assert snapshot(world.root) == before


@pytest.mark.parametrize("breaker,words", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_ledger_fault_makes_the_host_not_clean(world, monkeypatch, breaker, words):
    breaker(world)
    before = snapshot(world.root)
    out = run_inprocess(B, _module_args(world, B), monkeypatch)
    facts = out["ansible_facts"]["pmem"]
    assert facts["clean"] is False
    ledger_errors = [e for e in facts["errors"] if e["device"] == "ledger"]
    assert ledger_errors and all(w in ledger_errors[0]["message"] for w in words), facts["errors"]
    assert snapshot(world.root) == before


@pytest.mark.parametrize("module", ["pmem_quarantine", "pmem_clear"])
@pytest.mark.parametrize("path_of", [
    lambda w: "",
    lambda w: w.file,                                  # a file that is not a ledger
    lambda w: os.path.join(w.file, "ledger.json"),     # ENOTDIR
    lambda w: os.path.dirname(w.ledger),               # a directory as the ledger (EISDIR)
], ids=["blank", "not-a-ledger", "enotdir", "eisdir"])
def test_bad_ledger_path_as_ansible_runs_it(world, tmp_path, module, path_of):
    """Subprocess, as Ansible runs a module: JSON on stdout, no traceback anywhere."""
    args = _module_args(world, Q if module == "pmem_quarantine" else C)
    args["ledger_path"] = path_of(world)
    if module == "pmem_clear":
        args.pop("entry_ids")
        args.pop("source")
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    before = snapshot(world.root)
    proc = subprocess.run([sys.executable, os.path.join(MODULES, module + ".py"), str(argfile)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    out = json.loads(proc.stdout)
    assert out["failed"] and "Next step" in out["msg"], out
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(world.root) == before


# errno faults inside the atomic save: the old ledger survives byte for byte

@pytest.mark.parametrize("call", ["write", "fsync", "rename", "mkstemp"])
@pytest.mark.parametrize("code,words", [
    (errno.ENOSPC, ["ENOSPC", "free space"]),
    (errno.EROFS, ["EROFS", "read-write"]),
    (errno.EIO, ["EIO", "dmesg"]),
    (errno.EDQUOT, ["EDQUOT", "quota"]),
], ids=["ENOSPC", "EROFS", "EIO", "EDQUOT"])
def test_save_fault_is_a_ledger_error_and_keeps_the_old_ledger(world, monkeypatch, call, code,
                                                               words):
    old = open(world.ledger, "rb").read()

    def boom(*_a, **_kw):
        raise OSError(code, os.strerror(code))

    target = L.tempfile if call == "mkstemp" else L.os
    monkeypatch.setattr(target, call, boom)
    data = L.parse(old, world.ledger)
    data["entries"][0]["history"].append({"at": L.utcnow(), "event": "resolved", "details": {}})
    with pytest.raises(LedgerError) as info:
        L.save(world.ledger, data)
    monkeypatch.undo()
    text = str(info.value)
    assert world.ledger in text and all(w in text for w in words), text
    assert "previous ledger is unchanged" in text and "Next step" in text
    assert open(world.ledger, "rb").read() == old
    assert [n for n in os.listdir(os.path.dirname(world.ledger)) if n.endswith(".tmp")] == []


@pytest.mark.parametrize("call", ["ftruncate", "pwrite"])
def test_lock_write_fault_is_a_ledger_error(world, monkeypatch, call):
    def boom(*_a, **_kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(L.os, call, boom)
    store = L.LedgerStore(world.ledger, timeout=0.1)
    with pytest.raises(LedgerError) as info:
        store.acquire()
    monkeypatch.undo()
    assert "ledger.lock" in str(info.value) and "ENOSPC" in str(info.value)
    # the lock was not kept: another store gets it at once
    other = L.LedgerStore(world.ledger, timeout=0.1)
    other.acquire()
    other.release()
