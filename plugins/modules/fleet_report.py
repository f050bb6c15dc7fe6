#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the pmem poison fleet report on the controller and publish it to set_stats
version_added: 0.1.0
description:
  - An action that runs on the controller only; nothing is sent to, or run on, any managed host.
    Use it with C(run_once) set, which runs it once per play, or once per batch with C(serial).
  - Reads each reported host's summary (the C(remediate_result) fact set by the C(pmem.poison.remediate)
    role or by the C(pmem.poison.host_summary) filter), aggregates the fleet, and writes
    C(pmem-poison-report.json), C(.md) and C(.html) into O(dest), each atomically (temporary file in
    the same directory, fsync, rename). Hosts of the play without a summary are reported as C(not_run).
  - Keeps one summary per run in O(dest)C(/history) (the last O(keep_history) runs) and draws their
    open entries and lost bytes as a trend in the HTML page.
  - Publishes the report like M(ansible.builtin.set_stats) (C(per_host=false)), as C(pmem_poison_report)
    (the fleet totals, lists of hosts per state, decisions and offline work) and C(pmem_poison_hosts)
    (host name to a digest of its summary, every host that has run so far). AWX and Automation
    Controller store them as the job's artifacts and pass them to later workflow nodes.
author:
  - pmem.poison contributors (@pmem-poison)
extends_documentation_fragment:
  - pmem.poison.attributes
options:
  dest:
    description: Directory on the controller for the report files (created, mode 0750). Empty means no files.
    type: path
    default: ""
  formats:
    description: Which files to write.
    type: list
    elements: str
    choices: [json, md, html]
    default: [json, md, html]
  hosts:
    description: Inventory host names to report. Default every host of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
  results:
    description:
      - Host name to host summary, instead of reading O(result_var) of each host. An empty summary
        means the host has not run.
    type: dict
  result_var:
    description: The host variable that holds each host's summary.
    type: str
    default: remediate_result
  title:
    description: Title of the report.
    type: str
    default: pmem poison report
  keep_history:
    description: How many runs' summaries the report directory keeps; V(0) keeps none.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    details:
      - The report describes the check-mode results it is given; it is written in check mode too.
  diff_mode:
    support: none
  action:
    description: Runs on the controller as an action plugin.
    support: full
"""

EXAMPLES = r"""
- name: Report every host of the play into ./pmem-poison-report
  pmem.poison.fleet_report:
    dest: "{{ playbook_dir }}/pmem-poison-report"
  run_once: true

- name: Only the JSON, from summaries built elsewhere
  pmem.poison.fleet_report:
    dest: /srv/reports/pmem
    formats: [json]
    results: "{{ my_summaries }}"
  run_once: true
"""

RETURN = r"""
report:
  description: The fleet report without per-host detail (also published as C(pmem_poison_report)).
  returned: success
  type: dict
  contains:
    all_clean:
      description: Every reported host is clean (no listed bad range, no open ledger entry, no failure).
      type: bool
    totals:
      description: Host counts per state, open entries, lost bytes, bad ranges, cleared entries.
      type: dict
    hosts_needing_decision:
      description: Hosts with entries waiting for restore or accept_loss.
      type: list
      elements: str
    decisions:
      description: Every entry that needs a decision, with its host.
      type: list
      elements: dict
    dimms:
      description: DIMMs named by the platform for bad ranges, most ranges first, with host, ranges and bytes.
      type: list
      elements: dict
files:
  description: The files written (report files, then this run's history record).
  returned: success
  type: list
  elements: str
msg:
  description: A three-line summary of the fleet.
  returned: success
  type: list
  elements: str
"""
