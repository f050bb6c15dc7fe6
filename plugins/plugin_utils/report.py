# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report, decided once: per-host summaries, the fleet aggregate, and its files.

Controller-side only (used by the ``pmem.poison.fleet_report`` action and the ``host_summary`` /
``entry_sources`` filters). Pure functions over plain data, except ``write_report`` which writes the
files atomically. Private API of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible_collections.pmem.poison.plugins.module_utils._pmem.ledger import entry_id as ledger_entry_id
from ansible_collections.pmem.poison.plugins.module_utils._pmem.ledger import restore_targets as ledger_restore_targets

# What an open entry needs before it can be closed.
NEEDS_DECISION = "decision"          # restore from a good copy or accept the loss (playbooks restore / accept_loss)
NEEDS_OFFLINE = "offline_window"     # clear needs the filesystem unmounted / namespace unused
NEEDS_RETRY = "retry"                # a clear was attempted and failed (device error); see the error

# Worst first: the order an operator reads the fleet in.
HOST_STATUSES = ("failed", "not_run", "needs_offline_window", "needs_decision", "remediated", "clean")
STATUS_RANK = dict((status, rank) for rank, status in enumerate(HOST_STATUSES))

FORMATS = ("json", "md", "html")
REPORT_BASENAME = "pmem-poison-report"
HISTORY_DIR = "history"


class ReportInputError(ValueError):
    """The report was handed something that is not the shape it documents."""


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
    """entry id -> {"plan": the weightiest plan action, "result": the weightiest executed result}.

    ``plan`` items are Actions (docs/design.md); ``results`` items are {entry_id, action, range_id,
    changed, status (cleared|failed|skipped|planned|closed), details, error}. A clear result (rewrite
    with zeros after accept_loss) says more than the closure itself."""
    out = {}
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
    plan = _dict(outcome.get("plan"))
    result = _dict(outcome.get("result"))
    details = _dict(result.get("details"))
    action = plan.get("action")
    if action == "offline_required" or result.get("action") == "reallocate" or \
            plan.get("poison_may_remain") or details.get("poison_remains_in_free_space"):
        # reallocate made the file readable again; the poison is now in free space.
        return NEEDS_OFFLINE
    if result.get("status") == "failed" and result.get("error"):
        return NEEDS_RETRY
    if action:
        return NEEDS_DECISION  # record (no source), refuse (policy cannot work here), accept_loss...
    if _entry_kind(entry) in ("metadata", "free", "info_block"):
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


def _short_entry(entry, needs, outcome, marked):
    plan = _dict(outcome.get("plan"))
    result = _dict(outcome.get("result"))
    owner = _dict(entry.get("owner"))
    eid = entry.get("id") or entry.get("entry_id")
    containment = _dict(entry.get("containment"))
    quarantined = bool(marked) or "quarantined" in [_dict(h).get("event") for h in _list(entry.get("history"))]
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
        "contained": sorted(containment),
        "needs": needs,
        "action": plan.get("action"),
        "reason": result.get("error") or plan.get("reason") or owner.get("reason"),
        "next_step": plan.get("next_step"),
        "steps": _list(plan.get("steps")),
    }


def _dimm_counts(bad_ranges):
    """DIMM name -> {ranges, bytes}: which modules the platform says hold the host's bad ranges."""
    dimms = {}
    for brange in bad_ranges:
        brange = _dict(brange)
        for dimm in _list(brange.get("dimms")):
            name = _dict(dimm).get("dimm") if isinstance(dimm, dict) else dimm
            if not name:
                continue
            slot = dimms.setdefault(str(name), {"ranges": 0, "bytes": 0})
            slot["ranges"] += 1
            slot["bytes"] += _int(brange.get("length"))
    return dict(sorted(dimms.items()))


def host_summary(results, host=None):
    """Build one host's summary from the real module results.

    ``results`` is a dict with optional keys ``facts`` (ansible_facts.pmem of pmem_badblocks: bad_ranges,
    open_entries as ledger entries, clean, errors, capabilities), ``resolve`` (pmem_resolve: results),
    ``quarantine`` (pmem_quarantine: entries [{entry_id, marked, contained, skipped}], recorded),
    ``clear`` (pmem_clear: plan, results, open_entries as entry ids), ``failure`` ({task, msg}),
    ``check_mode`` and ``checked_at`` (ISO time). Skipped module results are ignored.
    """
    if not isinstance(results, dict):
        raise ReportInputError("host_summary expects a dict of module results, got %s" % type(results).__name__)

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
        outcome = outcomes.get(entry.get("id"), {})
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
    offline_plan = [{"id": e["id"], "steps": e["steps"], "offline_window": bool(
        _dict(_dict(outcomes.get(e["id"])).get("plan")).get("offline_window"))}
        for e in entries if e["steps"]]

    by_kind = {}
    for entry in entries:
        by_kind[entry["kind"]] = by_kind.get(entry["kind"], 0) + 1
    needs_decision = [e for e in entries if e["needs"] == NEEDS_DECISION]
    needs_offline = [e for e in entries if e["needs"] == NEEDS_OFFLINE]
    needs_retry = [e for e in entries if e["needs"] == NEEDS_RETRY]

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
    elif entries or resolve_errors or facts_errors or (bad_ranges and not cleared):
        # open entries that need a decision or a retry; or listed ranges that nothing cleared
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
        "dimms": _dimm_counts(bad_ranges),
        "open_entries": entries,
        "open_by_kind": by_kind,
        "lost_bytes": sum(e["length"] for e in entries if e["kind"] == "file"),
        "cleared": cleared,
        "accepted": accepted,
        "refused": [e for e in entries if e["action"] == "refuse"],
        "needs_decision": needs_decision,
        "needs_offline_window": needs_offline,
        "needs_retry": needs_retry,
        "resolve_errors": resolve_errors,
        "scan_errors": facts_errors,
        # what the scan warned of without a range: the kernel counts poisoned memory no source
        # explains, a watcher's lost-events marker, a list at its limit; never silence
        "warnings": [w for w in _list(facts.get("warnings")) if isinstance(w, str)],
        "offline_plan": offline_plan,
        "failure": failure,
    }


def not_run_summary(host):
    """The summary of a host of the play that has no result (a later batch, or unreachable)."""
    summary = host_summary({}, host=host)
    summary.update({"status": "not_run", "clean": False})
    return summary


def worst_first(summary):
    """Sort key: failed, not run, offline window, decision, remediated, clean; then most open, most lost."""
    return (STATUS_RANK.get(summary.get("status"), 0), -len(_list(summary.get("open_entries"))),
            -_int(summary.get("lost_bytes")), str(summary.get("host")))


def fleet_summary(hosts, generated_at=None, title="pmem poison report", history=None):
    """Aggregate host summaries (dict host -> summary, {} = not run; or a list) into the fleet report.

    ``history`` is a list of earlier runs' ``run_record`` dicts (oldest first), shown as the trend.
    """
    if isinstance(hosts, dict):
        items = []
        for name in hosts:
            summary = hosts[name]
            summary = dict(summary) if isinstance(summary, dict) and summary else not_run_summary(name)
            summary.setdefault("host", name)
            items.append(summary)
    elif isinstance(hosts, (list, tuple)):
        items = [dict(h) for h in hosts if isinstance(h, dict)]
    else:
        raise ReportInputError("fleet_summary expects a dict or list of host summaries, got %s" % type(hosts).__name__)
    for item in items:
        for key in ("open_entries", "cleared", "needs_decision", "needs_offline_window"):
            item[key] = _list(item.get(key))
        for key in ("lost_bytes", "bad_ranges"):
            item[key] = _int(item.get(key))
    items.sort(key=lambda h: str(h.get("host")))

    def named(status):
        return [i["host"] for i in items if i.get("status") == status]

    by_kind = {}
    decisions = []
    offline = []
    dimms = []
    for item in items:
        for entry in item["open_entries"]:
            by_kind[entry.get("kind")] = by_kind.get(entry.get("kind"), 0) + 1
        decisions.extend(dict(entry, host=item["host"]) for entry in item["needs_decision"])
        offline.extend(dict(entry, host=item["host"]) for entry in item["needs_offline_window"])
        for name, counts in sorted(_dict(item.get("dimms")).items()):
            dimms.append(dict(_dict(counts), host=item["host"], dimm=name))
    dimms.sort(key=lambda d: (-_int(d.get("ranges")), -_int(d.get("bytes")), d["host"], d["dimm"]))
    warnings = [{"host": item["host"], "message": w} for item in sorted(items, key=worst_first)
                for w in _list(item.get("warnings"))]

    needing_decision = [i["host"] for i in items if i["needs_decision"] or i.get("status") == "needs_decision"]
    needing_offline = [i["host"] for i in items if i["needs_offline_window"]]
    totals = {
        "hosts": len(items),
        "clean": len(named("clean")),
        "not_clean": len([i for i in items if not i.get("clean")]),
        "remediated": len(named("remediated")),
        "needs_decision": len(needing_decision),
        "needs_offline_window": len(needing_offline),
        "failed": len(named("failed")),
        "not_run": len(named("not_run")),
        "bad_ranges": sum(i["bad_ranges"] for i in items),
        "open_entries": sum(len(i["open_entries"]) for i in items),
        "lost_bytes": sum(i["lost_bytes"] for i in items),
        "cleared": sum(len(i["cleared"]) for i in items),
    }
    return {
        "schema": 1,
        "title": title,
        "generated_at": generated_at,
        "all_clean": bool(items) and totals["clean"] == totals["hosts"],
        "totals": totals,
        "open_by_kind": dict(sorted(by_kind.items())),
        "hosts_clean": named("clean"),
        "hosts_remediated": named("remediated"),
        "hosts_needing_decision": needing_decision,
        "hosts_needing_offline_window": needing_offline,
        "hosts_failed": named("failed"),
        "hosts_not_run": named("not_run"),
        "hosts_truncated_lists": [i["host"] for i in items if i.get("lists_may_be_truncated")],
        "decisions": decisions,
        "offline_window": offline,
        "dimms": dimms,
        "warnings": warnings,
        "history": list(history or []),
        "hosts": items,
    }


def published(fleet):
    """The fleet report without the per-host detail: what set_stats carries to AWX (pmem_poison_report)."""
    out = dict((k, v) for k, v in fleet.items() if k != "hosts")
    out["history"] = [dict((k, v) for k, v in _dict(r).items() if k != "hosts") for r in _list(fleet.get("history"))]
    return out


def host_digest(summary):
    """A host's summary as AWX workflows and notifications read it (pmem_poison_hosts[host])."""
    keys = ("status", "clean", "check_mode", "checked_at", "bad_ranges", "bad_bytes", "open_by_kind",
            "lost_bytes", "lists_may_be_truncated", "scan_errors", "resolve_errors", "warnings", "failure")
    digest = dict((k, summary.get(k)) for k in keys)
    digest["open_entries"] = [e.get("id") for e in _list(summary.get("open_entries"))]
    digest["needs_decision"] = [e.get("id") for e in _list(summary.get("needs_decision"))]
    digest["needs_offline_window"] = [e.get("id") for e in _list(summary.get("needs_offline_window"))]
    digest["cleared"] = [c.get("id") for c in _list(summary.get("cleared"))]
    return digest


def run_record(fleet):
    """One line of the report directory's history: the run's totals and each host's open/lost."""
    return {
        "generated_at": fleet.get("generated_at"),
        "totals": dict(fleet.get("totals") or {}),
        "hosts": dict((h["host"], [len(h["open_entries"]), h["lost_bytes"]]) for h in fleet.get("hosts", [])
                      if h.get("status") != "not_run"),
    }


def entry_sources(open_entries, restore):
    """Restore by ledger entry: {entry_id: copy} -> {"sources": {path: copy}, "missing": [entry ids]}.

    ``open_entries`` are the ledger entries from ansible_facts.pmem.open_entries; an id that is not an
    open file entry there is listed in ``missing`` so the caller can fail with it. The rule is the
    ledger's (``restore_targets``), as pmem_clear's ``restore_entries`` applies it.
    """
    # every entry given is open (the facts list no other), whatever its copy of the state says
    entries = [dict(e, state="open") for e in _list(open_entries) if isinstance(e, dict)]
    sources, done, unknown = ledger_restore_targets({"entries": entries}, _dict(restore))
    return {"sources": dict(sorted(sources.items())), "missing": sorted(done + unknown)}


def write_atomic(path, text, mode=0o640):
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _history_records(history_dir):
    records = []
    try:
        names = [n for n in os.listdir(history_dir) if n.endswith(".json")]
    except OSError:
        return records
    for name in names:
        try:
            with open(os.path.join(history_dir, name), encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records.append((str(record.get("generated_at") or ""), name, record))
    records.sort(key=lambda item: (item[0], item[1]))
    return records


def write_report(fleet, report_dir, formats=FORMATS, keep_history=30, run_id="run"):
    """Write the report files and this run's history record into ``report_dir``; return their paths.

    Each run keeps one record (``history/<run_id>.json``, rewritten by every batch of that run); the
    last ``keep_history`` records, this run's included, are the trend shown in the files.
    """
    from ansible_collections.pmem.poison.plugins.plugin_utils import report_render

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ReportInputError("unknown report format(s) %s; choose from %s" % (", ".join(unknown), ", ".join(FORMATS)))
    os.makedirs(report_dir, mode=0o750, exist_ok=True)
    history_path = None
    if keep_history > 0:
        history_dir = os.path.join(report_dir, HISTORY_DIR)
        os.makedirs(history_dir, mode=0o750, exist_ok=True)
        record_name = "%s.json" % "".join(c if c.isalnum() or c in "-_." else "_" for c in str(run_id))
        earlier = [(name, record) for _at, name, record in _history_records(history_dir) if name != record_name]
        record = run_record(fleet)
        history_path = os.path.join(history_dir, record_name)
        write_atomic(history_path, json.dumps(record, sort_keys=True))
        keep = earlier[-(keep_history - 1):] if keep_history > 1 else []
        for name, _record in earlier[:len(earlier) - len(keep)]:
            os.unlink(os.path.join(history_dir, name))
        fleet = dict(fleet, history=[r for _name, r in keep] + [record])
    renderers = {"json": report_render.render_json, "md": report_render.render_markdown,
                 "html": report_render.render_html}
    written = []
    for fmt in formats:
        path = os.path.join(report_dir, "%s.%s" % (REPORT_BASENAME, fmt))
        write_atomic(path, renderers[fmt](fleet))
        written.append(path)
    return written + ([history_path] if history_path else [])
