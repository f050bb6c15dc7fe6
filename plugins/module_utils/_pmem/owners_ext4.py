# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Candidate owners on a mounted ext2/3/4 filesystem, from debugfs, each verified live with FIEMAP
(internal API).

As root with debugfs: ``syncfs`` then one ``debugfs -c icheck`` on the block device gives CANDIDATE
owners (on-disk metadata may be stale while mounted), and a directory walk of the live filesystem
run meanwhile (dir_index.py) gives their names; each candidate is
verified on the live filesystem (open the path, same st_dev and st_ino, its FIEMAP really covers
the bad bytes; file offsets come from the live FIEMAP). ext4 has no reflink, so one verified owner
settles those bytes; only bytes left without a verified owner go to the FIEMAP pass of
owners_mounted.py. Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import shutil
import stat as _stat
import threading

from ansible_collections.pmem.poison.plugins.module_utils._pmem import dir_index as _dir_index
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline as _offline
from ansible_collections.pmem.poison.plugins.module_utils._pmem.owner_record import UNWRITTEN_REASON, new_owner

EXT_FS = ("ext4", "ext3", "ext2")
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def _syncfs(fd):
    """syncfs(2) on the filesystem of *fd* (so debugfs sees committed metadata and delayed
    allocations have a place); sync(2) where libc has no syncfs."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(int(fd)) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.sync()


def _find_tool(name):
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


class Candidates(object):
    """Fast path for mounted ext2/3/4 (root + debugfs): debugfs candidates, FIEMAP-verified.

    ``start()`` runs syncfs and then ``debugfs -c icheck`` over every block of the group's ranges
    in a background thread, so it overlaps the GETFSMAP queries; ``finish(pending)`` walks the
    directories (dir_index.walk) while icheck runs, takes the candidates for the bytes GETFSMAP
    left "unknown", names them from the walk's index, verifies every candidate on the live
    filesystem, adds the verified owners and returns the part of *pending* [(start, end, target)]
    no verified owner covers (for the FIEMAP pass). Tool trouble never
    raises: *pending* comes back untouched with a warning and the FIEMAP pass does the work."""

    def __init__(self, fs, fd, run, devpath, debugfs, geom):
        self.fs, self.fd, self.run = fs, fd, run
        self.devpath, self.debugfs, self.bs = devpath, debugfs, geom["blocksize"]
        self.fs_blocks = geom["size"] // geom["blocksize"]
        self.owner_of = None
        self.error = None
        self.thread = None
        self.unopened = {}      # candidate inode never opened -> (type, live paths)

    @classmethod
    def start(cls, group, fs, fd, run, dev_root):
        if os.geteuid() != 0:
            return None
        debugfs = _find_tool("debugfs")
        devpath = _offline.fs_block_device(fs, dev_root)
        if debugfs is None or devpath is None:
            return None
        try:
            geom = _offline.probe_device(devpath)
        except (IOError, OSError):
            return None
        if not geom or geom.get("fstype") != "ext4":
            return None
        self = cls(fs, fd, run, devpath, debugfs, geom)
        blocks = set()
        for t in group:
            first = t.offset // self.bs
            last = min((t.offset + max(t.length, 1) - 1) // self.bs, self.fs_blocks - 1)
            blocks.update(range(first, last + 1))
        try:
            _syncfs(fd)
        except OSError as e:
            self.error = e
            return self
        self.thread = threading.Thread(target=self._icheck, args=(sorted(blocks),))
        self.thread.daemon = True
        self.thread.start()
        return self

    def _icheck(self, blocks):
        try:
            self.owner_of = _offline.ext4_icheck(self.devpath, blocks, run=self.run,
                                                 debugfs=self.debugfs)
        except Exception as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self, pending, max_walk_seconds=None):
        # The names come from a live directory walk run while icheck still reads the inode
        # table in its own process (the two read different things), not from a later ncheck.
        index = None
        if pending and self.thread is not None and self.error is None:
            index = _dir_index.walk(self.fs["mountpoint"], os.fstat(self.fd).st_dev,
                                    max_seconds=max_walk_seconds)
        if self.thread is not None:
            self.thread.join()
        if not pending:
            return pending
        fs, bs = self.fs, self.bs
        try:
            if self.error is not None:
                raise self.error
            cands = set()
            for s, e, _t in pending:
                for b in range(s // bs, (e - 1) // bs + 1):
                    ino = self.owner_of.get(b)
                    if ino:
                        cands.add(ino)
            cands = sorted(cands)
            names = _dir_index.paths_of(index, cands)
        except (_offline.OfflineError, OSError, ValueError, AttributeError) as e:
            for t in set(t for _s, _e, t in pending):
                t.result["warnings"].append(
                    "debugfs candidates unavailable on %s (%s): file owners from the FIEMAP pass"
                    % (fs["device"], e))
            return pending
        tags = dict((id(t), t) for _s, _e, t in pending)
        rs = _fiemap.RangeSet([(s, e, id(t)) for s, e, t in pending])
        root_dev = os.fstat(self.fd).st_dev
        buf = _fiemap._buffer(32)
        for ino in cands:
            if rs.empty():
                break
            # live paths below the mount point (a bind-mounted subtree shows only its own)
            paths = names.get(ino, [])
            unopened = _verify_candidate(ino, paths, rs, tags, fs, root_dev, buf)
            if unopened:
                self.unopened[ino] = unopened
        return [(s, e, tags[tag]) for s, e, tag in rs.items]

    def name_unmapped(self, group):
        """After the FIEMAP pass: bytes it left ``unknown`` that debugfs names as a block of a
        symlink (or other inode that is never opened) still living at its path become that
        inode's metadata. Sound because the pass proved no regular file or directory maps them;
        the candidate only says whose metadata they are."""
        if not self.unopened or not self.owner_of:
            return
        for t in group:
            for f in t.found:
                o = f.owner
                if o["kind"] != "unknown" or o["inode"] is not None or o["fs_offset"] is None:
                    continue
                first = o["fs_offset"] // self.bs
                last = (o["fs_offset"] + max(o["length"] or 1, 1) - 1) // self.bs
                inos = set(self.owner_of.get(b) for b in range(first, last + 1))
                if len(inos) != 1:
                    continue
                ino = inos.pop()
                if ino not in self.unopened:
                    continue
                inode_type, live_paths = self.unopened[ino]
                o["kind"], o["metadata_kind"] = _kind.inode_owner_kind(inode_type)
                o["inode"] = ino
                o["paths"] = list(live_paths)
                o["reason"] = ("debugfs names inode %d (a %s) for these bytes and no regular file "
                               "or directory maps them" % (ino, inode_type))


def _verify_candidate(ino, paths, rs, tags, fs, root_dev, buf):
    """Open *ino* through one of *paths* and record every pending byte its live FIEMAP covers.

    A candidate that is a symlink, device node, fifo or socket is never opened (no follow, no
    device open): returns (type, [live paths]) for it, else None."""
    live_paths = []
    unopened = []
    unopened_type = None
    fd = None
    st = None
    for p in paths:
        try:
            lst = os.lstat(p)
        except OSError:
            continue
        if lst.st_ino != ino or lst.st_dev != root_dev:
            continue  # stale name: another inode lives there now
        if not (_stat.S_ISREG(lst.st_mode) or _stat.S_ISDIR(lst.st_mode)):
            unopened.append(p)
            unopened_type = _kind.type_from_mode(lst.st_mode)
            continue
        live_paths.append(p)
        if fd is None:
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _fiemap.O_NOATIME)
            except OSError:
                try:
                    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
            st = os.fstat(fd)
            if st.st_ino != ino or st.st_dev != root_dev:  # replaced between lstat and open
                os.close(fd)
                fd, st = None, None
                live_paths.pop()
    if fd is None:
        return (unopened_type, sorted(unopened)) if unopened else None
    inode_type = _kind.type_from_mode(st.st_mode)
    is_dir = inode_type == _kind.DIRECTORY
    try:
        gen = _fiemap.get_generation(fd)
        found = []
        for logical, physical, length, flags in _fiemap.extents(fd, buf=buf):
            if flags & _fiemap.NO_PHYSICAL:
                continue
            for s, e, tag in rs.overlapping(physical, physical + length):
                found.append((s, e, tag, logical + (s - physical), flags, False))
        if not rs.empty():
            # an xattr block (ext4 i_file_acl, an XFS attr fork extent) the candidate owns
            try:
                for logical, physical, length, flags in _fiemap.extents(fd, buf=buf, xattr=True):
                    if flags & _fiemap.NO_PHYSICAL:
                        continue
                    for s, e, tag in rs.overlapping(physical, physical + length):
                        found.append((s, e, tag, logical + (s - physical), flags, True))
            except (_fiemap.FiemapUnsupported, OSError):
                pass
    except (_fiemap.FiemapUnsupported, OSError):
        return
    finally:
        os.close(fd)
    for s, e, tag, file_offset, flags, attr in found:
        t = tags[tag]
        kind, mkind = _kind.inode_owner_kind(inode_type, attr_fork=attr)
        o = new_owner(kind, t.rid, fs, inode=ino, length=e - s,
                      file_offset=file_offset if kind == "file" or attr else None, fs_offset=s,
                      shared=bool(flags & _fiemap.FIEMAP_EXTENT_SHARED),
                      metadata_kind=mkind, attr_fork=attr)
        if flags & _fiemap.FIEMAP_EXTENT_UNWRITTEN:
            o["reason"] = UNWRITTEN_REASON
        if len(live_paths) >= st.st_nlink or (is_dir and live_paths):
            t.add(o, paths=sorted(live_paths), generation=gen)  # every link verified: no walk needed
        else:
            t.add(o, path_hint=live_paths[0] if live_paths else None, nlink=st.st_nlink)
        if not (flags & _fiemap.FIEMAP_EXTENT_SHARED):
            rs.remove(s, e)
