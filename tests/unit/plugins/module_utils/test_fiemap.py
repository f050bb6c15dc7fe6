# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import errno
import os
import struct

import pytest
from hypothesis import given, strategies as st

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as M


def test_sizes():
    assert M.HEAD_SIZE == 32 and M.EXT_SIZE == 56
    assert M.FS_IOC_FIEMAP == 0xC020660B


def fake(extents):
    def ioctl(fd, req, buf, mutate):
        start, _len, _fl, _m, count, _r = struct.unpack_from(M.HEAD_FMT, buf, 0)
        sel = [e for e in extents if e[0] + e[2] > start][:count]
        for i, e in enumerate(sel):
            struct.pack_into(M.EXT_FMT, buf, M.HEAD_SIZE + i * M.EXT_SIZE, *e)
        struct.pack_into("=I", buf, 20, len(sel))
    return ioctl


def test_extents_pages_until_last():
    ext = [(i * 4096, 10 ** 6 + i * 8192, 4096, 0) for i in range(5)]
    ext[-1] = ext[-1][:3] + (M.FIEMAP_EXTENT_LAST,)
    got = list(M.extents(0, batch=2, ioctl=fake(ext)))
    assert got == ext


def test_rangeset_remove_and_overlap():
    rs = M.RangeSet([(0, 100, "a"), (200, 300, "b")])
    assert rs.overlapping(50, 250) == [(50, 100, "a"), (200, 250, "b")]
    rs.remove(0, 50)
    rs.remove(220, 230)
    assert [tuple(i) for i in rs.items] == [(50, 100, "a"), (200, 220, "b"), (230, 300, "b")]
    rs.remove(0, 1000)
    assert rs.empty()


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 50)), min_size=1, max_size=8),
       st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 80)), max_size=8))
def test_rangeset_matches_a_set_model(ranges, removals):
    rs = M.RangeSet([(s, s + n, i) for i, (s, n) in enumerate(ranges)])
    model = set()
    for i, (s, n) in enumerate(ranges):
        model |= set((b, i) for b in range(s, s + n))
    for s, n in removals:
        rs.remove(s, s + n)
        model = set((b, t) for b, t in model if not s <= b < s + n)
    got = set()
    for s, e, t in rs.items:
        got |= set((b, t) for b in range(s, e))
    assert got == model
    # the bisect index stays in step with the items (remove splices, it does not rebuild)
    assert rs.starts == [i[0] for i in rs.items] == sorted(rs.starts)
    # and so does the reach the scan's quick look bisects (the furthest end so far, per item)
    ends = [e for _s, e, _t in rs.items]
    assert rs.reach == [max(ends[:k + 1]) for k in range(len(ends))]
    for q in range(0, 1100, 37):
        seen = set()
        for s, e, t in rs.overlapping(q, q + 40):
            seen |= set((b, t) for b in range(s, e))
        assert seen == set((b, t) for b, t in model if q <= b < q + 40)
        # the quick look's question: does anything pending overlap [q, q + 40)?
        i = bisect.bisect_left(rs.starts, q + 40)
        assert (i > 0 and rs.reach[i - 1] > q) == bool(seen)


def test_scan_on_tmpdir_reports_errors_not_raises(tmp_path):
    """Every file and directory is reached once (a filesystem without FIEMAP, such as tmpfs, gives
    an error per file, never an exception); device byte 0 is no file's data, so it stays
    unaccounted and the pass says it finished."""
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"y" * 10)
    res = M.scan(str(tmp_path), [(0, 1, "t")], max_seconds=5)
    assert res["complete"] is True and res["timed_out"] is False
    assert res["hits"] == [] and res["unaccounted"] == [(0, 1, "t")]
    assert res["files_scanned"] == 4  # the root, a, d, d/b
    assert res["errors_count"] == len(res["errors"])
    assert all(e["path"].startswith(str(tmp_path)) for e in res["errors"])


def _fiemap_by_name(extents_of):
    """A FIEMAP ioctl answering from {file name: [extent]} (the name of the fd's file), paged like
    the kernel's: from fm_start, at most fm_extent_count; a name mapped to an errno fails."""
    def ioctl(fd, req, buf, mutate):
        ext = extents_of.get(os.path.basename(os.readlink("/proc/self/fd/%d" % fd)), [])
        if isinstance(ext, int):
            raise OSError(ext, os.strerror(ext))
        return fake(ext)(fd, req, buf, mutate)
    return ioctl


def test_scan_quick_look_leaves_every_case_but_a_clean_miss_to_the_careful_pass(tmp_path, monkeypatch):
    """Most files take one FIEMAP call and no stat; a hit, an extent with no place yet, extents past
    the first call's batch and a failing ioctl must come out as the careful pass has them."""
    last = M.FIEMAP_EXTENT_LAST
    extents_of = {
        "miss": [(0, 10 ** 6, 4096, last)],
        "hit": [(0, 2 * 10 ** 6, 8192, last)],
        # six extents, a batch of two: the hit is in the third call
        "late": [(i * 4096, 3 * 10 ** 6 + i * 8192, 4096, last if i == 5 else 0) for i in range(6)],
        "delayed": [(0, 0, 4096, M.FIEMAP_EXTENT_DELALLOC | last)],
        "empty": [],
        "refused": errno.ENOTTY,
    }
    (tmp_path / "d").mkdir()
    for name in extents_of:
        (tmp_path / "d" / name).write_bytes(b"x")
    monkeypatch.setattr(M.fcntl, "ioctl", _fiemap_by_name(extents_of))
    pending = [(2 * 10 ** 6 + 4096, 2 * 10 ** 6 + 4608, "h"), (3 * 10 ** 6 + 5 * 8192, 3 * 10 ** 6 + 5 * 8192 + 512, "l"),
               (7 * 10 ** 6, 7 * 10 ** 6 + 512, "never")]
    res = M.scan(str(tmp_path), pending, batch=2)
    got = sorted((h["tag"], h["path"], h["file_offset"], h["length"], h["physical"]) for h in res["hits"])
    assert got == [("h", str(tmp_path / "d" / "hit"), 4096, 512, 2 * 10 ** 6 + 4096),
                   ("l", str(tmp_path / "d" / "late"), 5 * 4096, 512, 3 * 10 ** 6 + 5 * 8192)]
    assert res["pending_writeback"] == [str(tmp_path / "d" / "delayed")]
    assert [e["path"] for e in res["errors"]] == [str(tmp_path / "d" / "refused")]
    assert res["unaccounted"] == [(7 * 10 ** 6, 7 * 10 ** 6 + 512, "never")]
    assert res["files_scanned"] == 8  # the root, d and its six files


def test_scan_a_fragmented_file_on_this_filesystem(tmp_path):
    """Real FIEMAP where the filesystem gives it (tmpfs does not): a file of many extents, the
    last one pending, is found past the first FIEMAP call."""
    path = tmp_path / "sparse"
    with open(str(path), "wb") as f:
        for i in range(12):  # every other block written: one extent each
            f.seek(2 * i * 4096)
            f.write(os.urandom(4096))
        os.fsync(f.fileno())
    fd = os.open(str(path), os.O_RDONLY)
    try:
        ext = list(M.extents(fd))
    except M.FiemapUnsupported:
        ext = []
    finally:
        os.close(fd)
    placed = [e for e in ext[2:] if not e[3] & M.NO_PHYSICAL]  # ext[2:]: past the first call of two
    if not placed:
        pytest.skip("no placed multi-extent FIEMAP here")
    logical, physical, _n, _fl = placed[-1]
    res = M.scan(str(tmp_path), [(physical, physical + 512, "t")], batch=2, want_directories=False)
    assert [(h["path"], h["file_offset"]) for h in res["hits"]] == [(str(path), logical)]
    assert res["unaccounted"] == [] and res["files_scanned"] == 1
