# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""FS_IOC_FIEMAP from Python and the one-pass scan of one filesystem's files (over the one walker,
inode_paths.walk).

Layout (include/uapi/linux/fiemap.h)::

    struct fiemap        { u64 start, length; u32 flags, mapped_extents, extent_count, reserved; } 32
    struct fiemap_extent { u64 logical, physical, length, reserved64[2]; u32 flags, reserved[3]; } 56

FIEMAP_FLAG_SYNC is never used: it writes dirty page-cache data back, possibly onto the very blocks
we are asking about, and this pass must stay read-only. Extents flagged DELALLOC or UNKNOWN have no
place on the device yet; the scan reports those files instead of guessing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import errno
import fcntl
import os
import struct
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as _inode_paths
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind

HEAD_FMT = "=QQIIII"
HEAD_SIZE = struct.calcsize(HEAD_FMT)  # 32
EXT_FMT = "=QQQ16xI12x"
EXT_SIZE = struct.calcsize(EXT_FMT)  # 56

# _IOWR('f', 11, struct fiemap)
FS_IOC_FIEMAP = (3 << 30) | (HEAD_SIZE << 16) | (ord("f") << 8) | 11
# _IOR('v', 1, long)
FS_IOC_GETVERSION = (2 << 30) | (struct.calcsize("l") << 16) | (ord("v") << 8) | 1

FIEMAP_MAX_OFFSET = 0xFFFFFFFFFFFFFFFF
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_FLAG_XATTR = 0x2

FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DELALLOC = 0x4
FIEMAP_EXTENT_ENCODED = 0x8
FIEMAP_EXTENT_DATA_ENCRYPTED = 0x80
FIEMAP_EXTENT_NOT_ALIGNED = 0x100
FIEMAP_EXTENT_DATA_INLINE = 0x200
FIEMAP_EXTENT_DATA_TAIL = 0x400
FIEMAP_EXTENT_UNWRITTEN = 0x800
FIEMAP_EXTENT_MERGED = 0x1000
FIEMAP_EXTENT_SHARED = 0x2000

# extents with no usable physical address
NO_PHYSICAL = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE

O_NOATIME = getattr(os, "O_NOATIME", 0)


class FiemapUnsupported(Exception):
    """FIEMAP not available on this file/filesystem."""


def _buffer(count):
    return bytearray(HEAD_SIZE + count * EXT_SIZE)


def extents(fd, batch=32, buf=None, ioctl=None, xattr=False):
    """Yield (logical, physical, length, flags) for every extent of an open file (of its extended
    attribute blocks with *xattr*: FIEMAP_FLAG_XATTR)."""
    do_ioctl = ioctl or fcntl.ioctl
    if buf is None or len(buf) < HEAD_SIZE + batch * EXT_SIZE:
        buf = _buffer(batch)
    start = 0
    while True:
        struct.pack_into(HEAD_FMT, buf, 0, start, FIEMAP_MAX_OFFSET - start,
                         FIEMAP_FLAG_XATTR if xattr else 0, 0, batch, 0)
        try:
            do_ioctl(fd, FS_IOC_FIEMAP, buf, True)
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EBADR):
                raise FiemapUnsupported(os.strerror(e.errno))
            raise
        mapped = struct.unpack_from("=I", buf, 20)[0]
        if mapped == 0:
            return
        last = None
        for i in range(mapped):
            last = struct.unpack_from(EXT_FMT, buf, HEAD_SIZE + i * EXT_SIZE)
            yield last
        if last[3] & FIEMAP_EXTENT_LAST:
            return
        nxt = last[0] + last[2]
        if nxt <= start:
            return
        start = nxt


def get_generation(fd):
    """FS_IOC_GETVERSION (the inode generation) or None when the filesystem does not give it."""
    buf = bytearray(struct.calcsize("l"))
    try:
        fcntl.ioctl(fd, FS_IOC_GETVERSION, buf, True)
    except OSError:
        return None
    return struct.unpack("l", bytes(buf))[0] & 0xFFFFFFFF


class RangeSet:
    """Pending device byte intervals for one filesystem: what the scan still has to account for.

    Memory is bounded by the number of ranges. Each interval carries a tag (the caller's range key).
    Intervals hit by a SHARED extent stay pending: another file may own them too.
    """

    def __init__(self, intervals):
        # intervals: iterable of (start, end, tag); kept sorted by start
        self.items = sorted([s, e, t] for s, e, t in intervals if e > s)
        self.starts = [i[0] for i in self.items]
        self.maxlen = max([e - s for s, e, _t in self.items] or [0])
        # reach[i]: the furthest end among items[:i + 1]. Intervals may overlap each other, so
        # "does anything pending overlap [start, end)" is one bisect and one lookup: the scan asks
        # that of every extent of every file and almost always hears no
        self.reach = []
        self._set_reach()

    def _set_reach(self):
        far = 0
        reach = []
        for _s, e, _t in self.items:
            far = max(far, e)
            reach.append(far)
        self.reach[:] = reach  # in place: the scan holds this list

    def empty(self):
        return not self.items

    def overlapping(self, start, end):
        """(istart, iend, tag) of pending intervals overlapping [start, end)."""
        out = []
        lo = bisect.bisect_left(self.starts, start - self.maxlen)
        hi = bisect.bisect_left(self.starts, end)
        for i in range(lo, hi):
            s, e, t = self.items[i]
            if s < end and e > start:
                out.append((max(s, start), min(e, end), t))
        return out

    def remove(self, start, end):
        """Mark [start, end) accounted for (an unshared owner was found).

        Only the intervals that can overlap are touched (bisect + splice): a pass that removes
        one interval per hit stays O(ranges) per hit, not a full rebuild."""
        lo = bisect.bisect_left(self.starts, start - self.maxlen)
        hi = bisect.bisect_left(self.starts, end)
        if lo >= hi:
            return
        keep, right = [], []
        changed = False
        for s, e, t in self.items[lo:hi]:
            if s >= end or e <= start:
                keep.append([s, e, t])
                continue
            changed = True
            if s < start:
                keep.append([s, start, t])
            if e > end:
                right.append([end, e, t])
        if not changed:
            return
        # kept pieces start before *end*, right-hand pieces start at *end*: both still sort
        # between items[lo - 1] and items[hi]
        new = sorted(keep) + sorted(right)
        self.items[lo:hi] = new
        self.starts[lo:hi] = [i[0] for i in new]
        self._set_reach()


def _same_path(path):
    """The root is opened by its own path (no directory fd): the name is the path."""
    return path


def scan(root, intervals, root_dev=None, max_seconds=None, batch=32, stop_early=True,
         want_directories=True, error_limit=100):
    """One pass over the files under *root* (one filesystem, no mount crossing).

    *intervals*: [(start, end, tag)] device bytes to account for. Returns a dict:

    - hits: [{tag, inode, path, nlink, file_offset, length, physical, shared, unwritten, is_dir,
      inode_type}] (inode_type: owner_kind type name from the opened file's fstat)
    - pending_writeback: paths (capped) of files with DELALLOC/UNKNOWN extents: their data is in
      the page cache and has no place on the device yet; pending_writeback_count the total.
    - errors: [{path, error}] capped at *error_limit*; errors_count the total.
    - files_scanned, complete (True when the pass finished or every range was accounted for),
      stopped_early, timed_out.
    """
    pending = RangeSet(intervals)
    if root_dev is None:
        root_dev = os.stat(root).st_dev
    deadline = (time.monotonic() + max_seconds) if max_seconds else None
    buf = _buffer(batch)
    hits = []
    res = {"hits": hits, "pending_writeback": [], "pending_writeback_count": 0, "errors": [],
           "errors_count": 0, "files_scanned": 0, "complete": False, "stopped_early": False,
           "timed_out": False}
    file_flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    open_flags = [file_flags | O_NOATIME]  # O_NOATIME dropped for good after the first EPERM
    fast_scanned = [0]  # files settled by the quick look in visit (map_open counts its own)

    def err(path, e):
        res["errors_count"] += 1
        if len(res["errors"]) < error_limit:
            res["errors"].append({"path": path, "error": getattr(e, "strerror", None) or str(e)})

    def open_file(name, dfd, path_of):
        # Opened relative to its directory (no path lookup from the root per file). None when it
        # vanished since readdir (nothing to map) or cannot be opened (reported).
        try:
            return os.open(name, open_flags[0], dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.EPERM and open_flags[0] != file_flags:
                # O_NOATIME is for the file's owner only: not being it is no reason to skip files
                open_flags[0] = file_flags
                return open_file(name, dfd, path_of)
            if e.errno != errno.ENOENT:
                err(path_of(name), e)
            return None

    def map_open(fd, name, path_of):
        # Every extent of one open file, paged. A file is not stat'ed unless it maps pending
        # bytes: a file that hits is fstat'ed then, and dropped when it is on another filesystem
        # (a file bind-mounted over this one's).
        try:
            res["files_scanned"] += 1
            delayed = False
            st = None
            for logical, physical, length, flags in extents(fd, batch=batch, buf=buf):
                if flags & NO_PHYSICAL:
                    delayed = delayed or bool(flags & (FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN))
                    continue
                found = pending.overlapping(physical, physical + length)
                if not found:
                    continue
                if st is None:
                    st = os.fstat(fd)
                    if st.st_dev != root_dev:
                        return
                inode_type = _kind.type_from_mode(st.st_mode)
                for s, e, tag in found:
                    shared = bool(flags & FIEMAP_EXTENT_SHARED)
                    hits.append({"tag": tag, "inode": st.st_ino, "path": path_of(name),
                                 "nlink": st.st_nlink, "file_offset": logical + (s - physical),
                                 "length": e - s, "physical": s, "shared": shared,
                                 "unwritten": bool(flags & FIEMAP_EXTENT_UNWRITTEN),
                                 "is_dir": inode_type == _kind.DIRECTORY,
                                 "inode_type": inode_type})
                    if not shared:
                        pending.remove(s, e)
            if delayed:
                res["pending_writeback_count"] += 1
                if len(res["pending_writeback"]) < error_limit:
                    res["pending_writeback"].append(path_of(name))
        except FiemapUnsupported as e:
            err(path_of(name), e)
        except OSError as e:
            err(path_of(name), e)

    # The quick look of visit: the names it calls are bound here once, because it runs for every
    # file and almost every file neither maps pending bytes nor needs a second FIEMAP call.
    struct.pack_into(HEAD_FMT, buf, 0, 0, FIEMAP_MAX_OFFSET, 0, 0, batch, 0)
    head = bytes(buf[:HEAD_SIZE])
    mapped_of = struct.Struct("=I").unpack_from
    placed_of = struct.Struct("=8xQQ16xI12x").unpack_from  # physical, length, flags
    ext_offsets = range(HEAD_SIZE, HEAD_SIZE + batch * EXT_SIZE, EXT_SIZE)
    starts, reach = pending.starts, pending.reach  # RangeSet keeps these lists in place
    os_open, os_close, ioctl, bisect_left = os.open, os.close, fcntl.ioctl, bisect.bisect_left

    def visit(parent, entry, is_dir, mount_point):
        if is_dir:
            if mount_point or not want_directories:
                return
        elif not entry.is_file(follow_symlinks=False):
            return
        name, dfd = entry.name, parent.fd
        try:
            fd = os_open(name, open_flags[0], dir_fd=dfd)
        except OSError:
            fd = open_file(name, dfd, parent.join)  # retries without O_NOATIME, reports
            if fd is None:
                return
        try:
            careful = True
            try:
                # One FIEMAP call; when every extent it gives is placed and overlaps nothing
                # pending, and the last one is the file's last, the file is done. Anything else
                # (a hit, delayed allocation, more extents, an error) is left to map_open, which
                # asks again from the start.
                buf[:HEAD_SIZE] = head
                ioctl(fd, FS_IOC_FIEMAP, buf, True)
                flags = FIEMAP_EXTENT_LAST  # no extent at all: an empty file
                for off in ext_offsets[:mapped_of(buf, 20)[0]]:
                    physical, length, flags = placed_of(buf, off)
                    if flags & NO_PHYSICAL:
                        break
                    i = bisect_left(starts, physical + length)
                    if i and reach[i - 1] > physical:
                        break
                else:
                    careful = not flags & FIEMAP_EXTENT_LAST
            except OSError:
                pass  # map_open asks again and reports it
            if careful:
                map_open(fd, name, parent.join)
            else:
                fast_scanned[0] += 1
        finally:
            os_close(fd)

    def stop():
        if stop_early and pending.empty():
            res["stopped_early"] = True
            return "stopped_early"
        if deadline and time.monotonic() > deadline:
            res["timed_out"] = True
            return "timed_out"
        return None

    if want_directories:
        fd = open_file(root, None, _same_path)
        if fd is not None:
            try:
                map_open(fd, root, _same_path)
            finally:
                os.close(fd)
    _inode_paths.walk(root, root_dev, visit, err, stop)
    res["files_scanned"] += fast_scanned[0]
    res["complete"] = not res["timed_out"]
    res["unaccounted"] = [tuple(item) for item in pending.items]
    return res
