# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After converge: every injected range resolves to exactly the files under it (inode, every path,
file offset, length, repair cover, shared flag, filesystem offset) on the shared lab layout, all
mounted -o dax: XFS reflink+rmapbt on the whole e820 device (reflinked clone: two shared owners),
ext4 on e820 GPT p1 (hard link: one owner, two paths, one 512-byte sector), XFS without reflink on
p2, XFS on the NVDIMM fsdax namespace; and a range in the devdax namespace, given directly, owned by
the devdax device with the holder process started in prepare. Ground truth: the injection record
(its physical sector came from the guest's FIEMAP through xfs_io), layout.json and the guest's own
stat."""

import json
import os

import pytest

XFS = "/mnt/pmem-xfs/victim"
XFS_CLONE = "/mnt/pmem-xfs/victim-clone"
EXT4 = "/mnt/pmem-ext4/victim"
EXT4_LINK = "/mnt/pmem-ext4/victim-link"
PART_XFS = "/mnt/pmem-part-xfs/victim"
NVDIMM = "/mnt/pmem-nvdimm/victim"


def _json(host, path):
    return json.loads(host.check_output("cat %s" % path))


@pytest.fixture(scope="module")
def result(host):
    return _json(host, "/root/pmem-resolve-result.json")


@pytest.fixture(scope="module")
def layout(host):
    return _json(host, "/etc/pmem-lab/layout.json")


@pytest.fixture(scope="module")
def injected(host):
    lines = host.check_output("cat /etc/pmem-lab/injected.jsonl").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _stat(host, path):
    """(inode, hard-link count) from the guest."""
    ino, nlink = host.check_output("stat -c '%%i %%h' %s" % path).split()
    return int(ino), int(nlink)


def _mount(layout, path):
    (m,) = [m for m in layout["mounts"].values() if path.startswith(m["mountpoint"] + "/")]
    return m


def _injection(injected, path):
    (inj,) = [i for i in injected if i["file"] == path]
    return inj


def _range_of(result, inj):
    """The listed bad range at the injected whole-device bytes, and its resolve result."""
    (rng,) = [b for b in result["bad_ranges"]
              if b["blockdev"] == inj["device"] and b["blockdev_offset"] == inj["offset"]]
    (res,) = [r for r in result["resolve"]["results"] if r["range_id"] == rng["id"]]
    return rng, res


def _check_file_owner(host, o, layout, inj, path, length, shared, repair):
    m = _mount(layout, path)
    ino, nlink = _stat(host, path)
    assert o["kind"] == "file", o
    assert o["inode"] == ino, o
    assert len(o["paths"]) == nlink, (o, nlink)
    assert (o["device"], o["mountpoint"], o["fstype"]) == (m["device"], m["mountpoint"], m["fstype"]), o
    assert (o["file_offset"], o["length"]) == (inj["file_offset"], length), o
    assert (o["repair_offset"], o["repair_length"]) == repair, o
    assert o["fs_offset"] == inj["fs_sector"] * 512 + inj["file_offset"] % 512, o
    assert o["shared"] is shared, o
    assert o["attr_fork"] is False and o["generation"] is not None, o


def test_resolve_succeeded(result, injected):
    res = result["resolve"]
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    assert all(r["error"] is None and not r["warnings"] for r in res["results"]), res["results"]
    ids = [r["id"] for r in result["bad_ranges"]]
    assert [r["range_id"] for r in res["results"]] == ids
    assert len(ids) == len(injected) == 4, (ids, injected)
    assert res["summary"]["owners"] == {"file": 5}, res["summary"]


def test_ranges_sit_where_injected_with_dax(result, layout, injected):
    for inj in injected:
        rng, _res = _range_of(result, inj)
        m = _mount(layout, inj["file"])
        part_start = inj["partition_start_sector"] * 512
        assert rng["length"] == inj["length"], rng
        assert rng["area"] == "data", rng
        assert rng["partition"] == (os.path.basename(m["device"]) if part_start else None), rng
        if part_start:
            assert rng["partition_offset"] == inj["offset"] - part_start, rng
        fs = rng["filesystem"]
        assert (fs["mountpoint"], fs["device"], fs["dax"]) == (m["mountpoint"], m["device"], True), rng
        assert fs["offset"] == inj["fs_sector"] * 512 + inj["file_offset"] % 512, rng


def test_xfs_dax_reflinked_page_has_both_owners(host, result, layout, injected):
    inj = _injection(injected, XFS)
    assert (inj["file_offset"], inj["length"], inj["partition_start_sector"]) == (16384, 4096, 0)
    _rng, res = _range_of(result, inj)
    owners = sorted(res["owners"], key=lambda o: o["paths"])
    assert [o["paths"] for o in owners] == [[XFS], [XFS_CLONE]], owners
    for o, path in zip(owners, (XFS, XFS_CLONE)):
        _check_file_owner(host, o, layout, inj, path, 4096, True, (16384, 4096))
    assert owners[0]["inode"] != owners[1]["inode"]


def test_ext4_dax_sector_on_p1_has_one_owner_with_every_link(host, result, layout, injected):
    inj = _injection(injected, EXT4)
    assert (inj["file_offset"], inj["length"]) == (4608, 512)
    assert inj["partition_start_sector"] > 0
    _rng, res = _range_of(result, inj)
    (o,) = res["owners"]
    assert sorted(o["paths"]) == [EXT4, EXT4_LINK], o
    assert _stat(host, EXT4_LINK)[0] == o["inode"]
    _check_file_owner(host, o, layout, inj, EXT4, 512, False, (4096, 4096))


def test_xfs_dax_page_on_p2(host, result, layout, injected):
    inj = _injection(injected, PART_XFS)
    assert (inj["file_offset"], inj["length"]) == (8192, 4096)
    assert inj["partition_start_sector"] > 0
    _rng, res = _range_of(result, inj)
    (o,) = res["owners"]
    assert o["paths"] == [PART_XFS], o
    _check_file_owner(host, o, layout, inj, PART_XFS, 4096, False, (8192, 4096))


def test_xfs_dax_page_on_the_nvdimm_fsdax_namespace(host, result, layout, injected):
    inj = _injection(injected, NVDIMM)
    assert (inj["file_offset"], inj["length"], inj["bus"]) == (12288, 4096, "ACPI.NFIT")
    rng, res = _range_of(result, inj)
    assert rng["namespace"] == inj["namespace"], rng
    (o,) = res["owners"]
    assert o["paths"] == [NVDIMM], o
    _check_file_owner(host, o, layout, inj, NVDIMM, 4096, False, (12288, 4096))


def test_devdax_range_names_the_device_and_its_holder(host, result, layout):
    dax = "/dev/" + layout["devdax"][0]
    rng = result["devdax_range"]
    assert (rng["device"], rng["offset"], rng["length"]) == (dax, 2097152, 4096)
    res = result["devdax"]
    assert res.get("failed") is not True and res["changed"] is False, res
    (r,) = res["results"]
    assert r["error"] is None, r
    assert r["range_id"] == "%s@0x200000+0x1000" % os.path.basename(dax)
    (o,) = r["owners"]
    assert (o["kind"], o["device"], o["length"]) == ("devdax", dax, 4096), o
    assert (o["inode"], o["paths"], o["file_offset"]) == (None, [], None), o
    pid = int(host.check_output("cat /run/pmem-resolve-holder.pid"))
    assert host.file("/proc/%d/fd" % pid).exists, "the devdax holder %d is gone" % pid
    assert o["processes"] == [{"pid": pid, "comm": "python3", "how": ["mapped", "open"]}], o
