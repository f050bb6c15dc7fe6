# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side report filters for the remediate role and the report playbook.

``host_summary`` turns one host's module results (pmem_badblocks facts, pmem_resolve,
pmem_quarantine and pmem_clear results, a failure if any) into one flat per-host summary.
``fleet_summary`` aggregates the per-host summaries with jmespath queries.

These run on the controller only (filters always do); they need the ``jmespath`` library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: fleet_summary
short_description: Summarise pmem poison state over hosts (also provides host_summary)
description:
  - C(host_summary) builds one host's summary from the results of the collection's modules.
  - C(fleet_summary) aggregates per-host summaries into the fleet report (JSON-ready), using jmespath.
requirements:
  - jmespath (on the controller)
options:
  _input:
    description: For C(fleet_summary), a mapping of host name to host summary, or a list of host summaries.
    type: raw
    required: true
"""

try:
    import jmespath

    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - exercised only without jmespath
    HAS_JMESPATH = False

from ansible.errors import AnsibleFilterError
from ansible_collections.pmem.poison.plugins.module_utils._pmem.ledger import entry_id as ledger_entry_id

# What an open entry needs before it can be closed.
NEEDS_DECISION = "decision"          # restore from a good copy or accept the loss (playbooks restore / accept_loss)
NEEDS_OFFLINE = "offline_window"     # clear needs the filesystem unmounted / namespace unused
NEEDS_RETRY = "retry"                # a clear was attempted and failed (device error); see the error

HOST_STATUSES = ("clean", "remediated", "needs_decision", "needs_offline_window", "failed", "not_run")


def _list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _dict(value):
    return value if isinstance(value, dict) else {}


def _int(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _entry_paths(entry):
    owner = _dict(entry.get("owner"))
    return [p for p in _list(owner.get("paths") or entry.get("paths") or entry.get("path")) if p]


def _entry_kind(entry):
    owner = _dict(entry.get("owner"))
    return owner.get("kind") or entry.get("kind") or "unknown"


def _entry_length(entry):
    owner = _dict(entry.get("owner"))
    for value in (owner.get("length"), entry.get("length"), _dict(entry.get("range")).get("length")):
        if value is not None:
            return _int(value)
    return 0


def _entry_range_id(entry):
    return entry.get("range_id") or _dict(entry.get("range")).get("id") or _dict(entry.get("owner")).get("range_id")


# pmem_clear's plan can hold several actions for one entry (quarantine, record, rewrite...): the
# one that says most about what is left wins; an executed result (``results``) beats any plan item.
_WEIGHT = {"offline_required": 9, "refuse": 8, "rewrite": 7, "reallocate": 7, "device_write": 7,
           "ndctl_clear": 7, "accept_loss": 5, "record": 4, "contain": 2, "quarantine": 1}


def _clear_outcomes(clear):
    """entry id -> {"plan": the most significant plan action, "result": the executed result}.

    Real pmem_clear shapes: ``plan`` items are Actions (docs/design.md: action, entry_id, range_id,
    reason, next_step, steps, offline_window, fail_host, poison_may_remain, source...); ``results``
    items are {entry_id, action, range_id, changed, status (cleared|failed|skipped|planned|closed),
    details, error}."""
    out = {}
    clear = _dict(clear)
    # per entry, the weightiest plan item and result: a clear result (rewrite with zeros after
    # accept_loss) says more than the closure itself
    for key, items in (("plan", clear.get("plan")), ("result", clear.get("results"))):
        for item in _list(items):
            if not isinstance(item, dict) or not item.get("entry_id"):
                continue
            slot = out.setdefault(item["entry_id"], {})
            old = slot.get(key)
            if old is None or _WEIGHT.get(item.get("action"), 3) >= _WEIGHT.get(old.get("action"), 3):
                slot[key] = item
    return out


def _needs(entry, outcome):
    """What an open entry needs next: from pmem_clear's result, then its plan, then the owner kind."""
    outcome = _dict(outcome)
    plan = _dict(outcome.get("plan"))
    result = _dict(outcome.get("result"))
    details = _dict(result.get("details"))
    kind = _entry_kind(entry)
    action = plan.get("action")
    if action == "offline_required" or result.get("action") == "reallocate" or \
            plan.get("poison_may_remain") or details.get("poison_remains_in_free_space"):
        # reallocate made the file readable again; the poison is now in free space.
        return NEEDS_OFFLINE
    if result.get("status") == "failed" and result.get("error"):
        return NEEDS_RETRY
    if action:
        return NEEDS_DECISION  # record (no source), refuse (policy cannot work here), accept_loss...
    if kind in ("metadata", "free", "info_block"):
        # never cleared online: only with the filesystem unmounted / namespace disabled.
        return NEEDS_OFFLINE
    return NEEDS_DECISION


def _entry_from_id(eid):
    """A minimal entry from its id alone: '<range>|<device>|ino=<inode or kind>|off=<offset>'."""
    parts = str(eid).split("|")
    kind = "unknown"
    if len(parts) >= 3 and parts[2].startswith("ino="):
        ino = parts[2][4:]
        kind = "file" if ino.isdigit() else ino.split(":")[0]
    return {"id": eid, "range_id": parts[0], "state": "open",
            "owner": {"kind": kind, "device": parts[1] if len(parts) > 1 else None}}


def _history_events(entry):
    return [_dict(h).get("event") for h in _list(entry.get("history"))]


def _short_entry(entry, needs, outcome=None, marked=None):
    outcome = _dict(outcome)
    plan = _dict(outcome.get("plan"))
    result = _dict(outcome.get("result"))
    owner = _dict(entry.get("owner"))
    eid = entry.get("id") or entry.get("entry_id")
    containment = _dict(entry.get("containment"))
    quarantined = bool(marked) or "quarantined" in _history_events(entry)
    return {
        "id": eid,
        "range_id": _entry_range_id(entry) or (str(eid).split("|", maxsplit=1)[0] if eid else None),
        "kind": _entry_kind(entry),
        "paths": _entry_paths(entry),
        "file_offset": owner.get("file_offset"),
        "length": _entry_length(entry),
        "shared": bool(owner.get("shared")),
        "metadata_kind": owner.get("metadata_kind"),
        "quarantined": quarantined,
        "marked": list(marked or []),
        "contained": sorted(containment) if containment else [],
        "needs": needs,
        "action": plan.get("action"),
        "reason": result.get("error") or plan.get("reason") or owner.get("reason"),
        "next_step": plan.get("next_step"),
        "steps": _list(plan.get("steps")),
    }


def host_summary(results, host=None, allow_offline_window=False):
    """Build one host's summary from the real module results.

    ``results`` is a dict with optional keys ``facts`` (ansible_facts.pmem of pmem_badblocks: bad_ranges,
    open_entries as ledger entries, clean, errors, capabilities), ``resolve`` (pmem_resolve: results),
    ``quarantine`` (pmem_quarantine: entries [{entry_id, marked, contained, skipped}], recorded),
    ``clear`` (pmem_clear: plan, results, open_entries as entry ids), ``failure`` ({task, msg}),
    ``check_mode`` and ``checked_at`` (ISO time). Skipped module results are ignored.
    ``allow_offline_window`` is kept for callers; the plan's own ``offline_window`` flag is reported.
    """
    if not isinstance(results, dict):
        raise AnsibleFilterError("host_summary expects a dict of module results, got %s" % type(results).__name__)

    def ran(value):
        value = _dict(value)
        return {} if value.get("skipped") else value

    facts = _dict(results.get("facts"))
    resolve = ran(results.get("resolve"))
    quarantine = ran(results.get("quarantine"))
    clear = ran(results.get("clear"))
    failure = results.get("failure") or None
    check_mode = bool(results.get("check_mode"))

    bad_ranges = _list(facts.get("bad_ranges"))
    # Candidate entries: the ledger's open entries at scan time plus every owner resolved this run
    # (ids computed exactly as the ledger does).
    candidates = {}
    for entry in _list(facts.get("open_entries")):
        if isinstance(entry, dict) and entry.get("id"):
            candidates[entry["id"]] = entry
    recorded = bool(quarantine) or bool(clear)
    for res in _list(resolve.get("results")):
        res = _dict(res)
        for owner in _list(res.get("owners")):
            if not isinstance(owner, dict):
                continue
            try:
                eid = ledger_entry_id(res.get("range_id"), owner)
            except (TypeError, ValueError, KeyError):
                continue
            if eid not in candidates:
                candidates[eid] = {"id": eid, "range_id": res.get("range_id"), "owner": owner,
                                   "state": "open" if recorded and not check_mode else "unrecorded"}
            else:
                # fresh owner data (paths, shared) over what the ledger remembers
                candidates[eid] = dict(candidates[eid], owner=dict(_dict(candidates[eid].get("owner")), **owner))
    # The newest word on what is still open: pmem_clear's open_entries (entry ids).
    if isinstance(clear.get("open_entries"), list) and not check_mode:
        open_entries = []
        for item in clear["open_entries"]:
            eid = item.get("id") if isinstance(item, dict) else item
            open_entries.append(candidates.get(eid) or (item if isinstance(item, dict) else _entry_from_id(eid)))
    else:
        open_entries = list(candidates.values())

    marked = {}
    for item in _list(quarantine.get("entries")):
        item = _dict(item)
        if item.get("entry_id") and item.get("marked"):
            marked[item["entry_id"]] = _list(item.get("marked"))

    outcomes = _clear_outcomes(clear)
    entries = []
    for entry in open_entries:
        if not isinstance(entry, dict) or entry.get("state") == "closed":
            continue
        outcome = outcomes.get(entry.get("id"))
        entries.append(_short_entry(entry, _needs(entry, outcome), outcome, marked.get(entry.get("id"))))
    entries.sort(key=lambda e: (e["kind"], str(e["id"])))

    cleared = []
    accepted = []
    for key, outcome in sorted(outcomes.items()):
        item = _dict(outcome.get("result"))
        details = _dict(item.get("details"))
        known = candidates.get(key) or {}
        if item.get("status") == "cleared":
            cleared.append({
                "id": key,
                "method": details.get("method") or item.get("action"),
                "path": details.get("path") or (_entry_paths(known) or [None])[0],
                "length": _int(details.get("length")) or _entry_length(known),
                "source": details.get("source"),
                "sha256": details.get("sha256"),
                "verified": bool(details.get("verified")),
            })
        if item.get("action") == "accept_loss" and item.get("status") == "closed" or \
                _dict(outcome.get("plan")).get("action") == "accept_loss" and item.get("status") == "cleared":
            accepted.append({"id": key, "paths": _entry_paths(known)})

    resolve_errors = [
        {"range_id": _dict(r).get("range_id"), "error": _dict(r).get("error")}
        for r in _list(resolve.get("results")) if _dict(r).get("error")
    ]
    refused = [e for e in entries if e["action"] == "refuse"]
    offline_plan = [dict(id=e["id"], steps=e["steps"], offline_window=bool(
        _dict(_dict(outcomes.get(e["id"])).get("plan")).get("offline_window")))
        for e in entries if e["steps"]]

    by_kind = {}
    for entry in entries:
        by_kind[entry["kind"]] = by_kind.get(entry["kind"], 0) + 1
    needs_decision = [e for e in entries if e["needs"] == NEEDS_DECISION]
    needs_offline = [e for e in entries if e["needs"] == NEEDS_OFFLINE]
    needs_retry = [e for e in entries if e["needs"] == NEEDS_RETRY]
    lost_bytes = sum(e["length"] for e in entries if e["kind"] == "file")

    # A host is clean only with no listed bad range, no open ledger entry and no failure.
    facts_errors = _list(facts.get("errors"))
    clean = (not bad_ranges and not entries and not failure and not resolve_errors
             and facts.get("clean", True) is not False)
    if failure:
        status = "failed"
    elif clean:
        status = "clean"
    elif needs_offline:
        status = "needs_offline_window"
    elif needs_decision or needs_retry or resolve_errors or facts_errors:
        status = "needs_decision"
    elif entries or (bad_ranges and not cleared):
        status = "needs_decision"
    else:
        status = "remediated"

    truncated = bool(facts.get("lists_may_be_truncated")) or bool(
        _dict(facts.get("capabilities")).get("lists_may_be_truncated"))

    return {
        "host": host,
        "status": status,
        "clean": clean,
        "check_mode": check_mode,
        "checked_at": results.get("checked_at"),
        "checked_at_epoch": _int(results.get("checked_at_epoch")) or None,
        "bad_ranges": len(bad_ranges),
        "bad_bytes": sum(_int(_dict(r).get("length")) for r in bad_ranges),
        "software_only_ranges": len([r for r in bad_ranges if _dict(r).get("software_only")]),
        "lists_may_be_truncated": truncated,
        "open_entries": entries,
        "open_by_kind": by_kind,
        "lost_bytes": lost_bytes,
        "cleared": cleared,
        "accepted": accepted,
        "refused": refused,
        "needs_decision": needs_decision,
        "needs_offline_window": needs_offline,
        "needs_retry": needs_retry,
        "resolve_errors": resolve_errors,
        "scan_errors": facts_errors,
        "offline_plan": offline_plan,
        "failure": failure,
    }


def _not_run(host):
    summary = host_summary({}, host=host)
    summary.update({"status": "not_run", "clean": False})
    return summary


# jmespath queries over {"hosts": [summary, ...]}; each names a user-visible part of the report.
QUERIES = {
    "hosts_clean": "hosts[?status == 'clean'].host",
    "hosts_remediated": "hosts[?status == 'remediated'].host",
    "hosts_needing_decision": "hosts[?length(needs_decision) > `0` || status == 'needs_decision'].host",
    "hosts_needing_offline_window": "hosts[?length(needs_offline_window) > `0`].host",
    "hosts_failed": "hosts[?status == 'failed'].host",
    "hosts_not_run": "hosts[?status == 'not_run'].host",
    "hosts_truncated_lists": "hosts[?lists_may_be_truncated].host",
    "open_kinds": "hosts[].open_entries[].kind",
    "open_entries": "sum(hosts[].length(open_entries))",
    "lost_bytes": "sum(hosts[].lost_bytes)",
    "bad_ranges": "sum(hosts[].bad_ranges)",
    "cleared": "sum(hosts[].length(cleared))",
    "decisions": "hosts[].needs_decision[]",
    "offline": "hosts[].needs_offline_window[]",
}


def fleet_summary(hosts, generated_at=None, title="pmem poison report"):
    """Aggregate host summaries (dict host -> summary, or list) into the fleet report."""
    if not HAS_JMESPATH:
        raise AnsibleFilterError("pmem.poison.fleet_summary needs the 'jmespath' Python library on the controller")
    if isinstance(hosts, dict):
        items = []
        for name in sorted(hosts):
            summary = hosts[name]
            if not isinstance(summary, dict) or not summary:
                summary = _not_run(name)
            summary = dict(summary)
            summary.setdefault("host", name)
            items.append(summary)
    elif isinstance(hosts, (list, tuple)):
        items = sorted((dict(h) for h in hosts if isinstance(h, dict)), key=lambda h: str(h.get("host")))
    else:
        raise AnsibleFilterError("fleet_summary expects a dict or list of host summaries, got %s" % type(hosts).__name__)
    for item in items:
        for key in ("open_entries", "cleared", "needs_decision", "needs_offline_window"):
            item[key] = _list(item.get(key))
        for key in ("lost_bytes", "bad_ranges"):
            item[key] = _int(item.get(key))

    data = {"hosts": items}
    q = dict((name, jmespath.search(expr, data)) for name, expr in QUERIES.items())
    by_kind = {}
    for kind in q["open_kinds"] or []:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    decisions = []
    for item in items:
        for entry in item["needs_decision"]:
            decisions.append(dict(entry, host=item["host"]))
    offline = []
    for item in items:
        for entry in item["needs_offline_window"]:
            offline.append(dict(entry, host=item["host"]))

    totals = {
        "hosts": len(items),
        "clean": len(q["hosts_clean"] or []),
        "not_clean": len([i for i in items if not i.get("clean")]),
        "remediated": len(q["hosts_remediated"] or []),
        "needs_decision": len(q["hosts_needing_decision"] or []),
        "needs_offline_window": len(q["hosts_needing_offline_window"] or []),
        "failed": len(q["hosts_failed"] or []),
        "not_run": len(q["hosts_not_run"] or []),
        "bad_ranges": q["bad_ranges"] or 0,
        "open_entries": q["open_entries"] or 0,
        "lost_bytes": q["lost_bytes"] or 0,
        "cleared": q["cleared"] or 0,
    }
    return {
        "schema": 1,
        "title": title,
        "generated_at": generated_at,
        "all_clean": bool(items) and totals["clean"] == totals["hosts"],
        "totals": totals,
        "open_by_kind": dict(sorted(by_kind.items())),
        "hosts_clean": q["hosts_clean"] or [],
        "hosts_remediated": q["hosts_remediated"] or [],
        "hosts_needing_decision": q["hosts_needing_decision"] or [],
        "hosts_needing_offline_window": q["hosts_needing_offline_window"] or [],
        "hosts_failed": q["hosts_failed"] or [],
        "hosts_not_run": q["hosts_not_run"] or [],
        "hosts_truncated_lists": q["hosts_truncated_lists"] or [],
        "decisions": decisions,
        "offline_window": offline,
        "hosts": items,
    }


def entry_sources(open_entries, restore):
    """Restore by ledger entry: {entry_id: copy} -> {"sources": {path: copy}, "missing": [entry ids]}.

    ``open_entries`` are the ledger entries from ansible_facts.pmem.open_entries; an id that is not an
    open file entry there is listed in ``missing`` so the caller can fail with it.
    """
    wanted = _dict(restore)
    sources = {}
    found = set()
    for entry in _list(open_entries):
        if not isinstance(entry, dict) or entry.get("id") not in wanted:
            continue
        paths = _entry_paths(entry)
        if _entry_kind(entry) != "file" or not paths:
            continue
        found.add(entry["id"])
        for path in paths[:1]:  # hard links share the inode: the first path is enough
            sources[path] = wanted[entry["id"]]
    return {"sources": dict(sorted(sources.items())), "missing": sorted(k for k in wanted if k not in found)}


class FilterModule(object):
    """pmem.poison report filters."""

    def filters(self):
        return {
            "host_summary": host_summary,
            "fleet_summary": fleet_summary,
            "entry_sources": entry_sources,
        }
