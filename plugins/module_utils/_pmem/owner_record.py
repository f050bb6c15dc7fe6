# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Owner record every owner backend builds (docs/design.md, "Owner"), and ``Found``: one owner
while it is being resolved, with what the backends learnt about it that is not part of the record
(internal API).

Backends (owners_mounted, owners_ext4, owners_offline) add ``Found`` objects to a target; the path
attachment (owners_paths) consumes their state; ``resolve_owners`` returns only the records.
Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind

PAGE = 4096
OWNER_KINDS = ("file", "metadata", "free", "info_block", "devdax", "raw", "unknown")
UNWRITTEN_REASON = "unwritten (preallocated) extent: reads return zeros"


def repair_cover(offset, length, page=PAGE):
    """Page-aligned (offset, length) covering [offset, offset+length)."""
    start = (offset // page) * page
    end = -(-(offset + length) // page) * page
    return start, end - start


def new_owner(kind, range_id, fs=None, **kw):
    o = {"kind": kind, "range_id": range_id, "device": None, "mountpoint": None, "fstype": None,
         "inode": None, "generation": None, "paths": [], "file_offset": None, "length": None,
         "repair_offset": None, "repair_length": None, "shared": False, "attr_fork": False,
         "metadata_kind": None, "processes": [], "reason": None, "fs_offset": None,
         "fs_uuid": None}
    if fs:
        o["device"] = fs.get("device")
        o["mountpoint"] = fs.get("mountpoint")
        o["fstype"] = fs.get("fstype")
        o["fs_uuid"] = fs.get("uuid")
    o.update(kw)
    if o["kind"] == "file" and o["file_offset"] is not None and o["length"]:
        o["repair_offset"], o["repair_length"] = repair_cover(o["file_offset"], o["length"])
    return o


def join(a, b):
    """Two reasons in one sentence list."""
    return "%s; %s" % (a, b) if a else b


class Found(object):
    """One owner under resolution. ``owner`` is the record that is returned; the rest is what a
    backend learnt for the later steps and is never returned:

    - ``untyped``: a data-fork block of an inode whose type is not known yet (GETFSMAP names the
      inode, not its type); ``data_offset`` is its file offset should it turn out to be a file.
    - ``path_hint``/``nlink``: one path the inode was seen at and its link count (a file with one
      link needs no walk).
    - ``paths``: every link, already verified live (no walk needed); ``generation``: the inode
      generation read by number or from the opened file; ``verified``: the paths were checked.
    """

    __slots__ = ("owner", "untyped", "data_offset", "path_hint", "nlink", "paths", "generation",
                 "verified")

    def __init__(self, owner, untyped=False, data_offset=None, path_hint=None, nlink=None,
                 paths=None, generation=None):
        self.owner = owner
        self.untyped = untyped
        self.data_offset = data_offset
        self.path_hint = path_hint
        self.nlink = nlink
        self.paths = paths
        self.generation = generation
        self.verified = False

    def settle_type(self, inode_type):
        """Give an untyped data-fork owner its kind now that the inode's type is known (owner_kind
        decides; None leaves it ``unknown`` with the reason)."""
        o = self.owner
        self.untyped = False
        kind, mkind = _kind.inode_owner_kind(inode_type)
        o["kind"], o["metadata_kind"] = kind, mkind
        if kind == "file":
            o["file_offset"] = self.data_offset
            if self.data_offset is not None and o["length"]:
                o["repair_offset"], o["repair_length"] = repair_cover(self.data_offset, o["length"])
        elif kind == "unknown":
            o["reason"] = join(o["reason"], _kind.UNKNOWN_TYPE_REASON % o["inode"])


def from_piece(rid, fs, piece):
    """A ``Found`` from one GETFSMAP or offline-tool piece ``{kind, physical, length, inode,
    metadata_kind, shared, attr_fork, file_offset, fork, prealloc, unwritten}``."""
    kind = piece["kind"]
    kw = {"length": piece["length"], "fs_offset": piece["physical"], "inode": piece.get("inode"),
          "metadata_kind": piece.get("metadata_kind"), "shared": bool(piece.get("shared")),
          "attr_fork": bool(piece.get("attr_fork"))}
    if kind == "file" or piece.get("metadata_kind") == "attr_fork":
        kw["file_offset"] = piece.get("file_offset")
    o = new_owner(kind, rid, fs, **kw)
    if piece.get("prealloc") or piece.get("unwritten"):
        o["reason"] = UNWRITTEN_REASON
    if piece.get("fork") == "data" and piece.get("inode") is not None and kind == "unknown":
        # GETFSMAP names the inode, not its type: settled by bulkstat or the walk's d_type
        return Found(o, untyped=True, data_offset=piece.get("file_offset"))
    return Found(o)


def _adjacent(a, b):
    """Is ``b`` the continuation of ``a`` (same owner, contiguous on the device and in the file)?"""
    return (a["kind"] == b["kind"] and a["inode"] == b["inode"]
            and a["metadata_kind"] == b["metadata_kind"] and a["shared"] == b["shared"]
            and a["fs_offset"] is not None and b["fs_offset"] is not None
            and a["fs_offset"] + a["length"] == b["fs_offset"]
            and ((a["file_offset"] is None and b["file_offset"] is None)
                 or (a["file_offset"] is not None and b["file_offset"] is not None
                     and a["file_offset"] + a["length"] == b["file_offset"])))


def sort_and_merge(found):
    """Owners in device order, adjacent pieces of the same owner joined (untyped pieces are kept
    apart: their kind is not known yet)."""
    found = sorted(found, key=lambda f: (f.owner["fs_offset"] if f.owner["fs_offset"] is not None
                                         else -1, f.owner["inode"] or 0))
    out = []
    for f in found:
        prev = out[-1] if out else None
        if prev is not None and not prev.untyped and not f.untyped and _adjacent(prev.owner, f.owner):
            p = prev.owner
            p["length"] += f.owner["length"]
            if p["file_offset"] is not None and p["kind"] == "file":
                p["repair_offset"], p["repair_length"] = repair_cover(p["file_offset"], p["length"])
            continue
        out.append(f)
    return out
