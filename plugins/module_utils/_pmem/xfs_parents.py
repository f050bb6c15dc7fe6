# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inode numbers -> every path from XFS parent pointers (no directory walk). Private API.

An XFS filesystem made with ``mkfs.xfs -n parent=1`` (Linux 6.10+, xfsprogs 6.10+) keeps, for every
link of every inode, a parent pointer (parent directory handle + name) in the inode's attr fork.
``XFS_IOC_GETPARENTS_BY_HANDLE`` (root) reads them by inode number and generation, so naming the
owners of a bad range costs a few ioctls per path component instead of one walk of the whole tree.
Whether a filesystem has them is decided once, by the geometry flag (fsmap.xfs_geometry "parent").

find_paths() answers what it can and hands the inodes it could not name (no parent pointers, stale
handle, ioctl missing) to the single walk (inode_paths.find_paths), so callers get one answer of
the walk's shape either way, with "method" saying which was used.

Layouts (fs/xfs/libxfs/xfs_fs.h, checked against Linux 6.18 and 7.3)::

    struct xfs_handle   { u32 fsid[2]; u16 fid_len, fid_pad; u32 fid_gen; u64 fid_ino; }   24 bytes
    struct xfs_getparents { u32 cursor[4]; u16 iflags, oflags; u32 bufsize; u64 reserved;
                            u64 buffer; }                                                 40 bytes
    struct xfs_getparents_by_handle { struct xfs_handle handle; struct xfs_getparents req; } 64 bytes
    struct xfs_getparents_rec { struct xfs_handle parent; u32 reclen, reserved; char name[]; }
    struct xfs_fsop_handlereq { u32 fd; void *path; u32 oflags; void *ihandle; u32 ihandlen;
                                void *ohandle; u32 *ohandlen; }                    (LP64: 56 bytes)

The kernel sets gp_bufsize to the bytes it filled and XFS_GETPARENTS_OFLAG_DONE on the last batch;
the root directory answers with XFS_GETPARENTS_OFLAG_ROOT and no records.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import fcntl
import os
import struct

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as _fsmap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as _paths

HANDLE_FMT = "=IIHHIQ"
HANDLE_SIZE = struct.calcsize(HANDLE_FMT)  # 24
GETPARENTS_FMT = "=4IHHIQQ"
GETPARENTS_SIZE = struct.calcsize(GETPARENTS_FMT)  # 40
BY_HANDLE_SIZE = HANDLE_SIZE + GETPARENTS_SIZE  # 64
REC_HEAD = HANDLE_SIZE + 8  # 32: handle, reclen, reserved; the NUL-terminated name follows

OFLAG_ROOT = 1 << 0
OFLAG_DONE = 1 << 1

# _IOWR('X', 63, struct xfs_getparents_by_handle)
XFS_IOC_GETPARENTS_BY_HANDLE = (3 << 30) | (BY_HANDLE_SIZE << 16) | (ord("X") << 8) | 63


class _HandleReq(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("path", ctypes.c_void_p), ("oflags", ctypes.c_uint32),
                ("ihandle", ctypes.c_void_p), ("ihandlen", ctypes.c_uint32),
                ("ohandle", ctypes.c_void_p), ("ohandlen", ctypes.c_void_p)]


# _IOWR('X', 106, struct xfs_fsop_handlereq)
XFS_IOC_FD_TO_HANDLE = (3 << 30) | (ctypes.sizeof(_HandleReq) << 16) | (ord("X") << 8) | 106

BUFSIZE = 64 * 1024  # XFS_XATTR_LIST_MAX: one call returns every parent of all but huge link sets
MAX_DEPTH = 4096     # a deeper chain is a loop or corruption, never a real tree


class ParentsUnavailable(Exception):
    """The filesystem or kernel cannot answer parent-pointer queries (the walk must)."""


def has_parent_pointers(geom):
    """The one decision: this XFS filesystem has parent pointers (geometry flag)."""
    return bool(geom and geom.get("parent"))


def _kernel_ioctl(fd, request, buf):
    fcntl.ioctl(fd, request, buf, True)


def fs_handle(fd, ioctl=None):
    """(fsid0, fsid1, fid_len) of the filesystem of *fd*, from the handle of *fd* itself."""
    do_ioctl = ioctl or _kernel_ioctl
    out = ctypes.create_string_buffer(HANDLE_SIZE)
    outlen = ctypes.c_uint32(HANDLE_SIZE)
    req = _HandleReq(fd=fd, ohandle=ctypes.addressof(out), ohandlen=ctypes.addressof(outlen))
    try:
        do_ioctl(fd, XFS_IOC_FD_TO_HANDLE, req)
    except OSError as e:
        raise ParentsUnavailable("XFS_IOC_FD_TO_HANDLE: %s" % (e.strerror or e))
    fsid0, fsid1, fid_len, _pad, _gen, _ino = struct.unpack_from(HANDLE_FMT, out.raw, 0)
    return fsid0, fsid1, fid_len


def parse_records(buf, used):
    """[(parent_ino, parent_gen, name_bytes)] from the first *used* bytes of a record buffer."""
    out = []
    off = 0
    while off + REC_HEAD <= used:
        _f0, _f1, _flen, _fpad, gen, ino = struct.unpack_from(HANDLE_FMT, buf, off)
        reclen = struct.unpack_from("=I", buf, off + HANDLE_SIZE)[0]
        if reclen < REC_HEAD or off + reclen > used:
            break  # malformed: never read past what the kernel filled
        name = bytes(buf[off + REC_HEAD:off + reclen]).split(b"\0", 1)[0]
        out.append((ino, gen, name))
        off += reclen
    return out


def parents_of(fd, fsh, ino, gen, ioctl=None, bufsize=BUFSIZE):
    """(is_root, [(parent_ino, parent_gen, name_bytes)]) for inode *ino*/*gen*: every link.
    Raises OSError from the kernel (ESTALE/EINVAL: freed or reused inode; EOPNOTSUPP: no parent
    pointers) and ParentsUnavailable when the ioctl does not exist."""
    do_ioctl = ioctl or _kernel_ioctl
    records = ctypes.create_string_buffer(bufsize)
    req = bytearray(BY_HANDLE_SIZE)
    struct.pack_into(HANDLE_FMT, req, 0, fsh[0], fsh[1], fsh[2], 0, gen, ino)
    cursor = (0, 0, 0, 0)
    out = []
    is_root = False
    for _batch in range(1 << 16):
        fields = cursor + (0, 0, bufsize, 0, ctypes.addressof(records))
        struct.pack_into(GETPARENTS_FMT, req, HANDLE_SIZE, *fields)
        try:
            do_ioctl(fd, XFS_IOC_GETPARENTS_BY_HANDLE, req)
        except OSError as e:
            if e.errno == errno.ENOTTY:
                raise ParentsUnavailable("XFS_IOC_GETPARENTS_BY_HANDLE: %s" % os.strerror(e.errno))
            raise
        fields = struct.unpack_from(GETPARENTS_FMT, req, HANDLE_SIZE)
        cursor, oflags, used = fields[0:4], fields[5], fields[6]
        is_root = is_root or bool(oflags & OFLAG_ROOT)
        out.extend(parse_records(records.raw, min(used, bufsize)))
        if oflags & OFLAG_DONE or not used:
            break
    return is_root, out


def _dir_path(fd, fsh, ino, gen, top_ino, top_path, cache, ioctl):
    """Path of directory *ino* under the mount (*top_ino* is the mounted directory), or None when
    it is not reachable from the mount (the mount is a bind mount of another subtree)."""
    chain = []  # (directory inode, its name in its parent), from *ino* upwards
    cur, cur_gen = ino, gen
    for _depth in range(MAX_DEPTH):
        if cur == top_ino:
            base = top_path
            break
        if cur in cache:
            base = cache[cur]
            break
        is_root, recs = parents_of(fd, fsh, cur, cur_gen, ioctl=ioctl)
        if is_root or not recs:
            base = cache[cur] = None  # the filesystem root, not passing the mounted directory
            break
        pino, pgen, name = recs[0]  # a directory has exactly one parent
        chain.append((cur, name))
        cur, cur_gen = pino, pgen
    else:
        raise OSError(errno.ELOOP, "parent chain of inode %d deeper than %d" % (ino, MAX_DEPTH))
    path = base
    for c, name in reversed(chain):
        path = None if path is None else os.path.join(path, os.fsdecode(name))
        cache[c] = path
    return path


def _lookup(mountpoint, fd, inodes, generations, ioctl):
    """Parent-pointer pass: (result dict of the walk's shape, inodes left for the walk)."""
    res = {"paths": {}, "types": {}, "errors": [], "errors_count": 0, "complete": True,
           "timed_out": False, "dirs_walked": 0, "stopped_early": False,
           "method": "parent_pointers", "parent_lookups": 0}
    fsh = fs_handle(fd, ioctl=ioctl)
    top = os.fstat(fd).st_ino
    gens = dict(generations or {})
    missing = [i for i in inodes if gens.get(i) is None]
    if missing:
        try:
            info = _fsmap.inode_types(fd, missing)
        except (_fsmap.FsmapUnsupported, OSError) as e:
            raise ParentsUnavailable("bulkstat for inode generations: %s" % e)
        for i, v in info.items():
            if v is not None:
                gens[i] = v["generation"]
                res["types"][i] = v["type"]
    cache = {}
    left = []
    for ino in inodes:
        if gens.get(ino) is None:
            continue  # bulkstat does not know it: freed since the query, nothing to name
        if ino == top:
            res["paths"][ino] = [mountpoint]
            continue
        try:
            _is_root, recs = parents_of(fd, fsh, ino, gens[ino], ioctl=ioctl)
            res["parent_lookups"] += 1
            names = []
            for pino, pgen, name in recs:
                base = _dir_path(fd, fsh, pino, pgen, top, mountpoint, cache, ioctl)
                if base is not None:
                    names.append(os.path.join(base, os.fsdecode(name)))
        except OSError as e:
            if e.errno in (errno.ESTALE, errno.ENOENT, errno.EINVAL):
                continue  # freed or reused since the query: no path, as the walk would find
            left.append(ino)  # EIO, corruption...: the walk may still find its links
            continue
        if names:
            res["paths"][ino] = sorted(set(names))
        # no record: unlinked but still open (parent pointers are complete, a walk finds no more)
    return res, left


def find_paths(mountpoint, inodes, fd=None, geom=None, generations=None, max_seconds=None,
               nlinks=None, ioctl=None, walk=None):
    """Every path of each inode in *inodes* under *mountpoint*, the walk's result shape
    (inode_paths.find_paths) plus "method": "parent_pointers", "walk" or "parent_pointers+walk".

    Parent pointers are used when *geom* (fsmap.xfs_geometry of *fd*) says the filesystem has
    them; inodes they cannot name, or every inode when the kernel refuses, go to one walk.
    *generations* ({inode: generation}, optional) saves the bulkstat for inodes already read.
    *ioctl* and *walk* are for tests."""
    walk = walk or _paths.find_paths
    wanted = sorted(set(int(i) for i in inodes))
    if fd is None or not has_parent_pointers(geom) or not wanted:
        res = walk(mountpoint, wanted, max_seconds=max_seconds, nlinks=nlinks)
        res["method"] = "walk"
        return res
    try:
        res, left = _lookup(mountpoint, fd, wanted, generations, ioctl)
    except ParentsUnavailable as e:
        res = walk(mountpoint, wanted, max_seconds=max_seconds, nlinks=nlinks)
        res["method"] = "walk"
        res["parents_unavailable"] = str(e)
        return res
    if left:
        sub_nlinks = dict((i, nlinks[i]) for i in left if i in nlinks) if nlinks else None
        if sub_nlinks is not None and set(sub_nlinks) != set(left):
            sub_nlinks = None
        walked = walk(mountpoint, left, max_seconds=max_seconds, nlinks=sub_nlinks)
        for k in ("errors_count", "dirs_walked"):
            res[k] += walked.get(k, 0)
        res["errors"].extend(walked.get("errors", []))
        for k in ("complete",):
            res[k] = res[k] and walked.get(k, True)
        res["timed_out"] = walked.get("timed_out", False)
        res["paths"].update(walked.get("paths", {}))
        res["types"].update(walked.get("types", {}))
        res["method"] = "parent_pointers+walk"
    return res
