# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After converge: every injected range resolves to exactly the files under it (inode, every path,
file offset, length, repair cover, shared flag), on DAX-mounted XFS (reflinked clone: two owners)
and ext4 (hard link: one owner, two paths). Ground truth: the injection record (its physical
sector came from the guest's FIEMAP through xfs_io) and stat on the guest."""

import json

import pytest


def _json(host, path):
    return json.loads(host.check_output("cat %s" % path))


@pytest.fixture(scope="module")
def result(host):
    return _json(host, "/root/pmem-resolve-result.json")


@pytest.fixture(scope="module")
def injected(host):
    lines = host.check_output("cat /etc/pmem-lab/injected.jsonl").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _inode(host, path):
    return int(host.check_output("stat -c %%i %s" % path))


def _range_with(result, path):
    hits = [r for r in result["resolve"]["results"]
            if any(path in o["paths"] for o in r["owners"])]
    assert len(hits) == 1, "expected one range owning %s, got %s" % (path, hits)
    return hits[0]


def _injection(injected, path):
    (inj,) = [i for i in injected if i["file"] == path]
    return inj


def test_resolve_succeeded(result):
    res = result["resolve"]
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    assert all(r["error"] is None for r in res["results"]), res["results"]
    ids = set(r["id"] for r in result["bad_ranges"])
    assert set(r["range_id"] for r in res["results"]) == ids


def test_xfs_dax_page_on_a_partition(host, result, injected):
    victim = "/mnt/res-xfs/victim"
    inj = _injection(injected, victim)
    assert (inj["file_offset"], inj["length"]) == (8192, 4096)
    (o,) = _range_with(result, victim)["owners"]
    assert (o["kind"], o["paths"], o["inode"]) == ("file", [victim], _inode(host, victim))
    assert (o["file_offset"], o["length"]) == (8192, 4096)
    assert (o["repair_offset"], o["repair_length"]) == (8192, 4096)
    assert o["shared"] is False
    assert o["fstype"] == "xfs" and o["mountpoint"] == "/mnt/res-xfs"
    assert o["generation"] is not None


def test_xfs_dax_reflinked_page_has_both_owners(host, result, injected):
    victim, clone = "/mnt/res-xfs-reflink/victim", "/mnt/res-xfs-reflink/victim-clone"
    inj = _injection(injected, victim)
    assert (inj["file_offset"], inj["length"]) == (16384, 4096)
    r = _range_with(result, victim)
    owners = sorted(r["owners"], key=lambda o: o["paths"])
    assert [(o["kind"], o["paths"], o["inode"]) for o in owners] == [
        ("file", [victim], _inode(host, victim)), ("file", [clone], _inode(host, clone))]
    for o in owners:
        assert (o["file_offset"], o["length"]) == (16384, 4096), o
        assert (o["repair_offset"], o["repair_length"]) == (16384, 4096), o
        assert o["shared"] is True, o


def test_ext4_dax_sector_has_one_owner_with_every_link(host, result, injected):
    victim, link = "/mnt/res-ext4/victim", "/mnt/res-ext4/victim-link"
    inj = _injection(injected, victim)
    assert (inj["file_offset"], inj["length"]) == (4608, 512)
    (o,) = _range_with(result, victim)["owners"]
    assert o["kind"] == "file"
    assert o["inode"] == _inode(host, victim)
    assert o["paths"] == [victim, link]
    assert (o["file_offset"], o["length"]) == (4608, 512)
    assert (o["repair_offset"], o["repair_length"]) == (4096, 4096)
    assert o["shared"] is False
    assert o["fstype"] == "ext4" and o["mountpoint"] == "/mnt/res-ext4"
    assert o["generation"] is not None


def test_ranges_sit_where_injected_with_dax(result, injected):
    for inj in injected:
        (rng,) = [b for b in result["bad_ranges"]
                  if (b.get("filesystem") or {}).get("mountpoint") == inj["file"].rsplit("/", 1)[0]]
        assert bool(rng["partition"]) == (inj["partition_start_sector"] > 0), rng
        assert rng["filesystem"]["dax"] is True, rng
        assert rng["length"] == inj["length"]
