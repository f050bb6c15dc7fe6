# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private API: one directory walk of a mounted filesystem kept as a compact index, so that the
names of inodes learnt LATER (ext4: debugfs icheck, running in another process meanwhile) can be
looked up without a second walk and without debugfs ncheck.

The walk is the one tree walker (inode_paths.walk): d_ino from readdir (os.scandir, no stat), one
filesystem (a mount point is not entered), never following a symlink. Per
directory it keeps the inode numbers (array of unsigned 64-bit ints) and the names joined by NUL
(a name cannot hold one): about 9 bytes plus the name's length per entry, no object per entry.
It only reads; the names it gives are candidates, which callers verify (lstat/open, st_ino).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import os
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as _inode_paths


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

    current = {"dir": None, "inodes": None, "names": None}

    def flush():
        if current["dir"] is not None:
            index["dirs"].append(current["dir"])
            index["inodes"].append(current["inodes"])
            index["names"].append("\0".join(current["names"]))
            index["entries"] += len(current["inodes"])
        current["dir"] = None

    def visit(parent, entry, _is_dir, _mount_point):
        # the walker reads one directory at a time: its entries arrive together
        d = parent.path
        if d != current["dir"]:
            flush()
            current.update({"dir": d, "inodes": array.array("Q"), "names": []})
        current["inodes"].append(entry.inode())
        current["names"].append(entry.name)

    def stop():
        if deadline and time.monotonic() > deadline:
            index["timed_out"] = True
            index["complete"] = False
            return "timed_out"
        return None

    _inode_paths.walk(root, root_dev, visit, err, stop)
    flush()
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
