# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one directory walker (``walk``) and, on it, inode numbers -> every path (all hard links).

``walk`` stays on one filesystem (a directory whose st_dev differs is a mount point and is not
entered), never follows a symlink, and reports unreadable directories instead of failing; entries
that vanish during the walk are not errors. ``find_paths`` uses d_ino from readdir (os.scandir's
DirEntry.inode(): no stat); the FIEMAP scan (fiemap.scan) walks with it too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
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


def walk(root, root_dev, visit, on_error, stop=None):
    """Depth-first over the directories under *root* on the filesystem *root_dev*.

    ``visit(entry, is_dir, mount_point)`` is called for every directory entry (a ``os.DirEntry``;
    a mount point is visited with ``mount_point`` true and not entered); ``on_error(path, OSError)`` for what cannot be read (a
    directory or entry that vanished meanwhile is skipped silently); ``stop()`` before each
    directory: a true value ends the walk with directories left. Returns
    ``(stopped_by, dirs_walked)``: what ``stop()`` returned (None when the walk finished) and the
    number of directories read. *root* itself is not visited."""
    stack = [root]
    walked = 0
    while stack:
        stopped_by = stop() if stop is not None else None
        if stopped_by:
            return stopped_by, walked
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):  # vanished or replaced: not an error
                on_error(d, e)
            continue
        walked += 1
        with it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError as e:  # readdir failed midway (EIO, ...)
                    on_error(d, e)
                    break
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    mount_point = is_dir and os.lstat(entry.path).st_dev != root_dev
                    visit(entry, is_dir, mount_point)
                    if is_dir and not mount_point:
                        stack.append(entry.path)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        on_error(entry.path, e)
    return None, walked


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

    def visit(entry, _is_dir, _mount_point):
        ino = entry.inode()
        if ino in wanted:
            paths.setdefault(ino, []).append(entry.path)
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
