# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inode numbers -> every path (all hard links) with one directory walk.

Uses d_ino from readdir (os.scandir's DirEntry.inode(): no stat), stays on one filesystem (a
directory whose st_dev differs is a mount point and is not entered), and reports unreadable
directories and entries that vanish during the walk instead of failing.
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
    stack = [root]
    while stack:
        if deadline and time.monotonic() > deadline:
            res["timed_out"] = True
            res["complete"] = False
            break
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):  # vanished or replaced: not an error
                err(d, e)
            continue
        res["dirs_walked"] += 1
        with it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError as e:  # readdir failed midway (EIO, ...)
                    err(d, e)
                    break
                try:
                    ino = entry.inode()
                    if ino in wanted:
                        paths.setdefault(ino, []).append(entry.path)
                        types[ino] = entry_type(entry)
                    if entry.is_dir(follow_symlinks=False):
                        p = entry.path
                        if os.lstat(p).st_dev != root_dev:
                            continue  # mount point: another filesystem
                        stack.append(p)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        err(entry.path, e)
        if done():
            res["stopped_early"] = bool(stack)
            break
    for ino in paths:
        paths[ino].sort()
    return res
