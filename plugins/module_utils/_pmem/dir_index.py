# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private API: one directory walk of a mounted filesystem kept as a compact index, so that the
names of inodes learnt LATER (ext4: debugfs icheck, running in another process meanwhile) can be
looked up without a second walk and without debugfs ncheck.

The walk reads d_ino from readdir (os.scandir, no stat), stays on one filesystem (a directory
whose st_dev differs is a mount point and is not entered) and never follows a symlink. Per
directory it keeps the inode numbers (array of unsigned 64-bit ints) and the names joined by NUL
(a name cannot hold one): about 9 bytes plus the name's length per entry, no object per entry.
It only reads; the names it gives are candidates, which callers verify (lstat/open, st_ino).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import errno
import os
import time


def walk(root, root_dev=None, max_seconds=None, error_limit=100):
    """The index of every entry below *root* (one filesystem).

    Returns dict: root, root_inode, dirs [path], inodes [array('Q') per dir], names [NUL-joined
    names per dir], entries (count), errors [{path, error}] (capped), errors_count, timed_out,
    complete."""
    st = os.stat(root)
    if root_dev is None:
        root_dev = st.st_dev
    deadline = (time.monotonic() + max_seconds) if max_seconds else None
    index = {"root": root, "root_inode": st.st_ino, "dirs": [], "inodes": [], "names": [],
             "entries": 0, "errors": [], "errors_count": 0, "timed_out": False,
             "complete": True}

    def err(path, e):
        index["errors_count"] += 1
        index["complete"] = False
        if len(index["errors"]) < error_limit:
            index["errors"].append({"path": path, "error": e.strerror or str(e)})

    stack = [root]
    while stack:
        if deadline and time.monotonic() > deadline:
            index["timed_out"] = True
            index["complete"] = False
            break
        d = stack.pop()
        inos = array.array("Q")
        names = []
        try:
            it = os.scandir(d)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):  # vanished or replaced meanwhile
                err(d, e)
            continue
        with it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError as e:  # readdir failed midway (EIO, ...)
                    err(d, e)
                    break
                inos.append(entry.inode())
                names.append(entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        p = entry.path
                        if os.lstat(p).st_dev == root_dev:  # else a mount point
                            stack.append(p)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        err(entry.path, e)
        index["dirs"].append(d)
        index["inodes"].append(inos)
        index["names"].append("\0".join(names))
        index["entries"] += len(inos)
    return index


def paths_of(index, inodes):
    """{inode: [path, ...]} (sorted) for the wanted *inodes* found in *index*."""
    wanted = set(int(i) for i in inodes)
    found = {}
    if not wanted:
        return found
    if index["root_inode"] in wanted:
        found[index["root_inode"]] = [index["root"]]
    for d, inos, joined in zip(index["dirs"], index["inodes"], index["names"]):
        if wanted.isdisjoint(inos):
            continue
        names = joined.split("\0")
        for ino, name in zip(inos, names):
            if ino in wanted:
                found.setdefault(ino, []).append(os.path.join(d, name))
    for v in found.values():
        v.sort()
    return found
