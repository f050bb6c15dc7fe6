# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest
from hypothesis import given, strategies as st

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import plan as P


def brange(fstype="xfs", dax=True, mounted=True, rid="region1@0x10000+0x1000", area="data"):
    return {"id": rid, "region": "region1", "namespace": "namespace1.0", "blockdev": "pmem1",
            "length": 4096, "area": area, "blockdev_offset": 65536,
            "filesystem": {"device": "/dev/pmem1", "mountpoint": "/mnt/p", "fstype": fstype,
                           "dax": dax, "offset": 65536} if mounted else None}


def fowner(rid="region1@0x10000+0x1000", path="/mnt/p/db/a", fstype="xfs"):
    return {"kind": "file", "range_id": rid, "device": "/dev/pmem1", "mountpoint": "/mnt/p",
            "fstype": fstype, "inode": 131, "generation": 1, "paths": [path],
            "file_offset": 8192, "length": 4096, "repair_offset": 8192, "repair_length": 4096,
            "shared": False, "attr_fork": False}


E820 = {"kernel": "6.1.0-18-amd64",
        "devices": {"pmem1": {"bus_kind": "e820", "write_clears": True, "ndctl_clear": False,
                              "description": "e820 legacy pmem"}}}
QEMU = {"kernel": "6.1.0", "devices": {"pmem1": {"bus_kind": "acpi_nfit", "write_clears": False,
                                                 "ndctl_clear": False,
                                                 "description": "QEMU NFIT nvdimm (no DSMs)"}}}


def run(br, owner, policy=None, caps=None, ledger=None):
    caps = E820 if caps is None else caps
    facts = {"bad_ranges": [br] if br else []}
    res = [{"range_id": owner["range_id"], "owners": [owner], "error": None}] if br else []
    return P.plan_actions(facts, res, ledger or L.empty_ledger("h"), policy, caps)


def kinds(actions):
    return [a["action"] for a in actions]


def test_file_with_source_rewrites():
    acts = run(brange(), fowner(), {"restore_sources": {"/mnt/p/db/*": "/backup/db"}})
    assert kinds(acts) == ["record", "quarantine", "rewrite"]
    rw = acts[-1]
    assert rw["source"] == "/backup/db/a" and rw["offset"] == 8192 and rw["length"] == 4096
    assert rw["device"] == "/dev/pmem1"


def test_find_source_exact_and_glob():
    srcs = {"/mnt/p/x": "/b/x.good", "/mnt/p/db/**": "/backup/db"}
    assert P.find_source("/mnt/p/x", srcs) == "/b/x.good"
    assert P.find_source("/mnt/p/db/sub/f", srcs) == "/backup/db/sub/f"
    assert P.find_source("/mnt/q/y", srcs) is None


def test_file_without_source_left_open():
    acts = run(brange(), fowner(), {"containment": ["chmod"]})
    assert kinds(acts) == ["record", "record", "quarantine", "contain"]
    assert "left open" in acts[1]["reason"]
    assert acts[3]["method"] == "chmod"


def test_accepted_loss_rewrites_zeros():
    acts = run(brange(), fowner(), {"accepted_loss": ["/mnt/p/db/*"]})
    assert kinds(acts) == ["record", "quarantine", "accept_loss", "rewrite"]
    assert acts[-1]["source"] == P.ZEROS


def test_metadata_offline_required_fails_host():
    owner = {"kind": "metadata", "range_id": brange()["id"], "device": "/dev/pmem1",
             "fstype": "xfs", "mountpoint": "/mnt/p", "metadata_kind": "agf"}
    acts = run(brange(), owner)
    assert kinds(acts) == ["record", "offline_required"]
    off = acts[-1]
    assert off["fail_host"] and any("xfs_repair" in s for s in off["steps"])
    s = P.summarize(acts)
    assert s["failed"] and "xfs_repair" in s["msg"] and "agf" in s["msg"]


def test_metadata_of_an_inode_names_its_path_and_inode():
    """A poisoned directory block: the host's failure message says which directory (the operator
    must know what xfs_repair may rebuild), not only the device and range (lab: molecule/owners)."""
    owner = {"kind": "metadata", "range_id": brange()["id"], "device": "/dev/pmem1",
             "fstype": "xfs", "mountpoint": "/mnt/p", "metadata_kind": "directory",
             "inode": 262272, "paths": ["/mnt/p/dir"]}
    acts = run(brange(), owner)
    assert kinds(acts) == ["record", "offline_required"]
    msg = P.summarize(acts)["msg"]
    assert "directory /mnt/p/dir (inode 262272)" in msg, msg


def test_free_space_mounted_left_for_offline():
    owner = {"kind": "free", "range_id": brange()["id"], "device": "/dev/pmem1"}
    acts = run(brange(), owner)
    assert kinds(acts) == ["record", "offline_required"]
    assert not acts[-1]["fail_host"] and "offline window" in acts[-1]["reason"]


def test_free_space_unmounted_device_write_or_refuse():
    owner = {"kind": "free", "range_id": brange()["id"], "device": "/dev/pmem1"}
    # without the offline-window opt-in: an offline plan, never a device write
    acts = run(brange(mounted=False), owner)
    assert kinds(acts)[-1] == "offline_required" and acts[-1]["offline_window"] is False
    assert "offline_window_allowed" in acts[-1]["reason"]
    window = {"offline_window_allowed": True}
    acts = run(brange(mounted=False), owner, policy=window)
    assert kinds(acts)[-1] == "device_write" and acts[-1]["offset"] == 65536
    acts = run(brange(mounted=False), owner, caps=QEMU, policy=window)
    assert kinds(acts)[-1] == "refuse" and "QEMU" in acts[-1]["reason"]


def test_info_block_offline():
    owner = {"kind": "info_block", "range_id": brange()["id"]}
    acts = run(brange(area="info_block", mounted=False), owner)
    assert kinds(acts)[-1] == "offline_required"


def test_qemu_nvdimm_refuses_rewrite_naming_device():
    acts = run(brange(), fowner(), {"restore_sources": {"/mnt/p/db/a": "/b/a"}}, caps=QEMU)
    ref = acts[-1]
    assert ref["action"] == "refuse" and "QEMU NFIT" in ref["reason"]
    assert ref["device"] == "/dev/pmem1" and ref["range_id"] and ref["next_step"]


def test_reallocate_matrix():
    pol = {"method": {"file": "reallocate"}}
    ext4 = run(brange("ext4"), fowner(fstype="ext4"), pol)
    assert ext4[-1]["action"] == "reallocate" and ext4[-1]["poison_may_remain"]
    assert "ext4 with DAX" in ext4[-1]["reason"]
    caps = copy.deepcopy(E820)
    caps["devices"]["pmem1"]["write_clears"] = None
    xfs = run(brange("xfs"), fowner(), pol, caps)
    assert xfs[-1]["action"] == "refuse" and "shut the filesystem down" in xfs[-1]["reason"]


def test_old_kernel_dax_refused():
    caps = dict(E820, kernel="5.10.0")
    acts = run(brange(), fowner(), {"restore_sources": {"/mnt/p/db/a": "/b/a"}}, caps)
    assert acts[-1]["action"] == "refuse" and "5.19" in acts[-1]["reason"]


def test_open_ledger_entry_without_listing_still_restored():
    pol = {"restore_sources": {"/mnt/p/db/a": "/b/a"}}
    led = L.merge_detections(L.empty_ledger("h"),
                             [{"range_id": brange()["id"], "owners": [fowner()]}], [brange()],
                             at="t")[0]
    led["entries"][0] = L.apply_event(led["entries"][0], "quarantined", "t")
    acts = P.plan_actions({"bad_ranges": []}, [], led, pol, E820)
    assert kinds(acts) == ["rewrite"]


def test_closed_restored_not_listed_is_quiet():
    led = L.merge_detections(L.empty_ledger("h"),
                             [{"range_id": brange()["id"], "owners": [fowner()]}], [brange()],
                             at="t")[0]
    e = L.apply_event(led["entries"][0], "cleared", "t")
    led = L.replace_entry(led, L.close_entry(e, "restored", "t"))
    assert P.plan_actions({"bad_ranges": []}, [], led, None, E820) == []


def test_bad_policy():
    with pytest.raises(ValueError, match="method.file"):
        P.normalize_policy({"method": {"file": "magic"}})
    with pytest.raises(ValueError, match="containment"):
        P.normalize_policy({"containment": ["burn"]})


@given(fstype=st.sampled_from(["xfs", "ext4"]), dax=st.booleans(),
       method=st.sampled_from(P.FILE_METHODS), src=st.booleans(), accepted=st.booleans(),
       caps=st.sampled_from([E820, QEMU, {}]))
def test_plan_is_pure_and_safe(fstype, dax, method, src, accepted, caps):
    pol = {"method": {"file": method},
           "restore_sources": {"/mnt/p/db/a": "/b/a"} if src else {},
           "accepted_loss": ["/mnt/p/db/a"] if accepted else []}
    led = L.empty_ledger("h")
    before = copy.deepcopy((pol, led, caps))
    acts = run(brange(fstype, dax), fowner(fstype=fstype), pol, caps, led)
    assert copy.deepcopy((pol, led, caps)) == before
    assert acts == run(brange(fstype, dax), fowner(fstype=fstype), pol, caps, led)
    for a in acts:
        assert a["action"] in P.ACTIONS
        if a["action"] == "rewrite" and a["source"] == P.ZEROS:
            assert accepted  # zeros only over accepted loss
        if a["action"] in ("rewrite", "reallocate"):
            assert caps.get("devices", {}).get("pmem1", {}).get("write_clears") is not False


def test_dax_write_cannot_clear_refused():
    caps = copy.deepcopy(E820)
    caps["devices"]["pmem1"]["dax_write_clears"] = False
    acts = run(brange(), fowner(), {"restore_sources": {"/mnt/p/db/a": "/b/a"}}, caps)
    assert acts[-1]["action"] == "refuse" and "without dax" in acts[-1]["next_step"]
    acts = run(brange(dax=False), fowner(), {"restore_sources": {"/mnt/p/db/a": "/b/a"}}, caps)
    assert acts[-1]["action"] == "rewrite"


def test_raw_namespace_accepted_by_device_path_then_ndctl():
    """Raw namespace data: left open unless accepted; accepted_loss may name the device path
    (or a glob over it); then accept_loss comes before the clear."""
    nfit = {"kernel": "6.1.0", "devices": {"pmem1": {"bus_kind": "nfit_test",
                                                     "write_clears": True, "ndctl_clear": True}}}
    owner = {"kind": "raw", "range_id": brange()["id"], "device": "/dev/pmem1"}
    acts = run(brange(mounted=False), owner, caps=nfit, policy={"method": {"raw": "ndctl"}})
    assert kinds(acts)[-1] == "record"
    for item in ("/dev/pmem1", "/dev/pmem*", L.entry_id(owner["range_id"], owner)):
        acts = run(brange(mounted=False), owner, caps=nfit,
                   policy={"method": {"raw": "ndctl"}, "accepted_loss": [item],
                           "offline_window_allowed": True})
        assert kinds(acts)[-2:] == ["accept_loss", "ndctl_clear"], (item, kinds(acts))
        assert acts[-1]["namespace"] == "namespace1.0"


def test_shared_owner_is_unshared_not_rewritten_in_place():
    """A reflinked page on DAX cannot be rewritten in place (6.1 copies the poisoned block
    first): the plan restores the owner into a fresh block, on any bus."""
    owner = dict(fowner(), shared=True)
    acts = run(brange(), owner, {"restore_sources": {"/mnt/p/db/a": "/b/a"}})
    assert acts[-1]["action"] == "rewrite" and acts[-1]["method"] == "unshare"
    assert "fresh block" in acts[-1]["reason"] and acts[-1]["source"] == "/b/a"
    qemu = run(brange(), owner, {"restore_sources": {"/mnt/p/db/a": "/b/a"}}, caps=QEMU)
    assert qemu[-1]["method"] == "unshare"  # needs no clear from the device


def test_describe_says_what_check_mode_would_do():
    acts = run(brange(), fowner(), {"restore_sources": {"/mnt/p/db/a": "/b/a"},
                                    "containment": ["chmod"]})
    text = P.describe(acts, check=True)
    assert text.startswith("would: ") and "rewrite /mnt/p/db/a from /b/a" in text
    assert "mark 1 file(s)" in text and "contain 1" in text
    free = run(brange(mounted=False), {"kind": "free", "range_id": brange()["id"],
                                       "device": "/dev/pmem1"})
    assert "need an offline window" in P.describe(free)


def test_describe_counts_entries_not_actions():
    """Two new files with no restore copy: each is recorded (new) and left open (record again),
    and the summary an operator reads says two records, not four."""
    facts = {"bad_ranges": [brange(rid="region1@0x10000+0x1000"), brange(rid="region1@0x20000+0x1000")]}
    res = [{"range_id": r["id"], "owners": [fowner(rid=r["id"], path="/mnt/p/f%d" % n)], "error": None}
           for n, r in enumerate(facts["bad_ranges"])]
    acts = P.plan_actions(facts, res, L.empty_ledger("h"), None, E820)
    assert kinds(acts).count("record") == 4
    text = P.describe(acts, check=True)
    assert "record 2" in text and "mark 2 file(s)" in text, text
