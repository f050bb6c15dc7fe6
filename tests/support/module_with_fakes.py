# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a pmem.poison module as Ansible would (a process fed ANSIBLE_MODULE_ARGS, JSON on stdout),
with test doubles passed to its core as parameters:

    python module_with_fakes.py <module> <args.json> <fakes.json>

fakes.json: {"badblocks": <FileBadblocks json path>|null, "kill_at": <hook point>|null,
"write_errno": <errno raised at before_write while anything is listed>|null}.
The module's core function is wrapped (functools.partial) with ``provider``/``badblocks`` and
``hooks``; the product code reads no environment variable.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pmem_fakes  # noqa: E402  pylint: disable=wrong-import-position,import-error


def main():
    name, argfile, fakefile = sys.argv[1:4]
    with open(fakefile) as f:
        fakes = json.load(f)
    provider = pmem_fakes.FileBadblocks(fakes["badblocks"]) if fakes.get("badblocks") else None
    hooks = pmem_fakes.KillAt(fakes["kill_at"]) if fakes.get("kill_at") else None
    if fakes.get("write_errno") and provider is not None:
        hooks = pmem_fakes.write_error_hook(provider, int(fakes["write_errno"]), hooks)
    clearing = importlib.import_module(
        "ansible_collections.pmem.poison.plugins.module_utils._pmem.clearing")
    quarantine = importlib.import_module(
        "ansible_collections.pmem.poison.plugins.module_utils._pmem.quarantine")
    if provider is not None or hooks is not None:
        clearing.run_clear = functools.partial(clearing.run_clear, provider=provider, hooks=hooks)
        quarantine.run_quarantine = functools.partial(quarantine.run_quarantine,
                                                      badblocks=provider, hooks=hooks)
    module = importlib.import_module("ansible_collections.pmem.poison.plugins.modules." + name)
    sys.argv = [name, argfile]
    module.main()


if __name__ == "__main__":
    main()
