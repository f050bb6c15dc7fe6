#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pmem_quarantine
short_description: Record lost persistent-memory data, mark and contain the damaged files
version_added: 0.1.0
description:
  - Records every (bad range, owner) from O(results) in the durable ledger, then marks every
    damaged file with the extended attribute C(user.pmem_poison.lost_ranges) (JSON with the lost
    ranges and their ledger entry ids), readable by whoever can read the file.
  - Optional containment (O(containment)), each idempotent and reversible, with the original
    values kept in the ledger; V(chmod) (mode 000), V(rename) (into C(<mount>/.pmem-quarantine/),
    root-only), V(immutable) (the file's immutable flag).
  - O(state=released) undoes containment of closed entries (restored or accepted as lost).
  - O(state=accepted_lost) is the affirmative step that closes entries whose data cannot be
    restored; O(by) and O(why) are recorded.
  - Each containment step is written ahead in the ledger (C(containment.pending)) before it
    happens and recorded as done after; a run killed in between is finished (or the step
    forgotten) by the next run, so O(state=released) always finds what was moved.
  - Results that would reopen an entry verified cleared are dropped unless its range is listed
    now (facts gathered before another run cleared it must not undo that run).
  - Symlinks are never followed (anywhere in a path). Hard links; the marker is on the inode, so
    every path shows it. Files deleted or replaced since resolution (inode or generation changed),
    read-only mounts and immutable files are skipped with a message per path.
author:
  - pmem.poison contributors (@pmem-poison)
extends_documentation_fragment:
  - pmem.poison.attributes
  - pmem.poison.attributes.platform
  - pmem.poison.inputs.results
  - pmem.poison.inputs.bad_ranges
options:
  state:
    description: V(present) records, marks and contains; V(released) undoes containment of closed
      entries; V(accepted_lost) closes O(entry_ids) as accepted losses.
    type: str
    choices: [present, released, accepted_lost]
    default: present
  entry_ids:
    description:
      - Limit to these ledger entries (required for O(state=accepted_lost)). Every id must be in the
        ledger (or recorded from O(results) in the same call); an unknown id fails the task.
      - An empty list names no entry and fails the task; it never means every entry. Leave
        O(entry_ids) out to act on every entry (not allowed with O(state=accepted_lost)).
    type: list
    elements: str
  containment:
    description:
      - Containment steps for O(state=present). A list (V([chmod])); a string is refused, never
        split into items.
    type: list
    elements: str
    choices: [rename, chmod, immutable]
    default: []
  by:
    description: Who accepts the loss (O(state=accepted_lost)); blank or whitespace-only is refused.
    type: str
  why:
    description: Why the loss is accepted (O(state=accepted_lost)); blank or whitespace-only is refused.
    type: str
  ledger_path:
    description:
      - The ledger file, an absolute path (a relative one is refused). Its directory must be owned by the user the module runs as and not
        writable by group or others (the module refuses to trust it otherwise); a symlinked
        ledger or lock file is refused.
    type: path
    default: /var/lib/pmem-poison/ledger.json
  lock_timeout:
    description: Seconds to wait for another run's ledger lock (0 or more).
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details:
      - Reports what would change; nothing on disk changes.
  diff_mode:
    support: full
    details:
      - Shows the changed ledger entries before and after.
notes:
  - Run as root.
seealso:
  - module: pmem.poison.pmem_clear
  - module: pmem.poison.pmem_resolve"""

EXAMPLES = r"""
- name: Record and mark every damaged file, make them unreadable
  pmem.poison.pmem_quarantine:
    results: "{{ owners.results }}"
    bad_ranges: "{{ ansible_facts.pmem.bad_ranges }}"
    containment: [chmod]

- name: Accept a loss
  pmem.poison.pmem_quarantine:
    state: accepted_lost
    entry_ids: ["region1@0x10000+0x1000|/dev/pmem1|ino=131|off=8192"]
    by: alice
    why: scratch data, regenerated nightly

- name: Undo containment of closed entries
  pmem.poison.pmem_quarantine:
    state: released
"""

RETURN = r"""
entries:
  description: One result per entry handled.
  returned: always
  type: list
  elements: dict
  contains:
    entry_id:
      description: Ledger entry.
      type: str
    marked:
      description: Paths whose file carries the marker.
      type: list
      elements: str
    skipped:
      description: Messages for paths or steps that were not done.
      type: list
      elements: str
recorded:
  description: Ledger changes from O(results) (new, updated, reopened entries).
  returned: always
  type: list
  elements: dict
ledger_path:
  description: The ledger file.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, _load_params

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as _inputs
from ansible_collections.pmem.poison.plugins.module_utils._pmem import module_result
from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine

ARGUMENT_SPEC = dict(
    state=dict(type="str", default="present", choices=["present", "released", "accepted_lost"]),
    results=dict(type="list", elements="dict", options=_inputs.RESULT),
    bad_ranges=dict(type="list", elements="dict", options=_inputs.BAD_RANGE),
    entry_ids=dict(type="list", elements="str"),
    containment=dict(type="list", elements="str", default=[], choices=_inputs.CONTAINMENT),
    by=dict(type="str"),
    why=dict(type="str"),
    ledger_path=dict(type="path", default="/var/lib/pmem-poison/ledger.json"),
    lock_timeout=dict(type="float", default=30.0),
)


def checked_params(params, raw):
    """The options as given, after the checks the argument spec cannot express."""
    problems = []
    problems.append(_inputs.empty_ids_problem("entry_ids", params["entry_ids"]))
    problems.extend(_inputs.blank_items("entry_ids", params["entry_ids"]))
    if params["state"] == "accepted_lost":
        problems.append(_inputs.text_problem("by", params["by"], "say who accepts the loss"))
        problems.append(_inputs.text_problem("why", params["why"], "say why the data may be given up"))
    problems.append(_inputs.ledger_path_problem(params["ledger_path"]))
    problems.append(_inputs.lock_timeout_problem(params["lock_timeout"]))
    _inputs.raise_problems(problems)
    return _inputs.as_given(params, raw, ARGUMENT_SPEC)


def main():
    module, raw = module_result.new_module(
        AnsibleModule, _load_params, "pmem_quarantine", ARGUMENT_SPEC,
        required_if=[("state", "accepted_lost", ("entry_ids", "by", "why"))],
        supports_check_mode=True,
    )
    partial = {"changed": False, "entries": [], "recorded": [],
               "ledger_path": module.params["ledger_path"]}

    def body():
        p = checked_params(module.params, raw)
        return quarantine.run_quarantine(
            ledger_path=p["ledger_path"], state=p["state"], results=p["results"],
            bad_ranges=p["bad_ranges"], entry_ids=p["entry_ids"],
            containment=p["containment"], by=p["by"], why=p["why"],
            check=module.check_mode, lock_timeout=p["lock_timeout"])

    out = module_result.run(module, "pmem_quarantine", body, partial)
    diff = out.pop("diff", None)
    if module._diff and diff:
        out["diff"] = diff
    module.exit_json(**out)


if __name__ == "__main__":
    main()
