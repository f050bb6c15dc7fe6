# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One rule for every backend: only a regular file's data fork is file data."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import stat

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as K
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline as OFF


def test_only_regular_data_is_file_data():
    assert K.inode_owner_kind(K.type_from_mode(stat.S_IFREG | 0o644)) == ("file", None)
    assert K.inode_owner_kind(K.type_from_mode(stat.S_IFDIR | 0o755)) == ("metadata", "directory")
    assert K.inode_owner_kind(K.type_from_mode(stat.S_IFLNK | 0o777)) == ("metadata", "symlink")
    assert K.inode_owner_kind(K.type_from_mode(stat.S_IFCHR)) == ("metadata", "special_inode")
    assert K.inode_owner_kind(K.type_from_mode(0)) == ("unknown", None)  # freed: never a file
    assert K.inode_owner_kind(None) == ("unknown", None)
    # the fork decides before the type: a regular file's xattr or extent-map block is metadata
    assert K.inode_owner_kind(K.REGULAR, attr_fork=True) == ("metadata", "attr_fork")
    assert K.inode_owner_kind(K.REGULAR, extent_map=True) == ("metadata", "bmbt")
    assert K.inode_owner_kind(K.type_from_name("symlink")) == ("metadata", "symlink")
    assert K.inode_owner_kind(K.type_from_name("regular")) == ("file", None)


XFS_DB_FSMAP = """\
0: 0/24 len 1 owner 131 offset 0 bmbt 0 attrfork 0 extflag 0
1: 0/25 len 1 owner 129 offset 0 bmbt 0 attrfork 0 extflag 0
2: 0/26 len 1 owner 140 offset 0 bmbt 0 attrfork 0 extflag 0
"""
# xfs_db answers in the order asked: inodes 129 (the realtime bitmap), 131, 140
XFS_DB_MODES = """rbmino = 129
rsumino = 130
uquotino = null
gquotino = null
pquotino = null
core.mode = 0100000
core.nlinkv2 = 1
core.gen = 0
core.mode = 040755
core.nlinkv2 = 2
core.gen = 1
core.mode = 0100644
core.nlinkv2 = 1
core.gen = 5
"""
GEOM = {"fstype": "xfs", "blocksize": 4096, "agblocks": 32768, "agblklog": 15, "size": 1 << 29,
        "rmapbt": True}


def test_xfs_offline_directory_and_internal_inodes_are_metadata():
    def run(argv, stdin=None):
        return 0, (XFS_DB_MODES if argv[3] == "sb 0" else XFS_DB_FSMAP), ""
    res = OFF.xfs_owners("/dev/x", [(24 * 4096, 27 * 4096, "r")], GEOM, run=run)
    assert [(p["inode"], p["kind"], p["metadata_kind"]) for p in res["r"]] == [
        (131, "metadata", "directory"), (129, "metadata", "internal_inode"), (140, "file", None)]


DEBUGFS_ICHECK = """debugfs: icheck 5000 6000
Block\tInode number
5000\t12
6000\t13
"""
DEBUGFS_STAT = """debugfs: stat <12>
Inode: 12   Type: symlink    Mode:  0777   Flags: 0x80000
Generation: 11    Version: 0x00000000:00000001
Links: 1   Blockcount: 8
File ACL: 0
EXTENTS:
(0):5000
debugfs: stat <13>
Inode: 13   Type: regular    Mode:  0644   Flags: 0x80000
Generation: 12    Version: 0x00000000:00000001
Links: 1   Blockcount: 16
File ACL: 6000
EXTENTS:
(0):7000
"""


def test_ext4_offline_symlink_and_xattr_blocks_are_metadata():
    outputs = iter([DEBUGFS_ICHECK, DEBUGFS_STAT])

    def run(argv, stdin=None):
        return 0, next(outputs), ""
    geom = {"fstype": "ext4", "blocksize": 4096, "size": 1 << 28}
    pieces, _infos = OFF.ext4_owners("/dev/x", [(5000 * 4096, 5000 * 4096 + 512, "link"),
                                                (6000 * 4096, 6000 * 4096 + 512, "xattr")],
                                     geom, run=run)
    assert [(p["kind"], p["metadata_kind"], p["inode"]) for p in pieces["link"]] == [
        ("metadata", "symlink", 12)]
    assert [(p["kind"], p["metadata_kind"], p["inode"], p["attr_fork"]) for p in pieces["xattr"]] == [
        ("metadata", "attr_fork", 13, True)]
