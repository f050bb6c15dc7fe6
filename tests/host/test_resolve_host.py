# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pmem_resolve backends on real XFS (rmapbt, reflink) and ext4, mounted and unmounted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O

from .conftest import truth_physical


def resolve(fs, offset, length):
    rng = O.direct_range({"device": fs.dev, "offset": offset, "length": length})
    (res,) = O.resolve_owners([rng])
    return res


def expect_path(fs, state, rel):
    return fs.path(rel) if state == "mounted" else "/" + rel


def file_owners(res):
    return sorted((o for o in res["owners"] if o["kind"] == "file"), key=lambda o: o["inode"])


def test_file_data_and_hard_links(loopfs, fs_state):
    phys = truth_physical(loopfs, "data", 8192 + 100)
    res = resolve(loopfs, phys, 512)
    assert res["error"] is None
    owners = file_owners(res)
    data = [o for o in owners if o["inode"] == loopfs.truth["data"]["inode"]]
    assert len(data) == 1
    o = data[0]
    assert o["file_offset"] == 8292
    assert o["length"] == 512
    assert (o["repair_offset"], o["repair_length"]) == (8192, 4096)
    both = sorted([expect_path(loopfs, fs_state, "data"), expect_path(loopfs, fs_state, "data-link")])
    if loopfs.fstype == "xfs" and fs_state == "unmounted":
        # xfs_db ncheck names one path per inode; the owner says how many links it missed
        assert len(o["paths"]) == 1 and o["paths"][0] in both
        assert "2 links" in o["reason"]
    else:
        assert o["paths"] == both
    assert o["fs_offset"] == phys
    if fs_state == "mounted" or loopfs.fstype == "ext4":
        assert o["generation"] is not None
    others = [x for x in res["owners"] if x["kind"] != "file"]
    assert others == []


def test_reflinked_data_has_every_owner(loopfs, fs_state):
    if loopfs.fstype != "xfs":
        pytest.skip("reflink needs XFS")
    phys = truth_physical(loopfs, "data", 16384)
    assert phys == truth_physical(loopfs, "data-clone", 16384)
    res = resolve(loopfs, phys, 4096)
    owners = file_owners(res)
    assert [o["inode"] for o in owners] == sorted(
        [loopfs.truth["data"]["inode"], loopfs.truth["data-clone"]["inode"]])
    for o in owners:
        assert o["shared"] is True
        assert (o["file_offset"], o["length"]) == (16384, 4096)
    clone = [o for o in owners if o["inode"] == loopfs.truth["data-clone"]["inode"]][0]
    assert clone["paths"] == [expect_path(loopfs, fs_state, "data-clone")]


def test_range_straddling_two_files(loopfs, fs_state):
    p1 = truth_physical(loopfs, "s1", 0)
    p2 = truth_physical(loopfs, "s2", 0)
    if p2 != p1 + 4096:
        pytest.skip("allocator did not place s1 and s2 next to each other")
    res = resolve(loopfs, p1 + 4096 - 512, 1024)
    owners = file_owners(res)
    by_ino = dict((o["inode"], o) for o in owners)
    assert set(by_ino) == {loopfs.truth["s1"]["inode"], loopfs.truth["s2"]["inode"]}
    a = by_ino[loopfs.truth["s1"]["inode"]]
    b = by_ino[loopfs.truth["s2"]["inode"]]
    assert (a["file_offset"], a["length"], a["repair_offset"], a["repair_length"]) == (3584, 512, 0, 4096)
    assert (b["file_offset"], b["length"], b["repair_offset"], b["repair_length"]) == (0, 512, 0, 4096)
    assert a["paths"] == [expect_path(loopfs, fs_state, "s1")]
    assert b["paths"] == [expect_path(loopfs, fs_state, "s2")]


def test_superblock_is_metadata(loopfs, fs_state):
    res = resolve(loopfs, 0, 512)
    assert [o["kind"] for o in res["owners"]] == ["metadata"]
    mk = res["owners"][0]["metadata_kind"]
    if loopfs.fstype == "xfs":
        assert mk in ("sb", "fs_headers")
    else:
        assert mk in ("sb", "fs_metadata")


def test_inode_table_is_metadata(loopfs, fs_state):
    # the block holding the data file's inode: XFS inode chunks / ext4 inode table
    if loopfs.fstype == "xfs":
        # inode number -> AG block: XFS inode numbers are (agno, agbno, offset) packed; for AG 0
        # with 512-byte inodes (8 per block) the block is ino >> 3
        block = loopfs.truth["data"]["inode"] >> 3
    else:
        out = os.popen("dumpe2fs -h %s 2>/dev/null | grep -i 'inode table' || true" % loopfs.dev).read()
        block = None
        for line in os.popen("dumpe2fs %s 2>/dev/null" % loopfs.dev):
            if "Inode table at" in line:
                block = int(line.split("Inode table at")[1].split("-")[0].strip())
                break
        assert block is not None, out
    res = resolve(loopfs, block * 4096, 4096)
    kinds = set((o["kind"], o["metadata_kind"]) for o in res["owners"])
    assert all(k == "metadata" for k, _m in kinds), res
    if fs_state == "mounted":
        assert ("metadata", "inodes") in kinds


def test_free_space(loopfs, fs_state):
    size = loopfs.size()
    res = resolve(loopfs, size - 65536, 4096)
    assert [o["kind"] for o in res["owners"]] == ["free"]


def test_beyond_the_device_is_an_error_not_an_abort(loopfs, fs_state):
    phys = truth_physical(loopfs, "sub/deeper/other", 0)
    good = O.direct_range({"device": loopfs.dev, "offset": phys, "length": 4096})
    bad = O.direct_range({"device": loopfs.dev, "offset": loopfs.size() + 4096, "length": 4096})
    r_bad, r_good = O.resolve_owners([bad, good])
    assert r_bad["error"]["error"] == "RangeOutsideDevice"
    assert r_bad["owners"] == []
    assert [o["paths"] for o in r_good["owners"]] == [[expect_path(loopfs, fs_state, "sub/deeper/other")]]


def test_mount_point_input_and_double_mount(loopfs, tmp_path):
    loopfs.mount()
    second = str(tmp_path / "again")
    os.makedirs(second)
    os.system("mount --bind %s %s" % (loopfs.mnt, second))
    try:
        phys = truth_physical(loopfs, "s1", 0)
        r1 = O.resolve_owners([O.direct_range({"device": loopfs.mnt, "offset": phys, "length": 4096}),
                               O.direct_range({"device": second, "offset": phys, "length": 4096})])
        for r in r1:
            assert [o["inode"] for o in r["owners"]] == [loopfs.truth["s1"]["inode"]]
            assert any("mounted 2 times" in w for w in r["warnings"])
    finally:
        os.system("umount %s" % second)


def test_inode_freed_between_query_and_walk(loopfs, monkeypatch):
    loopfs.mount()
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths
    real = inode_paths.find_paths

    def vanished(root, inodes, **kw):
        res = real(root, inodes, **kw)
        res["paths"].clear()
        return res

    monkeypatch.setattr(O._paths, "find_paths", vanished)
    phys = truth_physical(loopfs, "data", 0)
    res = resolve(loopfs, phys, 512)
    o = [x for x in res["owners"] if x["inode"] == loopfs.truth["data"]["inode"]][0]
    assert o["paths"] == []
    assert "no path" in o["reason"]


def test_module_end_to_end(loopfs):
    """The module, run as a real process, on a mount point range."""
    import json
    import subprocess
    import sys
    loopfs.mount()
    phys = truth_physical(loopfs, "data", 0)
    args = {"ANSIBLE_MODULE_ARGS": {"ranges": [{"device": loopfs.dev, "offset": phys, "length": 4096}],
                                    "_ansible_check_mode": True}}
    p = subprocess.run([sys.executable, "-m", "ansible_collections.pmem.poison.plugins.modules.pmem_resolve"],
                       input=json.dumps(args), stdout=subprocess.PIPE, universal_newlines=True,
                       check=False)
    out = json.loads(p.stdout)
    assert out["changed"] is False, out
    assert out["summary"]["owners"]["file"] >= 1
    assert out["results"][0]["owners"][0]["file_offset"] == 0
