# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pmem.poison.fleet_report: the fleet report, written by the controller itself.

Runs in the controller's worker process (no module, no connection): reads every reported host's
``remediate_result``, aggregates them (plugin_utils.report), writes JSON/Markdown/HTML atomically
into ``dest`` and hands the summary to set_stats the same way ``ansible.builtin.set_stats`` does
(``ansible_stats`` in the result), so AWX's artifacts and stats event carry it. Documentation:
plugins/modules/fleet_report.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pmem.poison.plugins.plugin_utils import report


def _run_id(task_vars):
    """One id per playbook run, the same for every batch: AWX's job id, else the controller's pid and start."""
    for name in ("awx_job_id", "tower_job_id"):
        if task_vars.get(name) not in (None, ""):
            return "job-%s" % task_vars[name]
    ppid = os.getppid()  # workers are forked from the ansible-playbook process
    try:
        with open("/proc/%d/stat" % ppid) as handle:
            started = handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    return "pid-%d-%s" % (ppid, started)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dest", "formats", "hosts", "results", "title", "keep_history", "result_var"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        result["changed"] = False  # a report, not configuration: converges stay idempotent
        args = self._task.args
        try:
            dest = to_text(args.get("dest") or "")
            formats = list(args.get("formats", report.FORMATS))
            keep_history = int(args.get("keep_history", 30))
            title = to_text(args.get("title") or "pmem poison report")
            result_var = to_text(args.get("result_var") or "remediate_result")
            results = args.get("results")
            if results is None:
                names = args.get("hosts")
                if names is None:
                    names = task_vars.get("ansible_play_hosts_all") or []
                if not isinstance(names, (list, tuple)):
                    raise report.ReportInputError("hosts must be a list of inventory host names")
                hostvars = task_vars.get("hostvars") or {}
                results = {}
                for name in names:
                    host_vars = hostvars.get(name) if hasattr(hostvars, "get") else None
                    results[name] = (host_vars or {}).get(result_var) or {}
            if not isinstance(results, dict):
                raise report.ReportInputError("results must map host names to host summaries")
            generated_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            fleet = report.fleet_summary(results, generated_at=generated_at, title=title)
            files = []
            if dest:
                files = report.write_report(fleet, dest, formats=formats, keep_history=keep_history,
                                            run_id=_run_id(task_vars))
        except (report.ReportInputError, TypeError, ValueError) as exc:
            result.update(failed=True, msg="pmem.poison.fleet_report: %s" % exc)
            return result
        except OSError as exc:
            msg = ("pmem.poison.fleet_report could not write the report into %s: %s. "
                   "Next: make the directory writable or set remediate_report_dir." % (dest, exc))
            result.update(failed=True, msg=msg)
            return result

        totals = fleet["totals"]
        summary = report.published(fleet)
        reported = dict((h["host"], report.host_digest(h)) for h in fleet["hosts"] if h.get("status") != "not_run")
        result.update({
            "report": summary,
            "files": files,
            "msg": [
                "%d host(s): %d clean, %d remediated, %d need a decision, %d need an offline window, "
                "%d failed, %d not run" % (totals["hosts"], totals["clean"], totals["remediated"],
                                           totals["needs_decision"], totals["needs_offline_window"],
                                           totals["failed"], totals["not_run"]),
                "open entries: %d %s; lost bytes: %d" % (totals["open_entries"], fleet["open_by_kind"],
                                                         totals["lost_bytes"]),
                "report: %s" % (", ".join(files[:len(formats)]) if files else "(no files: dest is empty)"),
            ],
            # read by the strategy exactly like ansible.builtin.set_stats' result; one global record,
            # replaced by each batch (every batch reports every host that has run so far)
            "ansible_stats": {"data": {"pmem_poison_report": summary, "pmem_poison_hosts": reported},
                              "per_host": False, "aggregate": False},
        })
        return result
