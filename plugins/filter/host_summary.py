# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: host_summary
version_added: 0.1.0
short_description: One host's pmem poison state from the results of the collection's modules
description:
  - Turns one host's module results (M(pmem.poison.pmem_badblocks) facts, M(pmem.poison.pmem_resolve),
    M(pmem.poison.pmem_quarantine) and M(pmem.poison.pmem_clear) results, a failure if any) into the
    flat summary the fleet report, set_stats and the node_exporter textfile read.
  - A host is C(clean) only with no listed bad range, no open ledger entry, no resolve or scan error
    and no failure. Each open entry says what it needs next (C(decision), C(offline_window), C(retry)).
  - Runs on the controller (filters always do); the logic lives in the collection's plugin_utils,
    shared with M(pmem.poison.fleet_report).
author:
  - pmem.poison contributors (@pmem-poison)
options:
  _input:
    description:
      - Module results, keys all optional. C(facts) (C(ansible_facts.pmem)), C(resolve), C(quarantine)
        and C(clear) (registered results; skipped results are ignored), C(failure) (C({task, msg})),
        C(check_mode) (bool), C(checked_at) (ISO 8601 time), C(checked_at_epoch) (seconds).
    type: dict
    required: true
  host:
    description: The host name to put in the summary.
    type: str
"""

EXAMPLES = r"""
- name: Summarise this host
  ansible.builtin.set_fact:
    remediate_result: >-
      {{ {'facts': ansible_facts.pmem, 'resolve': my_resolve | default({})}
         | pmem.poison.host_summary(inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: The host summary.
  type: dict
  contains:
    status:
      description: One of C(clean), C(remediated), C(needs_decision), C(needs_offline_window), C(failed).
      type: str
    clean:
      description: No listed bad range, no open ledger entry, no error, no failure.
      type: bool
    open_entries:
      description: Open (or, in check mode, unrecorded) entries with id, kind, paths, offsets, length and what each needs.
      type: list
      elements: dict
    lost_bytes:
      description: Bytes of file data in open entries.
      type: int
    cleared:
      description: Entries cleared and verified this run, with method, path, source and checksum.
      type: list
      elements: dict
    dimms:
      description: DIMM name to the number of bad ranges and bytes the platform attributes to it.
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pmem.poison.plugins.plugin_utils import report


def host_summary(results, host=None):
    try:
        return report.host_summary(results, host)
    except report.ReportInputError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """pmem.poison.host_summary."""

    def filters(self):
        return {"host_summary": host_summary}
