# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges

# -- parsing ------------------------------------------------------------------------------


def test_parse_valid_and_garbage():
    text = "8 8\n\n  16   1 \nfoo\n1 2 3\n-1 5\n4 0\n0x10 1\n12 x\n"
    entries, errors = ranges.parse_badblocks(text)
    assert entries == [(8, 8), (16, 1)]
    assert [e["line"] for e in errors] == [4, 5, 6, 7, 8, 9]
    assert errors[0] == {"line": 4, "text": "foo", "message": "expected '<sector> <count>', got 1 field(s)"}
    assert errors[3]["message"] == "count must be positive"


def test_parse_none_bytes_and_unicode_digits():
    assert ranges.parse_badblocks(None) == ([], [])
    assert ranges.parse_badblocks(b"1 1\n") == ([(1, 1)], [])
    entries, errors = ranges.parse_badblocks(u"\u0661 1\n")  # ARABIC-INDIC DIGIT ONE
    assert entries == [] and len(errors) == 1


def test_truncation_heuristics():
    assert not ranges.looks_truncated("0 1\n", 1)
    assert ranges.looks_truncated("", 500)
    assert ranges.looks_truncated("x" * 4080, 3)


def test_sector_math():
    assert ranges.sectors_to_bytes(3) == 1536
    assert ranges.bytes_to_sectors(1) == 1
    assert ranges.bytes_to_sectors(1024) == 2


# -- merging ------------------------------------------------------------------------------

def test_merge_overlap_touch_and_sources():
    merged = ranges.merge_intervals([
        (0, 512, ["region"]), (512, 1024, ["blockdev"]), (4096, 8192, ["ndctl"], ["nmem0"]),
        (5000, 6000, ["region"]), (9000, 9000, ["region"])])
    assert merged == [(0, 1024, frozenset(["region", "blockdev"]), ()),
                      (4096, 8192, frozenset(["ndctl", "region"]), ("nmem0",))]


def test_split_at():
    assert ranges.split_at(0, 10, [0, 5, 10, 20]) == [(0, 5), (5, 10)]
    assert ranges.split_at(3, 4, [1, 2]) == [(3, 4)]


def test_format_id():
    assert ranges.format_id("region1", 0x10000, 0x1000) == "region1@0x10000+0x1000"


# -- properties ---------------------------------------------------------------------------

_valid_line = st.tuples(st.integers(0, 2 ** 40), st.integers(1, 512)).map(lambda t: "%d %d" % t)
_junk_line = st.one_of(
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
    st.sampled_from(["-1 1", "1 0", "1", "1 2 3", "0x1 2", "1 -2", " ", "\x00", "9" * 30 + " 1"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_valid_line.map(lambda s: ("valid", s)), _junk_line.map(lambda s: ("junk", s))),
                max_size=60))
def test_parse_never_raises_never_drops_valid_lines(lines):
    text = "\n".join(s for _kind, s in lines)
    entries, errors = ranges.parse_badblocks(text)
    expected = [tuple(int(x) for x in s.split()) for kind, s in lines if kind == "valid"]
    # every valid line survives, in order (junk lines that happen to be valid may be interleaved)
    it = iter(entries)
    assert all(any(e == want for e in it) for want in expected)
    for error in errors:
        assert set(error) == {"line", "text", "message"}
    assert len(entries) + len(errors) <= len(text.splitlines())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_random_bytes(data):
    entries, errors = ranges.parse_badblocks(data)
    for sector, count in entries:
        assert sector >= 0 and count > 0
    assert isinstance(errors, list)


_interval = st.tuples(st.integers(0, 10000), st.integers(1, 600),
                      st.sets(st.sampled_from(["region", "blockdev", "ndctl"]), min_size=1, max_size=2),
                      st.sets(st.sampled_from(["nmem0", "nmem1"]), max_size=1)).map(
    lambda t: (t[0], t[0] + t[1], t[2], t[3]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_interval, max_size=30), st.randoms())
def test_merge_idempotent_commutative_covering(intervals, rnd):
    merged = ranges.merge_intervals(intervals)
    assert ranges.merge_intervals(merged) == merged
    shuffled = list(intervals)
    rnd.shuffle(shuffled)
    assert ranges.merge_intervals(shuffled) == merged
    # disjoint, non-touching, sorted
    for a, b in zip(merged, merged[1:]):
        assert a[1] < b[0]
    # covers exactly the union
    covered = set()
    for s, e, _src, _d in intervals:
        covered.update(range(s, e))
    assert covered == set(x for s, e, _src, _d in merged for x in range(s, e))
    # sources are unioned
    for s, e, src, _d in intervals:
        owner = [m for m in merged if m[0] <= s and e <= m[1]]
        assert len(owner) == 1 and set(src) <= owner[0][2]


# -- translation over a hand-made topology ------------------------------------------------

def _topo(root=True, partitioned=True, mode="fsdax"):
    def res(value):
        return value if root else None

    topo = {
        "kernel": "6.1.0", "gathered_as_root": root,
        "buses": {"ndbus0": {"name": "ndbus0", "provider": "e820", "regions": ["region0"]}},
        "regions": {"region0": {"name": "region0", "bus": "ndbus0", "size": 1 << 29, "resource": res(1 << 30),
                                "namespaces": ["namespace0.0"], "badblocks": [], "ndctl_badblocks": []}},
        "namespaces": {"namespace0.0": {
            "name": "namespace0.0", "region": "region0", "mode": mode, "size": 256 << 20,
            "resource": res((1 << 30) + (1 << 20)), "data_offset": (2 << 20) if root else None,
            "data_size": 254 << 20, "blockdev": "pmem0" if mode != "devdax" else None,
            "dax_device": "dax0.0" if mode == "devdax" else None, "ndctl_badblocks": []}},
        "blockdevs": {}, "dax": {}, "mounts": [],
    }
    if mode == "raw":
        topo["namespaces"]["namespace0.0"].update(data_offset=0, data_size=256 << 20)
    if mode != "devdax":
        topo["blockdevs"]["pmem0"] = {"name": "pmem0", "namespace": "namespace0.0", "badblocks": [],
                                      "partitions": {}}
        if partitioned:
            topo["blockdevs"]["pmem0"]["partitions"]["pmem0p1"] = {
                "name": "pmem0p1", "start": 1 << 20, "size": 100 << 20}
            topo["mounts"].append({"device": "/dev/pmem0p1", "blockdev": "pmem0", "partition": "pmem0p1",
                                   "mountpoint": "/mnt", "fstype": "xfs", "dax": True})
    return topo


def test_region_range_split_across_info_block_and_data():
    topo = _topo()
    # namespace starts 1 MiB into the region; data 2 MiB later: region offset 3 MiB
    topo["regions"]["region0"]["badblocks"] = [[(3 << 20) // 512 - 2, 4]]
    got = ranges.gather_bad_ranges(topo)
    assert [(r["area"], r["region_offset"], r["length"]) for r in got] == [
        ("info_block", (3 << 20) - 1024, 1024), ("outside_partition", 3 << 20, 1024)]
    assert got[1]["blockdev_offset"] == 0 and got[1]["partition"] is None
    assert got[0]["blockdev"] is None and got[0]["namespace_offset"] == (2 << 20) - 1024
    # keyed by physical address (region resource + offset), not by the region's name
    assert got[0]["id"] == "phys@0x%x+0x400" % (topo["regions"]["region0"]["resource"] + (3 << 20) - 1024)


def test_blockdev_and_region_reports_merge():
    topo = _topo()
    base = 3 << 20
    topo["regions"]["region0"]["badblocks"] = [[(base + (1 << 20)) // 512, 8]]
    topo["blockdevs"]["pmem0"]["badblocks"] = [[(1 << 20) // 512 + 4, 8]]
    topo["regions"]["region0"]["ndctl_badblocks"] = [{"offset": (base + (1 << 20)) // 512, "length": 8,
                                                      "dimms": ["nmem0"]}]
    (rng,) = ranges.gather_bad_ranges(topo)
    assert rng["sources"] == ["region", "blockdev", "ndctl"]
    assert rng["software_only"] is False
    assert rng["dimms"] == ["nmem0"]
    assert rng["length"] == 12 * 512
    assert rng["absolute"] == (1 << 30) + base + (1 << 20)
    assert rng["partition"] == "pmem0p1" and rng["partition_offset"] == 0
    assert rng["filesystem"] == {"device": "/dev/pmem0p1", "mountpoint": "/mnt", "fstype": "xfs", "dax": True,
                                 "offset": 0}


def test_outside_namespace_and_devices_filter():
    topo = _topo()
    topo["regions"]["region0"]["badblocks"] = [[0, 1], [(400 << 20) // 512, 1]]
    got = ranges.gather_bad_ranges(topo)
    assert [r["area"] for r in got] == ["outside_namespace", "outside_namespace"]
    assert all(r["namespace"] is None for r in got)
    assert ranges.gather_bad_ranges(topo, devices={"pmem0"}) == []
    assert len(ranges.gather_bad_ranges(topo, devices={"region0"})) == 2


def test_unprivileged_blockdev_coordinates():
    topo = _topo(root=False)
    topo["blockdevs"]["pmem0"]["badblocks"] = [[(2 << 20) // 512, 1]]
    topo["regions"]["region0"]["badblocks"] = [[100, 1]]
    warnings = []
    got = ranges.gather_bad_ranges(topo, warnings=warnings)
    by_src = dict((r["sources"][0], r) for r in got)
    assert by_src["blockdev"]["id"] == "pmem0@0x200000+0x200"
    assert by_src["blockdev"]["absolute"] is None and by_src["blockdev"]["region_offset"] is None
    assert by_src["blockdev"]["partition"] == "pmem0p1"
    assert by_src["blockdev"]["partition_offset"] == 1 << 20
    assert by_src["region"]["area"] is None and by_src["region"]["region_offset"] == 51200
    assert by_src["region"]["absolute"] is None
    assert warnings and "root-only" in warnings[0]


def test_devdax_and_raw_and_sector():
    topo = _topo(mode="devdax")
    topo["regions"]["region0"]["badblocks"] = [[(4 << 20) // 512, 8]]
    (rng,) = ranges.gather_bad_ranges(topo)
    assert (rng["dax_device"], rng["blockdev"], rng["area"], rng["namespace_offset"]) == (
        "dax0.0", None, "data", 3 << 20)
    topo = _topo(mode="raw", partitioned=False)
    topo["regions"]["region0"]["badblocks"] = [[(1 << 20) // 512, 1]]
    (rng,) = ranges.gather_bad_ranges(topo)
    assert (rng["blockdev"], rng["blockdev_offset"], rng["area"]) == ("pmem0", 0, "data")
    topo = _topo(mode="sector", partitioned=False)
    topo["blockdevs"]["pmem0"]["badblocks"] = [[8, 1]]
    (rng,) = ranges.gather_bad_ranges(topo)
    assert rng["id"] == "pmem0@0x1000+0x200" and rng["blockdev_offset"] is None


@pytest.mark.parametrize("seed", range(5))
def test_gather_is_order_independent(seed):
    topo = _topo()
    lines = [[(3 << 20) // 512 + i * 16, 8] for i in range(20)]
    topo["regions"]["region0"]["badblocks"] = list(lines)
    want = ranges.gather_bad_ranges(topo)
    random.Random(seed).shuffle(lines)
    topo["regions"]["region0"]["badblocks"] = lines
    assert ranges.gather_bad_ranges(topo) == want
