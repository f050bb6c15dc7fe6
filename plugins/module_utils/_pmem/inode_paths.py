# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one directory walker (``walk``) and, on it, inode numbers -> every path (all hard links).

``walk`` stays on one filesystem (a directory whose st_dev differs is a mount point and is not
entered), never follows a symlink, and reports unreadable directories instead of failing; entries
that vanish during the walk are not errors. Each directory is opened once and read through its fd,
which ``visit`` gets too: a caller opens entries relative to it (openat), not by a path looked up
from the root per entry. ``find_paths`` uses d_ino from readdir (os.scandir's DirEntry.inode(): no
stat); the FIEMAP scan (fiemap.scan) and the ext4 name index (dir_index.walk) walk with it too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import resource
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind


def entry_type(entry):
    """owner_kind type name of a DirEntry from its d_type (no stat unless the filesystem gives
    DT_UNKNOWN; never follows a symlink, never opens anything)."""
    if entry.is_symlink():
        return _kind.SYMLINK
    if entry.is_dir(follow_symlinks=False):
        return _kind.DIRECTORY
    if entry.is_file(follow_symlinks=False):
        return _kind.REGULAR
    return _kind.OTHER


class Dir(object):
    """The directory ``walk`` is reading, handed to ``visit``: *path* (below the walk's root) and
    *fd*, open on it for the duration of the call (open an entry relative to it:
    ``os.open(entry.name, flags, dir_fd=parent.fd)``, no path lookup from the root per entry).
    After the call the walker may keep *fd* for opening the subdirectories or close it (None)."""

    __slots__ = ("path", "fd", "prefix", "pending")

    def __init__(self, path, fd):
        self.path, self.fd = path, fd
        self.prefix = path if path.endswith("/") else path + "/"
        self.pending = 0  # its subdirectories still on the walker's stack

    def join(self, name):
        return self.prefix + name


_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = _ROOT_FLAGS | os.O_NOFOLLOW
# a directory on the stack that is gone, or no longer a directory, when its turn comes
_REPLACED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_NO_FDS = (errno.EMFILE, errno.ENFILE)
# Directories kept open while their subdirectories wait, so that each is opened relative to its
# parent: one open per directory of the current path at most, never more than this nor than a
# sixteenth of the soft descriptor limit (the callers open files meanwhile). Deeper directories are
# opened by their path, and checked to be the inode that was listed.
MAX_HELD = 64


def _held_limit():
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_HELD
    return max(0, min(MAX_HELD, soft // 16))


def _read_dir(parent, listed_ino, root_dev, visit, on_error, paths, inos):
    """Visit the entries of the open directory *parent*, push its subdirectories (path and inode
    as listed); 1 when it was read, 0 when it is not to be read: not the directory that was listed
    as *listed_ino* (renamed over, mounted over, or reached through a symlink put in since)."""
    try:
        if listed_ino is not None:
            st = os.fstat(parent.fd)
            if st.st_ino != listed_ino or st.st_dev != root_dev:
                return 0
        it = os.scandir(parent.fd)
    except OSError as e:
        on_error(parent.path, e)
        return 0
    with it:
        try:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        mount_point = st.st_dev != root_dev
                        visit(parent, entry, True, mount_point)
                        if not mount_point:
                            paths.append(parent.join(entry.name))
                            inos.append(st.st_ino)
                            parent.pending += 1
                    else:
                        visit(parent, entry, False, False)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        on_error(parent.join(entry.name), e)
        except OSError as e:  # readdir failed midway (EIO, ...): what the entry body raises stays in it
            on_error(parent.path, e)
    return 1


def _open_dir(path, parent):
    """An fd on the pending directory *path*: relative to *parent* (its Dir) while the walker holds
    the parent's fd, else by the whole path; the root (no parent) may be given through a symlink."""
    if parent is None:
        return os.open(path, _ROOT_FLAGS)
    if parent.fd is not None:
        return os.open(path[len(parent.prefix):], _DIR_FLAGS, dir_fd=parent.fd)
    return os.open(path, _DIR_FLAGS)


def walk(root, root_dev, visit, on_error, stop=None):
    """Depth-first over the directories under *root* on the filesystem *root_dev*.

    ``visit(parent, entry, is_dir, mount_point)`` is called for every directory entry: *parent*
    is the ``Dir`` being read, *entry* an ``os.DirEntry`` of it (listed from the directory's fd:
    ``entry.name`` is the name, ``parent.join(entry.name)`` the path; ``entry.path`` is NOT a
    path). A mount point is visited with ``mount_point`` true and not entered.
    ``on_error(path, OSError)`` for what cannot be read (a directory or entry that vanished
    meanwhile is skipped silently); ``stop()`` before each directory: a true value ends the walk
    with directories left. Returns ``(stopped_by, dirs_walked)``: what ``stop()`` returned (None
    when the walk finished) and the number of directories read. *root* itself is not visited.

    Each directory is opened once, relative to its parent's fd (O_NOFOLLOW: no symlink is followed
    on the way, not even one swapped in for a directory above it during the walk), and read
    through that fd; its entries are typed from d_type and only subdirectories are stat'ed
    (relative to the fd), to find mount points. The opened directory is fstat'ed: one that is not
    the inode listed is skipped as replaced. A directory's fd stays open only while its
    subdirectories wait (at most ``MAX_HELD`` of them, fewer under a low descriptor limit; past that
    depth, or once the process ran out of descriptors, directories are opened by path)."""
    paths, inos = [root], [None]  # pending directories, with their inode as listed (root: None)
    groups = []  # Dirs whose subdirectories are pending, innermost last: the parent of paths[-1]
    held = [0, _held_limit()]  # fds kept in groups, how many may be
    walked = 0
    try:
        while paths:
            stopped_by = stop() if stop is not None else None
            if stopped_by:
                return stopped_by, walked
            d, listed_ino = paths.pop(), inos.pop()
            parent = groups[-1] if listed_ino is not None else None
            dfd = _open_pending(d, parent, groups, held, on_error)
            if parent is not None:
                parent.pending -= 1
                if not parent.pending:
                    groups.pop()
                    if parent.fd is not None:
                        os.close(parent.fd)
                        parent.fd = None
                        held[0] -= 1
            if dfd is None:
                continue
            current = Dir(d, dfd)
            try:
                walked += _read_dir(current, listed_ino, root_dev, visit, on_error, paths, inos)
            finally:
                if current.pending:
                    groups.append(current)
                if current.pending and held[0] < held[1]:
                    held[0] += 1
                else:
                    os.close(dfd)
                    current.fd = None
        return None, walked
    finally:
        for g in groups:
            if g.fd is not None:
                os.close(g.fd)
                g.fd = None


def _open_pending(d, parent, groups, held, on_error):
    """_open_dir, or None when *d* is not to be read (vanished or replaced: silently; else
    on_error). Out of descriptors, the ones kept for pending subdirectories are given back and
    every directory is opened by its path from then on."""
    try:
        return _open_dir(d, parent)
    except OSError as e:
        if e.errno not in _NO_FDS or not held[0]:
            if e.errno not in _REPLACED:
                on_error(d, e)
            return None
    for g in groups:
        if g.fd is not None:
            os.close(g.fd)
            g.fd = None
    held[:] = [0, 0]
    try:
        return _open_dir(d, parent)
    except OSError as e:
        if e.errno not in _REPLACED:
            on_error(d, e)
        return None


def find_paths(root, inodes, root_dev=None, max_seconds=None, error_limit=100, nlinks=None):
    """Walk *root* once and return every path whose inode is in *inodes*.

    *nlinks* (optional {inode: st_nlink}) lets the walk stop early once every wanted inode has all
    its links. Returns dict: paths {inode: [path, ...]} (sorted), types {inode: owner_kind type
    name, from d_type}, errors [{path, error}] (capped),
    errors_count, complete (False when the deadline cut the walk short or a directory could not be
    read), timed_out, dirs_walked.
    """
    wanted = set(int(i) for i in inodes)
    paths = {}
    types = {}
    res = {"paths": paths, "types": types, "errors": [], "errors_count": 0, "complete": True, "timed_out": False,
           "dirs_walked": 0, "stopped_early": False}
    if not wanted:
        return res
    if root_dev is None:
        root_dev = os.stat(root).st_dev
    deadline = (time.monotonic() + max_seconds) if max_seconds else None

    def err(path, e):
        res["errors_count"] += 1
        if e.errno in (errno.EACCES, errno.EPERM, errno.EIO):
            res["complete"] = False
        if len(res["errors"]) < error_limit:
            res["errors"].append({"path": path, "error": e.strerror or str(e),
                                  "errno": errno.errorcode.get(e.errno, e.errno)})

    def done():
        if not nlinks:
            return False
        for ino in wanted:
            if len(paths.get(ino, ())) < nlinks.get(ino, 1 << 62):
                return False
        return True

    try:
        root_ino = os.stat(root).st_ino
    except OSError as e:
        err(root, e)
        res["complete"] = False
        return res
    if root_ino in wanted:
        paths.setdefault(root_ino, []).append(root)
        types[root_ino] = _kind.DIRECTORY

    def visit(parent, entry, _is_dir, _mount_point):
        ino = entry.inode()
        if ino in wanted:
            paths.setdefault(ino, []).append(parent.join(entry.name))
            types[ino] = entry_type(entry)

    def stop():
        if deadline and time.monotonic() > deadline:
            res["timed_out"] = True
            res["complete"] = False
            return "timed_out"
        return "done" if done() else None

    stopped_by, res["dirs_walked"] = walk(root, root_dev, visit, err, stop)
    res["stopped_early"] = stopped_by == "done"
    for ino in paths:
        paths[ino].sort()
    return res
