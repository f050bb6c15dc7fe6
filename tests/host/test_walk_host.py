# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one directory walker (inode_paths.walk) and its callers on real XFS and ext4: a filesystem
mounted inside is visited as a mount point and never entered, also when it is mounted over a
directory after that directory was listed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import dir_index
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths


@pytest.fixture
def tmpfs_at(loopfs):
    """mount(name): a tmpfs mounted at loopfs/name (created), holding one file; unmounted after."""
    mounted = []

    def mount(name):
        where = loopfs.path(name)
        if not os.path.isdir(where):
            os.mkdir(where)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", where], check=True)
        mounted.append(where)
        with open(os.path.join(where, "on-tmpfs"), "w") as f:
            f.write("x")
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", where], check=False)
        shutil.rmtree(where)


def _walk(root, on_visit=None):
    seen, errors = {}, []

    def visit(parent, entry, is_dir, mount_point):
        seen[parent.join(entry.name)] = (is_dir, mount_point)
        if on_visit:
            on_visit(entry)

    result = inode_paths.walk(root, os.stat(root).st_dev, visit, lambda p, e: errors.append((p, e)))
    return result, seen, errors


def test_a_mount_point_is_visited_and_not_entered(loopfs, tmpfs_at):
    loopfs.mount()
    inner = tmpfs_at("inner")
    _result, seen, errors = _walk(loopfs.mnt)
    assert seen[inner] == (True, True) and errors == []
    assert not [p for p in seen if p.startswith(inner + "/")]
    assert loopfs.path("sub/deeper/other") in seen
    # the FIEMAP pass maps nothing there (tmpfs has no FIEMAP: entering it would be an error a
    # file); directories left out: XFS has no FIEMAP for them either
    scan = fiemap.scan(loopfs.mnt, [(0, 1, "t")], want_directories=False)
    files = [p for p, (is_dir, _mp) in seen.items() if not is_dir and os.path.isfile(p) and not os.path.islink(p)]
    assert scan["errors_count"] == 0, scan["errors"]
    assert scan["files_scanned"] == len(files)
    index = dir_index.walk(loopfs.mnt)
    assert index["complete"] and inner not in index["dirs"]


def test_a_directory_mounted_over_after_it_was_listed_is_skipped(loopfs, tmpfs_at):
    loopfs.mount()
    later = loopfs.path("later")
    os.mkdir(later)
    with open(os.path.join(later, "under"), "w") as f:
        f.write("x")

    def mount_over(entry):  # "later" is listed (not yet a mount point); mounted before it is opened
        if entry.name == "later":
            tmpfs_at("later")

    _result, seen, errors = _walk(loopfs.mnt, mount_over)
    assert seen[later] == (True, False) and errors == []
    assert not [p for p in seen if p.startswith(later + "/")]
