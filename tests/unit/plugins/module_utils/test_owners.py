# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_record as REC
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_mounted as MOUNTED
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline as OFF
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as T

# captured from xfsprogs 6.1 on a 512 MiB XFS (agblocks 32768, agblklog 15)
XFS_DB_FSMAP = """\
0: 0/0 len 1 owner -3 offset 0 bmbt 0 attrfork 0 extflag 0
1: 0/24 len 2048 owner 131 offset 0 bmbt 0 attrfork 0 extflag 0
2: 0/24 len 2048 owner 132 offset 0 bmbt 0 attrfork 0 extflag 0
"""
GEOM = {"fstype": "xfs", "blocksize": 4096, "agblocks": 32768, "agblklog": 15, "size": 1 << 29,
        "rmapbt": True}

DEBUGFS_ICHECK = """debugfs 1.47.0 (5-Feb-2023)
debugfs: icheck 0 37376 37377 60000
Block\tInode number
0\t<block not found>
37376\t12
37377\t12
60000\t<block not found>
"""
DEBUGFS_STAT = """debugfs: stat <12>
Inode: 12   Type: regular    Mode:  0644   Flags: 0x80000
Generation: 1019545960    Version: 0x00000000:00000003
Links: 2   Blockcount: 4096
EXTENTS:
(0-511):37376-37887
debugfs: testb 60000
Block 60000 not in use
"""
DEBUGFS_NCHECK = """debugfs: ncheck -c 12
Inode\tPathname
12\t//f
12\t//f2
"""


def test_repair_cover():
    assert REC.repair_cover(8292, 512) == (8192, 4096)
    assert REC.repair_cover(4000, 200) == (0, 8192)
    assert REC.repair_cover(0, 4096) == (0, 4096)


def test_parse_mountinfo_escapes_and_dedupe():
    text = ("36 25 7:0 / /mnt/a\\040b rw,relatime shared:1 - xfs /dev/loop0 rw\n"
            "37 25 7:0 /sub /srv rw - xfs /dev/loop0 rw\n"
            "38 25 7:0 / /mnt/c rw - xfs /dev/loop0 rw\n")
    by = O.mounts_by_dev(T.parse_mountinfo(text))
    assert [m["mountpoint"] for m in by[(7, 0)]] == ["/mnt/c", "/mnt/a b", "/srv"]


XFS_DB_MODES = """rbmino = 129
rsumino = 130
uquotino = null
gquotino = null
pquotino = null
core.mode = 0100644
core.nlinkv2 = 1
core.gen = 7
core.mode = 0100644
core.nlinkv2 = 1
core.gen = 8
"""


def test_xfs_db_fsmap_parse_and_shared():
    def run(argv, stdin=None):
        assert argv[:2] == ["xfs_db", "-r"]
        if argv[3] == "sb 0":  # inode types of the data-fork owners
            assert argv[6:10] == ["-c", "inode 131", "-c", "print core.mode core.nlinkv2 core.gen"]
            return 0, XFS_DB_MODES, ""
        assert argv[3] == "fsmap 24 24"
        return 0, XFS_DB_FSMAP, ""
    res = OFF.xfs_owners("/dev/x", [(24 * 4096 + 100, 24 * 4096 + 612, "r")], GEOM, run=run)
    pieces = res["r"]
    assert [(p["inode"], p["file_offset"], p["length"], p["shared"]) for p in pieces] == [
        (131, 100, 512, True), (132, 100, 512, True)]


def test_xfs_db_gap_is_free_and_header_is_metadata():
    def run(argv, stdin=None):
        return 0, XFS_DB_FSMAP, ""
    res = OFF.xfs_owners("/dev/x", [(0, 8192, "r")], GEOM, run=run)
    assert [(p["kind"], p["metadata_kind"]) for p in res["r"]] == [
        ("metadata", "fs_headers"), ("free", None)]


def test_xfs_fsbno_is_ag_encoded():
    assert OFF.xfs_fsbno((32768 + 5) * 4096, GEOM) == (1 << 15) | 5


def test_ext4_offline():
    outputs = iter([DEBUGFS_ICHECK, DEBUGFS_STAT, DEBUGFS_NCHECK])

    def run(argv, stdin=None):
        assert argv[0] == "debugfs"
        return 0, next(outputs), ""
    geom = {"fstype": "ext4", "blocksize": 4096, "size": 1 << 28}
    pieces, infos = OFF.ext4_owners("/dev/x", [(37376 * 4096 + 4000, 37376 * 4096 + 4200, "a"),
                                               (0, 512, "b"), (60000 * 4096, 60000 * 4096 + 1, "c")],
                                    geom, run=run)
    a = pieces["a"]
    assert [(p["inode"], p["file_offset"], p["length"]) for p in a] == [(12, 4000, 96), (12, 4096, 104)]
    assert pieces["b"][0]["kind"] == "metadata"
    assert pieces["c"][0]["kind"] == "free"
    assert infos[12]["generation"] == 1019545960
    assert OFF.ext4_paths("/dev/x", [12], run=run) == {12: ["/f", "/f2"]}


def test_probe_superblocks():
    xfs = bytearray(4096)
    xfs[0:4] = b"XFSB"
    xfs[4:8] = (4096).to_bytes(4, "big")
    xfs[8:16] = (1000).to_bytes(8, "big")
    xfs[84:88] = (250).to_bytes(4, "big")
    xfs[88:92] = (4).to_bytes(4, "big")
    xfs[100:102] = (5).to_bytes(2, "big")
    xfs[124] = 8
    xfs[212:216] = (6).to_bytes(4, "big")
    xfs[32:48] = bytes(range(16, 32))  # sb_uuid
    g = OFF.probe_superblock(bytes(xfs))
    assert g["fstype"] == "xfs" and g["size"] == 4096000 and g["rmapbt"] and g["reflink"]
    assert g["uuid"] == "10111213-1415-1617-1819-1a1b1c1d1e1f"
    ext = bytearray(4096)
    ext[1024 + 56:1024 + 58] = (0xEF53).to_bytes(2, "little")
    ext[1024 + 4:1024 + 8] = (100).to_bytes(4, "little")
    ext[1024 + 24:1024 + 28] = (2).to_bytes(4, "little")
    g = OFF.probe_superblock(bytes(ext))
    assert g == {"fstype": "ext4", "blocksize": 4096, "size": 409600, "first_data_block": 0,
                 "uuid": None}
    ext[1024 + 0x68:1024 + 0x78] = bytes(range(1, 17))  # s_uuid: the key of filesystem owners
    assert OFF.probe_superblock(bytes(ext))["uuid"] == "01020304-0506-0708-090a-0b0c0d0e0f10"
    assert OFF.probe_superblock(bytes(4096)) is None


def test_info_block_outside_and_devdax(tmp_path):
    proc = tmp_path / "proc"
    (proc / "42" / "fd").mkdir(parents=True)
    os.symlink("/dev/dax0.0", str(proc / "42" / "fd" / "3"))
    (proc / "42" / "maps").write_text("7f00-7f10 rw-s 00000000 00:06 12 /dev/dax0.0\n")
    (proc / "42" / "comm").write_text("app\n")
    ranges = [
        {"id": "r1", "area": "info_block", "length": 4096, "blockdev": "pmem0"},
        {"id": "r2", "area": "outside_namespace", "length": 4096},
        {"id": "r3", "area": "data", "length": 4096, "dax_device": "dax0.0"},
    ]
    res = O.resolve_owners(ranges, proc_root=str(proc), mounts=[])
    assert [r["owners"][0]["kind"] for r in res] == ["info_block", "unknown", "devdax"]
    assert res[2]["owners"][0]["processes"] == [{"pid": 42, "comm": "app", "how": ["mapped", "open"]}]
    assert all(r["error"] is None for r in res)


def test_direct_devdax_range_beyond_the_device_is_a_per_range_error(tmp_path):
    sysfs = tmp_path / "sys"
    (sysfs / "bus" / "dax" / "devices" / "dax1.0").mkdir(parents=True)
    (sysfs / "bus" / "dax" / "devices" / "dax1.0" / "size").write_text("2097152\n")  # 2 MiB
    inside = O.direct_range({"device": "/dev/dax1.0", "offset": 2093056, "length": 4096})
    beyond = O.direct_range({"device": "/dev/dax1.0", "offset": 2097152, "length": 4096})
    r_in, r_out = O.resolve_owners([inside, beyond], mounts=[], sysfs_root=str(sysfs),
                                   proc_root=str(tmp_path / "proc"))
    assert r_in["error"] is None and r_in["owners"][0]["kind"] == "devdax"
    assert r_out["owners"] == []
    assert r_out["error"]["error"] == "RangeOutsideDevice"
    assert "/dev/dax1.0" in r_out["error"]["msg"] and "2097152-2101248" in r_out["error"]["msg"]
    assert "Next step" in r_out["error"]["msg"]


def test_bad_device_is_per_range_error(tmp_path):
    rng = O.direct_range({"device": str(tmp_path / "nope"), "offset": 0, "length": 512})
    ok = {"id": "ok", "area": "info_block", "length": 512}
    r1, r2 = O.resolve_owners([rng, ok], mounts=[])
    assert r1["error"]["error"] == "GatherError"
    assert r2["owners"][0]["kind"] == "info_block"


def test_unsupported_filesystem_is_unknown_with_reason(tmp_path, monkeypatch):
    st = os.stat(str(tmp_path))
    dev = (os.major(st.st_dev), os.minor(st.st_dev))
    mounts = [{"dev": "%d:%d" % dev, "root": "/", "mountpoint": str(tmp_path), "options": "rw",
               "fstype": "btrfs", "source": "/dev/sdz", "super_options": ""}]
    rng = O.direct_range({"device": str(tmp_path), "offset": 0, "length": 512})
    (r,) = O.resolve_owners([rng], mounts=mounts)
    assert r["owners"][0]["kind"] == "unknown"
    assert "btrfs: no owner backend" in r["owners"][0]["reason"]


def test_merge_adjacent_pieces():
    a = REC.new_owner("file", "r", inode=5, file_offset=0, length=4096, fs_offset=8192)
    b = REC.new_owner("file", "r", inode=5, file_offset=4096, length=100, fs_offset=12288)
    c = REC.new_owner("file", "r", inode=6, file_offset=0, length=10, fs_offset=12388)
    out = [f.owner for f in REC.sort_and_merge([REC.Found(c), REC.Found(b), REC.Found(a)])]
    assert [(o["inode"], o["length"], o["repair_length"]) for o in out] == [(5, 4196, 8192), (6, 10, 4096)]


def test_untyped_pieces_are_not_merged_and_settle_by_type():
    """A data-fork piece whose inode type is unknown keeps its own length until the type says it
    is file data (then its file offset and repair cover appear) or metadata (never a file)."""
    piece = {"kind": "unknown", "physical": 8192, "length": 4096, "inode": 7, "fork": "data",
             "file_offset": 4096}
    first = REC.from_piece("r", None, piece)
    second = REC.from_piece("r", None, dict(piece, physical=12288, file_offset=8192))
    assert first.untyped and first.owner["file_offset"] is None
    merged = REC.sort_and_merge([first, second])
    assert len(merged) == 2
    first.settle_type("regular")
    assert (first.owner["kind"], first.owner["file_offset"], first.owner["repair_length"]) == ("file", 4096, 4096)
    second.settle_type("directory")
    assert (second.owner["kind"], second.owner["metadata_kind"], second.owner["file_offset"]) == \
        ("metadata", "directory", None)
    assert not first.untyped and "_fork" not in first.owner


def test_ext4_candidates_one_catastrophic_call_each():
    """Mounted-ext4 candidates: one argument-list debugfs -c -R call per step (no shell), output of
    debugfs 1.47 parsed ("//name" from ncheck on the root directory is normalised)."""
    calls = []
    replies = {"icheck": "Block\tInode number\n37379\t12\n1\t<block not found>\n40000\t8\n",
               "ncheck": "Inode\tPathname\n12\t//a\n12\t//a2\n13\t/d/x\n"}

    def run(argv, stdin=None):
        calls.append((argv, stdin))
        return 0, replies[argv[3].split()[0]], "debugfs 1.47.0 (5-Feb-2023)\n"
    assert OFF.ext4_icheck("/dev/pmem0p2", [40000, 37379, 1, 37379], run=run,
                           debugfs="/usr/sbin/debugfs") == {37379: 12, 1: None, 40000: 8}
    assert OFF.ext4_ncheck("/dev/pmem0p2", [13, 12], run=run) == {12: ["/a", "/a2"], 13: ["/d/x"]}
    assert calls == [(["/usr/sbin/debugfs", "-c", "-R", "icheck 1 37379 40000", "/dev/pmem0p2"],
                      None),
                     (["debugfs", "-c", "-R", "ncheck -c 12 13", "/dev/pmem0p2"], None)]
    assert OFF.ext4_icheck("/dev/x", [], run=run) == {} and len(calls) == 2


def test_ext4_candidates_long_requests_go_through_stdin_of_one_process(monkeypatch):
    monkeypatch.setattr(OFF, "DEBUGFS_ARG_MAX", 50)
    calls = []

    def run(argv, stdin=None):
        calls.append((argv, stdin))
        lines = ["debugfs: " + c + "\nBlock\tInode number\n" +
                 "".join("%s\t%d\n" % (b, 20) for b in c.split()[1:])
                 for c in stdin.splitlines()]
        return 0, "".join(lines), ""
    got = OFF.ext4_icheck("/dev/x", range(1000, 1600), run=run)
    assert got == dict((b, 20) for b in range(1000, 1600))
    (argv, stdin), = calls
    assert argv == ["debugfs", "-c", "-f", "-", "/dev/x"]
    assert [len(line.split()) - 1 for line in stdin.splitlines()] == [256, 256, 88]


def test_ext4_candidates_tool_failure_is_an_offline_error():
    def run(argv, stdin=None):
        return 1, "", "debugfs: Bad magic number in super-block while opening filesystem\n"
    try:
        OFF.ext4_icheck("/dev/x", [1], run=run)
    except OFF.OfflineError as e:
        assert "Bad magic" in str(e)
    else:
        raise AssertionError("no OfflineError")


def test_no_owner_reason_is_truthful():
    size = 1 << 30
    assert MOUNTED._no_owner_reason(size, size).startswith(
        "beyond the end of the filesystem (1073741824 bytes)")
    inside = MOUNTED._no_owner_reason(size - 4096, size)
    assert "beyond" not in inside
    assert inside.startswith("no owner reported by GETFSMAP (inside the filesystem")
    assert "filesystem size unknown" in MOUNTED._no_owner_reason(4096, None)


# 4 AGs of 20480 blocks: agblklog 15, dblocks 81920; AG 2 from agbno 16384 and all of AG 3
# encode past dblocks
_GEOM_320M = {"blocksize": 4096, "agblocks": 20480, "agblklog": 15, "size": 81920 * 4096,
              "rmapbt": True}


def test_xfs_fsmap_command_stays_inside_what_xfs_db_accepts():
    bs = 4096
    assert OFF.xfs_fsmap_command(14 * bs, 15 * bs, _GEOM_320M) == "fsmap 14 14"
    # AG 2, agbno 16398: 2 << 15 | 16398 = 81934 >= 81920 -> from AG 2's start, no end
    blk = 2 * 20480 + 16398
    assert OFF.xfs_fsmap_command(blk * bs, (blk + 1) * bs, _GEOM_320M) == "fsmap 65536"
    # AG 3: its start (98304) is refused too -> AG 2's start
    blk = 3 * 20480 + 14
    assert OFF.xfs_fsmap_command(blk * bs, (blk + 1) * bs, _GEOM_320M) == "fsmap 65536"
    # start accepted, end refused: no end
    lo, hi = 2 * 20480 + 100, 2 * 20480 + 16390
    assert OFF.xfs_fsmap_command(lo * bs, hi * bs, _GEOM_320M) == "fsmap %d" % ((2 << 15) | 100)


def test_xfs_db_refusing_a_query_is_an_error_not_free_space():
    def run(argv, stdin=None):
        return 0, "Bad fsmap start_fsb 98318.\n", ""
    with pytest.raises(OFF.OfflineError) as info:
        OFF.xfs_owners("/dev/x", [(0, 4096, "t")], _GEOM_320M, run=run)
    assert "Bad fsmap" in str(info.value)
