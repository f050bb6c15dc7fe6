# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""xfs_parents against a fake kernel that answers the two ioctls the way fs/xfs does (records
packed into the caller's buffer, cursor, OFLAG_DONE/ROOT); the real kernel is tests/host."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import struct

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import xfs_parents as X

PP = {"parent": True}


class FakeXfs:
    """{ino: (gen, [(parent_ino, parent_gen, name)])}; *top* is the mounted directory's inode and
    the filesystem root. *fail* {ino: errno}; *batch* records per call (exercises the cursor)."""

    def __init__(self, top, tree, fail=None, batch=100, enotty=False):
        self.top, self.tree, self.fail, self.batch, self.enotty = top, tree, fail or {}, batch, enotty
        self.calls = 0

    def __call__(self, fd, request, buf):
        if self.enotty:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        if request == X.XFS_IOC_FD_TO_HANDLE:
            handle = struct.pack(X.HANDLE_FMT, 7, 9, 14, 0, 0, self.top)
            ctypes.memmove(buf.ohandle, handle, len(handle))
            return
        assert request == X.XFS_IOC_GETPARENTS_BY_HANDLE
        self.calls += 1
        f0, f1, _flen, _pad, gen, ino = struct.unpack_from(X.HANDLE_FMT, buf, 0)
        assert (f0, f1) == (7, 9)
        if ino in self.fail:
            raise OSError(self.fail[ino], os.strerror(self.fail[ino]))
        if ino not in self.tree and ino != self.top or (ino in self.tree and self.tree[ino][0] != gen):
            raise OSError(errno.EINVAL, "stale")
        fields = list(struct.unpack_from(X.GETPARENTS_FMT, buf, X.HANDLE_SIZE))
        start, bufsize, addr = fields[0], fields[6], fields[8]
        if ino == self.top:
            fields[5], fields[6] = X.OFLAG_ROOT | X.OFLAG_DONE, 0
            struct.pack_into(X.GETPARENTS_FMT, buf, X.HANDLE_SIZE, *fields)
            return
        recs = self.tree[ino][1]
        out = b""
        for pino, pgen, name in recs[start:start + self.batch]:
            body = name + b"\0"
            reclen = (X.REC_HEAD + len(body) + 7) & ~7
            out += struct.pack(X.HANDLE_FMT, 7, 9, 14, 0, pgen, pino) + struct.pack(
                "=II", reclen, 0) + body.ljust(reclen - X.REC_HEAD, b"\0")
        assert len(out) <= bufsize
        ctypes.memmove(addr, out, len(out))
        nxt = start + self.batch
        fields[0] = nxt
        fields[5] = X.OFLAG_DONE if nxt >= len(recs) else 0
        fields[6] = len(out)
        struct.pack_into(X.GETPARENTS_FMT, buf, X.HANDLE_SIZE, *fields)


def never_walk(*_a, **_kw):
    raise AssertionError("walked")


@pytest.fixture
def mnt(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    yield str(tmp_path), fd, os.fstat(fd).st_ino
    os.close(fd)


def test_every_link_through_nested_directories_and_batches(mnt):
    root, fd, top = mnt
    tree = {100: (1, [(top, 0, b"a")]), 101: (1, [(100, 1, b"b")]),
            200: (5, [(101, 1, b"f"), (top, 0, b"link")] + [(100, 1, b"l%d" % i) for i in range(5)])}
    kernel = FakeXfs(top, tree, batch=2)
    res = X.find_paths(root, [200], fd=fd, geom=PP, generations={200: 5}, ioctl=kernel,
                       walk=never_walk)
    assert res["method"] == "parent_pointers"
    assert res["paths"] == {200: sorted([os.path.join(root, "a/b/f"), os.path.join(root, "link")]
                                        + [os.path.join(root, "a/l%d" % i) for i in range(5)])}
    assert res["complete"] and res["errors_count"] == 0


def test_stale_inode_has_no_path_and_no_walk(mnt):
    root, fd, top = mnt
    kernel = FakeXfs(top, {300: (2, [(top, 0, b"x")])})
    res = X.find_paths(root, [300], fd=fd, geom=PP, generations={300: 3}, ioctl=kernel,
                       walk=never_walk)  # generation moved on: the inode was freed and reused
    assert res["paths"] == {}


def test_directory_outside_the_mounted_subtree_is_no_path(mnt):
    root, fd, top = mnt
    fs_root = 64
    tree = {top: (1, [(fs_root, 0, b"sub")]), 400: (1, [(top, 1, b"in"), (500, 1, b"out")]),
            500: (1, [(fs_root, 0, b"elsewhere")])}
    kernel = FakeXfs(fs_root, tree)
    kernel.top = fs_root
    res = X._lookup(root, fd, [400], {400: 1}, kernel)[0]
    assert res["paths"] == {400: [os.path.join(root, "in")]}


def test_kernel_without_the_ioctl_falls_back_to_one_walk(mnt):
    root, fd, _top = mnt
    seen = {}

    def walk(mp, inodes, **kw):
        seen["inodes"] = list(inodes)
        return {"paths": {1: ["/x"]}, "types": {}, "errors": [], "errors_count": 0}
    res = X.find_paths(root, [1, 2], fd=fd, geom=PP, generations={1: 1, 2: 1},
                       ioctl=FakeXfs(0, {}, enotty=True), walk=walk)
    assert seen["inodes"] == [1, 2]
    assert res["method"] == "walk" and "XFS_IOC_FD_TO_HANDLE" in res["parents_unavailable"]


def test_an_io_error_on_one_inode_sends_only_that_inode_to_the_walk(mnt):
    root, fd, top = mnt
    kernel = FakeXfs(top, {10: (1, [(top, 0, b"ok")]), 11: (1, [(top, 0, b"bad")])},
                     fail={11: errno.EIO})
    seen = {}

    def walk(mp, inodes, **kw):
        seen["inodes"] = list(inodes)
        return {"paths": {11: [os.path.join(mp, "bad")]}, "types": {}, "errors": [],
                "errors_count": 0, "dirs_walked": 3, "complete": True}
    res = X.find_paths(root, [10, 11], fd=fd, geom=PP, generations={10: 1, 11: 1},
                       ioctl=kernel, walk=walk)
    assert seen["inodes"] == [11]
    assert res["method"] == "parent_pointers+walk"
    assert res["paths"] == {10: [os.path.join(root, "ok")], 11: [os.path.join(root, "bad")]}


@pytest.mark.parametrize("geom", [None, {"parent": False}])
def test_no_parent_pointers_means_the_walk(mnt, geom):
    root, fd, _top = mnt
    res = X.find_paths(root, [5], fd=fd, geom=geom, ioctl=never_walk,
                       walk=lambda mp, i, **kw: {"paths": {}, "types": {}})
    assert res["method"] == "walk"


def test_malformed_record_length_stops_parsing():
    good = struct.pack(X.HANDLE_FMT, 0, 0, 14, 0, 1, 2) + struct.pack("=II", 40, 0) + b"name\0\0\0\0"
    bad = struct.pack(X.HANDLE_FMT, 0, 0, 14, 0, 1, 3) + struct.pack("=II", 4096, 0) + b"zz\0"
    assert X.parse_records(good + bad, len(good + bad)) == [(2, 1, b"name")]
