# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

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
