# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report logic (plugin_utils.report): what an operator reads in the fleet report."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pmem.poison.plugins.plugin_utils.report import (
    ReportInputError, entry_sources, fleet_summary, host_summary)

EID_FILE = "region1@0x10000+0x1000|/dev/pmem1|ino=131|off=8192"
EID_FREE = "region1@0x90000+0x1000|/dev/pmem1|ino=free|off=-"
EID_META = "region1@0x20000+0x1000|/dev/pmem1|ino=metadata:log|off=-"


def file_entry(eid=EID_FILE, path="/mnt/p/db/a", length=4096):
    return {"id": eid, "state": "open", "range": {"id": eid.split("|")[0], "length": 4096},
            "owner": {"kind": "file", "paths": [path], "file_offset": 8192, "length": length}}


def free_entry(eid=EID_FREE):
    return {"id": eid, "state": "open", "range": {"id": eid.split("|")[0]},
            "owner": {"kind": "free", "length": 4096}}


def brange(rid="region1@0x10000+0x1000"):
    return {"id": rid, "length": 4096, "software_only": True}


def test_clean_host_is_clean():
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": [], "clean": True}}, "h")
    assert s["clean"] is True
    assert s["status"] == "clean"
    assert s["open_entries"] == [] and s["lost_bytes"] == 0


def test_open_entry_without_listed_range_is_not_clean():
    """After a reboot the software badblocks are gone; the lost data is not back."""
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": [file_entry()]}}, "h")
    assert s["clean"] is False
    assert s["status"] == "needs_decision"
    assert [e["paths"] for e in s["needs_decision"]] == [["/mnt/p/db/a"]]
    assert s["lost_bytes"] == 4096


def test_facts_not_clean_wins():
    """pmem_badblocks says not clean (e.g. the ledger is unreadable): never report clean."""
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": [], "clean": False,
                                "errors": [{"msg": "ledger corrupt"}]}}, "h")
    assert s["clean"] is False
    assert s["status"] != "clean"
    assert s["scan_errors"] == [{"msg": "ledger corrupt"}]


def test_listed_range_not_yet_recorded_is_not_clean():
    """scan mode: owners found by pmem_resolve but no ledger yet still count as open."""
    s = host_summary({
        "facts": {"bad_ranges": [brange()], "open_entries": []},
        "resolve": {"results": [{"range_id": "region1@0x10000+0x1000", "error": None, "owners": [
            {"kind": "file", "device": "/dev/pmem1", "inode": 131, "paths": ["/mnt/p/x"],
             "file_offset": 8192, "length": 4096}]}]},
        "check_mode": True}, "h")
    assert not s["clean"]
    assert s["open_entries"][0]["id"] == EID_FILE
    assert s["open_entries"][0]["paths"] == ["/mnt/p/x"]
    assert s["software_only_ranges"] == 1


def test_cleared_file_and_offline_free_space():
    s = host_summary({
        "facts": {"bad_ranges": [brange(), brange("region1@0x90000+0x1000")],
                  "open_entries": [file_entry(), free_entry()]},
        "quarantine": {"entries": [{"entry_id": EID_FILE, "marked": ["/mnt/p/db/a"], "skipped": []}]},
        "clear": {
            "open_entries": [EID_FREE],
            "plan": [
                {"entry_id": EID_FILE, "action": "rewrite", "source": "/golden/a"},
                {"entry_id": EID_FREE, "action": "offline_required", "reason": "free space on a mounted fs",
                 "steps": ["unmount /mnt/p", "pmem_clear method=device_write on /dev/pmem1", "mount again"],
                 "offline_window": False}],
            "results": [
                {"entry_id": EID_FILE, "action": "rewrite", "status": "cleared", "error": None,
                 "details": {"method": "rewrite", "path": "/mnt/p/db/a", "length": 4096,
                             "source": "/golden/a", "sha256": "ab" * 32, "verified": True}}]}}, "h")
    assert [c["id"] for c in s["cleared"]] == [EID_FILE]
    assert s["cleared"][0]["source"] == "/golden/a"
    assert s["cleared"][0]["sha256"] == "ab" * 32
    assert [e["id"] for e in s["needs_offline_window"]] == [EID_FREE]
    assert s["needs_offline_window"][0]["steps"][0] == "unmount /mnt/p"
    assert s["offline_plan"][0]["id"] == EID_FREE
    assert s["needs_decision"] == []
    assert s["status"] == "needs_offline_window"
    assert s["lost_bytes"] == 0  # free space holds no file data


def test_failed_clear_is_not_counted_cleared():
    s = host_summary({
        "facts": {"bad_ranges": [brange()], "open_entries": [file_entry()]},
        "clear": {"open_entries": [EID_FILE], "failed": True, "results": [
            {"entry_id": EID_FILE, "action": "rewrite", "status": "failed", "error": "rewrite failed: EIO",
             "details": {"method": "rewrite"}}]}}, "h")
    assert s["cleared"] == []
    assert s["needs_retry"][0]["reason"] == "rewrite failed: EIO"
    assert not s["clean"]


def test_reallocated_file_needs_offline_window():
    s = host_summary({"facts": {"bad_ranges": [brange()], "open_entries": [file_entry()]}, "clear": {
        "open_entries": [EID_FILE],
        "plan": [{"entry_id": EID_FILE, "action": "reallocate", "poison_may_remain": True}],
        "results": [{"entry_id": EID_FILE, "action": "reallocate", "status": "failed", "error": None,
                     "details": {"poison_remains_in_free_space": True}}]}}, "h")
    assert [e["id"] for e in s["needs_offline_window"]] == [EID_FILE]


def test_metadata_without_clear_result_needs_offline_window():
    meta = {"id": EID_META, "state": "open", "owner": {"kind": "metadata", "metadata_kind": "log"}}
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": [meta]}}, "h")
    assert s["needs_offline_window"][0]["range_id"] == "region1@0x20000+0x1000"


def test_failure_makes_host_failed():
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": []},
                      "failure": {"task": "clear", "msg": "metadata"}}, "h")
    assert s["status"] == "failed" and not s["clean"]


def test_closed_entries_are_not_open():
    closed = dict(file_entry(), state="closed")
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": [closed]}}, "h")
    assert s["clean"]


def test_truncated_lists_are_flagged():
    s = host_summary({"facts": {"bad_ranges": [brange()],
                                "capabilities": {"lists_may_be_truncated": True}}}, "h")
    assert s["lists_may_be_truncated"] is True


def test_skipped_module_results_are_ignored():
    s = host_summary({"facts": {"bad_ranges": [], "open_entries": []},
                      "resolve": {"skipped": True, "changed": False},
                      "clear": {"skipped": True}}, "h")
    assert s["status"] == "clean"


def test_host_summary_rejects_non_dict():
    with pytest.raises(ReportInputError):
        host_summary(["nope"], "h")


def fleet():
    return {
        "clean1": host_summary({"facts": {"bad_ranges": [], "open_entries": []}}, "clean1"),
        "dirty1": host_summary({"facts": {"bad_ranges": [], "open_entries": [file_entry()]}}, "dirty1"),
        "free1": host_summary({"facts": {"bad_ranges": [brange("region1@0x90000+0x1000")],
                                         "open_entries": [free_entry()]}}, "free1"),
        "gone1": {},
    }


def test_fleet_counts_hosts_by_state():
    f = fleet_summary(fleet(), "2026-11-21T00:00:00Z")
    assert f["hosts_clean"] == ["clean1"]
    assert f["totals"]["clean"] == 1
    assert f["totals"]["hosts"] == 4
    assert f["hosts_needing_decision"] == ["dirty1"]
    assert f["hosts_needing_offline_window"] == ["free1"]
    assert f["hosts_not_run"] == ["gone1"]
    assert f["all_clean"] is False
    assert f["open_by_kind"] == {"file": 1, "free": 1}
    assert f["totals"]["lost_bytes"] == 4096
    assert f["decisions"][0]["host"] == "dirty1"
    assert f["offline_window"][0]["host"] == "free1"
    assert [h["host"] for h in f["hosts"]] == ["clean1", "dirty1", "free1", "gone1"]


def test_fleet_all_clean_only_when_every_host_is():
    f = fleet_summary({"a": host_summary({"facts": {}}, "a")})
    assert f["all_clean"] is True
    assert fleet_summary({})["all_clean"] is False  # no host is no evidence


def test_fleet_accepts_a_list():
    f = fleet_summary([host_summary({"facts": {}}, "b"), host_summary({"facts": {}}, "a")])
    assert [h["host"] for h in f["hosts"]] == ["a", "b"]


def test_fleet_rejects_garbage():
    with pytest.raises(ReportInputError):
        fleet_summary("nope")


def test_entry_sources_maps_entry_to_path_and_reports_missing():
    out = entry_sources([file_entry(), free_entry()],
                        {EID_FILE: "/golden/a", EID_FREE: "/x", "nope": "/y"})
    assert out["sources"] == {"/mnt/p/db/a": "/golden/a"}
    assert out["missing"] == sorted([EID_FREE, "nope"])  # free space is not a file to restore


def test_real_module_shapes_clear_open_entries_are_ids():
    """pmem_clear returns open_entries as ids and results as {entry_id, action, status, error}."""
    resolve = {"results": [
        {"range_id": "region1@0x10000+0x1000", "error": None, "owners": [
            {"kind": "file", "device": "/dev/pmem1", "inode": 131, "paths": ["/mnt/p/db/a"],
             "file_offset": 8192, "length": 4096}]},
        {"range_id": "region1@0x90000+0x1000", "error": None, "owners": [
            {"kind": "free", "device": "/dev/pmem1", "length": 4096}]}]}
    clear = {"open_entries": [EID_FREE],
             "plan": [{"entry_id": EID_FREE, "action": "offline_required", "reason": "free space"}],
             "results": [{"entry_id": EID_FILE, "action": "rewrite", "status": "cleared", "error": None,
                          "details": {"source": "/golden/a"}}]}
    s = host_summary({"facts": {"bad_ranges": [brange(), brange("region1@0x90000+0x1000")]},
                      "resolve": resolve, "quarantine": {"entries": []}, "clear": clear}, "h")
    assert [c["path"] for c in s["cleared"]] == ["/mnt/p/db/a"]
    assert s["cleared"][0]["source"] == "/golden/a"
    assert [e["id"] for e in s["open_entries"]] == [EID_FREE]
    assert s["needs_offline_window"][0]["kind"] == "free"
    assert s["lost_bytes"] == 0


def test_entry_known_only_by_id_keeps_its_kind():
    s = host_summary({"facts": {"bad_ranges": []}, "clear": {"open_entries": [EID_META, EID_FILE]}}, "h")
    kinds = dict((e["id"], e["kind"]) for e in s["open_entries"])
    assert kinds == {EID_META: "metadata", EID_FILE: "file"}


def lab_first_run():
    import json
    import os
    path = os.path.join(os.path.dirname(__file__), "fixtures", "lab_stock_first_run.json")
    with open(path) as f:
        return json.load(f)


def test_lab_first_run_real_shapes():
    """Real results of the four modules on a stock lab guest (XFS + ext4 with DAX, a reflinked
    pair, one file with a restore source, an owner GETFSMAP could not name)."""
    data = lab_first_run()
    s = host_summary(dict(data, failure={"task": "Clear what the policy allows and verify",
                                         "msg": data["clear"]["msg"]}), "lab")
    assert s["status"] == "failed"
    assert [c["path"] for c in s["cleared"]] == ["/mnt/pmem-xfs/db/table.dat"]
    assert s["cleared"][0]["source"] == "/srv/backup/db/table.dat" and s["cleared"][0]["verified"]
    paths = sorted(p for e in s["needs_decision"] for p in e["paths"])
    assert paths == ["/mnt/pmem-ext4/scratch/results.bin", "/mnt/pmem-xfs/logs/app.log",
                     "/mnt/pmem-xfs/vm/base.img", "/mnt/pmem-xfs/vm/clone.img"]
    by_path = dict((e["paths"][0], e) for e in s["needs_decision"] if e["paths"])
    assert by_path["/mnt/pmem-xfs/vm/clone.img"]["shared"] is True
    assert by_path["/mnt/pmem-xfs/logs/app.log"]["quarantined"] is True
    assert by_path["/mnt/pmem-xfs/logs/app.log"]["marked"] == ["/mnt/pmem-xfs/logs/app.log"]
    refused = s["refused"]
    assert len(refused) == 1 and refused[0]["kind"] == "unknown"
    assert "resolve the owner" in refused[0]["next_step"]
    assert s["lost_bytes"] == 4 * 4096
    assert s["open_by_kind"] == {"file": 4, "unknown": 1}


def test_lab_second_run_nothing_new():
    """Second converge: the ledger holds the open entries, nothing is marked again."""
    data = lab_first_run()
    facts = dict(data["facts"], open_entries=[
        {"id": eid, "state": "open", "history": [{"event": "quarantined"}],
         "range": {"id": eid.split("|")[0], "length": 4096}}
        for eid in data["clear"]["open_entries"]])
    quarantine = {"changed": False, "entries": [], "recorded": []}
    clear = dict(data["clear"], results=[], changed=False)
    s = host_summary({"facts": facts, "resolve": data["resolve"], "quarantine": quarantine,
                      "clear": clear}, "lab")
    assert s["cleared"] == []
    assert all(e["quarantined"] for e in s["open_entries"])
    assert len(s["open_entries"]) == 5
