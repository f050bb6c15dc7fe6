# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Device names are not identities: the same bytes after a reboot that renamed every device.

The captured stock-layout-poison tree (QEMU NVDIMM region0/pmem0 with a labelled namespace,
e820 region1/pmem1 partitioned into pmem1p1 XFS and pmem1p2 ext4) is renamed the way the lab
measured it (module load order changed): every pmem/region/namespace/pfn/dax/ndbus number 0 <-> 1.
Physical addresses and namespace uuids stay; names move.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import sys

from ansible_collections.pmem.poison.plugins.module_utils._pmem import identity as I
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as R
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as T

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
sys.path.insert(0, FIXTURES)
from loader import fixture_root  # noqa: E402  pylint: disable=wrong-import-position

T0 = "2026-12-01T10:00:00Z"
T1 = "2026-12-01T11:00:00Z"
XFS_UUID = "0f6f3a52-7d1e-4c39-9d55-1a2b3c4d5e6f"
EXT4_UUID = "5a1e7c44-2b9d-4e8f-a0c1-6d7e8f901234"

_NAME = re.compile(r"\b(pmem|region|namespace|pfn|btt|dax|ndbus)(\d+)")


def stock_topology():
    root = fixture_root("stock-layout-poison")
    with open(os.path.join(root, "ndctl-list.json")) as handle:
        ndctl = handle.read()
    return T.gather_topology(sysfs_root=os.path.join(root, "sys"),
                             proc_root=os.path.join(root, "proc"),
                             dev_root=os.path.join(root, "dev"), ndctl=ndctl, as_root=True)


def renamed(topology, swap=(0, 1)):
    """The same machine after a reboot that probed the devices in another order."""
    order = {swap[0]: swap[1], swap[1]: swap[0]}
    text = json.dumps(topology)
    text = _NAME.sub(lambda m: "%s%d" % (m.group(1), order.get(int(m.group(2)), int(m.group(2)))),
                     text)
    return json.loads(text)


def fake_owners(bad_ranges):
    """What pmem_resolve would say: a file owner where a filesystem covers the range, else raw."""
    out = []
    for r in bad_ranges:
        fs = r.get("filesystem")
        if fs:
            owner = {"kind": "file", "range_id": r["id"], "device": fs["device"],
                     "mountpoint": fs["mountpoint"], "fstype": fs["fstype"], "inode": 131,
                     "file_offset": 8192, "length": r["length"], "attr_fork": False,
                     "fs_uuid": XFS_UUID if fs["fstype"] == "xfs" else EXT4_UUID,
                     "paths": [fs["mountpoint"] + "/victim"]}
        else:
            owner = {"kind": "raw", "range_id": r["id"], "device": "/dev/" + (
                r.get("partition") or r.get("blockdev")), "inode": None, "file_offset": None,
                "length": r["length"]}
        out.append({"range_id": r["id"], "owners": [owner], "error": None})
    return out


def test_same_poison_same_ids_after_the_names_moved():
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    before = R.gather_bad_ranges(before_topo)
    after = R.gather_bad_ranges(after_topo)
    assert len(before) == 4
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in before)
    assert all(r["identity"]["stable"] for r in after)
    # the names did move: what was pmem1 (e820) is pmem0 now, and the other way round
    by_id = dict((r["id"], r) for r in after)
    for r in before:
        moved = by_id[r["id"]]
        assert moved["blockdev"] == {"pmem0": "pmem1", "pmem1": "pmem0"}[r["blockdev"]]
        assert (moved["blockdev_offset"], moved["partition_offset"], moved["absolute"]) == (
            r["blockdev_offset"], r["partition_offset"], r["absolute"])


def test_locate_gives_the_names_of_now():
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    for r in R.gather_bad_ranges(before_topo):
        loc = I.locate(r["identity"], after_topo)
        assert loc["present"] is True and loc["moved"] is False
        assert loc["blockdev"] == {"pmem0": "pmem1", "pmem1": "pmem0"}[r["blockdev"]]
        if r["partition"]:
            assert loc["partition"] == r["partition"].replace(r["blockdev"], loc["blockdev"])
        assert (loc["blockdev_offset"], loc["partition_offset"], loc["area"], loc["length"]) == (
            r["blockdev_offset"], r["partition_offset"], r["area"], r["length"])


def test_raw_range_on_a_partition_points_at_the_same_bytes_after_the_rename():
    """The issue's worst case: a raw range recorded on pmem1p2 before the reboot must not be
    written through the device that carries the name pmem1p2 after it."""
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    (ext4_range,) = [r for r in R.gather_bad_ranges(before_topo) if r["partition"] == "pmem1p2"]
    led, _c = L.merge_detections(L.empty_ledger("h"), fake_owners([ext4_range]), [ext4_range],
                                 at=T0)
    (entry,) = led["entries"]
    assert entry["range"]["seen_as"]["partition"] == "pmem1p2"
    loc = I.locate(entry["range"]["identity"], after_topo)
    assert loc["partition"] == "pmem0p2" and loc["partition_offset"] == ext4_range["partition_offset"]
    # and the device now named pmem1p2 is not where those bytes are
    assert after_topo["blockdevs"]["pmem1"]["partitions"].get("pmem1p2") is None


def test_not_present_and_name_only_identities_are_clear_answers():
    topo = stock_topology()
    gone = I.locate({"kind": "namespace_uuid", "namespace_uuid": "00000000-dead-beef-0000-000000000000",
                     "namespace_offset": 0, "length": 4096}, topo)
    assert gone["present"] is False and "not on this host now" in gone["reason"]
    nowhere = I.locate({"kind": "physical", "absolute": 1 << 50, "length": 4096}, topo)
    assert nowhere["present"] is False and "no region covers" in nowhere["reason"]
    names = I.locate({"kind": "name", "length": 4096, "stable": False}, topo)
    assert names["present"] is False and "names move" in names["reason"]
    assert I.locate(None, topo)["present"] is False


def test_listing_again_after_the_rename_adds_no_entry():
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    before = R.gather_bad_ranges(before_topo)
    after = R.gather_bad_ranges(after_topo)
    led, changes = L.merge_detections(L.empty_ledger("h"), fake_owners(before), before, at=T0)
    assert [c["change"] for c in changes] == ["new"] * 4
    # owners seen through the renamed devices (device paths differ, fs uuids do not)
    again, changes = L.merge_detections(led, fake_owners(after), after, at=T1)
    assert [e["id"] for e in again["entries"]] == [e["id"] for e in led["entries"]]
    # no new entry, but each record now names the devices of now (a reader of the ledger is not
    # sent to pmem1 for bytes that are on pmem0), and its history keeps the old names
    assert [c["change"] for c in changes] == ["updated"] * 4
    assert all("device names moved" in c["reason"] for c in changes)
    by_id = dict((r["id"], r) for r in after)
    for entry in again["entries"]:
        now = by_id[entry["range"]["id"]]
        assert (entry["range"]["blockdev"], entry["range"]["partition"]) == (now["blockdev"], now["partition"])
        renamed_event = entry["history"][-1]
        assert renamed_event["event"] == "resolved"
        assert renamed_event["details"]["renamed"]["blockdev"]["new"] == now["blockdev"]
        assert renamed_event["details"]["renamed"]["blockdev"]["old"] != now["blockdev"]
        if entry["owner"]["kind"] == "raw":
            assert entry["owner"]["device"] == "/dev/" + (now["partition"] or now["blockdev"])
    # and listing once more changes nothing
    assert L.merge_detections(again, fake_owners(after), after, at=T1)[1] == []


def _legacy_ledger(bad_ranges):
    """A schema-1 ledger as the previous version wrote it: ids and ranges by device name."""
    entries = []
    for r, res in zip(bad_ranges, fake_owners(bad_ranges)):
        owner = dict(res["owners"][0])
        owner.pop("fs_uuid", None)  # not recorded before
        name_id = "%s@%#x+%#x" % (r["region"], r["region_offset"], r["length"])
        owner["range_id"] = name_id
        rng = dict((k, r.get(k)) for k in L.RANGE_FIELDS)
        rng["id"] = name_id
        entries.append({"id": "%s|%s|ino=%s|off=%s" % (
            name_id, owner["device"], owner["inode"] if owner["inode"] is not None else owner["kind"],
            owner["file_offset"] if owner["file_offset"] is not None else "-"),
            "state": "open", "range": rng, "owner": owner,
            "history": [{"at": T0, "event": "detected", "details": {}}], "closure": None})
    return {"schema": 1, "host": "h", "entries": entries}


def test_migrated_ledger_matches_the_renamed_listing():
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    before = R.gather_bad_ranges(before_topo)
    after = R.gather_bad_ranges(after_topo)
    legacy = _legacy_ledger(before)
    # a root-less entry from the old version: only names; kept, flagged, never matched by name
    legacy["entries"].append({
        "id": "pmem0@0x1000+0x1000|/dev/pmem0|ino=raw|off=-", "state": "open",
        "range": {"id": "pmem0@0x1000+0x1000", "blockdev": "pmem0", "blockdev_offset": 4096,
                  "length": 4096, "absolute": None},
        "owner": {"kind": "raw", "device": "/dev/pmem0"},
        "history": [{"at": T0, "event": "detected", "details": {}}], "closure": None})
    migrated, notes = L.migrate(legacy, topology=after_topo, at=T1)
    assert migrated["schema"] == L.SCHEMA == 2
    assert [n["status"] for n in notes] == ["proven_by_address"] * 4 + ["unproven"]
    assert all(n["present"] for n in notes[:4])
    unproven = migrated["entries"][4]
    assert unproven["range"]["identity"] is None and unproven["state"] == "open"
    assert "names move" in unproven["range"]["identity_note"]
    # each proven entry says where its bytes are now
    first = migrated["entries"][0]
    assert first["range"]["located_as"]["blockdev"] != first["range"]["seen_as"]["blockdev"]

    merged, changes = L.merge_detections(legacy, fake_owners(after), after, at=T1)
    assert [c["change"] for c in changes] == ["rekeyed"] * 4
    assert len(merged["entries"]) == 5  # 4 re-keyed + the unproven one, nothing new, nothing lost
    for old, new in zip(legacy["entries"], merged["entries"]):  # same entries, same order
        assert new["previous_ids"] == [old["id"]] if old["range"]["absolute"] else new["id"] == old["id"]
        assert new["history"][0] == old["history"][0]  # history kept, appended to
        assert new["state"] == old["state"]
    by_id = dict((r["id"], r) for r in after)
    for entry in merged["entries"][:4]:
        r = by_id[entry["id"].split("|")[0]]
        assert entry["range"]["seen_as"]["blockdev"] == r["blockdev"]
        assert entry["range"]["identity"] == r["identity"]
    assert L.resolve_entry_id(merged, legacy["entries"][0]["id"]) is merged["entries"][0]
    # a second listing changes nothing
    _again, changes = L.merge_detections(merged, fake_owners(after), after, at=T1)
    assert changes == []


def test_migration_marks_duplicates_of_one_range_seen_under_two_names():
    """The issue's ledger: the same poison recorded twice (before and after a rename)."""
    before = R.gather_bad_ranges(stock_topology())
    legacy = _legacy_ledger(before[:1])
    twin = copy.deepcopy(legacy["entries"][0])
    twin["id"] = twin["id"].replace("region0@", "region1@")
    twin["range"]["id"] = twin["range"]["id"].replace("region0@", "region1@")
    legacy["entries"].append(twin)
    migrated, notes = L.migrate(legacy, at=T1)
    assert len(migrated["entries"]) == 2
    assert migrated["entries"][1]["duplicate_of"] == legacy["entries"][0]["id"]
    assert notes[-1] == {"entry_id": twin["id"], "status": "duplicate",
                         "duplicate_of": legacy["entries"][0]["id"]}


def test_a_filesystem_recreated_on_the_same_bytes_is_another_owner():
    before = R.gather_bad_ranges(stock_topology())
    led, _c = L.merge_detections(L.empty_ledger("h"), fake_owners(before), before, at=T0)
    res = fake_owners(before)
    for item in res:
        if item["owners"][0].get("fs_uuid"):
            item["owners"][0]["fs_uuid"] = "11111111-2222-3333-4444-555555555555"  # mkfs again
    _new, changes = L.merge_detections(led, res, before, at=T1)
    assert sorted(c["change"] for c in changes) == ["new", "new", "new"]


def test_ids_without_root():
    topo = stock_topology()
    unpriv = copy.deepcopy(topo)
    for region in unpriv["regions"].values():
        region["resource"] = None
    for ns in unpriv["namespaces"].values():
        ns["resource"] = None
        ns["data_start"] = None
        if ns.get("holder"):
            ns["data_offset"] = None
    got = R.gather_bad_ranges(unpriv)
    nvdimm = [r for r in got if r["namespace"] == "namespace0.0"][0]
    # the uuid is readable by anyone: the block-device offset names the bytes
    assert nvdimm["id"].startswith("ns-") and ":data@" in nvdimm["id"]
    assert nvdimm["identity"]["stable"] is True
    e820 = [r for r in got if r["namespace"] == "namespace1.0"]
    assert e820 and all(r["identity"]["stable"] is False and not I.is_stable_id(r["id"])
                        for r in e820)


def test_facts_say_where_open_entries_are_now():
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts as F
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    before = R.gather_bad_ranges(before_topo)
    led, _c = L.merge_detections(L.empty_ledger("h"), fake_owners(before), before, at=T0)
    legacy_name_only = {"id": "pmem0@0x1000+0x1000|/dev/pmem0|ino=raw|off=-", "state": "open",
                        "range": {"id": "pmem0@0x1000+0x1000", "blockdev": "pmem0", "length": 4096}}
    got = F.build_facts(after_topo, R.gather_bad_ranges(after_topo),
                        L.open_entries(led) + [legacy_name_only])
    locs = got["open_entry_locations"]
    for entry in L.open_entries(led):
        seen = entry["range"]["seen_as"]["blockdev"]
        assert locs[entry["id"]]["present"] is True
        assert locs[entry["id"]]["blockdev"] == {"pmem0": "pmem1", "pmem1": "pmem0"}[seen]
    assert locs[legacy_name_only["id"]]["present"] is False
    assert any(legacy_name_only["id"] in w and "names move" in w for w in got["warnings"])


def test_resolve_finds_stale_ranges_by_identity(tmp_path):
    """bad_ranges gathered before a reboot: pmem_resolve uses the names of now, and a range whose
    namespace is gone gets an error instead of another device's owners."""
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O
    before_topo = stock_topology()
    after_topo = renamed(before_topo)
    (raw,) = [r for r in R.gather_bad_ranges(before_topo) if r["namespace"] == "namespace0.0"]
    raw = dict(raw, filesystem=None)  # as if unmounted: resolved through the block device
    seen = []
    real = O._classify

    def spy(t, *args, **kw):
        seen.append((t.rng.get("blockdev"), t.rng.get("namespace")))
        return real(t, *args, **kw)
    import pytest
    mp = pytest.MonkeyPatch()
    mp.setattr(O, "_classify", spy)
    try:
        gone = dict(raw, id="ns-x@0x0+0x1000", identity=dict(raw["identity"], namespace_uuid="gone"))
        res = O.resolve_owners([raw, gone], mounts=[], dev_root=str(tmp_path), topology=after_topo)
    finally:
        mp.undo()
    assert seen == [("pmem1", "namespace1.0")]  # renamed: pmem0 -> pmem1
    assert "not on this host now" in res[1]["error"]["msg"]
