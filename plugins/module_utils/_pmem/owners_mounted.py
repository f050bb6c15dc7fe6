# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Owners on a mounted filesystem (internal API): GETFSMAP first (fsmap.py: XFS rmapbt names
file owners, metadata and free space; ext4 names metadata and free space), then one FIEMAP pass
(fiemap.py) for the bytes it reports as "unknown" (ext4 file data, XFS without rmapbt) or for
everything when GETFSMAP is unavailable.

On mounted ext2/3/4 as root with debugfs, the candidates of owners_ext4.py settle bytes before
that pass. Paths come last, from owners_paths.py. Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as _fsmap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_record as _record
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_ext4 as _ext4
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline as _offline
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_paths as _paths
from ansible_collections.pmem.poison.plugins.module_utils._pmem.owner_record import new_owner

EXT_FS = _ext4.EXT_FS


def _settle_inode_types(group, fd, ioctl=None):
    """Data-fork owners from GETFSMAP: read each inode's type by number (XFS bulkstat: no path is
    followed, nothing is opened) and decide file data vs directory/symlink metadata. Where bulkstat
    is not available the type comes from the path walk's d_type (owners_paths)."""
    want = set(f.owner["inode"] for t in group for f in t.found if f.untyped)
    if not want:
        return
    try:
        types = _fsmap.inode_types(fd, want, ioctl=ioctl)
    except (_fsmap.FsmapUnsupported, OSError):
        return
    for t in group:
        for f in t.found:
            if not f.untyped:
                continue
            info = types.get(f.owner["inode"])
            if info is None:
                f.settle_type(None)
                continue
            f.settle_type(info["type"])
            f.generation = info["generation"]
            f.nlink = info["nlink"]


def resolve(group, fs, walk_paths, max_walk_seconds, run=None, ext4_debugfs=True,
            dev_root="/dev"):
    """Owners of every target of *group* (owners._Target: ranges on one mounted filesystem)."""
    mp = fs["mountpoint"]
    fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        geom = _fsmap.xfs_geometry(fd) if fs["fstype"] == "xfs" else None
        fs_size = geom["size"] if geom else None
        agsize = geom["agblocks"] * geom["blocksize"] if geom and geom.get("agblocks") else None
        size_known = fs_size is not None  # ext*: the superblock is read only when needed
        pending = []        # (start, end, tag) for the FIEMAP pass
        fsmap_note = None
        fast = None
        if ext4_debugfs and fs["fstype"] in EXT_FS:
            fast = _ext4.Candidates.start(group, fs, fd, run or _offline.default_run, dev_root)
        for t in group:
            if fs_size is not None and t.offset >= fs_size:
                t.add(new_owner(
                    "unknown", t.rid, fs, length=t.length, fs_offset=t.offset,
                    reason="beyond the end of the filesystem (%s bytes): not used by it" % fs_size))
                continue
            try:
                recs = _fsmap.owners_of(fd, t.offset, t.offset + t.length)
                unaccounted = []
                if _fsmap.unaccounted(t.offset, t.offset + t.length, recs):
                    # the point query left bytes unaccounted: widen it before calling them unknown
                    if not size_known:
                        size_known = True
                        fs_size = _ext_fs_size(fs, dev_root)
                    recs, unaccounted = _fsmap.owners_covering(
                        fd, t.offset, t.offset + t.length, agsize=agsize, fs_size=fs_size,
                        point=recs)
            except _fsmap.FsmapUnsupported as e:
                fsmap_note = "GETFSMAP unavailable (%s): file owners from FIEMAP only" % e
                pending.append((t.offset, t.offset + t.length, t))
                continue
            for r in recs:
                if r["kind"] == "unknown" and r["inode"] is None:
                    pending.append((r["overlap_start"], r["overlap_start"] + r["overlap_length"], t))
                    continue
                p = dict(r, physical=r["overlap_start"], length=r["overlap_length"])
                if r["metadata_kind"] == "fs_headers":
                    p["metadata_kind"] = _fsmap.refine_xfs_header(r["overlap_start"], geom) or \
                        ("sb" if fs["fstype"] != "xfs" else "fs_headers")
                t.found.append(_record.from_piece(t.rid, fs, p))
            for lo, hi in unaccounted:
                t.add(new_owner(
                    "unknown", t.rid, fs, length=hi - lo, fs_offset=lo,
                    reason=_no_owner_reason(lo, fs_size)))
        _settle_inode_types(group, fd)
        if fast is not None:
            pending = fast.finish(pending, max_walk_seconds)
        if pending:
            _fiemap_pass(pending, fs, fsmap_note, max_walk_seconds)
            if fast is not None:
                fast.name_unmapped(group)
        for t in group:
            t.found = _record.sort_and_merge(t.found)
        if walk_paths:
            _paths.attach_paths(group, fs, max_walk_seconds, fd=fd, geom=geom)
        else:
            _paths.without_walk(group)
    finally:
        os.close(fd)


def _no_owner_reason(lo, fs_size):
    """Why GETFSMAP named no owner for bytes starting at *lo* (callers split at *fs_size*)."""
    if fs_size is not None and lo >= fs_size:
        return "beyond the end of the filesystem (%d bytes): not used by it" % fs_size
    where = ("inside the filesystem (%d bytes)" % fs_size if fs_size is not None
             else "filesystem size unknown")
    return ("no owner reported by GETFSMAP (%s), even with the query widened around these bytes: "
            "resolve with the filesystem unmounted (xfs_db/debugfs) before clearing" % where)


def _ext_fs_size(fs, dev_root):
    """Bytes the ext2/3/4 filesystem spans (superblock block count), or None."""
    if fs.get("fstype") not in EXT_FS:
        return None
    return (_offline.probe_filesystem(fs, dev_root) or {}).get("size")


def _fiemap_pass(pending, fs, note, max_walk_seconds):
    tags = {}
    intervals = []
    for s, e, t in pending:
        tags[id(t)] = t
        intervals.append((s, e, id(t)))
    scan = _fiemap.scan(fs["mountpoint"], intervals, max_seconds=max_walk_seconds)
    for h in scan["hits"]:
        t = tags[h["tag"]]
        kind, mkind = _kind.inode_owner_kind(h.get("inode_type") or (
            _kind.DIRECTORY if h["is_dir"] else _kind.REGULAR))
        o = new_owner(kind, t.rid, fs, inode=h["inode"], length=h["length"],
                      file_offset=h["file_offset"] if kind == "file" else None,
                      fs_offset=h["physical"], shared=h["shared"], metadata_kind=mkind)
        if h["unwritten"]:
            o["reason"] = _record.UNWRITTEN_REASON
        # a shared block seen through a hard link twice: keep one
        if not any(f.owner["inode"] == o["inode"] and f.owner["fs_offset"] == o["fs_offset"]
                   for f in t.found):
            t.add(o, path_hint=h["path"], nlink=h["nlink"])
    found_shared = set((id(tags[h["tag"]]), h["physical"]) for h in scan["hits"] if h["shared"])
    for s, e, tag in scan["unaccounted"]:
        t = tags[tag]
        if any(k[0] == tag and s <= k[1] < e for k in found_shared):
            continue  # reflinked bytes stay "pending" by design; owners were found
        why = []
        if note:
            why.append(note)
        if scan["timed_out"]:
            why.append("the file scan hit max_walk_seconds before reaching every file")
        if scan["pending_writeback_count"]:
            why.append("%d file(s) have data only in the page cache (delayed allocation), e.g. %s;"
                       " it has no place on the device yet: run sync and resolve again" % (
                           scan["pending_writeback_count"], scan["pending_writeback"][0]))
        if scan["errors_count"]:
            why.append("%d file(s)/directories could not be read, e.g. %s: %s" % (
                scan["errors_count"], scan["errors"][0]["path"], scan["errors"][0]["error"]))
        if not why:
            why.append("allocated but no file or directory maps it: filesystem metadata "
                       "(extent tree, xattr or journal block) or an unlinked-but-open file")
        t.add(new_owner("unknown", t.rid, fs, length=e - s, fs_offset=s, reason="; ".join(why)))
    for t in set(tags.values()):
        if scan["pending_writeback_count"]:
            t.result["warnings"].append(
                "%d file(s) on %s have unwritten page-cache data not yet on pmem" % (
                    scan["pending_writeback_count"], fs["mountpoint"]))
