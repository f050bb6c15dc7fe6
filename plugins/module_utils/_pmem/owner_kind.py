# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a block owned by an inode is: file data, or metadata of that inode. Decided here, once.

Every owner backend (GETFSMAP on XFS, the FIEMAP pass and the debugfs candidates on ext4, xfs_db
and debugfs offline) names an inode and which fork of it maps the block; this file turns that and
the inode's type into the owner ``kind`` / ``metadata_kind`` of docs/design.md ("Owner").

Only the data fork of a regular file is file data (restore it from a copy or accept the loss).
A directory or symlink block, a block of any other inode type, an attribute-fork block and an
extent-map (bmbt) block are filesystem metadata: they need the offline plan (unmount, clear,
xfs_repair/e2fsck), never a file rewrite or zeros. An inode whose type cannot be learnt is
``unknown`` (a refusal), never guessed to be a file.

Internal API (leading underscore package). Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import stat as _stat

# inode type names, one vocabulary for every backend
REGULAR = "regular"
DIRECTORY = "directory"
SYMLINK = "symlink"
OTHER = "other"          # character/block device, fifo, socket: no data blocks of their own
INTERNAL = "internal"    # the filesystem's own inodes (XFS quota and realtime bitmap/summary)

# debugfs "Type:" words and xfs_db/DirEntry spellings -> the vocabulary above
_NAMES = {
    "regular": REGULAR, "file": REGULAR,
    "directory": DIRECTORY, "dir": DIRECTORY,
    "symlink": SYMLINK, "link": SYMLINK,
    "character": OTHER, "block": OTHER, "FIFO": OTHER, "fifo": OTHER, "socket": OTHER,
    "bad": OTHER,
}


def type_from_mode(mode):
    """Inode type name from an ``st_mode`` (or XFS ``bs_mode`` / ``core.mode``); None if unknown."""
    if mode is None:
        return None
    mode = int(mode)
    if _stat.S_ISREG(mode):
        return REGULAR
    if _stat.S_ISDIR(mode):
        return DIRECTORY
    if _stat.S_ISLNK(mode):
        return SYMLINK
    if _stat.S_IFMT(mode) == 0:
        return None  # a freed inode has mode 0
    return OTHER


def type_from_name(name):
    """Inode type name from a tool's word (debugfs ``Type: directory``); None if unknown."""
    if not name:
        return None
    return _NAMES.get(name, _NAMES.get(name.lower(), OTHER))


def inode_owner_kind(inode_type, attr_fork=False, extent_map=False):
    """``(kind, metadata_kind)`` of a block an inode owns.

    *inode_type*: a name from this file (None when the type could not be learnt); *attr_fork*: the
    block belongs to the inode's attribute (xattr) fork; *extent_map*: it is a block of the
    inode's extent map btree (bmbt / ext4 extent index). The fork is decided first: an attribute or
    extent-map block is metadata whatever the inode type.
    """
    if extent_map:
        return "metadata", "bmbt"
    if attr_fork:
        return "metadata", "attr_fork"
    if inode_type == REGULAR:
        return "file", None
    if inode_type == DIRECTORY:
        return "metadata", "directory"
    if inode_type == SYMLINK:
        return "metadata", "symlink"
    if inode_type == OTHER:
        return "metadata", "special_inode"
    if inode_type == INTERNAL:
        return "metadata", "internal_inode"
    return "unknown", None


def is_file_data(kind):
    return kind == "file"


UNKNOWN_TYPE_REASON = ("the type of inode %d could not be read (freed since the query, or an "
                       "internal inode such as a quota or realtime bitmap inode): not assumed to be "
                       "file data; resolve with the filesystem unmounted before clearing")
