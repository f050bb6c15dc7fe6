# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine as Q


def _xattrs_ok(path):
    try:
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
        return True
    except OSError:
        return False


@pytest.fixture
def damaged(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(b"x" * 16384)
    os.chmod(str(f), 0o640)
    if not _xattrs_ok(str(f)):
        pytest.skip("no user xattrs on %s" % tmp_path)
    st = os.stat(str(f))
    owner = {"kind": "file", "range_id": "r1", "device": "/dev/x", "mountpoint": str(tmp_path),
             "inode": st.st_ino, "generation": None, "paths": [str(f)], "file_offset": 4096,
             "length": 4096, "repair_offset": 4096, "repair_length": 4096}
    led = L.merge_detections(L.empty_ledger("h"), [{"range_id": "r1", "owners": [owner]}],
                             at="t")[0]
    return f, led["entries"][0]


def test_marker_idempotent_and_readable(damaged):
    f, entry = damaged
    new, res = Q.quarantine_entry(entry, "/l.json")
    assert res["changed"] and res["marked"] == [str(f)] and not res["skipped"]
    assert new["history"][-1]["event"] == "quarantined"
    m = json.loads(os.getxattr(str(f), Q.XATTR))
    assert m["ranges"][0]["entry"] == entry["id"] and m["ranges"][0]["file_offset"] == 4096
    again, res2 = Q.quarantine_entry(new, "/l.json")
    assert not res2["changed"] and again == new


def test_check_mode_changes_nothing(damaged):
    f, entry = damaged
    new, res = Q.quarantine_entry(entry, "/l.json", ["chmod", "rename"], check=True)
    assert res["changed"]
    assert os.listxattr(str(f)) == [] or Q.XATTR not in os.listxattr(str(f))
    assert stat.S_IMODE(os.stat(str(f)).st_mode) == 0o640
    assert not os.path.exists(os.path.join(str(f.parent), Q.QDIR))


def test_contain_and_release_roundtrip(damaged):
    f, entry = damaged
    new, res = Q.quarantine_entry(entry, "/l.json", ["chmod", "rename"])
    assert res["contained"] == ["chmod", "rename"]
    assert not f.exists()
    qdir = os.path.join(str(f.parent), Q.QDIR)
    assert stat.S_IMODE(os.stat(qdir).st_mode) == 0o700
    moved = new["containment"]["rename"][0]["to"]
    assert stat.S_IMODE(os.stat(moved).st_mode) == 0
    # idempotent
    again, res2 = Q.quarantine_entry(new, "/l.json", ["chmod", "rename"])
    assert not res2["changed"], res2
    # release refused while open
    same, rel = Q.release_entry(new, "/l.json")
    assert same == new and "open" in rel["skipped"][0]
    closed = Q.accept_loss(new, by="ops", why="scratch")
    rel_entry, rel = Q.release_entry(closed, "/l.json")
    assert rel["changed"] and f.exists()
    assert stat.S_IMODE(os.stat(str(f)).st_mode) == 0o640
    assert rel_entry["containment"] == {}
    m = json.loads(os.getxattr(str(f), Q.XATTR))
    assert m["ranges"][0]["state"] == "accepted_lost"
    assert rel_entry["history"][-1]["event"] == "released"


def test_symlink_never_followed(damaged, tmp_path):
    f, entry = damaged
    link = tmp_path / "link"
    link.symlink_to(f)
    e = dict(entry, owner=dict(entry["owner"], paths=[str(link)]))
    _new, res = Q.quarantine_entry(e, "/l.json")
    assert "symlink" in res["skipped"][0] and not res["marked"]
    linkdir = tmp_path / "ld"
    linkdir.symlink_to(tmp_path)
    e = dict(entry, owner=dict(entry["owner"], paths=[str(linkdir / "data.bin")]))
    _new, res = Q.quarantine_entry(e, "/l.json")
    assert "not followed" in res["skipped"][0]


def test_replaced_file_skipped(damaged):
    f, entry = damaged
    os.unlink(str(f))
    keep = f.parent / "keep"
    keep.write_bytes(b"")  # pin a different inode number
    f.write_bytes(b"new")
    e = dict(entry, owner=dict(entry["owner"], inode=entry["owner"]["inode"] + 10 ** 9))
    _new, res = Q.quarantine_entry(e, "/l.json")
    assert "replaced since resolution" in res["skipped"][0]
    os.unlink(str(f))
    _new, res = Q.quarantine_entry(entry, "/l.json")
    assert "no longer exists" in res["skipped"][0]


def test_hard_links_all_paths(damaged):
    f, entry = damaged
    link = f.parent / "hard"
    os.link(str(f), str(link))
    e = dict(entry, owner=dict(entry["owner"], paths=[str(f), str(link)]))
    _new, res = Q.quarantine_entry(e, "/l.json")
    assert res["marked"] == [str(f), str(link)]
    assert json.loads(os.getxattr(str(link), Q.XATTR))["ranges"][0]["entry"] == entry["id"]


def test_immutable_roundtrip(damaged):
    f, entry = damaged
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        new, res = Q.quarantine_entry(entry, "/l.json", ["immutable"])
        if res["skipped"]:
            pytest.skip(res["skipped"][0])
        fd = os.open(str(f), os.O_RDONLY)
        try:
            assert Q.get_flags(fd) & Q.FS_IMMUTABLE_FL
        finally:
            os.close(fd)
        with pytest.raises(PermissionError):
            open(str(f), "ab")
        closed = Q.accept_loss(new, by="ops", why="x")
        _released, rel = Q.release_entry(closed, "/l.json")
        assert "immutable" in rel["released"]
        open(str(f), "ab").close()
    finally:
        fd = os.open(str(f), os.O_RDONLY)
        try:
            Q.set_flags(fd, Q.get_flags(fd) & ~Q.FS_IMMUTABLE_FL)
        finally:
            os.close(fd)


def test_accept_loss_needs_who_and_why(damaged):
    _path, entry = damaged
    with pytest.raises(Q.PmemError):
        Q.accept_loss(entry, by="", why="x")


def test_a_relative_path_is_named_whole_in_the_refusal():
    # the refusal named only the directory part ("not an absolute path: backup")
    with pytest.raises(Q.Skip) as info:
        Q.open_file_nofollow("backup/db/x.good")
    assert "not an absolute path: backup/db/x.good" in str(info.value)
