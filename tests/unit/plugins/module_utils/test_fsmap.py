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
    assert data["kind"] == "file" and data["shared"] and data["prealloc"]
    weird = M.decode_record({"device": 1, "flags": M.FMR_OF_SPECIAL_OWNER, "physical": 0,
                             "owner": M.fmr_owner(ord("Z"), 9), "offset": 0, "length": 1})
    assert weird["kind"] == "metadata" and weird["metadata_kind"].startswith("special_")


def test_owners_clip_and_file_offset():
    recs = [(7, 0, 65536, 131, 8192, 16384)]
    ioctl, _ = fake_kernel(recs)
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
