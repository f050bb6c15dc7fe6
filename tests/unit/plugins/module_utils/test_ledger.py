# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import multiprocessing
import os
import stat

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    GatherError,
    LedgerLocked,
)

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-02T00:00:00Z"
T2 = "2026-01-03T00:00:00Z"

RANGE = {"id": "region1@0x10000+0x1000", "region": "region1", "namespace": "namespace1.0",
         "blockdev": "pmem1", "length": 4096, "area": "data", "blockdev_offset": 0,
         "filesystem": {"device": "/dev/pmem1", "mountpoint": "/mnt/p", "fstype": "xfs",
                        "dax": True, "offset": 0}}
FILE_OWNER = {"kind": "file", "range_id": RANGE["id"], "device": "/dev/pmem1",
              "mountpoint": "/mnt/p", "fstype": "xfs", "inode": 131, "generation": 7,
              "paths": ["/mnt/p/a"], "file_offset": 8192, "length": 4096,
              "repair_offset": 8192, "repair_length": 4096, "shared": False, "attr_fork": False}
META_OWNER = {"kind": "metadata", "range_id": RANGE["id"], "device": "/dev/pmem1",
              "metadata_kind": "log", "inode": None, "file_offset": None}


def results(*owners):
    return [{"range_id": RANGE["id"], "owners": list(owners), "error": None}]


def test_entry_id_file_and_non_file():
    assert L.entry_id(RANGE["id"], FILE_OWNER) == "region1@0x10000+0x1000|/dev/pmem1|ino=131|off=8192"
    assert L.entry_id(RANGE["id"], META_OWNER) == \
        "region1@0x10000+0x1000|/dev/pmem1|ino=metadata:log|off=-"
    assert L.entry_id("r", {"kind": "free"}) == "r|-|ino=free|off=-"


@given(inode=st.integers(0, 2 ** 64), off=st.integers(0, 2 ** 62), dev=st.text(min_size=1))
def test_entry_id_is_stable_and_injective_in_inode_offset(inode, off, dev):
    a = dict(FILE_OWNER, inode=inode, file_offset=off, device=dev)
    assert L.entry_id("r", a) == L.entry_id("r", dict(a, paths=["/other"]))
    assert L.entry_id("r", a) != L.entry_id("r", dict(a, inode=inode + 1))
    assert L.entry_id("r", a) != L.entry_id("r", dict(a, file_offset=off + 1))


def test_merge_new_entries_and_idempotent():
    led = L.empty_ledger("h")
    new, changes = L.merge_detections(led, results(FILE_OWNER, META_OWNER), [RANGE], at=T0)
    assert [c["change"] for c in changes] == ["new", "new"]
    assert len(new["entries"]) == 2
    e = new["entries"][0]
    assert e["state"] == "open" and e["closure"] is None
    assert [h["event"] for h in e["history"]] == ["detected", "resolved"]
    assert e["range"]["filesystem"]["mountpoint"] == "/mnt/p"
    assert led["entries"] == []  # input untouched
    again, changes2 = L.merge_detections(new, results(FILE_OWNER, META_OWNER), [RANGE], at=T1)
    assert changes2 == [] and again == new


def test_merge_owner_change_appends_resolved():
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER), [RANGE], at=T0)
    moved = dict(FILE_OWNER, paths=["/mnt/p/b"])
    new2, changes = L.merge_detections(new, results(moved), [RANGE], at=T1)
    assert changes[0]["change"] == "updated" and "paths" in changes[0]["reason"]
    e = new2["entries"][0]
    assert e["owner"]["paths"] == ["/mnt/p/b"]
    assert e["history"][-1]["event"] == "resolved"
    assert e["history"][-1]["details"]["changed"]["paths"]["old"] == ["/mnt/p/a"]


def test_merge_inode_reused_by_another_file_keeps_the_record():
    # ext4 hands a deleted file's inode number to the next file made: same entry id, another
    # generation. The entry keeps the file it recorded (the write guard then refuses the new
    # one), and its history names the newcomer once.
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(dict(FILE_OWNER, size=20000)), [RANGE], at=T0)
    other = dict(FILE_OWNER, generation=8, paths=["/mnt/p/a"])
    new2, changes = L.merge_detections(new, results(other), [RANGE], at=T1)
    e = new2["entries"][0]
    assert e["owner"] == dict(FILE_OWNER, size=20000)
    assert changes[0]["change"] == "updated" and "another file" in changes[0]["reason"]
    assert e["history"][-1]["details"]["inode_reused"]["generation"] == 8
    again, changes2 = L.merge_detections(new2, results(other), [RANGE], at=T2)
    assert changes2 == [] and again == new2


def test_merge_owner_change_keeps_the_recorded_size():
    # pmem_quarantine records the size the write guard holds the file to; a fresh resolve that
    # sees one hard link fewer must not drop it (a truncated file would then be written)
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(dict(FILE_OWNER, size=20000)), [RANGE], at=T0)
    fewer = dict(FILE_OWNER, paths=["/mnt/p/b"])
    new2, changes = L.merge_detections(new, results(fewer), [RANGE], at=T1)
    assert changes[0]["change"] == "updated"
    assert new2["entries"][0]["owner"]["paths"] == ["/mnt/p/b"]
    assert new2["entries"][0]["owner"]["size"] == 20000


def test_failed_resolution_is_recorded_as_unknown():
    new, changes = L.merge_detections(
        L.empty_ledger("h"), [{"range_id": "r", "owners": [], "error": "btrfs"}], at=T0)
    assert new["entries"][0]["owner"]["kind"] == "unknown"
    assert new["entries"][0]["owner"]["reason"] == "btrfs"


def _closed_restored():
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER), [RANGE], at=T0)
    e = new["entries"][0]
    e = L.apply_event(e, "clear_planned", T1, {"method": "rewrite"})
    e = L.apply_event(e, "cleared", T1, {"verified": True})
    e = L.close_entry(e, "restored", T1, by="pmem_clear", source="/b/a", sha256="ab")
    return L.replace_entry(new, e)


def test_close_and_reopen_after_verified_clear():
    led = _closed_restored()
    e = led["entries"][0]
    assert e["state"] == "closed" and e["closure"]["how"] == "restored"
    assert e["closure"]["sha256"] == "ab"
    reopened, changes = L.merge_detections(led, results(FILE_OWNER), [RANGE], at=T2)
    assert changes[0]["change"] == "reopened"
    r = reopened["entries"][0]
    assert r["state"] == "open" and r["closure"] is None
    last = r["history"][-1]
    assert last["event"] == "detected" and last["details"]["reopened"] is True
    assert last["details"]["previous_closure"]["how"] == "restored"
    # history is append-only
    assert r["history"][:len(e["history"])] == e["history"]


def test_accepted_loss_with_poison_still_listed_stays_closed():
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER), [RANGE], at=T0)
    e = L.close_entry(new["entries"][0], "accepted_lost", T1, by="ops", why="scratch data")
    led = L.replace_entry(new, e)
    again, changes = L.merge_detections(led, results(FILE_OWNER), [RANGE], at=T2)
    assert changes == [] and again == led


def test_transitions_refused():
    led = _closed_restored()
    e = led["entries"][0]
    with pytest.raises(L.TransitionError):
        L.close_entry(e, "accepted_lost", T2)
    assert L.close_entry(e, "restored", T2) == e  # same closure: no-op
    with pytest.raises(L.TransitionError):
        L.apply_event(e, "quarantined", T2)
    with pytest.raises(L.TransitionError):
        L.apply_event(e, "restored", T2)
    with pytest.raises(L.TransitionError):
        L.close_entry(L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER), at=T0)[0]
                      ["entries"][0], "not_file_data_cleared")
    with pytest.raises(ValueError):
        L.apply_event(e, "bogus", T2)
    # closed entries accept release and clears
    assert L.apply_event(e, "released", T2)["history"][-1]["event"] == "released"


EVENT_SEQ = st.lists(st.sampled_from(L.EVENTS + ("close_restored", "close_lost")), max_size=20)


@settings(max_examples=200)
@given(EVENT_SEQ)
def test_history_only_grows_and_closure_consistent(seq):
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER), [RANGE], at=T0)
    e = new["entries"][0]
    for ev in seq:
        before = e
        try:
            if ev == "close_restored":
                e = L.close_entry(e, "restored", T1)
            elif ev == "close_lost":
                e = L.close_entry(e, "accepted_lost", T1)
            else:
                e = L.apply_event(e, ev, T1)
        except L.TransitionError:
            assert e == before
            continue
        assert e["history"][:len(before["history"])] == before["history"]
        assert (e["state"] == "closed") == (e["closure"] is not None)
        assert L.validate(L.replace_entry(new, e))


def test_validate_rejects():
    for bad in ([], {"schema": "1", "entries": []}, {"schema": 1},
                {"schema": 1, "entries": [{"id": "a", "state": "x", "history": []}]},
                {"schema": 1, "entries": [{"id": "a", "state": "open", "history": []}] * 2}):
        with pytest.raises(GatherError):
            L.validate(bad)
    with pytest.raises(GatherError, match="upgrade"):
        L.validate({"schema": 99, "entries": []})


# ---------------------------------------------------------------------------- I/O


def test_read_open_entries_absent_and_corrupt(tmp_path):
    p = str(tmp_path / "x" / "ledger.json")
    assert L.read_open_entries(p) == []
    os.makedirs(os.path.dirname(p))
    with open(p, "w") as f:
        f.write("{not json")
    with pytest.raises(GatherError, match="corrupt"):
        L.read_open_entries(p)
    os.chmod(p, 0)
    if os.geteuid() != 0:
        with pytest.raises(GatherError, match="cannot read"):
            L.read_open_entries(p)


def test_save_load_modes_and_open_entries(tmp_path):
    p = str(tmp_path / "state" / "ledger.json")
    led = L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER, META_OWNER), [RANGE], T0)[0]
    L.save(p, led)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(p)).st_mode) == 0o700
    assert L.load(p) == led
    assert len(L.read_open_entries(p)) == 2
    assert [f for f in os.listdir(os.path.dirname(p)) if f.endswith(".tmp")] == []
    with open(p) as f:
        assert json.load(f)["schema"] == L.SCHEMA


def test_save_refuses_invalid_and_keeps_old(tmp_path):
    p = str(tmp_path / "ledger.json")
    L.save(p, L.empty_ledger("h"))
    raw = open(p, "rb").read()
    with pytest.raises(GatherError):
        L.save(p, {"schema": 1, "entries": "nope"})
    assert open(p, "rb").read() == raw


def test_store_commit_only_when_changed(tmp_path):
    p = str(tmp_path / "ledger.json")
    with L.LedgerStore(p, timeout=1, host="h") as s:
        assert s.commit() is False
        assert not os.path.exists(p)
        s.data = L.merge_detections(s.data, results(FILE_OWNER), [RANGE], T0)[0]
        assert s.commit() is True and s.commit() is False
        d = s.diff()
        assert d["before"] != d["after"]
    assert open(os.path.join(str(tmp_path), "ledger.lock")).read() == ""


def test_store_readonly_creates_nothing(tmp_path):
    p = str(tmp_path / "sub" / "ledger.json")
    with L.LedgerStore(p, readonly=True, host="h") as s:
        s.data = L.merge_detections(s.data, results(FILE_OWNER), [RANGE], T0)[0]
        assert s.commit() is False
    assert not os.path.exists(os.path.dirname(p))


def _hold(path, ready, go):
    with L.LedgerStore(path, timeout=1):
        ready.set()
        go.wait(10)


def test_lock_timeout_names_holder(tmp_path):
    p = str(tmp_path / "ledger.json")
    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(p, ready, go))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LedgerLocked) as exc:
            with L.LedgerStore(p, timeout=0.3):
                pass
        assert "pid %d" % proc.pid in str(exc.value)
    finally:
        go.set()
        proc.join(10)
    with L.LedgerStore(p, timeout=1):
        pass


def test_stale_temp_files_removed_under_lock(tmp_path):
    p = str(tmp_path / "ledger.json")
    stale = tmp_path / ".ledger.abc.tmp"
    stale.write_text("{")
    with L.LedgerStore(p, timeout=1):
        pass
    assert not stale.exists()


MF_EVENT = {"source": "memory_failure", "key": "memory_failure:boot1:0x40010", "address": 0x40010000,
            "length": 4096}
MF_RANGE = dict(RANGE, sources=["memory_failure"], events=[MF_EVENT])


def _closed_after_memory_failure():
    new, _changes = L.merge_detections(L.empty_ledger("h"), results(FILE_OWNER), [MF_RANGE], at=T0)
    e = new["entries"][0]
    assert e["history"][0]["details"]["events"] == [MF_EVENT["key"]]
    e = L.apply_event(e, "clear_planned", T1, {"method": "rewrite"})
    e = L.apply_event(e, "cleared", T1, {"verified": True})
    e = L.close_entry(e, "restored", T1, by="pmem_clear", source="/b/a", sha256="ab")
    return L.replace_entry(new, e)


def test_the_same_kernel_log_record_read_again_does_not_reopen_a_restored_entry():
    # the kernel log keeps the record until it rotates: every later run reads it again
    led = _closed_after_memory_failure()
    again, changes = L.merge_detections(led, results(FILE_OWNER), [MF_RANGE], at=T2)
    assert changes == [] and again == led


def test_a_new_record_for_the_same_range_reopens_it():
    led = _closed_after_memory_failure()
    later = dict(MF_EVENT, key="memory_failure:boot2:0x40010")
    again, changes = L.merge_detections(led, results(FILE_OWNER), [dict(MF_RANGE, events=[MF_EVENT, later])], at=T2)
    assert [c["change"] for c in changes] == ["reopened"]
    last = again["entries"][0]["history"][-1]
    assert last["details"]["reopened"] is True and last["details"]["events"] == [later["key"]]


def test_a_listed_range_after_a_record_reopens_it():
    led = _closed_after_memory_failure()
    listed = dict(MF_RANGE, sources=["blockdev", "memory_failure"])
    _again, changes = L.merge_detections(led, results(FILE_OWNER), [listed], at=T2)
    assert [c["change"] for c in changes] == ["reopened"]


def test_a_ledger_nested_past_the_parser_stack_is_corrupt_not_an_internal_error(tmp_path):
    # json raises RecursionError, which escaped as "internal error ... report the task's
    # input" in every module and made pmem_badblocks fail instead of reporting the ledger
    path = tmp_path / "ledger.json"
    path.write_text("[" * 100000 + "]" * 100000)
    path.chmod(0o600)
    with pytest.raises(GatherError) as info:
        L.read_open_entries(str(path))
    assert "corrupt" in str(info.value)
