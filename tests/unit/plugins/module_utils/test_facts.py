# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts over fixtures captured from the lab (tests/unit/fixtures/README.md says how each was made)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import GatherError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
sys.path.insert(0, FIXTURES)
from loader import fixture_root  # noqa: E402  pylint: disable=wrong-import-position

MiB = 1 << 20


def gather(name, as_root=True, ndctl=True, **kwargs):
    root = fixture_root(name)
    ndctl_out = None
    if ndctl:
        with open(os.path.join(root, "ndctl-list.json")) as handle:
            ndctl_out = handle.read()
    kwargs.setdefault("ledger_path", None)
    return facts.gather_facts(sysfs_root=os.path.join(root, "sys"), proc_root=os.path.join(root, "proc"),
                              dev_root=os.path.join(root, "dev"), ndctl=ndctl_out, as_root=as_root, **kwargs)


# -- stock lab (QEMU: ACPI.NFIT nvdimm without DSMs = ndbus0, legacy e820 memmap= = ndbus1) -------

STOCK_BUSES = {
    "ndbus0": {"name": "ndbus0", "provider": "ACPI.NFIT", "commands": ["cmd_call"], "scrub_supported": False,
               "scrub_count": None, "scrub_running": None, "regions": ["region0"]},
    "ndbus1": {"name": "ndbus1", "provider": "e820", "commands": [], "scrub_supported": False,
               "scrub_count": None, "scrub_running": None, "regions": ["region1"]},
}

STOCK_NAMESPACES = {
    "namespace0.0": {
        "name": "namespace0.0", "region": "region0", "devtype": "nd_namespace_pmem", "mode": "fsdax",
        "kernel_mode": "memory", "size": 512 * MiB, "uuid": "674601de-8388-4eef-b0fb-7688bdb518b5",
        "resource": 0x100000000, "holder": "pfn0.0", "map": "dev", "align": 2 * MiB, "data_offset": 10 * MiB,
        "data_size": 526385152, "data_start": 0x100a00000, "blockdev": "pmem0", "dax_device": None,
        "ndctl_badblocks": []},
    "namespace0.1": {
        "name": "namespace0.1", "region": "region0", "devtype": "nd_namespace_pmem", "mode": "devdax",
        "kernel_mode": "dax", "size": 520093696, "uuid": "2cc06c2b-90d3-4af9-ad36-19a4b015d001",
        "resource": 0x120000000, "holder": "dax0.0", "map": "dev", "align": 2 * MiB, "data_offset": 8 * MiB,
        "data_size": 511705088, "data_start": 0x120800000, "blockdev": None, "dax_device": "dax0.1",
        "ndctl_badblocks": []},
    "namespace1.0": {
        "name": "namespace1.0", "region": "region1", "devtype": "nd_namespace_io", "mode": "fsdax",
        "kernel_mode": "memory", "size": 512 * MiB, "uuid": None, "resource": 0x40000000, "holder": None,
        "map": "mem", "align": None, "data_offset": 0, "data_size": 512 * MiB, "data_start": 0x40000000,
        "blockdev": "pmem1", "dax_device": None, "ndctl_badblocks": []},
}


def _region(name, bus, size, resource, nstype, mappings, namespaces, badblocks=()):
    return {"name": name, "bus": bus, "devtype": "nd_pmem", "size": size, "resource": resource, "align": 16 * MiB,
            "persistence_domain": None, "nstype": nstype, "mappings": mappings, "read_only": False,
            "badblocks": list(badblocks), "badblocks_truncated": False, "ndctl_badblocks": [],
            "namespaces": namespaces, "badblock_count": len(badblocks)}


STOCK_REGIONS = {
    "region0": _region("region0", "ndbus0", 1073610752, 0x100000000, 5, 1, ["namespace0.0", "namespace0.1"]),
    "region1": _region("region1", "ndbus1", 512 * MiB, 0x40000000, 4, 0, ["namespace1.0"]),
}

STOCK_DAX = {"dax0.1": {"name": "dax0.1", "nd_device": "dax0.0", "namespace": "namespace0.1", "size": 511705088,
                        "align": 2 * MiB, "resource": 0x120800000, "dev": "252:2", "chardev": "/dev/dax0.1"}}

STOCK_CAPS = {
    "kernel": "6.1.0-56-amd64", "kernel_version": [6, 1, 0], "recovery_write": True,
    "devices": {
        "dax0.1": {"bus": "ndbus0", "bus_kind": "acpi_nfit", "provider": "ACPI.NFIT", "write_clears": False,
                   "dax_write_clears": False, "ndctl_clear": False, "description": "dax0.1 (ACPI.NFIT on ndbus0)"},
        "pmem0": {"bus": "ndbus0", "bus_kind": "acpi_nfit", "provider": "ACPI.NFIT", "write_clears": False,
                  "dax_write_clears": False, "ndctl_clear": False, "description": "pmem0 (ACPI.NFIT on ndbus0)"},
        "pmem1": {"bus": "ndbus1", "bus_kind": "e820", "provider": "e820", "write_clears": True,
                  "dax_write_clears": True, "ndctl_clear": False, "description": "pmem1 (e820 on ndbus1)"},
    },
    "dax_write_clears": {"ndbus0": False, "ndbus1": True},
    "write_clears": {"ndbus0": False, "ndbus1": True},
    "bus_can_clear": {"ndbus0": False, "ndbus1": "n/a"},
    "scrub": {"ndbus0": False, "ndbus1": False},
    "buses": {
        "ndbus0": {"provider": "ACPI.NFIT", "clear_error_command": False, "write_clears": False,
                   "dax_write_clears": False, "bus_can_clear": False},
        "ndbus1": {"provider": "e820", "clear_error_command": False, "write_clears": True,
                   "dax_write_clears": True, "bus_can_clear": "n/a"},
    },
    "lists_may_be_truncated": False, "truncated_lists": [],
}


def _blockdev(name, parent, ns, size, dev, badblocks=(), partitions=None):
    return {"name": name, "parent": parent, "namespace": ns, "size": size, "dev": dev, "device": "/dev/" + name,
            "ro": False, "badblocks": [list(b) for b in badblocks], "badblocks_truncated": False,
            "partitions": partitions or {}}


def test_stock_clean_pins_every_field():
    got = gather("stock-clean")
    assert got == {
        "schema_version": 1, "gathered_as_root": True, "kernel": "6.1.0-56-amd64",
        "ndctl": {"used": True, "executable": None},
        "buses": STOCK_BUSES, "regions": STOCK_REGIONS, "namespaces": STOCK_NAMESPACES,
        "blockdevs": {"pmem0": _blockdev("pmem0", "pfn0.0", "namespace0.0", 526385152, "259:0"),
                      "pmem1": _blockdev("pmem1", "namespace1.0", "namespace1.0", 512 * MiB, "259:1")},
        "dax": STOCK_DAX, "mounts": [], "cxl": {"memdevs": {}, "regions": {}, "poison_records": 0}, "bad_ranges": [], "capabilities": STOCK_CAPS,
        "errors": [], "warnings": [], "unreadable": [], "open_entries": [], "open_entry_locations": {}, "ledger_warnings": [],
        "handled_records": [], "event_sources": {"read": [], "hardware_corrupted": None, "events": 0},
        "watcher": None, "clean": True,
    }


def _xfs_mount():
    return {"dev": "259:2", "mountpoint": "/mnt/pmem0", "root": "/", "fstype": "xfs", "source": "/dev/pmem0p1",
            "options": "rw,relatime", "super_options": "rw,attr2,dax=always,inode64,logbufs=8,logbsize=32k,noquota",
            "dax": True, "ro": False, "device": "/dev/pmem0p1", "blockdev": "pmem0", "partition": "pmem0p1"}


def _ext4_mount():
    return {"dev": "259:1", "mountpoint": "/mnt/pmem1", "root": "/", "fstype": "ext4", "source": "/dev/pmem1",
            "options": "rw,relatime", "super_options": "rw,dax=always", "dax": True, "ro": False,
            "device": "/dev/pmem1", "blockdev": "pmem1", "partition": None}


def _range(**kw):
    base = {"id": None, "region": None, "namespace": None, "blockdev": None, "partition": None, "dax_device": None,
            "length": None, "sources": [], "software_only": False, "dimms": [], "area": None, "absolute": None,
            "region_offset": None, "namespace_offset": None, "blockdev_offset": None, "partition_offset": None,
            "filesystem": None, "identity": None, "events": [], "cxl": []}
    base.update(kw)
    return base


def _ident(kind, length, uuid=None, ns_offset=None, data_offset=None, absolute=None):
    return {"kind": kind, "namespace_uuid": uuid, "namespace_offset": ns_offset, "data_offset": data_offset,
            "absolute": absolute, "length": length, "stable": kind != "name"}


NS00 = "674601de-8388-4eef-b0fb-7688bdb518b5"   # namespace0.0 (QEMU NVDIMM, labelled) in stock-poison


# pmem0 (fsdax, pfn, 10 MiB reserve) has GPT + pmem0p1 at sector 2048 with XFS (-o dax);
# /mnt/pmem0/victim starts at partition sector 192, poison injected at file offset 8192
# (blockdev sector 2048 + 192 + 16 = 2256) and at blockdev sector 100 (in the GPT, outside pmem0p1).
# pmem1 (legacy e820, no info block) holds ext4 (-o dax); /mnt/pmem1/victim starts at sector 264192,
# poison at file offset 4096 (sector 264200).
STOCK_POISON_RANGES_ROOT = [
    # ids are made of what survives a reboot: the namespace uuid (labelled NVDIMM namespace) or the
    # physical address (legacy e820 namespace: no uuid)
    _range(id="ns-%s@0xa0c800+0x200" % NS00, region="region0", namespace="namespace0.0", blockdev="pmem0", length=512,
           sources=["blockdev"], software_only=True, area="outside_partition", absolute=0x100a00000 + 51200,
           region_offset=10 * MiB + 51200, namespace_offset=10 * MiB + 51200, blockdev_offset=51200,
           identity=_ident("namespace_uuid", 512, NS00, 10 * MiB + 51200, 51200, 0x100a00000 + 51200)),
    _range(id="ns-%s@0xb1a000+0x1000" % NS00, region="region0", namespace="namespace0.0", blockdev="pmem0",
           partition="pmem0p1", length=4096, sources=["blockdev"], software_only=True, area="data",
           absolute=0x100a00000 + 2256 * 512, region_offset=10 * MiB + 2256 * 512,
           namespace_offset=10 * MiB + 2256 * 512, blockdev_offset=2256 * 512, partition_offset=208 * 512,
           filesystem={"device": "/dev/pmem0p1", "mountpoint": "/mnt/pmem0", "fstype": "xfs", "dax": True,
                       "offset": 208 * 512},
           identity=_ident("namespace_uuid", 4096, NS00, 10 * MiB + 2256 * 512, 2256 * 512,
                           0x100a00000 + 2256 * 512)),
    _range(id="phys@0x48101000+0x1000", region="region1", namespace="namespace1.0", blockdev="pmem1", length=4096,
           sources=["blockdev", "ndctl"], software_only=True, area="data", absolute=0x40000000 + 264200 * 512,
           region_offset=264200 * 512, namespace_offset=264200 * 512, blockdev_offset=264200 * 512,
           filesystem={"device": "/dev/pmem1", "mountpoint": "/mnt/pmem1", "fstype": "ext4", "dax": True,
                       "offset": 264200 * 512},
           identity=_ident("physical", 4096, absolute=0x40000000 + 264200 * 512)),
]
SP0, SP1, SP2 = [r["id"] for r in STOCK_POISON_RANGES_ROOT]


def test_stock_poison_root():
    got = gather("stock-poison")
    assert got["bad_ranges"] == STOCK_POISON_RANGES_ROOT
    assert got["clean"] is False
    assert got["errors"] == [] and got["warnings"] == [] and got["unreadable"] == []
    assert got["mounts"] == [_xfs_mount(), _ext4_mount()]
    assert got["blockdevs"]["pmem0"] == _blockdev(
        "pmem0", "pfn0.0", "namespace0.0", 526385152, "259:0", badblocks=[(100, 1), (2256, 8)],
        partitions={"pmem0p1": {"name": "pmem0p1", "number": 1, "start": MiB, "size": 400 * MiB, "dev": "259:2",
                                "device": "/dev/pmem0p1"}})
    assert got["blockdevs"]["pmem1"]["badblocks"] == [[264200, 8]]
    assert got["namespaces"]["namespace1.0"]["ndctl_badblocks"] == [{"offset": 264200, "length": 8, "dimms": []}]
    assert got["regions"] == STOCK_REGIONS  # software entries never reach the region lists
    assert got["capabilities"] == STOCK_CAPS


def test_stock_poison_without_ndctl():
    got = gather("stock-poison", ndctl=False)
    assert got["ndctl"] == {"used": False, "executable": None}
    assert got["bad_ranges"][2]["sources"] == ["blockdev"]
    assert [r["id"] for r in got["bad_ranges"]] == [r["id"] for r in STOCK_POISON_RANGES_ROOT]


def test_stock_poison_unprivileged():
    got = gather("stock-poison", as_root=False)
    assert got["gathered_as_root"] is False
    pmem0_sector, pmem0_file = got["bad_ranges"][0], got["bad_ranges"][1]
    # pmem0 sits behind a pfn info block whose size needs root: block-device coordinates only
    # without root the uuid is still readable: the range is keyed by its data-area offset
    assert pmem0_sector == _range(id="ns-%s:data@0xc800+0x200" % NS00, region="region0", namespace="namespace0.0",
                                  blockdev="pmem0", length=512, sources=["blockdev"], software_only=True,
                                  area="outside_partition", blockdev_offset=51200,
                                  identity=_ident("namespace_uuid", 512, NS00, data_offset=51200))
    assert pmem0_file["id"] == "ns-%s:data@0x11a000+0x1000" % NS00
    assert pmem0_file["partition_offset"] == 208 * 512 and pmem0_file["filesystem"]["offset"] == 208 * 512
    assert pmem0_file["absolute"] is None and pmem0_file["region_offset"] is None
    # the e820 namespace spans its region and has no info block: region coordinates without root
    pmem1 = got["bad_ranges"][2]
    # no uuid and no physical address without root: only names, flagged as not stable
    assert (pmem1["id"], pmem1["region_offset"], pmem1["absolute"], pmem1["sources"]) == (
        "region1@0x8101000+0x1000", 264200 * 512, None, ["blockdev"])
    assert pmem1["identity"]["stable"] is False
    assert sorted(os.path.basename(os.path.dirname(u["file"])) for u in got["unreadable"]) == [
        "dax0.0", "dax0.1", "namespace0.0", "namespace0.1", "namespace1.0", "pfn0.0", "region0", "region1"]
    assert got["regions"]["region0"]["resource"] is None
    assert len(got["warnings"]) == 2 and got["warnings"][0].startswith("not running as root: 8 root-only")
    assert "pmem0" in got["warnings"][1]


@pytest.mark.parametrize("devices,ids", [
    (["pmem0p1"], [SP1]),
    (["pmem0"], [SP0, SP1]),
    (["namespace1.0"], [SP2]),
    (["ndbus1"], [SP2]),
    (["dax0.1"], []),
    (["pfn0.0"], [SP0, SP1]),
    (["region0", "pmem1"], [SP0, SP1, SP2]),
])
def test_devices_filter(devices, ids):
    got = gather("stock-poison", devices=devices)
    assert [r["id"] for r in got["bad_ranges"]] == ids
    assert got["errors"] == []
    assert got["clean"] is (not ids)


def test_devices_filter_topology_and_unknown():
    got = gather("stock-poison", devices=["pmem0p1", "nvme0n1"])
    assert sorted(got["blockdevs"]) == ["pmem0"] and sorted(got["regions"]) == ["region0"]
    assert sorted(got["buses"]) == ["ndbus0"] and sorted(got["namespaces"]) == ["namespace0.0"]
    assert got["dax"] == {} and [m["mountpoint"] for m in got["mounts"]] == ["/mnt/pmem0"]
    assert [(e["device"], e["file"]) for e in got["errors"]] == [("nvme0n1", None)]
    assert got["errors"][0]["message"].startswith(
        "no such pmem device (not a bus, region, namespace, block device, partition or dax device on this host)")
    assert "Next step:" in got["errors"][0]["message"]


def test_unknown_device_makes_a_clean_host_not_clean():
    assert gather("stock-clean")["clean"] is True
    got = gather("stock-clean", devices=["pmem99"])
    assert got["clean"] is False and got["errors"][0]["device"] == "pmem99"


# -- ledger ---------------------------------------------------------------------------------

@pytest.fixture
def fake_ledger(monkeypatch):
    """Setting an attribute on it replaces that function of the ledger module facts reads."""
    class Ledger(object):
        def __setattr__(self, name, value):
            monkeypatch.setattr(facts._ledger, name, value)
    return Ledger()


def test_open_entries_make_host_unclean(fake_ledger, tmp_path):
    ledger = tmp_path / "ledger.json"
    ledger.write_text("{}")
    fake_ledger.read_summary = lambda path: ([{"id": "x", "state": "open", "path": path}], set(), [])
    got = gather("stock-clean", ledger_path=str(ledger))
    assert got["open_entries"] == [{"id": "x", "state": "open", "path": str(ledger)}]
    assert got["clean"] is False


def test_unreadable_ledger_is_an_error(fake_ledger, tmp_path):
    ledger = str(tmp_path / "ledger.json")
    with open(ledger, "w") as handle:
        handle.write("{")

    def boom(path):
        raise GatherError("ledger is corrupt", device=path, next_step="restore it from backup")
    fake_ledger.read_summary = boom
    got = gather("stock-clean", ledger_path=ledger)
    assert got["clean"] is False
    assert got["errors"] == [{"device": "ledger", "file": ledger,
                              "message": "%s: ledger is corrupt. Next step: restore it from backup" % ledger}]


def test_truncated_list_warns(tmp_path):
    import synth  # pylint: disable=import-outside-toplevel
    bb = "".join("%d 1\n" % (20480 + 2 * i) for i in range(500))
    roots = synth.build(str(tmp_path), region_bb=bb)
    got = facts.gather_facts(ledger_path=None, as_root=True, **roots)
    assert got["capabilities"]["lists_may_be_truncated"] is True
    assert got["capabilities"]["truncated_lists"] == ["region0"]
    assert any("lower bound" in w for w in got["warnings"])
    assert len(got["bad_ranges"]) == 500


def test_facts_are_json():
    json.dumps(gather("stock-poison"))
    json.dumps(gather("stock-poison", as_root=False))


def test_absent_ledger_means_no_entries_and_no_error(tmp_path):
    summary = facts.read_ledger_summary(str(tmp_path / "absent.json"))
    assert (summary["entries"], summary["closed_keys"], summary["warnings"], summary["error"]) == ([], set(), [], None)


# -- the molecule/badblocks layout (stock): e820 GPT p1 XFS + p2 ext4, QEMU-NVDIMM XFS, devdax ----------

def test_stock_layout_poison_matches_injection_log():
    got = gather("stock-layout-poison")
    with open(os.path.join(fixture_root("stock-layout-poison"), "injected.jsonl")) as handle:
        injected = [json.loads(line) for line in handle if line.strip()]
    assert got["errors"] == [] and got["warnings"] == []
    assert [r["id"] for r in got["bad_ranges"]] == [
        "ns-8fac08b6-aa67-4e7c-a74d-cd790ff76891@0xa1b000+0x1000", "phys@0x4000c800+0x200",
        "phys@0x40219000+0x1000", "phys@0x56ce2000+0x1000"]
    assert len(injected) == len(got["bad_ranges"])
    for item in injected:
        (rng,) = [r for r in got["bad_ranges"] if r["blockdev"] == item["device"]
                  and r["blockdev_offset"] == item["offset"]]
        ns = got["namespaces"][rng["namespace"]]
        assert rng["length"] == item["length"]
        assert rng["namespace"] == item["namespace"]
        assert rng["absolute"] == ns["data_start"] + item["offset"]
        assert rng["region_offset"] == rng["absolute"] - got["regions"][rng["region"]]["resource"]
        if item["file"]:
            assert rng["area"] == "data"
            assert rng["filesystem"]["offset"] == item["fs_sector"] * 512
            assert item["file"].startswith(rng["filesystem"]["mountpoint"] + "/")
            if item["partition_start_sector"]:
                assert rng["partition_offset"] == item["offset"] - item["partition_start_sector"] * 512
        else:
            assert (rng["area"], rng["partition"], rng["filesystem"]) == ("outside_partition", None, None)
    assert got["bad_ranges"][2]["partition"] == "pmem1p1" and got["bad_ranges"][3]["partition"] == "pmem1p2"
    assert got["bad_ranges"][2]["filesystem"]["fstype"] == "xfs"
    assert got["bad_ranges"][3]["filesystem"]["fstype"] == "ext4"


# -- the molecule/badblocks layout on the nfit_test flavour -------------------------------------------
# e820 (two regions) with the partitioned XFS/ext4 layout; nfit_test.0: fsdax namespace3.0 (pmem3, XFS on
# /mnt/nfit-xfs) with poison under a file via ndctl inject-error + scrub, and namespace2.0 reconfigured as
# devdax (dax2.0) with inject-error at data block 64; nfit_test.1: raw namespaces.

def test_nfit_layout_poison_root():
    got = gather("nfit-layout-poison")
    assert got["errors"] == [] and got["warnings"] == []
    with open(os.path.join(fixture_root("nfit-layout-poison"), "devdax.json")) as handle:
        devdax = json.load(handle)
    by_id = dict((r["id"], r) for r in got["bad_ranges"])
    assert sorted(by_id) == ["ns-6cf3e858-d883-4582-8d9a-16efa34d9930@0x208000+0x1000",
                             "ns-81fc576e-ecb7-447c-90d3-3bac4e0ea557@0x21a000+0x1000",
                             "phys@0x5500c800+0x200", "phys@0x55219000+0x1000", "phys@0x5fc01000+0x1000"]
    dax = by_id["ns-6cf3e858-d883-4582-8d9a-16efa34d9930@0x208000+0x1000"]
    ns2 = got["namespaces"]["namespace2.0"]
    assert (dax["namespace"], dax["dax_device"], dax["blockdev"], dax["area"]) == ("namespace2.0", "dax2.0", None, "data")
    assert (dax["sources"], dax["software_only"], dax["dimms"]) == (["region", "ndctl"], False, ["nmem1"])
    assert dax["namespace_offset"] - ns2["data_offset"] == devdax["block"] * 512
    assert ns2["ndctl_badblocks"] == [{"offset": 64, "length": 8, "dimms": ["nmem1"]}]
    fs = by_id["ns-81fc576e-ecb7-447c-90d3-3bac4e0ea557@0x21a000+0x1000"]
    assert (fs["sources"], fs["software_only"], fs["dimms"]) == (["region", "blockdev", "ndctl"], False, ["nmem3"])
    assert fs["blockdev"] == "pmem3" and fs["blockdev_offset"] == 106496
    assert fs["filesystem"]["mountpoint"] == "/mnt/nfit-xfs" and fs["filesystem"]["offset"] == 106496
    assert fs["absolute"] == got["namespaces"]["namespace3.0"]["data_start"] + 106496
    caps = got["capabilities"]
    assert caps["bus_can_clear"] == {"ndbus0": "n/a", "ndbus1": True, "ndbus2": True}
    assert caps["dax_write_clears"] == {"ndbus0": True, "ndbus1": False, "ndbus2": False}
    assert caps["scrub"] == {"ndbus0": False, "ndbus1": True, "ndbus2": True}
    assert got["buses"]["ndbus1"]["scrub_count"] == 6 and got["buses"]["ndbus1"]["scrub_running"] is False
    assert got["namespaces"]["namespace4.0"]["mode"] == "raw"
    assert got["namespaces"]["namespace4.0"]["data_offset"] == 0


def test_nfit_layout_poison_unprivileged():
    got = gather("nfit-layout-poison", as_root=False)
    ids = [r["id"] for r in got["bad_ranges"]]
    # pmem3's list cannot be placed in region3 without root: two entries for one poisoned page
    ns3 = "ns-81fc576e-ecb7-447c-90d3-3bac4e0ea557"
    assert ns3 + ":data@0x1a000+0x1000" in ids and ns3 + "@0x21a000+0x1000" in ids
    region_side = [r for r in got["bad_ranges"] if r["id"] == ns3 + "@0x21a000+0x1000"][0]
    assert region_side["area"] is None and region_side["namespace"] == "namespace3.0"
    assert region_side["absolute"] is None
    assert len(got["unreadable"]) == 15


def test_nfit_clean():
    got = gather("nfit-clean")
    assert (got["bad_ranges"], got["errors"], got["warnings"], got["clean"], got["mounts"]) == ([], [], [], True, [])
    assert dict((n, (b["provider"], b["scrub_supported"], b["scrub_count"], b["scrub_running"]))
                for n, b in got["buses"].items()) == {
        "ndbus0": ("e820", False, None, None), "ndbus1": ("nfit_test.0", True, 1, False),
        "ndbus2": ("nfit_test.1", True, 1, False)}
    assert dict((n, (r["bus"], r["size"], r["resource"], r["persistence_domain"], r["namespaces"]))
                for n, r in got["regions"].items()) == {
        "region0": ("ndbus0", 335544320, 0x40000000, None, ["namespace0.0"]),
        "region1": ("ndbus0", 184549376, 0x55000000, None, ["namespace1.0"]),
        "region2": ("ndbus1", 33554432, 0x100000000, "memory_controller", ["namespace2.0"]),
        "region3": ("ndbus1", 67108864, 0x108000000, "memory_controller", ["namespace3.0"]),
        "region4": ("ndbus2", 33554432, 0x140000000, None, ["namespace4.0"]),
        "region5": ("ndbus2", 4194304, 18419722476289875968, None, ["namespace5.0"]),
    }
    assert dict((n, (ns["mode"], ns["blockdev"], ns["data_offset"], ns["map"])) for n, ns in got["namespaces"].items()) == {
        "namespace0.0": ("fsdax", "pmem0", 0, "mem"), "namespace1.0": ("fsdax", "pmem1", 0, "mem"),
        "namespace2.0": ("fsdax", "pmem2", 2 << 20, "dev"), "namespace3.0": ("fsdax", "pmem3", 2 << 20, "dev"),
        "namespace4.0": ("raw", "pmem4", 0, None), "namespace5.0": ("raw", "pmem5", 0, None)}
    assert got["capabilities"]["devices"]["pmem3"]["bus_kind"] == "nfit_test"
    assert got["capabilities"]["devices"]["pmem3"]["ndctl_clear"] is True


def test_watcher_warnings_of_this_boot_are_module_warnings(tmp_path):
    """The watcher wrote a lost-events marker after this boot and another before it: both stay in
    ledger_warnings, only this boot's one is said again as a warning (no old noise every run)."""
    root = fixture_root("stock-clean")
    proc = tmp_path / "proc"
    proc.mkdir()
    for name in os.listdir(os.path.join(root, "proc")):
        os.symlink(os.path.join(root, "proc", name), str(proc / name))
    boot = 1764655200  # 2025-12-02T06:00:00Z
    (proc / "stat").write_text("cpu  1 2 3\nbtime %d\n" % boot)
    ledger_path = tmp_path / "ledger.json"
    ledger_path.write_text(json.dumps(dict(L.empty_ledger("h"), warnings=[
        {"at": "2025-12-01T23:00:00Z", "source": "kmsg", "message": "old: the kernel log overwrote 2 record(s)"},
        {"at": "2025-12-02T06:01:07Z", "source": "xfs_health",
         "message": "XFS /mnt/p: the health monitor dropped 3 event(s)"}])))
    got = facts.gather_facts(sysfs_root=os.path.join(root, "sys"), proc_root=str(proc),
                             dev_root=os.path.join(root, "dev"), ledger_path=str(ledger_path))
    assert [w["source"] for w in got["ledger_warnings"]] == ["kmsg", "xfs_health"]
    said = [w for w in got["warnings"] if w.startswith("ledger warning")]
    assert said == ["ledger warning (xfs_health, 2025-12-02T06:01:07Z): XFS /mnt/p: the health monitor "
                    "dropped 3 event(s)"]


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_dangling_symlink_ledger_is_an_error_not_an_absent_ledger(tmp_path, where):
    # the acting modules refuse a symlinked ledger (O_NOFOLLOW) or ledger directory: the facts
    # must not call the host clean because the link points nowhere (os.stat said ENOENT)
    if where == "file":
        ledger = tmp_path / "ledger.json"
        ledger.symlink_to(tmp_path / "gone" / "ledger.json")
    else:
        (tmp_path / "state").symlink_to(tmp_path / "gone")
        ledger = tmp_path / "state" / "ledger.json"
    summary = facts.read_ledger_summary(str(ledger))
    assert summary["entries"] == []
    assert summary["error"] is not None and "symlink" in summary["error"]["message"], summary
    got = gather("stock-clean", ledger_path=str(ledger))
    assert got["clean"] is False
    assert [e["device"] for e in got["errors"]] == ["ledger"]
