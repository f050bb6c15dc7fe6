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
    description: The ledger the service records into.
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

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch


def _systemctl(module, *args):
    systemctl = module.get_bin_path("systemctl", required=True)
    return module.run_command([systemctl] + list(args))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            ledger_path=dict(type="path", default="/var/lib/pmem-poison/ledger.json"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "updated": [], "active": "unknown"}
    version, wanted = watch.desired_files(ledger_path=p["ledger_path"])
    if p["state"] == "absent":
        present = [path for path, _data, _mode in wanted if os.path.exists(path)]
        result["updated"] = present
        if present and not module.check_mode:
            _systemctl(module, "disable", "--now", watch.UNIT_NAME)
            for path in present:
                try:
                    os.unlink(path)
                except OSError as exc:
                    module.fail_json(msg="cannot remove %s: %s; remove it by hand" % (path, exc.strerror), **result)
            _systemctl(module, "daemon-reload")
        result["changed"] = bool(present)
        result["active"] = _systemctl(module, "is-active", watch.UNIT_NAME)[1].strip() or "inactive"
        module.exit_json(**result)

    stale = watch.stale_files(wanted)
    result["version"] = version
    result["updated"] = [path for path, _data, _mode in stale]
    active = _systemctl(module, "is-active", watch.UNIT_NAME)[1].strip()
    enabled = _systemctl(module, "is-enabled", watch.UNIT_NAME)[1].strip()
    result["changed"] = bool(stale) or active != "active" or enabled != "enabled"
    if module.check_mode or not result["changed"]:
        result["active"] = active
        module.exit_json(**result)
    for path, data, mode in stale:
        try:
            watch.install_file(path, data, mode)
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot write %s: %s; check that %s is writable by root and has space"
                             % (path, exc.strerror, os.path.dirname(path)), **result)
    if any(path == watch.UNIT_PATH for path in result["updated"]):
        _systemctl(module, "daemon-reload")
    rc, _out, err = _systemctl(module, "enable", watch.UNIT_NAME)
    if rc != 0:
        module.fail_json(msg="systemctl enable %s failed: %s" % (watch.UNIT_NAME, err.strip()), **result)
    verb = "restart" if stale or active == "active" else "start"
    rc, _out, err = _systemctl(module, verb, watch.UNIT_NAME)
    if rc != 0:
        module.fail_json(msg="systemctl %s %s failed: %s; see journalctl -u %s"
                         % (verb, watch.UNIT_NAME, err.strip(), watch.UNIT_NAME), **result)
    result["active"] = _systemctl(module, "is-active", watch.UNIT_NAME)[1].strip()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
