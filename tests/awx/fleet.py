# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated fleet for the AWX-path test and the fleet bench: inventory hosts that are local
connections, each with its own ledger, running the real modules on this machine.

Every host runs pmem_badblocks against this machine's kernel lists (no pmem here: no bad range)
and its own ledger file, so the controller does for each host exactly what it does for a real one
(a worker per task, a module payload, a result to process). The kinds:
  clean     empty ledger directory
  decision  a ledger holding an open file entry whose range the kernel no longer lists (the state a
            poisoned host is in after a reboot): pmem_badblocks and pmem_clear run, the entry stays open
  failed    no Python at the interpreter path: every module run fails (the role's rescue reports the
            host failed, the play fails it after the report)
Not simulated: hosts with ranges in their kernel lists (they need pmem; the lab has them).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger

KINDS = ("clean", "decision", "failed")


def host_names(counts):
    """[(name, kind)] in inventory order, each kind spread evenly, so every batch gets its share."""
    placed = []
    for kind in KINDS:
        count = counts.get(kind, 0)
        placed.extend(((i + 0.5) / count, KINDS.index(kind), "%s%04d" % (kind, i), kind) for i in range(count))
    return [(name, kind) for _pos, _rank, name, kind in sorted(placed)]


def decision_ledger(host):
    data = ledger.empty_ledger(host)
    owner = {"kind": "file", "device": "/dev/pmem0", "mountpoint": "/mnt/pmem0", "fstype": "xfs",
             "inode": 131, "paths": ["/mnt/pmem0/db/%s.dat" % host], "file_offset": 8192, "length": 4096,
             "repair_offset": 8192, "repair_length": 4096, "shared": False}
    data["entries"].append(ledger.new_entry({"id": "region0@0x10000+0x1000", "region": "region0",
                                             "blockdev": "pmem0", "length": 4096}, owner,
                                            "2026-12-01T00:00:00Z"))
    return data


def make_fleet(root, counts, python=None, order=None):
    """Write root/inventory.yml and one directory per host; return {name: kind}."""
    hosts = host_names(counts)
    if order:
        hosts = order(hosts)
    inventory_hosts = {}
    for name, kind in hosts:
        hostdir = os.path.join(root, "hosts", name)
        os.makedirs(hostdir, exist_ok=True)
        ledger_path = os.path.join(hostdir, "ledger.json")
        if kind == "decision":
            ledger.save(ledger_path, decision_ledger(name))
        inventory_hosts[name] = {"remediate_ledger_path": ledger_path, "pmem_poison_ledger_path": ledger_path,
                                 "pmem_test_kind": kind}
        if kind == "failed":
            inventory_hosts[name]["ansible_python_interpreter"] = os.path.join(hostdir, "no-python3")
    # every host is this machine (local connection): the watcher is a system service and would be
    # installed here, so the simulated hosts run without it
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_become": False,
                                  "ansible_python_interpreter": python or sys.executable,
                                  "remediate_watcher": False},
                         "hosts": inventory_hosts}}
    with open(os.path.join(root, "inventory.yml"), "w") as handle:
        json.dump(inventory, handle, indent=1)  # JSON is YAML
    return dict(hosts)
