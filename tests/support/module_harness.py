# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one harness for module tests (unit and playbook tests import it; no test file imports
another):

- ``make_world``: a small world, a damaged file, its good copy, a ledger with one open entry;
  ``snapshot``: everything on disk a user cares about (content, mode, owner, xattrs, links);
- ``run_inprocess``: a module's ``main()`` in this process, its result dict back;
- ``run_subprocess``: a module as Ansible runs it (a process fed ANSIBLE_MODULE_ARGS, JSON on
  stdout), with test doubles passed to its core as parameters (module_with_fakes.py).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine as Q

RID = "pmem9@0x2000+0x1000"
HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = os.path.join(HERE, "..", "..", "plugins", "modules")
FAKES_RUNNER = os.path.join(HERE, "module_with_fakes.py")


def snapshot(root):
    """Everything a user cares about under ``root``: per path its type, mode, owner, size,
    content hash, symlink target and extended attributes."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = os.path.join(base, name)
            st = os.lstat(path)
            item = [st.st_mode, st.st_uid, st.st_gid]
            if os.path.islink(path):
                item.append(os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    item.append(hashlib.sha256(f.read()).hexdigest())
            try:
                item.append(sorted((x, os.getxattr(path, x, follow_symlinks=False))
                                   for x in os.listxattr(path, follow_symlinks=False)))
            except OSError:
                item.append(None)
            out[os.path.relpath(path, root)] = item
    return out


def make_world(tmp_path):
    root = tmp_path / "world"
    (root / "fs").mkdir(parents=True)
    f = root / "fs" / "f.bin"
    f.write_bytes(b"a" * 4096 + b"\0" * 4096 + b"c" * 4096)
    os.chmod(str(f), 0o644)
    good = root / "good.bin"
    good.write_bytes(b"a" * 4096 + b"b" * 4096 + b"c" * 4096)
    bb = root / "bb.json"
    bb.write_text(json.dumps({"devices": {"pmem9": [[16, 8]]}}))
    owner = {"kind": "file", "range_id": RID, "device": "/dev/pmem9", "mountpoint": str(f.parent),
             "fstype": "xfs", "inode": os.stat(str(f)).st_ino, "paths": [str(f)],
             "file_offset": 4096, "length": 4096, "repair_offset": 4096, "repair_length": 4096}
    rng = {"id": RID, "blockdev": "pmem9", "blockdev_offset": 8192, "length": 4096,
           "filesystem": {"mountpoint": str(f.parent), "fstype": "xfs", "dax": False}}
    ledger = root / "l" / "ledger.json"
    Q.run_quarantine(ledger_path=str(ledger), results=[{"range_id": RID, "owners": [owner]}],
                     bad_ranges=[rng])
    return SimpleNamespace(root=str(root), file=str(f), good=str(good), badblocks=str(bb),
                           ledger=str(ledger), owner=owner, range=rng,
                           eid=L.entry_id(RID, owner),
                           caps={"kernel": "6.1.0", "devices": {"pmem9": {"write_clears": True}}})


def run_inprocess(module, args, monkeypatch, check=False):
    """Run a module's main() in this process; returns its result dict (``failed`` set when it
    called fail_json). Any exception other than the module's exit propagates: a traceback."""
    out = {}

    def exit_json(self, **kw):
        out.update(kw)
        raise SystemExit(0)

    def fail_json(self, **kw):
        out.update(kw, failed=True)
        raise SystemExit(1)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    args = dict(args, _ansible_check_mode=check)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return out


def run_subprocess(name, args, tmp_path, fakes=None, check=False, diff=False):
    """Module ``name`` in a process of its own, as Ansible runs it; returns (result or None when
    stdout is not JSON, CompletedProcess). ``fakes`` (badblocks file, kill point) are passed to
    its core as parameters by module_with_fakes.py."""
    args = dict(args)
    args["_ansible_check_mode"] = check
    args["_ansible_diff"] = diff
    argfile = tmp_path / ("args-%s.json" % name)
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    argv = [sys.executable, os.path.join(MODULES, name + ".py"), str(argfile)]
    if fakes:
        fakefile = tmp_path / ("fakes-%s.json" % name)
        fakefile.write_text(json.dumps(fakes))
        argv = [sys.executable, FAKES_RUNNER, name, str(argfile), str(fakefile)]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, check=False)
    try:
        return json.loads(p.stdout), p
    except ValueError:
        return None, p
