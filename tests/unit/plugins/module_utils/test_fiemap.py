# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

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
    for q in range(0, 1100, 37):
        seen = set()
        for s, e, t in rs.overlapping(q, q + 40):
            seen |= set((b, t) for b in range(s, e))
        assert seen == set((b, t) for b, t in model if q <= b < q + 40)


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
