# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pmem_resolve backends on real XFS (rmapbt, reflink) and ext4, mounted and unmounted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_ext4

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


def test_a_directory_that_is_not_the_mount_point_is_refused(loopfs):
    # offsets given with a directory are bytes of the filesystem mounted there: a subdirectory
    # would silently be read as the whole filesystem, not as offsets relative to it
    loopfs.mount()
    phys = truth_physical(loopfs, "s1", 0)
    sub = os.path.join(loopfs.mnt, "sub")
    os.makedirs(sub, exist_ok=True)
    link = loopfs.mnt.rstrip("/") + "-link"
    os.symlink(loopfs.mnt, link)
    try:
        r_sub, r_link = O.resolve_owners([O.direct_range({"device": sub, "offset": phys, "length": 4096}),
                                          O.direct_range({"device": link, "offset": phys, "length": 4096})])
    finally:
        os.unlink(link)
    assert r_sub["owners"] == []
    assert r_sub["error"]["error"] == "InputError"
    assert "not a mount point" in r_sub["error"]["msg"]
    assert loopfs.mnt in r_sub["error"]["next_step"]
    # a symlink to the mount point is the mount point
    assert [o["inode"] for o in r_link["owners"]] == [loopfs.truth["s1"]["inode"]]


def test_inode_freed_between_query_and_walk(loopfs, monkeypatch):
    loopfs.mount()
    real = inode_paths.find_paths

    def vanished(root, inodes, **kw):
        res = real(root, inodes, **kw)
        res["paths"].clear()
        return res

    monkeypatch.setattr(inode_paths, "find_paths", vanished)
    phys = truth_physical(loopfs, "data", 0)
    # the walk path (on ext4 the debugfs fast path names and verifies every link without a walk;
    # its own stale cases are the test_ext4_* tests below)
    (res,) = O.resolve_owners([O.direct_range({"device": loopfs.dev, "offset": phys, "length": 512})],
                              ext4_debugfs=False)
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


# ---------------------------------------------------------------- ext4 fast path (mounted, root)
def _ext4_mounted(loopfs):
    if loopfs.fstype != "ext4":
        pytest.skip("debugfs candidates are the ext4 path")
    loopfs.mount()


def _spy_debugfs(monkeypatch):
    """Record the debugfs argument lists the resolver runs (still running them for real)."""
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline
    calls = []
    real = owners_offline.default_run

    def run(argv, stdin=None):
        calls.append(list(argv))
        return real(argv, stdin)
    return calls, run


def _forbid_fiemap_pass(monkeypatch):
    def boom(*a, **kw):
        raise AssertionError("the full FIEMAP pass ran although every candidate verified")
    monkeypatch.setattr(fiemap, "scan", boom)


def test_ext4_fast_path_owners_without_fiemap_pass(loopfs, monkeypatch):
    _ext4_mounted(loopfs)
    calls, run = _spy_debugfs(monkeypatch)
    _forbid_fiemap_pass(monkeypatch)
    # a file written after the tree's sync (fsync: its metadata is in the journal, maybe not
    # checkpointed) is found through the same calls
    from .conftest import extents_of
    with open(loopfs.path("fresh"), "wb") as f:
        f.write(os.urandom(12288))
        f.flush()
        os.fsync(f.fileno())
    fresh_phys = extents_of(loopfs.path("fresh"))[0][1]
    ranges = [(truth_physical(loopfs, "data", 8192 + 100), 512),
              (truth_physical(loopfs, "sub/deeper/other", 4096), 4096),
              (fresh_phys + 4096, 512)]
    rngs = [O.direct_range({"device": loopfs.dev, "offset": o, "length": n}) for o, n in ranges]
    res = O.resolve_owners(rngs, run=run)
    # exactly one icheck, catastrophic (read-only) mode; the names come from the live directory
    # walk run meanwhile, not from ncheck
    expected_calls = [["-c", "-R", "icheck"]]
    assert [c[1:3] + [c[3].split()[0]] for c in calls] == expected_calls
    assert all(c[-1] == loopfs.dev for c in calls)
    r_data, r_other, r_fresh = res
    (o,) = r_data["owners"]
    assert (o["kind"], o["inode"], o["file_offset"], o["length"]) == (
        "file", loopfs.truth["data"]["inode"], 8292, 512)
    assert o["paths"] == sorted([loopfs.path("data"), loopfs.path("data-link")])
    assert o["generation"] is not None
    (o,) = r_other["owners"]
    assert (o["inode"], o["file_offset"], o["paths"]) == (
        loopfs.truth["sub/deeper/other"]["inode"], 4096, [loopfs.path("sub/deeper/other")])
    assert [(o["inode"], o["file_offset"], o["paths"]) for o in r_fresh["owners"]] == [
        (os.stat(loopfs.path("fresh")).st_ino, 4096, [loopfs.path("fresh")])]
    os.unlink(loopfs.path("fresh"))


def test_ext4_stale_candidate_falls_back_and_stays_correct(loopfs, monkeypatch):
    """debugfs names the wrong inode (as after a delete/rewrite between syncfs and verification):
    verification rejects it, the FIEMAP pass over those ranges finds the real owner."""
    _ext4_mounted(loopfs)
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline
    wrong = loopfs.truth["s2"]["inode"]
    seen = {}

    def stale_icheck(device, blocks, **kw):
        seen["blocks"] = sorted(blocks)
        return dict((b, wrong) for b in blocks)
    monkeypatch.setattr(owners_offline, "ext4_icheck", stale_icheck)
    scans = []
    real_scan = fiemap.scan

    def spy_scan(root, intervals, **kw):
        scans.append(list(intervals))
        return real_scan(root, intervals, **kw)
    monkeypatch.setattr(fiemap, "scan", spy_scan)
    p_data = truth_physical(loopfs, "data", 0)
    p_s1 = truth_physical(loopfs, "s1", 0)
    res = O.resolve_owners([O.direct_range({"device": loopfs.dev, "offset": p_data, "length": 512}),
                            O.direct_range({"device": loopfs.dev, "offset": p_s1, "length": 512})])
    assert seen["blocks"] == sorted([p_data // 4096, p_s1 // 4096])
    assert len(scans) == 1 and sorted((s, e) for s, e, _t in scans[0]) == sorted(
        [(p_data, p_data + 512), (p_s1, p_s1 + 512)])
    for r, name, paths in ((res[0], "data", ["data", "data-link"]), (res[1], "s1", ["s1"])):
        assert [(o["kind"], o["inode"], o["file_offset"], o["paths"]) for o in r["owners"]] == [
            ("file", loopfs.truth[name]["inode"], 0, [loopfs.path(p) for p in paths])], r
        assert all(o["inode"] != wrong for o in r["owners"])


def test_ext4_candidate_deleted_after_sync(loopfs, monkeypatch):
    """A file deleted after debugfs looked (its name and blocks are gone): no owner is invented."""
    _ext4_mounted(loopfs)
    with open(loopfs.path("doomed"), "wb") as f:
        f.write(os.urandom(8192))
    from .conftest import extents_of
    os.sync()
    phys = extents_of(loopfs.path("doomed"))[0][1]
    real_paths_of = owners_ext4._dir_index.paths_of

    def names_then_delete(index, inodes):
        out = real_paths_of(index, inodes)
        assert out, "the walk named no candidate"
        os.unlink(loopfs.path("doomed"))   # the race: gone before verification
        return out
    monkeypatch.setattr(owners_ext4._dir_index, "paths_of", names_then_delete)
    (r,) = O.resolve_owners([O.direct_range({"device": loopfs.dev, "offset": phys, "length": 512})])
    assert r["error"] is None
    assert [o["kind"] for o in r["owners"]] in (["free"], ["unknown"]), r
    assert all(o["inode"] is None for o in r["owners"])


def test_ext4_without_debugfs_uses_fiemap_pass(loopfs, monkeypatch):
    _ext4_mounted(loopfs)
    monkeypatch.setattr(owners_ext4, "_find_tool", lambda name: None)
    calls, run = _spy_debugfs(monkeypatch)
    phys = truth_physical(loopfs, "s2", 0)
    (r,) = O.resolve_owners([O.direct_range({"device": loopfs.dev, "offset": phys, "length": 512})],
                            run=run)
    assert calls == []
    assert [(o["inode"], o["paths"]) for o in r["owners"]] == [
        (loopfs.truth["s2"]["inode"], [loopfs.path("s2")])]


def test_ext4_debugfs_failure_warns_and_falls_back(loopfs, monkeypatch):
    _ext4_mounted(loopfs)
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline

    def broken(device, blocks, **kw):
        raise owners_offline.OfflineError("debugfs icheck failed (rc 1): Bad magic number")
    monkeypatch.setattr(owners_offline, "ext4_icheck", broken)
    phys = truth_physical(loopfs, "s1", 0)
    (r,) = O.resolve_owners([O.direct_range({"device": loopfs.dev, "offset": phys, "length": 512})])
    assert [(o["inode"], o["paths"]) for o in r["owners"]] == [
        (loopfs.truth["s1"]["inode"], [loopfs.path("s1")])]
    assert any("debugfs candidates unavailable" in w for w in r["warnings"])


# ---------------------------------------------------------------- free space, file ends, fs end
# A filesystem smaller than its device (320 MiB on 384 MiB), one file, the rest free: GETFSMAP
# point queries inside one big free extent, across a file's end, and past the filesystem's end.
FS_MB = 320               # mkfs.xfs wants at least 300 MB


@pytest.fixture(scope="module", params=["xfs", "ext4"])
def sparsefs(request):
    from .conftest import LoopFs, _require_host, extents_of, sh
    import shutil
    import tempfile
    _require_host()
    workdir = tempfile.mkdtemp(prefix="pmem-host-free-")
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    fs = LoopFs(request.param, workdir, size_mb=384, fs_size_mb=FS_MB,
                name=request.param + "-free")
    request.addfinalizer(fs.destroy)
    with open(fs.path("tail"), "wb") as f:
        f.write(os.urandom(70000))           # 18 blocks, the last one partly past EOF
        f.flush()
        os.fsync(f.fileno())
    sh("sync")
    fs.fs_size = FS_MB << 20
    fs.tail = {"extents": extents_of(fs.path("tail")), "inode": os.stat(fs.path("tail")).st_ino}
    fs.free = free_extents(fs)
    return fs


def free_extents(fs):
    """Free byte ranges [(start, end)] from tools independent of the code under test: the
    whole-filesystem `xfs_io fsmap` listing (no keys) on XFS, dumpe2fs's bitmaps on ext4."""
    from .conftest import sh
    import re
    out = []
    if fs.fstype == "xfs":
        for line in sh("xfs_io", "-c", "fsmap -d", fs.mnt).splitlines():
            m = re.search(r"\[(\d+)\.\.(\d+)\]:\s+free space", line)
            if m:
                out.append((int(m.group(1)) * 512, (int(m.group(2)) + 1) * 512))
    else:
        text = sh("dumpe2fs", fs.dev)
        for m in re.finditer(r"^\s+Free blocks: (.*)$", text, re.M):
            for part in m.group(1).split(","):
                part = part.strip()
                if not part:
                    continue
                a, _sep, b = part.partition("-")
                out.append((int(a) * 4096, (int(b or a) + 1) * 4096))
    return sorted(out)


def is_free(fs, start, end):
    return any(a <= start and end <= b for a, b in fs.free)


def middle_of_largest_free_extent(fs):
    a, b = max(fs.free, key=lambda e: e[1] - e[0])
    assert b - a >= 16 << 20, fs.free
    return ((a + b) // 2 // 4096) * 4096


def _kinds(res):
    return [(o["kind"], o["fs_offset"], o["length"]) for o in res["owners"]]


@pytest.mark.parametrize("delta,length", [(0, 4096), (1000, 512), (-4096, 3 * 4096)])
def test_free_space_in_the_middle_of_a_free_extent(sparsefs, delta, length):
    """The lab bug: keys inside one free extent. Owner kind free, exactly the bad bytes."""
    sparsefs.mount()
    mid = middle_of_largest_free_extent(sparsefs) + delta
    res = resolve(sparsefs, mid, length)
    assert res["error"] is None
    assert _kinds(res) == [("free", mid, length)], res


def test_range_straddling_a_file_end_and_free_space(sparsefs):
    sparsefs.mount()
    logical, phys, length = sparsefs.tail["extents"][-1]
    alloc_end = phys + length
    if not is_free(sparsefs, alloc_end, alloc_end + 4096):
        pytest.skip("the block after the file's last block is not free here")
    res = resolve(sparsefs, alloc_end - 512, 1024)
    assert res["error"] is None
    assert _kinds(res) == [("file", alloc_end - 512, 512), ("free", alloc_end, 512)], res
    f = res["owners"][0]
    assert f["inode"] == sparsefs.tail["inode"]
    assert f["file_offset"] == logical + length - 512
    assert f["paths"] == [sparsefs.path("tail")]


def test_past_the_end_of_the_filesystem_is_unknown_beyond_the_end(sparsefs):
    sparsefs.mount()
    end = sparsefs.fs_size
    assert sparsefs.size() > end + 8192
    res = resolve(sparsefs, end + 4096, 4096)
    assert res["error"] is None
    (o,) = res["owners"]
    assert (o["kind"], o["fs_offset"], o["length"]) == ("unknown", end + 4096, 4096)
    assert o["reason"].startswith("beyond the end of the filesystem (%d bytes)" % end), o
    # straddling the end: the filesystem's last block, then bytes beyond it
    res = resolve(sparsefs, end - 4096, 8192)
    kinds = _kinds(res)
    assert kinds[-1] == ("unknown", end, 4096), kinds
    assert res["owners"][-1]["reason"].startswith("beyond the end of the filesystem")
    if is_free(sparsefs, end - 4096, end):
        assert kinds[:-1] == [("free", end - 4096, 4096)], kinds


def _emulate_old_kernel(monkeypatch):
    """Make this kernel answer like XFS before 6.11 (fix ca6448aed4f1): a free extent that runs
    past the high key is cut at the start of the filesystem block holding the high key (so a
    one-block query inside free space gets nothing). Everything else is the real answer."""
    import struct
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as F
    real = F._ioctl
    calls = []

    def old(fd, buf):
        real(fd, buf)
        high = struct.unpack_from(F.FSMAP_FMT, buf, struct.calcsize(F.HEAD_FMT) + F.FSMAP_SIZE)
        hi_incl = high[2]
        _oflags, recs = F.unpack_records(buf)
        kept = []
        for r in recs:
            if (r["flags"] & F.FMR_OF_SPECIAL_OWNER and r["owner"] == F.FMR_OWN_FREE
                    and r["physical"] + r["length"] > hi_incl):
                cut = (hi_incl // 4096) * 4096
                if cut <= r["physical"]:
                    continue
                r = dict(r, length=cut - r["physical"])
            kept.append(r)
        calls.append((len(recs), len(kept)))
        for i, r in enumerate(kept):
            struct.pack_into(F.FSMAP_FMT, buf, F.HEAD_SIZE + i * F.FSMAP_SIZE, r["device"],
                             r["flags"], r["physical"], r["owner"], r["offset"], r["length"])
        struct.pack_into("=I", buf, 12, len(kept))
    monkeypatch.setattr(F, "_ioctl", old)
    return calls


def test_free_space_on_a_kernel_that_drops_the_trailing_gap(sparsefs, monkeypatch):
    """Same answers when GETFSMAP behaves like the lab's 6.1 kernel: the resolver widens the
    query instead of calling the bytes unknown."""
    sparsefs.mount()
    calls = _emulate_old_kernel(monkeypatch)
    mid = middle_of_largest_free_extent(sparsefs)
    res = resolve(sparsefs, mid, 4096)
    assert _kinds(res) == [("free", mid, 4096)], res
    assert calls[0] == (1, 0)            # the point query alone got nothing: the lab symptom
    logical, phys, length = sparsefs.tail["extents"][-1]
    alloc_end = phys + length
    if is_free(sparsefs, alloc_end, alloc_end + 4096):
        res = resolve(sparsefs, alloc_end - 512, 1024)
        assert _kinds(res) == [("file", alloc_end - 512, 512), ("free", alloc_end, 512)], res
    res = resolve(sparsefs, sparsefs.fs_size + 4096, 4096)
    assert res["owners"][0]["reason"].startswith("beyond the end of the filesystem")


def test_unmounted_xfs_last_ags_are_not_free_space(tmp_path):
    """A 320 MiB XFS has 4 AGs of 20480 blocks (not a power of two): blocks of its last AGs
    encode (agno << agblklog | agbno) to numbers past sb_dblocks, which xfs_db's fsmap refuses
    ("Bad fsmap start_fsb") with no record. The file data there was reported as free space
    (which an offline window would zero with device_write)."""
    from .conftest import LoopFs, _require_host, extents_of
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline
    _require_host()
    fs = LoopFs("xfs", str(tmp_path), size_mb=320)
    try:
        files = []
        for i in range(8):  # new directories rotate over the AGs, their files follow
            os.makedirs(fs.path("d%d" % i))
            with open(fs.path("d%d/f" % i), "wb") as f:
                f.write(os.urandom(8192))
            files.append("d%d/f" % i)
        os.system("sync")
        truth = dict((n, (extents_of(fs.path(n))[0][1], os.stat(fs.path(n)).st_ino)) for n in files)
        fs.unmount()
        geom = owners_offline.probe_device(fs.dev)
        dblocks = geom["size"] // geom["blocksize"]
        high = [n for n, (phys, _ino) in truth.items()
                if owners_offline.xfs_fsbno(phys, geom) >= dblocks]
        assert high, "no file landed where xfs_db refuses a bounded fsmap: %s" % truth
        for name in files:
            phys, ino = truth[name]
            res = resolve(fs, phys + 4096, 512)
            assert res["error"] is None, res
            assert [(o["kind"], o["inode"], o["paths"]) for o in res["owners"]] == \
                [("file", ino, ["/" + name])], (name, res["owners"])
    finally:
        fs.destroy()


def _first_physical(path):
    """filefrag's first extent (device bytes) of a file whose name may not be UTF-8."""
    import re
    import subprocess
    out = subprocess.run([b"filefrag", b"-v", b"-b4096", path], stdout=subprocess.PIPE,
                         check=True).stdout.decode("utf-8", "replace")
    for line in out.splitlines():
        m = re.match(r"^\s*0:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.", line)
        if m:
            return int(m.group(1)) * 4096
    raise AssertionError(out)


ODD_NAMES = [b"ends in a space ", b"ends in a newline\n", b"new\nline", b"tab\there", b"not utf-8 \xff\xfe",
             b"cr\rin it", b"sep\x1cin it", b"12\tlooks like a record"]


@pytest.mark.parametrize("fstype", ["xfs", "ext4"])
def test_unmounted_owner_paths_with_odd_names(tmp_path, fstype):
    """xfs_db/debugfs ncheck print one "<inode> <name>" line per path: the names were stripped
    (a trailing blank or newline lost), cut at a newline (another file's name, "/new"), split at
    \\r or \\x1c, and a name that is not UTF-8 failed the whole range ('utf-8' codec can't
    decode)."""
    from .conftest import LoopFs, _require_host
    _require_host()
    fs = LoopFs(fstype, str(tmp_path), size_mb=320)
    try:
        made = {}
        for i, name in enumerate(ODD_NAMES):
            d = os.path.join(fs.mnt.encode(), b"d%d" % i)
            os.makedirs(d)
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(os.urandom(8192))
            made[path] = os.stat(path).st_ino
        os.system("sync")
        phys = dict((p, _first_physical(p)) for p in made)
        fs.unmount()
        for path, ino in made.items():
            res = resolve(fs, phys[path] + 4096, 512)
            assert res["error"] is None, (path, res["error"])
            assert [(o["kind"], o["inode"]) for o in res["owners"]] == [("file", ino)], (path, res)
            rel = os.fsdecode(path[len(fs.mnt.encode()):])
            assert res["owners"][0]["paths"] == [rel], (path, res["owners"][0]["paths"])
    finally:
        fs.destroy()
