# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: entry_sources
version_added: 0.1.0
short_description: Map ledger entries to restore to their files' known-good copies
description:
  - Restore by ledger entry (C(playbooks/restore.yml)) names entries; M(pmem.poison.pmem_clear)'s
    policy names file paths. This filter maps each requested entry id to its file path (with the same copy) for the open
    file entries found in O(_input), and lists every other requested id as missing.
author:
  - pmem.poison contributors (@pmem-poison)
options:
  _input:
    description: The open ledger entries (C(ansible_facts.pmem.open_entries) of M(pmem.poison.pmem_badblocks)).
    type: list
    elements: dict
    required: true
  restore:
    description: Entry id to the path of a known-good copy of that entry's file, on the host.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Paths to rewrite from their copies
  ansible.builtin.set_fact:
    restore_plan: "{{ ansible_facts.pmem.open_entries | pmem.poison.entry_sources({'ID': '/srv/golden/file'}) }}"
"""

RETURN = r"""
_value:
  description: What to restore and what cannot be.
  type: dict
  contains:
    sources:
      description: File path (the entry's first path; hard links share the inode) to its copy.
      type: dict
    missing:
      description: Requested ids that are not open file entries (already restored, another kind, or unknown).
      type: list
      elements: str
"""

from ansible_collections.pmem.poison.plugins.plugin_utils import report


class FilterModule(object):
    """pmem.poison.entry_sources."""

    def filters(self):
        return {"entry_sources": report.entry_sources}
