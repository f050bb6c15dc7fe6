# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host integration fixtures: real XFS (rmapbt=1, reflink=1) and ext4 on loop devices.

Needs root, losetup, mkfs.xfs/xfs_io/xfs_db (xfsprogs), mkfs.ext4/debugfs/filefrag (e2fsprogs).
Everything created here is torn down by finalizers (umount, losetup -d, image removed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import tempfile

import pytest

TOOLS = ("losetup", "mount", "umount", "mkfs.xfs", "xfs_io", "xfs_db", "mkfs.ext4", "debugfs",
         "filefrag")


def _require_host():
    if os.geteuid() != 0:
        pytest.skip("host tests need root (loop devices, mount, GETFSMAP)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip("host tests need: %s (Debian: xfsprogs e2fsprogs mount)" % " ".join(missing))


def sh(*argv, **kw):
    p = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, **kw)
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr + " (%s)" % (
            p.stderr.strip(),))
    return p.stdout


class LoopFs:
    """A filesystem on a loop device, mounted at .mnt (or not, after unmount())."""

    def __init__(self, fstype, workdir, size_mb=512, mkfs_args=(), fs_size_mb=None, name=None,
                 mkfs_xfs="mkfs.xfs"):
        """*fs_size_mb*: make the filesystem smaller than the device (bytes past its end belong
        to no filesystem). *name*: distinguishes several filesystems in one *workdir*.
        *mkfs_xfs*: another mkfs.xfs (a newer xfsprogs, for parent pointers)."""
        self.fstype = fstype
        name = name or fstype
        self.image = os.path.join(workdir, "%s.img" % name)
        self.mnt = os.path.join(workdir, "mnt-%s" % name)
        os.makedirs(self.mnt)
        with open(self.image, "wb") as f:
            f.truncate(size_mb << 20)
        self.dev = sh("losetup", "--find", "--show", self.image).strip()
        self.mounted = False
        try:
            if fstype == "xfs":
                size = ["-d", "size=%dm" % fs_size_mb] if fs_size_mb else []
                sh(mkfs_xfs, "-q", "-f", "-m", "rmapbt=1,reflink=1",
                   *(list(mkfs_args) + size + [self.dev]))
            else:
                size = ["%dm" % fs_size_mb] if fs_size_mb else []
                sh("mkfs.ext4", "-q", "-F", "-b", "4096", *(list(mkfs_args) + [self.dev] + size))
            self.mount()
        except Exception:
            self.destroy()
            raise

    def mount(self):
        if not self.mounted:
            sh("mount", self.dev, self.mnt)
            self.mounted = True

    def unmount(self):
        if self.mounted:
            sh("umount", self.mnt)
            self.mounted = False

    def path(self, rel):
        return os.path.join(self.mnt, rel)

    def size(self):
        return int(sh("blockdev", "--getsize64", self.dev).strip())

    def destroy(self):
        try:
            self.unmount()
        except subprocess.CalledProcessError:
            subprocess.run(["umount", "-l", self.mnt], check=False)
        subprocess.run(["losetup", "-d", self.dev], check=False)
        try:
            os.unlink(self.image)
        except OSError:
            pass


_FILEFRAG = re.compile(r"^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):")


def extents_of(path):
    """Ground truth from filefrag (independent of the code under test): [(logical_byte,
    physical_byte, length)] in bytes."""
    out = sh("filefrag", "-v", "-b4096", path)
    ext = []
    for line in out.splitlines():
        m = _FILEFRAG.match(line)
        if m:
            l0, l1, p0, _p1 = (int(x) for x in m.groups())
            ext.append((l0 * 4096, p0 * 4096, (l1 - l0 + 1) * 4096))
    return ext


def build_tree(fs):
    """data (64 KiB), data-link (hard link), s1 + s2 (one block each, adjacent), a subdir,
    and on XFS data-clone (reflink of data)."""
    rnd = os.urandom(65536)
    with open(fs.path("data"), "wb") as f:
        f.write(rnd)
    os.link(fs.path("data"), fs.path("data-link"))
    os.makedirs(fs.path("sub/deeper"))
    for name in ("s1", "s2"):
        with open(fs.path(name), "wb") as f:
            f.write(os.urandom(4096))
        fd = os.open(fs.path(name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    with open(fs.path("sub/deeper/other"), "wb") as f:
        f.write(os.urandom(8192))
    if fs.fstype == "xfs":
        sh("cp", "--reflink=always", fs.path("data"), fs.path("data-clone"))
    sh("sync")
    fs.truth = {}
    for name in ("data", "data-clone", "s1", "s2", "sub/deeper/other"):
        if os.path.exists(fs.path(name)):
            fs.truth[name] = {"extents": extents_of(fs.path(name)),
                              "inode": os.stat(fs.path(name)).st_ino}


def truth_physical(fs, name, file_offset):
    for logical, phys, length in fs.truth[name]["extents"]:
        if logical <= file_offset < logical + length:
            return phys + (file_offset - logical)
    raise AssertionError("%s: offset %d not mapped" % (name, file_offset))


@pytest.fixture(scope="module", params=["xfs", "ext4"])
def loopfs(request):
    _require_host()
    workdir = tempfile.mkdtemp(prefix="pmem-host-")
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    fs = LoopFs(request.param, workdir)
    request.addfinalizer(fs.destroy)
    build_tree(fs)
    return fs


@pytest.fixture(params=["mounted", "unmounted"])
def fs_state(request, loopfs):
    """Run a test with the filesystem mounted and again with it unmounted (offline backend)."""
    if request.param == "unmounted":
        loopfs.unmount()
        request.addfinalizer(loopfs.mount)
    else:
        loopfs.mount()
    return request.param


@pytest.fixture(params=["xfs", "ext4"])
def clearfs(request):
    """An empty filesystem of each type for the clear/ledger host tests (see fixtures_clear)."""
    _require_host()
    workdir = tempfile.mkdtemp(prefix="pmem-clear-")
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    fs = LoopFs(request.param, workdir, size_mb=320)
    request.addfinalizer(fs.destroy)
    fs.workdir = workdir
    return fs
