# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths of the inode owners on a mounted filesystem (internal API): the paths a backend already
verified, one path for a file with one link, else one walk for all the rest (inode_paths.py);
then every path is checked to still be the inode (lstat, never followed) and its generation read.
Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat as _stat

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as _walk
from ansible_collections.pmem.poison.plugins.module_utils._pmem import xfs_parents as _parents
from ansible_collections.pmem.poison.plugins.module_utils._pmem.owner_record import join


def _wants_path(f):
    o = f.owner
    return o["inode"] is not None and (o["kind"] in ("file", "metadata") or f.untyped)


def attach_paths(group, fs, max_walk_seconds, fd=None, geom=None):
    """Paths (and generations) of every inode owner of the targets in *group*: what a backend
    verified already, the one path of a single-link file, else XFS parent pointers where the
    filesystem has them (*fd*, *geom*: its root and fsmap.xfs_geometry) and one walk for all the
    rest."""
    want = {}
    nlinks = {}
    for t in group:
        for f in t.found:
            if not _wants_path(f):
                continue
            if f.paths:
                f.owner["paths"] = f.paths
                f.verified = True
                continue
            if f.path_hint is not None and f.nlink == 1:
                f.owner["paths"] = [f.path_hint]
                continue
            if f.nlink:
                nlinks[f.owner["inode"]] = f.nlink
            want.setdefault(f.owner["inode"], []).append(f)
    if not want:
        _finish(group, {}, fs, None)
        return
    complete_nlinks = nlinks if set(nlinks) == set(want) else None
    gens = dict((ino, same[0].generation) for ino, same in want.items())
    res = _parents.find_paths(fs["mountpoint"], want.keys(), fd=fd, geom=geom, generations=gens,
                              max_seconds=max_walk_seconds, nlinks=complete_nlinks)
    _finish(group, res["paths"], fs, res)


def without_walk(group):
    """No path walk asked for: only the paths a backend verified already (no walking cost); an
    untyped owner stays ``unknown`` (no d_type to fall back on)."""
    for t in group:
        for f in t.found:
            if f.untyped:
                f.settle_type(None)
            if f.paths:
                f.owner["paths"] = f.paths


def _finish(group, paths, fs, res):
    gens = {}
    types = (res or {}).get("types") or {}
    for t in group:
        for f in t.found:
            o = f.owner
            if f.untyped:
                # bulkstat was not available: the walk's d_type is the inode's type
                f.settle_type(types.get(o["inode"]))
            if not _wants_path(f) and not (o["inode"] is not None and o["kind"] == "unknown"):
                continue
            if res is not None and o["inode"] in paths:
                o["paths"] = paths[o["inode"]]
            if o["kind"] == "unknown":
                continue
            if not o["paths"]:
                if res is None:
                    continue
                why = "inode %d has no path on %s: freed since the query, unlinked but still " \
                      "open, or in a directory the walk could not read" % (o["inode"], fs["mountpoint"])
                if res.get("timed_out"):
                    why = "the path walk hit max_walk_seconds before finding inode %d" % o["inode"]
                elif res.get("errors_count"):
                    why += " (%d walk errors, e.g. %s: %s)" % (
                        res["errors_count"], res["errors"][0]["path"], res["errors"][0]["error"])
                o["reason"] = join(o["reason"], why)
                o["generation"] = f.generation
                continue
            if (f.verified or f.generation is not None) and o["inode"] not in gens:
                gens[o["inode"]] = (f.generation, None)  # opened and checked, or read by number
            if o["inode"] not in gens:
                gens[o["inode"]] = _verify(o["paths"], o["inode"], fs)
            gen, problem = gens[o["inode"]]
            o["generation"] = gen
            if problem:
                o["reason"] = join(o["reason"], problem)
        if res is not None and res.get("errors_count"):
            t.result["warnings"].append("path walk on %s: %d error(s), e.g. %s: %s" % (
                fs["mountpoint"], res["errors_count"], res["errors"][0]["path"],
                res["errors"][0]["error"]))


def _verify(paths, ino, fs):
    """(generation, problem): check the first path that still exists is inode *ino* (lstat: a
    symlink is never followed); open it for the generation only when it is a regular file or a
    directory (a device node or fifo is never opened)."""
    for p in paths:
        try:
            lst = os.lstat(p)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            return None, "cannot stat %s: %s" % (p, e.strerror)
        if lst.st_ino != ino or (os.major(lst.st_dev), os.minor(lst.st_dev)) != fs["dev"]:
            return None, "path %s changed during the walk (now inode %d)" % (p, lst.st_ino)
        if not (_stat.S_ISREG(lst.st_mode) or _stat.S_ISDIR(lst.st_mode)):
            return None, None
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP):
                continue
            return None, "cannot open %s: %s" % (p, e.strerror)
        try:
            st = os.fstat(fd)
            if st.st_ino != ino or (os.major(st.st_dev), os.minor(st.st_dev)) != fs["dev"]:
                return None, "path %s changed during the walk (now inode %d)" % (p, st.st_ino)
            return _fiemap.get_generation(fd), None
        finally:
            os.close(fd)
    return None, "every path of inode %d vanished during the walk" % ino
