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
    real = os.scandir

    def flaky(path):
        if path.endswith("gone"):
            raise FileNotFoundError(2, "No such file or directory")
        return real(path)

    monkeypatch.setattr(M.os, "scandir", flaky)
    res = M.find_paths(str(tmp_path), [12345])
    assert res["errors_count"] == 0 and res["paths"] == {}


def test_empty_wanted():
    assert M.find_paths("/nonexistent", [])["paths"] == {}
