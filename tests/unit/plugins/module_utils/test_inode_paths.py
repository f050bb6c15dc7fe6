# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as M


def test_hard_links_and_nested(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    f = tmp_path / "d" / "e" / "f"
    f.write_text("x")
    os.link(str(f), str(tmp_path / "link"))
    g = tmp_path / "g"
    g.write_text("y")
    res = M.find_paths(str(tmp_path), [f.stat().st_ino, g.stat().st_ino])
    assert res["paths"][f.stat().st_ino] == sorted([str(f), str(tmp_path / "link")])
    assert res["paths"][g.stat().st_ino] == [str(g)]
    assert res["complete"]


def test_stops_early_with_nlinks(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    for i in range(5):
        (tmp_path / ("d%d" % i)).mkdir()
    res = M.find_paths(str(tmp_path), [f.stat().st_ino], nlinks={f.stat().st_ino: 1})
    assert res["paths"] == {f.stat().st_ino: [str(f)]}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_permission_denied_is_reported(tmp_path):
    d = tmp_path / "closed"
    d.mkdir()
    (d / "x").write_text("x")
    os.chmod(str(d), 0)
    try:
        res = M.find_paths(str(tmp_path), [1])  # an inode never found: the whole tree is walked
    finally:
        os.chmod(str(d), 0o755)
    assert res["errors_count"] == 1 and not res["complete"]


def test_vanished_directory_is_not_an_error(tmp_path, monkeypatch):
    (tmp_path / "gone").mkdir()
    real = os.open

    def flaky(path, flags, *a, **kw):  # removed between being listed and being opened
        if str(path).endswith("gone"):
            raise FileNotFoundError(2, "No such file or directory")
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(M.os, "open", flaky)
    res = M.find_paths(str(tmp_path), [12345])
    assert res["errors_count"] == 0 and res["paths"] == {}


def test_empty_wanted():
    assert M.find_paths("/nonexistent", [])["paths"] == {}


def _walk_names(root, on_visit=None):
    seen, errors = [], []

    def visit(parent, entry, is_dir, mount_point):
        seen.append(parent.join(entry.name))
        if on_visit:
            on_visit(parent, entry)

    M.walk(root, os.stat(root).st_dev, visit, lambda p, e: errors.append((p, e)))
    return sorted(seen), errors


def test_a_directory_swapped_for_a_symlink_after_listing_is_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    (root / "d" / "inner").write_text("x")
    outside.mkdir()
    (outside / "secret").write_text("y")

    def swap(parent, entry):  # after "d" is listed, before the walker reads it
        if entry.name == "d":
            os.rename(str(root / "d"), str(tmp_path / "moved"))
            os.symlink(str(outside), str(root / "d"))

    seen, errors = _walk_names(str(root), swap)
    assert seen == [str(root / "d")] and errors == []  # nothing of "outside", no error


def test_the_root_given_through_a_symlink_is_walked_with_real_paths_below_it(tmp_path):
    (tmp_path / "real" / "d").mkdir(parents=True)
    (tmp_path / "real" / "d" / "f").write_text("x")
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    seen, errors = _walk_names(str(tmp_path / "link") + "/")
    assert seen == [str(tmp_path / "link" / "d"), str(tmp_path / "link" / "d" / "f")] and errors == []


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_a_symlinked_directory_is_visited_not_followed(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("y")
    (tmp_path / "root").mkdir()
    os.symlink(str(tmp_path / "outside"), str(tmp_path / "root" / "link"))
    kinds = []
    M.walk(str(tmp_path / "root"), os.stat(str(tmp_path)).st_dev,
           lambda parent, entry, is_dir, mount_point: kinds.append((entry.name, is_dir, mount_point)),
           lambda p, e: kinds.append((p, e)))
    assert kinds == [("link", False, False)]


def test_a_directory_above_swapped_for_a_symlink_after_listing_is_not_followed(tmp_path):
    """root/a/b is listed; then root/a becomes a symlink to a tree that has b/secret. Opening
    "root/a/b" by its path would follow that symlink; b is opened relative to a's fd (or checked
    to be the inode that was listed), so nothing of the other tree is seen."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "mine").write_text("x")
    (root / "a" / "c").mkdir()
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "secret").write_text("y")

    def swap(parent, entry):  # while a is read, after b is listed
        if entry.name == "c":
            os.rename(str(root / "a"), str(tmp_path / "moved"))
            os.symlink(str(outside), str(root / "a"))

    seen, errors = _walk_names(str(root), swap)
    assert not [p for p in seen if p.endswith("secret")] and errors == []


def _nested(top, depth):
    """A chain top/d/d/.../d, with a sibling directory e (holding a file f) at every level: each
    level keeps a subdirectory pending while the walk goes deeper."""
    expected, d = [], top
    for _i in range(depth):
        for name in ("d", "e"):
            os.mkdir(os.path.join(d, name))
            expected.append(os.path.join(d, name))
        with open(os.path.join(d, "e", "f"), "w") as f:
            f.write("x")
        expected.append(os.path.join(d, "e", "f"))
        d = os.path.join(d, "d")
    return sorted(expected)


def test_a_deep_tree_under_a_low_descriptor_limit(tmp_path):
    """Deeper than the walker keeps fds for, in a process allowed 24 descriptors: every entry is
    visited, nothing is an error, and the walker's fds stay few (a file opened in visit still gets
    one)."""
    expected = _nested(str(tmp_path), 150)
    script = r'''
import json, os, resource, sys
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as M
root = sys.argv[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (24, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
seen, errors, most = [], [], [0]
def visit(parent, entry, is_dir, mount_point):
    seen.append(parent.join(entry.name))
    if not is_dir:
        os.close(os.open(entry.name, os.O_RDONLY, dir_fd=parent.fd))
    most[0] = max(most[0], len(os.listdir("/proc/self/fd")))
print(json.dumps({"result": M.walk(root, os.stat(root).st_dev, visit, lambda p, e: errors.append([p, str(e)])),
                  "seen": sorted(seen), "errors": errors, "most_fds": most[0], "held_limit": M._held_limit()}))
'''
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    got = json.loads(out)
    assert got["errors"] == [] and got["seen"] == expected
    assert got["result"] == [None, 1 + 2 * 150]
    assert got["held_limit"] == 1 and got["most_fds"] < 24


def test_out_of_descriptors_the_walk_goes_on_by_paths(tmp_path, monkeypatch):
    expected = _nested(str(tmp_path), 6)
    real = os.open
    calls = []

    def opener(path, flags, *a, **kw):
        calls.append(kw.get("dir_fd") is not None)
        if kw.get("dir_fd") is not None and len(calls) == 4:  # a directory opened relative to its parent
            raise OSError(errno.EMFILE, "Too many open files")
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(M.os, "open", opener)
    before = _open_fds()
    seen, errors = _walk_names(str(tmp_path))
    assert seen == expected and errors == []
    assert calls[3] and not any(calls[4:])  # by path from then on
    assert _open_fds() == before


def test_no_descriptor_is_left_open(tmp_path):
    _nested(str(tmp_path), 5)
    before = _open_fds()
    assert M.walk(str(tmp_path), os.stat(str(tmp_path)).st_dev, lambda *a: None, lambda p, e: None,
                  stop=lambda: "enough" if _open_fds() > before + 2 else None)[0] == "enough"
    assert _open_fds() == before

    def boom(parent, entry, is_dir, mount_point):
        if entry.name == "f":
            raise RuntimeError("a caller's bug")

    with pytest.raises(RuntimeError):
        M.walk(str(tmp_path), os.stat(str(tmp_path)).st_dev, boom, lambda p, e: None)
    assert _open_fds() == before
