# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dir_index: one walk, names looked up afterwards for inodes learnt later."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.pmem.poison.plugins.module_utils._pmem import dir_index as D


def _tree(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x")
    os.link(str(tmp_path / "a" / "b" / "f"), str(tmp_path / "g"))
    (tmp_path / "a" / "h").write_bytes(b"y")
    os.symlink("a/h", str(tmp_path / "s"))
    (tmp_path / "empty").mkdir()
    return dict((n, os.lstat(str(tmp_path / n)).st_ino)
                for n in ("a", "a/b", "a/b/f", "a/h", "s", "empty"))


def test_every_link_of_an_inode_learnt_after_the_walk(tmp_path):
    ino = _tree(tmp_path)
    index = D.walk(str(tmp_path))
    assert index["complete"] and index["entries"] == 7  # a g s empty, b h, f
    found = D.paths_of(index, [ino["a/b/f"], ino["s"], ino["empty"], 999999999])
    assert found == {ino["a/b/f"]: sorted([str(tmp_path / "a" / "b" / "f"), str(tmp_path / "g")]),
                     ino["s"]: [str(tmp_path / "s")], ino["empty"]: [str(tmp_path / "empty")]}


def test_the_root_itself_and_nothing_wanted(tmp_path):
    _tree(tmp_path)
    index = D.walk(str(tmp_path))
    root_ino = os.stat(str(tmp_path)).st_ino
    assert D.paths_of(index, [root_ino]) == {root_ino: [str(tmp_path)]}
    assert D.paths_of(index, []) == {}


def test_a_deadline_cuts_the_walk_and_says_so(tmp_path):
    ino = _tree(tmp_path)
    index = D.walk(str(tmp_path), max_seconds=1e-9)
    assert index["timed_out"] and not index["complete"]
    assert D.paths_of(index, [ino["a/b/f"]]) == {}


def test_an_unreadable_directory_is_an_error_not_a_failure(tmp_path, monkeypatch):
    ino = _tree(tmp_path)
    real = os.open
    bad = str(tmp_path / "a")

    def opener(path, flags, *a, **kw):
        # the walker opens a directory relative to its parent's fd (dir_fd) or by its path
        dir_fd = kw.get("dir_fd")
        whole = path if dir_fd is None else os.path.join(os.readlink("/proc/self/fd/%d" % dir_fd), path)
        if whole == bad:
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags, *a, **kw)
    monkeypatch.setattr(os, "open", opener)
    index = D.walk(str(tmp_path))
    assert not index["complete"] and index["errors"][0]["path"] == bad
    assert D.paths_of(index, [ino["a/h"], ino["s"]]) == {ino["s"]: [str(tmp_path / "s")]}
