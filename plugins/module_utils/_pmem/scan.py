# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private API: one scan of a host, the core of pmem_badblocks (and of pmem_clear's ``scan``).

Scrub (when asked), kernel records, the facts (topology, every bad range in every coordinate,
open ledger entries, capabilities) and, when asked, the owners of every bad range. It only
reads, except the scrub it starts. pmem_clear runs the same scan in its own run, so a host
with poison costs one module run: its facts are exactly what pmem_badblocks would return.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts as _facts
from ansible_collections.pmem.poison.plugins.module_utils._pmem import kernel_events as _kernel_events
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_summary as _owner_summary
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch as _watch
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import GatherError

# where a host's state is read from
HOST_ROOTS = {"sysfs_root": "/sys", "proc_root": "/proc", "dev_root": "/dev"}

# the options of a scan, with pmem_badblocks' defaults (pmem_clear's ``scan`` takes the same)
OPTIONS = dict(
    devices=dict(type="list", elements="str", default=[]),
    scrub=dict(type="bool", default=False),
    scrub_timeout=dict(type="int", default=300),
    use_ndctl=dict(type="str", choices=["auto", "always", "never"], default="auto"),
    kernel_events=dict(type="bool", default=True),
)


class NdctlMissing(GatherError):
    """use_ndctl=always on a host without ndctl; ``facts`` holds what sysfs gave."""

    def __init__(self, facts):
        GatherError.__init__(self, "ndctl is not installed (use_ndctl=always)",
                             next_step="install ndctl or set use_ndctl=auto")
        self.facts = facts


def option_problems(options, prefix=""):
    """Problems with scan options that their types do not catch."""
    if options["scrub_timeout"] < 0:
        return ["%sscrub_timeout must be 0 or more seconds, got %s" % (prefix, options["scrub_timeout"])]
    return []


def run_scan(ledger_path, devices=(), scrub=False, scrub_timeout=300, use_ndctl="auto",
             kernel_events=True, resolve=False, check=False, roots=None):
    """pmem_badblocks' result: ``changed`` (a scrub was started), ``ansible_facts.pmem``,
    ``scrub`` (when asked), ``resolve`` (when asked) and ``elapsed``. The facts' ``warnings``
    are for the module to show. Raises NdctlMissing, GatherError."""
    started = time.monotonic()
    roots = dict(HOST_ROOTS, **(roots or {}))
    devices = list(devices or [])
    result = {"changed": False}
    ndctl = None
    warnings = []
    if use_ndctl != "never":
        ndctl = _topology.find_ndctl()
        if ndctl is None and use_ndctl == "always":
            raise NdctlMissing(_facts.gather_facts(ledger_path=ledger_path, devices=devices, **roots))
    if scrub:
        report = {"requested": True, "skipped": False, "started": [], "timed_out": False, "progress": [],
                  "buses": {}}
        if check:
            report["skipped"] = True
            report["progress"].append("check mode: scrub not started")
        else:
            topo = _topology.gather_topology(ndctl=None, **roots)
            buses = None
            if devices:
                keep = _facts.expand_devices(topo, devices)[1]
                buses = [b for b in topo["buses"] if b in keep]
            report.update(_topology.start_scrub(topo, bus_names=buses, ndctl=ndctl, timeout=scrub_timeout,
                                                sysfs_root=roots["sysfs_root"]))
            result["changed"] = bool(report["started"])
            if report["timed_out"]:
                warnings.append("scrub still running after %ss: the lists may be incomplete" % scrub_timeout)
        result["scrub"] = report
    # journalctl starts first: its start-up (most of its cost on a clean host) overlaps the
    # watcher's version and the sysfs walk; gather_facts reads it once the topology is in
    journal = _kernel_events.start_journal() if kernel_events else None
    try:
        watcher = dict(_watch.read_state(), current=_watch.code_version())
        events = None
        if kernel_events:
            events = functools.partial(_facts.gather_events, proc_root=roots["proc_root"],
                                       dev_root=roots["dev_root"], journal=journal)
        facts = _facts.gather_facts(ndctl=ndctl, ledger_path=ledger_path, devices=devices,
                                    extra_warnings=warnings, ndctl_only_if_listed=use_ndctl == "auto",
                                    events=events, **roots)
    finally:
        if journal is not None:
            journal.cancel()  # read by now, unless something failed in between
    facts["watcher"] = watcher
    result["ansible_facts"] = {"pmem": facts}
    if resolve:
        result["resolve"] = resolve_bad_ranges(facts["bad_ranges"], roots=roots)
    result["elapsed"] = round(time.monotonic() - started, 4)
    return result


def resolve_bad_ranges(bad_ranges, roots=None, resolve_owners=None):
    """pmem_resolve's result for the facts' bad ranges (gathered just now: no identity refresh).

    The resolver is imported only when there is something to resolve, so a clean host does not
    load it."""
    if resolve_owners is None and bad_ranges:
        from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as _owners
        resolve_owners = _owners.resolve_owners
    results = resolve_owners(bad_ranges, **(roots or {})) if bad_ranges else []
    return {"results": results, "summary": _owner_summary.summarize(results)}
