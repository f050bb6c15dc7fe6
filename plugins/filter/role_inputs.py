# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side check of the remediate role's variables against its argument spec.

Ansible's role argument validation checks the variables it knows, but it neither sees a
misspelled one (``remediate_restore_source`` is simply another variable) nor keeps a string
from being used where a list belongs (it validates a converted copy; the role then reads the
string). This filter does both, with the same strict rules as the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: role_input_problems
short_description: Problems of the remediate role's variables (unknown names, strings for lists)
description:
  - Returns a list of sentences, one per problem; an empty list means the variables are sound.
  - Unknown names (with the closest known name), a string or number where the spec wants a list
    or a mapping, blank items, restore copies that are not absolute paths, and blank consent strings (C(remediate_accept_loss_reason),
    C(remediate_accept_loss_by)) when losses are accepted.
options:
  _input:
    description: Mapping of every C(remediate_*) variable name to its value.
    type: dict
    required: true
  spec:
    description: The role's C(meta/argument_specs.yml), parsed.
    type: dict
    required: true
  extra_names:
    description: Names the role sets itself (facts), allowed without being in the spec.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the role's variables
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ given | pmem.poison.role_input_problems(spec) }}"
"""

RETURN = r"""
_value:
  description: Problems, one sentence each (empty when none).
  type: list
  elements: str
"""

import difflib

from ansible.errors import AnsibleFilterError
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as _inputs


def _options(spec):
    """Every entry point's options merged (name -> option spec)."""
    out = {}
    for entry in ((spec or {}).get("argument_specs") or {}).values():
        out.update((entry or {}).get("options") or {})
    return out


def role_input_problems(given, spec, extra_names=None):
    if not isinstance(given, dict):
        raise AnsibleFilterError("role_input_problems expects a mapping of variable names to values")
    options = _options(spec)
    if not options:
        raise AnsibleFilterError("role_input_problems: the argument spec has no options")
    known = set(options) | set(extra_names or [])
    problems = []
    for name in sorted(given):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(options), n=1)
            problems.append("%s is not a variable of the remediate role%s; nothing was done"
                            % (name, " (did you mean %s?)" % close[0] if close else ""))
    typed = dict((k, v) for k, v in given.items() if k in options)
    problems.extend(_inputs.strict_type_problems(options, typed))
    for name, opt in sorted(options.items()):
        value = typed.get(name)
        if opt.get("type") == "list" and opt.get("elements") == "str" and isinstance(value, list):
            problems.extend(_inputs.blank_items(name, value))
    accepted = typed.get("remediate_accept_loss")
    if isinstance(accepted, list) and accepted:
        problems.append(_inputs.text_problem(
            "remediate_accept_loss_reason", typed.get("remediate_accept_loss_reason") or None,
            "say why the data may be given up (it goes into the record)"))
        problems.extend("remediate_accept_loss[%d] (%r) is neither a ledger entry id nor an "
                        "absolute path or pattern" % (i, item)
                        for i, item in enumerate(accepted)
                        if isinstance(item, str) and item.strip()
                        and not (item.startswith("/") or "|" in item))
    for name, key_rule in (("remediate_restore_sources", "an absolute path or pattern"),
                           ("remediate_restore", "a ledger entry id")):
        mapping = typed.get(name)
        if not isinstance(mapping, dict):
            continue
        for key in sorted(mapping, key=str):
            copy = mapping[key]
            if not isinstance(key, str) or not key.strip() or (
                    name == "remediate_restore_sources" and not key.startswith("/")):
                problems.append("%s key %r must be %s" % (name, key, key_rule))
            problems.append(_inputs.copy_problem(name, key, copy))
    by = typed.get("remediate_accept_loss_by")
    if isinstance(by, str) and by and not by.strip():
        problems.append("remediate_accept_loss_by is blank (%r): leave it empty to use the AWX or "
                        "controller user, or name who accepts the loss" % by)
    return [p for p in problems if p]


class FilterModule(object):
    def filters(self):
        return {"role_input_problems": role_input_problems}
