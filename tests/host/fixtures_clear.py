# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the clear/ledger host tests: a damaged file on a real XFS or ext4 loop
filesystem (the ``clearfs`` fixture, in conftest.py), a fake badblocks list (loop devices cannot
be poisoned) naming the file's real physical blocks (from filefrag), and a runner for the
modules as subprocesses."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

from .conftest import extents_of, sh

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = os.path.join(HERE, "..", "..", "plugins", "modules")
HARNESS = os.path.join(HERE, "..", "support", "module_with_fakes.py")
PAGE = 4096


def run_module(name, args, workdir, fakes=None, check=False, diff=False, tag=""):
    """The module as Ansible runs it; ``fakes`` ({badblocks, kill_at, write_errno}) are handed
    to its core as parameters by tests/support/module_with_fakes.py."""
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    argfile = os.path.join(workdir, "args-%s%s.json" % (name, tag))
    with open(argfile, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    argv = [sys.executable, os.path.join(MODULES, name + ".py"), argfile]
    if fakes:
        fakefile = os.path.join(workdir, "fakes-%s%s.json" % (name, tag))
        with open(fakefile, "w") as f:
            json.dump(fakes, f)
        argv = [sys.executable, HARNESS, name, argfile, fakefile]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, check=False)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = None
    return out, p


def make_damaged(fs, workdir, name="victim", pages=8, bad_page=3):
    """A file of ``pages`` pages with good data kept in a backup; page ``bad_page`` is zeroed
    on disk (what a reader sees after poison is consumed) and listed as bad in the fake list."""
    good = os.urandom(pages * PAGE - 100)  # a partial last page too
    path = fs.path(name)
    with open(path, "wb") as f:
        f.write(good)
        f.flush()
        os.fsync(f.fileno())
    src = os.path.join(workdir, name + ".good")
    with open(src, "wb") as f:
        f.write(good)
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, b"\0" * PAGE, bad_page * PAGE)
    os.fsync(fd)
    os.close(fd)
    sh("sync")
    phys = None
    for logical, p, length in extents_of(path):
        if logical <= bad_page * PAGE < logical + length:
            phys = p + bad_page * PAGE - logical
    assert phys is not None, "file page not mapped"
    dev = os.path.basename(fs.dev)
    bb = os.path.join(workdir, "badblocks.json")
    with open(bb, "w") as f:
        json.dump({"devices": {dev: [[phys // 512, PAGE // 512]]}, "write_clears": True}, f)
    rid = "%s@%#x+%#x" % (dev, phys, PAGE)
    st = os.stat(path)
    owner = {"kind": "file", "range_id": rid, "device": fs.dev, "mountpoint": fs.mnt,
             "fstype": fs.fstype, "inode": st.st_ino, "generation": None, "paths": [path],
             "file_offset": bad_page * PAGE, "length": PAGE, "repair_offset": bad_page * PAGE,
             "repair_length": PAGE, "shared": False, "attr_fork": False}
    rng = {"id": rid, "blockdev": dev, "blockdev_offset": phys, "length": PAGE, "area": "data",
           "filesystem": {"device": fs.dev, "mountpoint": fs.mnt, "fstype": fs.fstype,
                          "dax": False, "offset": phys}}
    caps = {"kernel": os.uname()[2], "devices": {dev: {"bus_kind": "e820", "write_clears": True,
                                                       "description": "%s (fake e820)" % dev}}}
    ledger = os.path.join(workdir, "state", "ledger.json")
    return SimpleNamespace(
        path=path, good=good, source=src, badblocks=bb, owner=owner, range=rng,
        ledger=ledger, env={"badblocks": bb},
        args={"ledger_path": ledger, "source": src, "capabilities": caps,
              "entry_ids": [L.entry_id(rid, owner)],
              "results": [{"range_id": rid, "owners": [owner]}], "bad_ranges": [rng]})


def listed(d):
    with open(d.badblocks) as f:
        return [x for v in json.load(f)["devices"].values() for x in v]


def read(path):
    with open(path, "rb") as f:
        return f.read()
