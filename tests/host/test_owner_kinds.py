# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Owner kinds on real XFS (rmapbt) and ext4: only a regular file's data is file data.

A directory with thousands of entries, long (block-backed) symlinks and a file with large
extended attributes get blocks of their own; poison in one of those blocks is filesystem metadata
(the offline plan), never a file to restore. Ground truth comes from the filesystems' own tools
(xfs_io fsmap, debugfs stat), not from the code under test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import tempfile

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O

from .conftest import LoopFs, _require_host, extents_of, sh

BS = 4096
LONG_TARGET = "/" + "t" * 1000   # longer than any inline symlink: stored in a block of its own


@pytest.fixture(scope="module", params=["xfs", "ext4"])
def kindfs(request):
    _require_host()
    workdir = tempfile.mkdtemp(prefix="pmem-kinds-")
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    fs = LoopFs(request.param, workdir, size_mb=320, name="kinds-" + request.param)
    request.addfinalizer(fs.destroy)
    os.makedirs(fs.path("bigdir"))
    for i in range(3000):
        with open(fs.path("bigdir/entry-with-a-fairly-long-name-%05d" % i), "w"):
            pass
    os.makedirs(fs.path("links"))
    for i in range(300):
        os.symlink(LONG_TARGET + str(i), fs.path("links/l%03d" % i))
    with open(fs.path("xattr-file"), "wb") as f:
        f.write(os.urandom(BS))
    for i in range(2):
        os.setxattr(fs.path("xattr-file"), "user.big%d" % i, os.urandom(1500))
    with open(fs.path("regular"), "wb") as f:
        f.write(os.urandom(4 * BS))
    sh("sync")
    return fs


_XFS_IO_FSMAP = re.compile(r"\[(\d+)\.\.(\d+)\]:\s+inode (\d+) (data|attr) ")


def xfs_blocks(fs, ino, fork):
    """Device bytes of the blocks *ino* maps in *fork* (data|attr), from xfs_io's GETFSMAP."""
    out = sh("xfs_io", "-c", "fsmap", fs.mnt)
    found = []
    for m in _XFS_IO_FSMAP.finditer(out):
        if int(m.group(3)) == ino and m.group(4) == fork:
            found.append(int(m.group(1)) * 512)
    return found


def ext4_blocks(fs, ino, what):
    """Device bytes of *ino*'s data blocks (what=data) or its xattr block (what=attr): debugfs."""
    out = sh("debugfs", "-c", "-R", "stat <%d>" % ino, fs.dev)
    if what == "attr":
        m = re.search(r"File ACL:\s+(\d+)", out)
        return [int(m.group(1)) * BS] if m and int(m.group(1)) else []
    out = sh("debugfs", "-c", "-R", "blocks <%d>" % ino, fs.dev)
    return [int(b) * BS for b in out.split()]


def blocks_of(fs, rel, fork="data"):
    ino = os.lstat(fs.path(rel)).st_ino
    got = (xfs_blocks if fs.fstype == "xfs" else ext4_blocks)(fs, ino, fork)
    assert got, "%s (inode %d) has no %s block: the test layout did not do its job" % (rel, ino, fork)
    return ino, got


def resolve(fs, offset, length=512, **kw):
    (res,) = O.resolve_owners([O.direct_range({"device": fs.dev, "offset": offset,
                                               "length": length})], **kw)
    assert res["error"] is None, res
    return res["owners"]


@pytest.fixture(params=["mounted", "unmounted"])
def state(request, kindfs):
    if request.param == "unmounted":
        kindfs.unmount()
        request.addfinalizer(kindfs.mount)
    else:
        kindfs.mount()
    return request.param


def _path(fs, state, rel):
    return fs.path(rel) if state == "mounted" else "/" + rel


def test_large_directory_block_is_directory_metadata(kindfs, state):
    kindfs.mount()
    ino, blocks = blocks_of(kindfs, "bigdir")
    assert len(blocks) > 1  # 3000 entries: a block directory, not an inline one
    if state == "unmounted":
        kindfs.unmount()
    owners = resolve(kindfs, blocks[-1] + 1024)
    assert [(o["kind"], o["metadata_kind"], o["inode"]) for o in owners] == [
        ("metadata", "directory", ino)]
    assert owners[0]["paths"] == [_path(kindfs, state, "bigdir")]
    assert owners[0]["file_offset"] is None and owners[0]["repair_offset"] is None


def test_symlink_block_is_symlink_metadata(kindfs, state):
    kindfs.mount()
    ino, blocks = blocks_of(kindfs, "links/l123")
    if state == "unmounted":
        kindfs.unmount()
    # on mounted ext4 FIEMAP cannot map a symlink (it is never opened): debugfs names the inode,
    # and the FIEMAP pass proves no regular file or directory maps the block
    owners = resolve(kindfs, blocks[0])
    assert [(o["kind"], o["metadata_kind"], o["inode"]) for o in owners] == [
        ("metadata", "symlink", ino)]
    assert owners[0]["paths"] == [_path(kindfs, state, "links/l123")]


def test_xattr_block_is_attr_fork_metadata(kindfs, state):
    kindfs.mount()
    ino, blocks = blocks_of(kindfs, "xattr-file", "attr")
    if state == "unmounted":
        kindfs.unmount()
    owners = resolve(kindfs, blocks[0])
    assert [(o["kind"], o["metadata_kind"], o["inode"], o["attr_fork"]) for o in owners] == [
        ("metadata", "attr_fork", ino, True)]
    assert owners[0]["paths"] == [_path(kindfs, state, "xattr-file")]


def test_regular_file_is_still_file_data(kindfs, state):
    kindfs.mount()
    ino = os.stat(kindfs.path("regular")).st_ino
    logical, phys, _len = extents_of(kindfs.path("regular"))[0]
    if state == "unmounted":
        kindfs.unmount()
    owners = resolve(kindfs, phys + BS + 100)
    assert [(o["kind"], o["inode"], o["file_offset"], o["attr_fork"]) for o in owners] == [
        ("file", ino, logical + BS + 100, False)]
    assert owners[0]["paths"] == [_path(kindfs, state, "regular")]


def test_directory_found_without_bulkstat_uses_the_walk(kindfs, monkeypatch):
    """Where XFS bulkstat is missing (old kernels) the walk's d_type decides, and a directory
    still never becomes a file."""
    if kindfs.fstype != "xfs":
        pytest.skip("GETFSMAP names inode owners on XFS only")
    kindfs.mount()
    ino, blocks = blocks_of(kindfs, "bigdir")

    def no_bulkstat(fd, inodes, ioctl=None):
        raise fsmap.FsmapUnsupported(25, "XFS bulkstat: Inappropriate ioctl for device")
    monkeypatch.setattr(fsmap, "inode_types", no_bulkstat)
    owners = resolve(kindfs, blocks[0])
    assert [(o["kind"], o["metadata_kind"], o["inode"]) for o in owners] == [
        ("metadata", "directory", ino)]
    owners = resolve(kindfs, blocks[0], walk_paths=False)
    assert [o["kind"] for o in owners] == ["unknown"]  # no type known: never assumed to be a file


def test_cow_staging_is_metadata(kindfs):
    """A CoW reservation (the staging area of a write to a reflinked file) is no file's data."""
    if kindfs.fstype != "xfs":
        pytest.skip("CoW staging is XFS reflink")
    kindfs.mount()
    sh("xfs_io", "-f", "-c", "pwrite -S 0x61 0 1m", "-c", "fsync", kindfs.path("cow-a"))
    sh("cp", "--reflink=always", kindfs.path("cow-a"), kindfs.path("cow-b"))
    sh("xfs_io", "-c", "pwrite -S 0x62 4096 4096", "-c", "fsync", kindfs.path("cow-b"))
    m = re.search(r"\[(\d+)\.\.(\d+)\]:\s+cow reservation", sh("xfs_io", "-c", "fsmap", kindfs.mnt))
    assert m, "no CoW reservation to test with"
    owners = resolve(kindfs, int(m.group(1)) * 512)
    assert [(o["kind"], o["metadata_kind"]) for o in owners] == [("metadata", "cow_staging")]


def test_external_log_device_is_log_metadata(tmp_path):
    """An XFS external log device has no superblock of its own: it must not look like raw space
    (where zeros could be written) but be the log of the filesystem that uses it."""
    _require_host()
    data_img, log_img = str(tmp_path / "data.img"), str(tmp_path / "log.img")
    for img, size in ((data_img, 320 << 20), (log_img, 80 << 20)):
        with open(img, "wb") as f:
            f.truncate(size)
    data = sh("losetup", "--find", "--show", data_img).strip()
    try:
        log = sh("losetup", "--find", "--show", log_img).strip()
        try:
            sh("mkfs.xfs", "-q", "-f", "-l", "logdev=%s,size=64m" % log, data)
            mnt = str(tmp_path / "mnt")
            os.makedirs(mnt)
            sh("mount", "-o", "logdev=%s" % log, data, mnt)
            try:
                owners = resolve(type("Dev", (), {"dev": log})(), 1 << 20)
                assert [(o["kind"], o["metadata_kind"], o["mountpoint"]) for o in owners] == [
                    ("metadata", "log", mnt)]
            finally:
                sh("umount", mnt)
        finally:
            sh("losetup", "-d", log)
    finally:
        sh("losetup", "-d", data)
