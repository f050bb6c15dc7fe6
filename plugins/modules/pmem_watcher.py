#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pmem_watcher
short_description: Install the service that records poison in the ledger the moment the kernel reports it
version_added: 0.2.0
description:
  - A memory failure or machine check is in the kernel's log only until the next reboot. This module installs
    C(pmem-poison-watch.service), a small systemd service built from this collection's own code, that follows
    C(/dev/kmsg) and, for every memory-failure or machine-check line, gathers the bad ranges (badblocks lists and
    kernel records, as M(pmem.poison.pmem_badblocks) with O(pmem.poison.pmem_badblocks#module:kernel_events)
    does), resolves their owners (as M(pmem.poison.pmem_resolve)) and merges them into the ledger under its lock,
    with the same write-ahead, atomic, fsynced save as M(pmem.poison.pmem_quarantine), within seconds.
  - On Linux 7.0 and later it also follows what XFS and fanotify push while it runs (nothing keeps these
    events), namely the XFS health monitor (C(XFS_IOC_HEALTH_MONITOR), one per mounted XFS, opened on its root
    directory; not available where C(xfs_healer) already holds it) and C(FAN_FS_ERROR) over every mounted XFS and
    ext4 (C(FAN_FS_ERROR) exists since 5.16 for ext4; XFS and DAX data loss report through it since 7.0). A
    health-monitor media error is placed by its device offset like a list entry and recorded with source
    V(xfs_health). Events that name no range (data lost in a file, a filesystem error or shutdown) and every
    lost-events marker (the health monitor's count of dropped events, fanotify's queue overflow, kernel-log
    records overwritten before they were read) are appended to the ledger's top-level C(warnings) list. On older
    kernels the service notes once in its log that these sources are absent and follows the kernel log alone.
  - The service never clears, never writes file data, never marks or contains files; the next converge
    resolves, marks and handles its entries like any other. It also makes a full pass at start and every hour.
  - Its state is in C(/run/pmem-poison/watch.json) and in RV(pmem.poison.pmem_badblocks#module:ansible_facts.pmem.watcher) of
    M(pmem.poison.pmem_badblocks); its log is C(journalctl -u pmem-poison-watch).
  - The installed code is versioned by a hash of its sources; a changed collection reinstalls and restarts it.
author:
  - pmem.poison contributors (@pmem-poison)
extends_documentation_fragment:
  - pmem.poison.attributes
  - pmem.poison.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  state:
    description:
      - V(present) installs (or updates) the service, enables it and makes sure it runs with the current code.
      - V(absent) stops and disables it and removes its files. The ledger is never touched.
    type: str
    choices: [present, absent]
    default: present
  ledger_path:
    description: The ledger the service records into (an absolute path).
    type: path
    default: /var/lib/pmem-poison/ledger.json
requirements:
  - systemd (C(systemctl)); root.
"""

EXAMPLES = r"""
- name: Record poison as it happens
  pmem.poison.pmem_watcher:

- name: Remove the watcher
  pmem.poison.pmem_watcher:
    state: absent
"""

RETURN = r"""
version:
  description: Version (hash of the sources) of the code the service runs after this call.
  returned: state is present
  type: str
updated:
  description: Files written (or that check mode would write).
  returned: always
  type: list
  elements: str
active:
  description: Output of C(systemctl is-active) for the service after this call.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, _load_params

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as _inputs
from ansible_collections.pmem.poison.plugins.module_utils._pmem import module_result
from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    ledger_path=dict(type="path", default="/var/lib/pmem-poison/ledger.json"),
)


def main():
    module, _raw = module_result.new_module(AnsibleModule, _load_params, "pmem_watcher",
                                            ARGUMENT_SPEC, supports_check_mode=True)

    def body():
        p = module.params
        _inputs.raise_problems([_inputs.ledger_path_problem(p["ledger_path"])])
        systemctl = module.get_bin_path("systemctl", required=True)
        return watch.converge(state=p["state"], ledger_path=p["ledger_path"], check=module.check_mode,
                              systemctl=lambda *args: module.run_command([systemctl] + list(args)))

    result = module_result.run(module, "pmem_watcher", body,
                               {"changed": False, "updated": [], "active": "unknown"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
