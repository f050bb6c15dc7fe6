# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as M


def test_struct_sizes_and_ioctl_number():
    assert M.FSMAP_SIZE == 64
    assert M.HEAD_SIZE == 192
    assert M.FS_IOC_GETFSMAP == 0xC0C0583B


def fake_kernel(records, batch_seen=None):
    """An ioctl that serves *records* (sorted) in pages, honouring the low key like the kernel."""
    calls = []

    def ioctl(fd, buf):
        _i, _o, count, _e = struct.unpack_from(M.HEAD_FMT, buf, 0)
        low = struct.unpack_from(M.FSMAP_FMT, buf, struct.calcsize(M.HEAD_FMT))
        high = struct.unpack_from(M.FSMAP_FMT, buf, struct.calcsize(M.HEAD_FMT) + M.FSMAP_SIZE)
        calls.append((low, high))
        lowphys, lowlen = low[2], low[5]
        sel = [r for r in records if r[2] + r[5] > lowphys + lowlen and r[2] <= high[2]]
        page = sel[:count]
        for i, r in enumerate(page):
            flags = r[1]
            if r is sel[-1]:
                flags |= M.FMR_OF_LAST
            struct.pack_into(M.FSMAP_FMT, buf, M.HEAD_SIZE + i * M.FSMAP_SIZE,
                             r[0], flags, r[2], r[3], r[4], r[5])
        struct.pack_into(M.HEAD_FMT, buf, 0, 0, 0, count, len(page))
    return ioctl, calls


def test_paging_until_last_and_keys():
    recs = [(7, 0, i * 4096, 100 + i, 0, 4096) for i in range(10)]
    ioctl, calls = fake_kernel(recs)
    out = list(M.query(0, 0, 10 * 4096, device=7, batch=3, ioctl=ioctl))
    assert [r["owner"] for r in out] == list(range(100, 110))
    assert len(calls) == 4
    low, high = calls[0]
    assert low[0] == 7 and high[0] == 7          # real device in both keys
    assert high[5] == 0                            # high key length 0
    assert high[2] == 10 * 4096 - 1
    assert calls[1][0][2] == 2 * 4096              # low key advanced from the last record


def test_decode_special_and_flags():
    free = M.decode_record({"device": 1, "flags": M.FMR_OF_SPECIAL_OWNER, "physical": 0,
                            "owner": M.FMR_OWN_FREE, "offset": 0, "length": 4096})
    assert free["kind"] == "free"
    log = M.decode_record({"device": 1, "flags": M.FMR_OF_SPECIAL_OWNER, "physical": 0,
                           "owner": M.fmr_owner(ord("X"), 2), "offset": 0, "length": 1})
    assert (log["kind"], log["metadata_kind"]) == ("metadata", "log")
    bmbt = M.decode_record({"device": 1, "flags": M.FMR_OF_EXTENT_MAP, "physical": 0, "owner": 131,
                            "offset": 0, "length": 4096})
    assert (bmbt["kind"], bmbt["metadata_kind"], bmbt["inode"]) == ("metadata", "bmbt", 131)
    attr = M.decode_record({"device": 1, "flags": M.FMR_OF_ATTR_FORK, "physical": 0, "owner": 131,
                            "offset": 0, "length": 4096})
    assert attr["metadata_kind"] == "attr_fork" and attr["attr_fork"]
    data = M.decode_record({"device": 1, "flags": M.FMR_OF_SHARED | M.FMR_OF_PREALLOC,
                            "physical": 0, "owner": 131, "offset": 8192, "length": 4096})
    # GETFSMAP does not say what the inode is: without its type the block is not called file data
    assert data["kind"] == "unknown" and data["fork"] == "data" and data["shared"] and data["prealloc"]
    rec = {"device": 1, "flags": 0, "physical": 0, "owner": 131, "offset": 8192, "length": 4096}
    assert M.decode_record(rec, inode_type="regular")["kind"] == "file"
    assert (M.decode_record(rec, inode_type="directory")["kind"],
            M.decode_record(rec, inode_type="directory")["metadata_kind"]) == ("metadata", "directory")
    assert M.decode_record(rec, inode_type="symlink")["metadata_kind"] == "symlink"
    attr_of_file = M.decode_record(dict(rec, flags=M.FMR_OF_ATTR_FORK), inode_type="regular")
    assert (attr_of_file["kind"], attr_of_file["metadata_kind"]) == ("metadata", "attr_fork")
    weird = M.decode_record({"device": 1, "flags": M.FMR_OF_SPECIAL_OWNER, "physical": 0,
                             "owner": M.fmr_owner(ord("Z"), 9), "offset": 0, "length": 1})
    assert weird["kind"] == "metadata" and weird["metadata_kind"].startswith("special_")


def test_owners_clip_and_file_offset():
    recs = [(7, 0, 65536, 131, 8192, 16384)]
    ioctl, _calls = fake_kernel(recs)
    (o,) = M.owners_of(0, 65536 + 5000, 65536 + 5512, device=7, ioctl=ioctl)
    # the kernel returns the whole record when it starts inside the query
    assert o["overlap_start"] == 65536 + 5000
    assert o["overlap_length"] == 512
    assert o["file_offset"] == 8192 + 5000


def test_refine_xfs_header():
    g = {"agblocks": 100, "blocksize": 4096, "sectsize": 512}
    assert M.refine_xfs_header(0, g) == "sb"
    assert M.refine_xfs_header(512, g) == "agf"
    assert M.refine_xfs_header(100 * 4096 + 1024, g) == "agi"
    assert M.refine_xfs_header(100 * 4096 + 2048, g) is None


# ---------------------------------------------------------------- free space inside one extent
FREE = (M.FMR_OF_SPECIAL_OWNER, M.FMR_OWN_FREE)
BS = 4096


def layout_kernel(layout, fs_size, mode):
    """A GETFSMAP fake over a whole-filesystem *layout* [(physical, length, flags, owner, offset)]
    (sorted, free extents included) that answers like a given kernel for free space:

    - "fixed" (6.13+): every overlapping record, free extents clipped to the keys.
    - "v6.1": XFS rmapbt before 6.11 (fix ca6448aed4f1): free space is the gap between rmap
      records; a gap the query does not close with a following record ends at the start of the
      filesystem block holding the high key (a one-block query inside free space: nothing).
    - "start_in_keys": a free extent is reported only when its start lies within the keys.
    Allocated records are always reported when they overlap the keys (untrimmed).
    """
    calls = []

    def ioctl(fd, buf):
        _i, _o, count, _e = struct.unpack_from(M.HEAD_FMT, buf, 0)
        low = struct.unpack_from(M.FSMAP_FMT, buf, struct.calcsize(M.HEAD_FMT))
        high = struct.unpack_from(M.FSMAP_FMT, buf, struct.calcsize(M.HEAD_FMT) + M.FSMAP_SIZE)
        lo, hi_incl = low[2] + low[5], min(high[2], fs_size - 1)
        calls.append((lo, hi_incl + 1, count))
        sel = []
        for phys, length, flags, owner, offset in layout:
            end = phys + length
            if end <= lo or phys > hi_incl:
                continue
            if (flags, owner) != FREE:
                sel.append((phys, length, flags, owner, offset))
                continue
            a = max(phys, lo)
            if mode == "fixed":
                b = min(end, hi_incl + 1)
            elif mode == "v6.1":
                b = end if end <= hi_incl else (hi_incl // BS) * BS
            else:  # start_in_keys
                if phys < lo:
                    continue
                a, b = phys, end
            if b > a:
                sel.append((a, b - a, flags, owner, offset))
        page = sel[:count]
        for i, r in enumerate(page):
            flags = r[2] | (M.FMR_OF_LAST if r is sel[-1] else 0)
            struct.pack_into(M.FSMAP_FMT, buf, M.HEAD_SIZE + i * M.FSMAP_SIZE,
                             7, flags, r[0], r[3], r[4], r[1])
        struct.pack_into(M.HEAD_FMT, buf, 0, 0, 0, count, len(page))
    return ioctl, calls


MiB = 1 << 20
AG = 64 * MiB
FS_SIZE = 2 * AG
# AG 0: headers, file 131 (64 KiB), a 40 MiB free extent, file 132 (1 MiB), free to the AG end.
# AG 1: headers, free to the end of the filesystem.
LAYOUT = [
    (0, 64 * 1024, M.FMR_OF_SPECIAL_OWNER, M.fmr_owner(ord("X"), 1), 0),
    (64 * 1024, 64 * 1024, 0, 131, 0),
    (128 * 1024, 40 * MiB - 128 * 1024, M.FMR_OF_SPECIAL_OWNER, M.FMR_OWN_FREE, 0),
    (40 * MiB, MiB, 0, 132, 0),
    (41 * MiB, AG - 41 * MiB, M.FMR_OF_SPECIAL_OWNER, M.FMR_OWN_FREE, 0),
    (AG, 64 * 1024, M.FMR_OF_SPECIAL_OWNER, M.fmr_owner(ord("X"), 1), 0),
    (AG + 64 * 1024, AG - 64 * 1024, M.FMR_OF_SPECIAL_OWNER, M.FMR_OWN_FREE, 0),
]
MODES = ("fixed", "v6.1", "start_in_keys")


def covering(mode, start, end):
    ioctl, calls = layout_kernel(LAYOUT, FS_SIZE, mode)
    owners, gaps = M.owners_covering(0, start, end, device=7, ioctl=ioctl, agsize=AG,
                                     fs_size=FS_SIZE)
    owners.sort(key=lambda o: o["overlap_start"])
    out = []
    for o in owners:  # join adjacent pieces of one owner (the point query and a widened one)
        # an inode's data-fork record: its kind waits for the inode type (owners.py), label "data"
        label = "data" if o["fork"] == "data" else o["kind"]
        cur = [label, o["inode"], o["overlap_start"], o["overlap_length"], o["file_offset"]]
        prev = out[-1] if out else None
        if (prev and prev[:2] == cur[:2] and prev[2] + prev[3] == cur[2]
                and (prev[4] is None) == (cur[4] is None)
                and (cur[4] is None or prev[4] + prev[3] == cur[4])):
            prev[3] += cur[3]
            continue
        out.append(cur)
    return [tuple(x) for x in out], gaps, calls


def test_point_query_inside_free_extent_misses_on_old_kernels():
    """The lab symptom, reproduced by the fake: a one-block query in the middle of a free
    extent gets nothing from a 6.1 kernel (and from a start-in-keys kernel)."""
    for mode in ("v6.1", "start_in_keys"):
        ioctl, _calls = layout_kernel(LAYOUT, FS_SIZE, mode)
        assert M.owners_of(0, 20 * MiB, 20 * MiB + BS, device=7, ioctl=ioctl) == [], mode


def test_free_in_the_middle_of_an_extent_every_kernel():
    for mode in MODES:
        for start, length in ((20 * MiB, BS), (20 * MiB + 100, 512), (39 * MiB, 2 * BS),
                              (AG + 30 * MiB, BS), (60 * MiB, 3 * BS)):
            owners, gaps, _queries = covering(mode, start, start + length)
            assert gaps == [], (mode, start)
            assert owners == [("free", None, start, length, None)], (mode, start)


def test_point_query_is_one_call_when_everything_is_accounted():
    for mode in MODES:
        owners, gaps, calls = covering(mode, 64 * 1024 + 8192 + 100, 64 * 1024 + 8192 + 612)
        assert owners == [("data", 131, 64 * 1024 + 8292, 512, 8292)] and gaps == []
        assert len(calls) == 1, mode


def test_file_end_and_free_space_both_owners():
    start = 128 * 1024 - 1024          # last KiB of file 131 + first KiB of the free extent
    for mode in MODES:
        owners, gaps, _queries = covering(mode, start, start + 2048)
        assert gaps == [], mode
        assert owners == [("data", 131, start, 1024, 64 * 1024 - 1024),
                          ("free", None, 128 * 1024, 1024, None)], mode


def test_free_then_file_start():
    start = 40 * MiB - BS              # last block of the big free extent + first of file 132
    for mode in MODES:
        owners, gaps, _queries = covering(mode, start, start + 2 * BS)
        assert gaps == [], mode
        assert owners == [("free", None, start, BS, None), ("data", 132, 40 * MiB, BS, 0)], mode


def test_range_across_an_ag_boundary_in_free_space():
    start = AG - BS
    for mode in MODES:
        owners, gaps, _queries = covering(mode, start, AG + 64 * 1024 + BS)
        assert gaps == [], mode
        assert [(k, s, n) for k, _i, s, n, _f in owners] == [
            ("free", start, BS), ("metadata", AG, 64 * 1024), ("free", AG + 64 * 1024, BS)], mode


def test_beyond_the_end_is_left_unaccounted_and_split_at_the_end():
    for mode in MODES:
        owners, gaps, _queries = covering(mode, FS_SIZE - BS, FS_SIZE + 2 * BS)
        if mode == "v6.1":
            # 6.1 never reports the last block of the device when it is free: it stays
            # unaccounted (inside the filesystem), apart from the bytes beyond the end
            assert owners == [] and gaps == [(FS_SIZE - BS, FS_SIZE), (FS_SIZE, FS_SIZE + 2 * BS)]
        else:
            assert owners == [("free", None, FS_SIZE - BS, BS, None)], mode
            assert gaps == [(FS_SIZE, FS_SIZE + 2 * BS)], mode


def test_backward_search_is_logarithmic():
    """start_in_keys, 60 MiB into AG 1's free extent: a bounded number of single-record probes,
    not a walk over the allocation group."""
    _owners, gaps, calls = covering("start_in_keys", AG + 60 * MiB, AG + 60 * MiB + BS)
    assert gaps == []
    assert len(calls) < 40
    assert sum(1 for c in calls if c[2] == 1) == len(calls) - 3   # point, widened, final


def test_nothing_reported_stays_unaccounted():
    def silent(fd, buf):
        struct.pack_into(M.HEAD_FMT, buf, 0, 0, 0, 1, 0)
    owners, gaps = M.owners_covering(0, 8192, 12288, device=7, ioctl=silent, agsize=AG,
                                     fs_size=FS_SIZE)
    assert owners == [] and gaps == [(8192, 12288)]
