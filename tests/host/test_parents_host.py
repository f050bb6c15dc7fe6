# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths from XFS parent pointers on a real `mkfs.xfs -n parent=1` filesystem (Linux 6.10+).

The host's xfsprogs may be too old for parent=1: scripts/xfsprogs-parent.sh finds or unpacks a
newer mkfs.xfs ($PMEM_MKFS_XFS_PARENT overrides). Skipped when neither works or the kernel cannot
mount such a filesystem. Ground truth is os.stat of the paths the test made, never the code under
test; "no walk" is proven by replacing the walk with one that fails the test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import tempfile

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as F
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as P
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O
from ansible_collections.pmem.poison.plugins.module_utils._pmem import xfs_parents as X

from .conftest import LoopFs, _require_host, extents_of, sh, truth_physical

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _parent_mkfs():
    if os.environ.get("PMEM_MKFS_XFS_PARENT"):
        return os.environ["PMEM_MKFS_XFS_PARENT"]
    p = subprocess.run([os.path.join(REPO, "scripts", "xfsprogs-parent.sh")], check=False,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        pytest.skip("no mkfs.xfs with -n parent=1: %s" % p.stderr.strip())
    return p.stdout.strip()


def _make(request, parent):
    _require_host()
    mkfs = _parent_mkfs()
    workdir = tempfile.mkdtemp(prefix="pmem-parents-")
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    try:
        fs = LoopFs("xfs", workdir, size_mb=512, mkfs_xfs=mkfs,
                    mkfs_args=("-n", "parent=%d" % parent), name="pp%d" % parent)
    except subprocess.CalledProcessError as e:
        pytest.skip("cannot make/mount an XFS with parent=%d here: %s" % (parent, e.stderr))
    request.addfinalizer(fs.destroy)
    return fs


@pytest.fixture(scope="module")
def ppfs(request):
    """XFS with parent pointers: hard links across directories, a renamed file in a renamed
    directory, a 60-level deep file, a link count above one batch of names."""
    fs = _make(request, 1)
    os.makedirs(fs.path("a/b"))
    os.makedirs(fs.path("c"))
    with open(fs.path("a/b/data"), "wb") as f:
        f.write(os.urandom(65536))
    os.link(fs.path("a/b/data"), fs.path("c/data-link"))
    os.link(fs.path("a/b/data"), fs.path("top-link"))
    os.makedirs(fs.path("old-dir"))
    with open(fs.path("old-dir/old-name"), "wb") as f:
        f.write(os.urandom(4096))
    os.rename(fs.path("old-dir/old-name"), fs.path("old-dir/new-name"))
    os.rename(fs.path("old-dir"), fs.path("new-dir"))
    deep = fs.path("/".join("level%02d" % i for i in range(60)))
    os.makedirs(deep)
    with open(os.path.join(deep, "bottom"), "wb") as f:
        f.write(os.urandom(4096))
    fs.deep = os.path.join(deep, "bottom")
    os.makedirs(fs.path("many"))
    with open(fs.path("many/f"), "wb") as f:
        f.write(os.urandom(4096))
    # 1500 links of ~100-byte names: more than one 64 KiB GETPARENTS buffer
    for i in range(1500):
        os.link(fs.path("many/f"), fs.path("many/link-%04d-%s" % (i, "x" * 90)))
    sh("sync")
    fs.truth = {"a/b/data": {"extents": extents_of(fs.path("a/b/data"))}}
    return fs


def _no_walk(monkeypatch):
    def forbidden(*_a, **_kw):
        raise AssertionError("the directory walk ran on a filesystem with parent pointers")
    monkeypatch.setattr(P, "find_paths", forbidden)


def _lookup(fs, inodes, **kw):
    fd = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return X.find_paths(fs.mnt, inodes, fd=fd, geom=F.xfs_geometry(fd), **kw)
    finally:
        os.close(fd)


def test_geometry_says_which_filesystem_has_parent_pointers(ppfs, request):
    plain = _make(request, 0)
    for fs, want in ((ppfs, True), (plain, False)):
        fd = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert X.has_parent_pointers(F.xfs_geometry(fd)) is want
        finally:
            os.close(fd)


def test_resolve_names_every_hard_link_without_a_walk(ppfs, monkeypatch):
    _no_walk(monkeypatch)
    phys = truth_physical(ppfs, "a/b/data", 4096)
    (res,) = O.resolve_owners([O.direct_range({"device": ppfs.dev, "offset": phys, "length": 512})])
    (o,) = [x for x in res["owners"] if x["kind"] == "file"]
    assert o["inode"] == os.stat(ppfs.path("a/b/data")).st_ino
    assert o["file_offset"] == 4096
    assert o["paths"] == sorted([ppfs.path("a/b/data"), ppfs.path("c/data-link"),
                                 ppfs.path("top-link")])
    assert o["generation"] is not None
    assert not res["warnings"]


def test_renamed_file_and_directory_and_deep_path(ppfs, monkeypatch):
    _no_walk(monkeypatch)
    renamed = os.stat(ppfs.path("new-dir/new-name")).st_ino
    deep = os.stat(ppfs.deep).st_ino
    res = _lookup(ppfs, [renamed, deep])
    assert res["method"] == "parent_pointers"
    assert res["paths"] == {renamed: [ppfs.path("new-dir/new-name")], deep: [ppfs.deep]}


def test_links_beyond_one_buffer(ppfs, monkeypatch):
    _no_walk(monkeypatch)
    ino = os.stat(ppfs.path("many/f")).st_ino
    res = _lookup(ppfs, [ino])
    want = sorted(os.path.join(ppfs.path("many"), n) for n in os.listdir(ppfs.path("many")))
    assert len(want) == 1501
    assert res["paths"][ino] == want


def test_same_answer_as_the_walk(ppfs):
    names = ["a/b/data", "new-dir/new-name", "new-dir", "a", "many/f"]
    inodes = [os.stat(ppfs.path(n)).st_ino for n in names] + [os.stat(ppfs.deep).st_ino]
    walked = P.find_paths(ppfs.mnt, inodes)
    assert _lookup(ppfs, inodes)["paths"] == walked["paths"]


def test_unlinked_open_file_has_no_path_and_no_walk(ppfs, monkeypatch):
    with open(ppfs.path("doomed"), "wb") as f:
        f.write(b"x" * 4096)
        ino = os.fstat(f.fileno()).st_ino
        os.unlink(ppfs.path("doomed"))
        _no_walk(monkeypatch)
        res = _lookup(ppfs, [ino])
    assert res["paths"] == {}


def test_bind_mount_of_a_subtree_names_only_what_it_shows(ppfs, tmp_path):
    bind = str(tmp_path / "bind")
    os.makedirs(bind)
    sh("mount", "--bind", ppfs.path("a"), bind)
    try:
        ino = os.stat(ppfs.path("a/b/data")).st_ino
        fd = os.open(bind, os.O_RDONLY | os.O_DIRECTORY)
        try:
            res = X.find_paths(bind, [ino], fd=fd, geom=F.xfs_geometry(fd))
        finally:
            os.close(fd)
        # c/data-link and top-link are outside the bound subtree: not reachable through it
        assert res["paths"] == {ino: [os.path.join(bind, "b", "data")]}
    finally:
        sh("umount", bind)


def test_filesystem_without_parent_pointers_uses_the_walk(request):
    plain = _make(request, 0)
    os.makedirs(plain.path("d"))
    with open(plain.path("d/f"), "wb") as f:
        f.write(b"y" * 4096)
    os.link(plain.path("d/f"), plain.path("g"))
    ino = os.stat(plain.path("g")).st_ino
    res = _lookup(plain, [ino])
    assert res["method"] == "walk"
    assert res["paths"] == {ino: sorted([plain.path("d/f"), plain.path("g")])}
