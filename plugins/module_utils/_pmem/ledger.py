# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The durable record of lost data: one JSON document per host.

Two halves, kept apart on purpose:

* pure functions over plain dicts (``entry_id``, ``merge_detections``, ``apply_event``,
  ``close_entry``, ``validate``): no I/O, unit-tested with hypothesis;
* I/O (``load``, ``save``, ``read_open_entries``, ``LedgerStore``): atomic save (temp file in the
  same directory, fsync, rename, fsync of the directory), a ``ledger.lock`` taken with
  ``fcntl.flock`` and a timeout, root-only modes (directory 0700, file 0600).

Entries are never deleted. History is append-only. A closed entry never reopens silently.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import identity as _identity
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    GatherError,
    LedgerError,
    LedgerLocked,
    PmemError,
    from_oserror,
)

# 2: ranges keyed by identity (namespace uuid / physical address), filesystem owners by fs uuid;
# migrate() upgrades 1
SCHEMA = 2
DEFAULT_PATH = "/var/lib/pmem-poison/ledger.json"
LOCK_NAME = "ledger.lock"

STATES = ("open", "closed")
EVENTS = (
    "detected", "resolved", "quarantined", "released", "clear_planned", "cleared",
    "clear_failed", "restored", "accepted_lost",
)
CLOSURES = ("restored", "accepted_lost", "not_file_data_cleared")

# Which events each state accepts. Closing events are handled by close_entry(); "detected" on a
# closed entry is the reopen path in merge_detections().
ALLOWED_EVENTS = {
    "open": frozenset(("detected", "resolved", "quarantined", "released", "clear_planned",
                       "cleared", "clear_failed")),
    # a closed entry may still be cleared (zeros over an accepted loss) and released
    "closed": frozenset(("released", "clear_planned", "cleared", "clear_failed", "resolved")),
}

# Range fields copied into an entry (a BadRange subset, see docs/design.md).
RANGE_FIELDS = (
    "id", "region", "namespace", "blockdev", "partition", "dax_device", "length", "area",
    "absolute", "region_offset", "namespace_offset", "blockdev_offset", "partition_offset",
    "software_only", "sources", "cxl",
)
# The badblocks lists: a range they still show is poison now. A range known only from records
# (kernel log, rasdaemon: kernel_events.py) is the same record read again on every run until the
# log rotates, so only a record not seen before reopens a closed entry.
LIST_SOURCES = ("region", "blockdev", "ndctl", "cxl")
# Owner fields whose change since the last resolution is worth a "resolved" history event.
OWNER_TRACKED = ("paths", "generation", "repair_offset", "repair_length", "shared", "kind",
                 "metadata_kind", "length")
# owner fields the record adds (the resolver never reports them): kept when the owner is updated
OWNER_RECORDED = ("size",)


class TransitionError(PmemError):
    """An event that the entry's state does not allow (e.g. closing a closed entry)."""


# --------------------------------------------------------------------------------------------
# pure part
# --------------------------------------------------------------------------------------------

def utcnow():
    """ISO 8601 UTC timestamp with seconds resolution, e.g. 2026-11-21T05:03:19Z."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty_ledger(host=None):
    return {"schema": SCHEMA, "host": host if host is not None else socket.gethostname(),
            "entries": []}


def entry_id(range_id, owner):
    """Stable id per (range, owner): ``<range_id>|<where>|ino=<inode>|off=<file_offset>``.

    *range_id* is the BadRange id (made of the namespace uuid or the physical address where they
    are known, see identity.py). *where* is ``fs-<uuid>`` for owners on a filesystem whose uuid is
    known, ``-`` for owners that are the device itself (raw, devdax, info block: the range id
    already says which bytes), and the device path only where nothing stabler is known.

    Owners without an inode (metadata, free space, info block, raw, devdax, unknown) use the owner
    kind in place of the inode (``ino=metadata:log``, ``ino=free``) and ``off=-``, so two
    non-file owners of one range still get distinct ids.
    """
    owner = owner or {}
    if owner.get("fs_uuid"):
        where = "fs-%s" % owner["fs_uuid"]
    elif owner.get("kind") in ("raw", "devdax", "info_block") and _identity.is_stable_id(range_id):
        where = "-"
    else:
        where = owner.get("device") or "-"
    inode = owner.get("inode")
    if inode is None:
        kind = owner.get("kind") or "unknown"
        if owner.get("metadata_kind"):
            kind = "%s:%s" % (kind, owner["metadata_kind"])
        ino = kind
    else:
        ino = str(int(inode))
    off = owner.get("file_offset")
    off = "-" if off is None else str(int(off))
    if owner.get("attr_fork"):
        off += ":attr"
    return "%s|%s|ino=%s|off=%s" % (range_id, where, ino, off)


def _owner_key(owner):
    owner = owner or {}
    return (owner.get("kind"), owner.get("metadata_kind"), owner.get("inode"),
            owner.get("file_offset"), bool(owner.get("attr_fork")))


def _same_owner(recorded, owner):
    if _owner_key(recorded) != _owner_key(owner):
        return False
    a, b = (recorded or {}).get("fs_uuid"), (owner or {}).get("fs_uuid")
    return not (a and b and a != b)


def find_same_place(ledger, bad_range, owner, exclude=()):
    """The entry that records *owner* of the same bytes as *bad_range* under another id (its
    range was seen under other device names, or before identities existed), or None.

    Bytes are compared by identity (identity.same_place: namespace uuid + offset, else physical
    address), never by name; the owner by kind, inode, file offset and fork (and filesystem uuid
    when both know it). The first such entry in ledger order wins (the oldest record)."""
    ident = (bad_range or {}).get("identity")
    if not ident:
        return None
    for entry in (ledger or {}).get("entries", []):
        if entry.get("id") in exclude or entry.get("duplicate_of"):
            continue
        if _identity.same_place(_identity.identity_from_recorded(entry.get("range")), ident) \
                and _same_owner(entry.get("owner"), owner):
            return entry
    return None


def migrate(ledger, topology=None, at=None):
    """Upgrade a ledger to SCHEMA; returns ``(new_ledger, notes)``. Pure; nothing is dropped.

    Schema 1 keyed ranges by device names. Each entry gets ``range.identity``: the physical
    address it recorded (root runs record ``absolute``) proves where its bytes are
    (``identity_status: proven_by_address``); an entry that recorded only names gets
    ``identity: null`` and ``identity_status: unproven`` with the reason, and stays as it is
    (its id, its state). When *topology* (the current one) is given, each proven identity is
    also located (identity.locate) and the names it has now are noted (``located_as``).
    Entries that record the same owner of the same bytes twice (a rename seen before this
    version) are marked ``duplicate_of`` the first. Ids are kept: an entry takes its stable id
    when its range is listed again (merge_detections)."""
    at = at or utcnow()
    new = copy.deepcopy(ledger) if ledger else empty_ledger()
    notes = []
    old_schema = new.get("schema") or 1
    if old_schema >= SCHEMA:
        return new, notes
    for entry in new.get("entries", []):
        rng = entry.setdefault("range", {})
        if "identity" in rng:
            continue
        rng["seen_as"] = _identity.seen_as(rng)
        ident = _identity.identity_from_recorded(rng)
        if ident is None:
            rng["identity"] = None
            rng["identity_status"] = "unproven"
            rng["identity_note"] = (
                "recorded by device name only (%s); names move across reboots, so this entry is "
                "kept open as it is and nothing is written for it until it is resolved again" % (
                    rng.get("id")))
            notes.append({"entry_id": entry.get("id"), "status": "unproven"})
            continue
        rng["identity"] = ident
        rng["identity_status"] = "proven_by_address"
        note = {"entry_id": entry.get("id"), "status": "proven_by_address"}
        if topology is not None:
            loc = _identity.locate(ident, topology)
            if loc.get("present"):
                rng["located_as"] = dict((k, loc.get(k)) for k in (
                    "present", "region", "namespace", "blockdev", "partition", "dax_device"))
            else:
                rng["located_as"] = {"present": False, "reason": loc.get("reason")}
            note["present"] = bool(loc.get("present"))
        notes.append(note)
    firsts = []
    for entry in new.get("entries", []):
        ident = _identity.identity_from_recorded(entry.get("range"))
        for first in firsts:
            if _identity.same_place(_identity.identity_from_recorded(first.get("range")), ident) \
                    and _same_owner(first.get("owner"), entry.get("owner")):
                entry["duplicate_of"] = first["id"]
                notes.append({"entry_id": entry.get("id"), "status": "duplicate",
                              "duplicate_of": first["id"]})
                break
        else:
            if ident is not None:
                firsts.append(entry)
    new["schema"] = SCHEMA
    new.setdefault("migrations", []).append({"from": old_schema, "to": SCHEMA, "at": at,
                                             "entries": len(new.get("entries", []))})
    return new, notes


def resolve_entry_id(ledger, eid):
    """The entry an operator's id names: its current id, or an id it had before it was re-keyed
    (``previous_ids``), so ids written into policies before an upgrade keep working."""
    entry = find_entry(ledger, eid)
    if entry is not None:
        return entry
    for entry in (ledger or {}).get("entries", []):
        if eid in (entry.get("previous_ids") or []):
            return entry
    return None


def find_entry(ledger, eid):
    for entry in ledger.get("entries", []):
        if entry.get("id") == eid:
            return entry
    return None


def open_entries(ledger):
    return [e for e in ledger.get("entries", []) if e.get("state") == "open"]


def restore_targets(ledger, restore):
    """Restore by ledger entry: ``{entry id: copy}`` -> ``(sources, done, unknown)``.

    ``sources`` maps the file of each open file entry named (its first path: hard links share
    the inode) to its copy, as policy.restore_sources takes it; ``done`` lists the ids of entries
    already closed as restored (a rerun of the same restore: nothing to do); ``unknown`` every
    other id (no such entry, not a file, or its loss accepted), which a caller refuses."""
    sources, done, unknown = {}, [], []
    for eid in sorted(restore or {}):
        entry = resolve_entry_id(ledger, eid) or {}
        owner = entry.get("owner") or {}
        paths = [p for p in owner.get("paths") or [] if p]
        if entry.get("state") == "open" and owner.get("kind") == "file" and paths:
            sources[paths[0]] = restore[eid]
        elif entry.get("state") == "closed" and (entry.get("closure") or {}).get("how") == "restored":
            done.append(eid)
        else:
            unknown.append(eid)
    return sources, done, unknown


def _event(event, at, details=None):
    if event not in EVENTS:
        raise ValueError("unknown ledger event %r" % (event,))
    return {"at": at, "event": event, "details": dict(details or {})}


def _range_subset(bad_range):
    bad_range = bad_range or {}
    out = dict((k, bad_range.get(k)) for k in RANGE_FIELDS if k in bad_range)
    fs = bad_range.get("filesystem")
    if fs:
        out["filesystem"] = dict(fs)
    return out


def _event_keys(bad_range):
    return sorted(set(ev.get("key") for ev in (bad_range or {}).get("events") or [] if ev.get("key")))


def event_keys_of(entry):
    """Keys of the kernel-log/rasdaemon records (PoisonEvent.key) the entry was detected by."""
    known = set()
    for ev in entry.get("history", []):
        known.update((ev.get("details") or {}).get("events") or [])
    return known


def new_entry(bad_range, owner, at, details=None):
    range_id = (bad_range or {}).get("id") or (owner or {}).get("range_id")
    if not range_id:
        raise ValueError("a ledger entry needs a range id")
    keys = _event_keys(bad_range)
    if keys:
        details = dict(details or {}, events=keys, sources=list((bad_range or {}).get("sources") or []))
    return {
        "id": entry_id(range_id, owner),
        "state": "open",
        "range": _range_subset(bad_range) if bad_range else {"id": range_id},
        "owner": copy.deepcopy(owner or {}),
        "history": [
            _event("detected", at, details),
            _event("resolved", at, {"kind": (owner or {}).get("kind")}),
        ],
        "closure": None,
    }


def last_poison_event(entry):
    """The most recent event that says something about the poison itself, or None."""
    for ev in reversed(entry.get("history", [])):
        if ev.get("event") in ("detected", "cleared", "clear_failed"):
            return ev
    return None


WARNINGS_KEPT = 200


def add_warnings(ledger, warnings, at=None):
    """A copy of ``ledger`` with ``warnings`` ([{source, message}]) appended to its top-level
    ``warnings`` list (the newest WARNINGS_KEPT kept): what the watcher heard that is not a bad
    range, above all the kernel's lost-event markers (events it dropped are known to be missing).
    A warning already the last one with the same source and message is not repeated."""
    new = copy.deepcopy(ledger) if ledger else empty_ledger()
    kept = list(new.get("warnings") or [])
    for w in warnings or []:
        item = {"at": at or utcnow(), "source": w["source"], "message": w["message"]}
        if kept and (kept[-1]["source"], kept[-1]["message"]) == (item["source"], item["message"]):
            continue
        kept.append(item)
    new["warnings"] = kept[-WARNINGS_KEPT:]
    return new


def merge_detections(ledger, resolve_results, bad_ranges=None, at=None):
    """Merge resolver output into a copy of ``ledger``.

    ``resolve_results`` is pmem_resolve's ``results`` (``[{range_id, owners, error}]``);
    ``bad_ranges`` maps range id to the BadRange (or is a list of BadRanges). Returns
    ``(new_ledger, changes)`` where ``changes`` is a list of ``{entry_id, change, reason}``
    with change ``new``, ``updated`` or ``reopened``. Ranges whose resolution failed are
    recorded with an ``unknown`` owner so they are never forgotten.

    Rules: a new (range, owner) makes a new open entry; an open entry whose owner changed gets a
    ``resolved`` event; a closed entry is reopened only when its poison had been verified cleared
    (last poison event ``cleared``) and the range is listed again: it gets a ``detected`` event
    with ``reopened: true`` and the old closure moves into that event. A closed entry whose poison
    was never cleared (loss accepted, poison still listed) stays closed: that listing is known.
    """
    at = at or utcnow()
    new = copy.deepcopy(ledger) if ledger else empty_ledger()
    new.setdefault("entries", [])
    if (new.get("schema") or 1) < SCHEMA:
        new, _notes = migrate(new, at=at)
    if isinstance(bad_ranges, list):
        bad_ranges = dict((r.get("id"), r) for r in bad_ranges)
    bad_ranges = bad_ranges or {}
    changes = []
    touched = set()
    for result in resolve_results or []:
        range_id = result.get("range_id")
        if not range_id:
            continue
        owners = list(result.get("owners") or [])
        if not owners:
            owners = [{"kind": "unknown", "range_id": range_id,
                       "reason": result.get("error") or "no owner reported"}]
        bad_range = bad_ranges.get(range_id) or {"id": range_id}
        for owner in owners:
            eid = entry_id(range_id, owner)
            entry = find_entry(new, eid)
            if entry is None:
                entry = find_same_place(new, bad_range, owner, exclude=touched)
                if entry is not None:
                    # the same bytes and owner, recorded under other device names (a reboot
                    # renamed them) or before identities: the entry takes the stable id
                    old_id = entry["id"]
                    entry["id"] = eid
                    entry.setdefault("previous_ids", []).append(old_id)
                    _record_range(entry, bad_range, at)
                    entry["history"].append(_event("resolved", at, {
                        "rekeyed_from": old_id,
                        "reason": "listed again under other device names: same bytes by %s" % (
                            (bad_range.get("identity") or {}).get("kind"))}))
                    changes.append({"entry_id": eid, "change": "rekeyed",
                                    "reason": "same bytes and owner as %s (device names moved)"
                                              % old_id})
            if entry is None:
                entry = new_entry(bad_range, owner, at)
                _record_range(entry, bad_range, at)
                new["entries"].append(entry)
                touched.add(eid)
                changes.append({"entry_id": eid, "change": "new", "reason": "new bad range/owner"})
                continue
            touched.add(eid)
            keys = _event_keys(bad_range)
            new_keys = sorted(set(keys) - event_keys_of(entry))
            listed = bool(set(bad_range.get("sources") or LIST_SOURCES) & set(LIST_SOURCES))
            if entry["state"] == "closed":
                last = last_poison_event(entry)
                if last is not None and last["event"] == "cleared" and (listed or new_keys):
                    closure = entry.get("closure")
                    entry["history"].append(_event("detected", at, dict({
                        "reopened": True,
                        "reason": "range listed again after it was verified cleared at %s"
                                  % last.get("at"),
                        "previous_closure": closure,
                    }, **({"events": new_keys} if new_keys else {}))))
                    entry["state"] = "open"
                    entry["closure"] = None
                    entry["owner"] = copy.deepcopy(owner)
                    changes.append({"entry_id": eid, "change": "reopened",
                                    "reason": "listed again after verified clear"})
                continue
            moved = _names_moved(entry, bad_range, owner)
            if moved:
                # the same bytes (stable id) under the device names of now: the record says where
                # they are today, the history keeps where they were (writes never go by name)
                _record_range(entry, bad_range, at)
                if owner.get("device"):
                    entry["owner"]["device"] = owner["device"]
                entry["history"].append(_event("resolved", at, {"renamed": moved}))
                changes.append({"entry_id": eid, "change": "updated", "reason": "device names moved: %s" % ", ".join(
                    "%s %s -> %s" % (k, v["old"], v["new"]) for k, v in sorted(moved.items()))})
            if new_keys:
                entry["history"].append(_event("detected", at, {"events": new_keys, "again": True}))
                changes.append({"entry_id": eid, "change": "updated",
                                "reason": "reported again by %s" % ", ".join(new_keys)})
            if _inode_reused(entry["owner"], owner):
                # another file got the inode number (ext4 hands out the one just freed): the
                # entry keeps the file it recorded, so nothing meant for that file reaches the
                # new one (the guard refuses by generation); its history names the newcomer once
                if not any((ev.get("details") or {}).get("inode_reused", {}).get("generation")
                           == owner.get("generation") for ev in entry["history"]):
                    entry["history"].append(_event("resolved", at, {"inode_reused": {
                        "generation": owner.get("generation"), "paths": list(owner.get("paths") or [])}}))
                    changes.append({"entry_id": eid, "change": "updated", "reason": (
                        "inode %s now holds another file (generation %s, recorded %s): the entry keeps "
                        "the file it recorded" % (owner.get("inode"), owner.get("generation"),
                                                  entry["owner"].get("generation")))})
                continue
            diff = dict((k, {"old": entry["owner"].get(k), "new": owner.get(k)})
                        for k in OWNER_TRACKED if entry["owner"].get(k) != owner.get(k))
            if diff:
                entry["history"].append(_event("resolved", at, {"changed": diff}))
                # what only the record knows (the size pmem_quarantine saw) stays with it: the
                # guard holds the file to it
                kept = dict((k, entry["owner"][k]) for k in OWNER_RECORDED
                            if entry["owner"].get(k) is not None and owner.get(k) is None)
                entry["owner"] = dict(copy.deepcopy(owner), **kept)
                changes.append({"entry_id": eid, "change": "updated",
                                "reason": "owner changed: %s" % ", ".join(sorted(diff))})
    return new, changes


def _inode_reused(recorded, owner):
    """Is ``owner`` another file at the inode number ``recorded`` names (both generations
    known and different)?"""
    a, b = (recorded or {}).get("generation"), (owner or {}).get("generation")
    return (recorded or {}).get("kind") == "file" and a is not None and b is not None and \
        int(a) & 0xffffffff != int(b) & 0xffffffff


def _names_moved(entry, bad_range, owner):
    """``{field: {old, new}}`` of the device names an open entry with a stable id recorded that the
    listing of now gives otherwise (empty when nothing moved or nothing can tell)."""
    if entry.get("state") != "open" or not _identity.is_stable_id((entry.get("range") or {}).get("id")):
        return {}
    rng = entry.get("range") or {}
    moved = {}
    for key in _identity.NAME_FIELDS:
        if bad_range.get(key) and rng.get(key) and bad_range[key] != rng[key]:
            moved[key] = {"old": rng[key], "new": bad_range[key]}
    device = (entry.get("owner") or {}).get("device")
    if moved and owner.get("device") and device and owner["device"] != device:
        moved["owner_device"] = {"old": device, "new": owner["device"]}
    return moved


def _record_range(entry, bad_range, at):
    """Keep the range's identity (how to find its bytes again) and the names it was seen under
    (``seen_as``: for people; never used to find the bytes)."""
    rng = entry.setdefault("range", {})
    if bad_range.get("identity") is not None or "identity" not in rng:
        rng["identity"] = bad_range.get("identity") or _identity.identity_from_recorded(bad_range)
    if rng.get("identity"):
        rng.pop("identity_status", None)
        rng.pop("identity_note", None)
    for key in RANGE_FIELDS:
        if key in bad_range:
            rng[key] = bad_range[key]
    if bad_range.get("filesystem"):
        rng["filesystem"] = dict(bad_range["filesystem"])
    rng["seen_as"] = _identity.seen_as(bad_range, at)


def apply_event(entry, event, at=None, details=None):
    """Return a copy of ``entry`` with ``event`` appended; refuses events the state forbids."""
    if event not in EVENTS:
        raise ValueError("unknown ledger event %r" % (event,))
    if event in ("restored", "accepted_lost"):
        raise TransitionError("use close_entry() for %s" % event, range=entry.get("id"))
    state = entry.get("state")
    if event not in ALLOWED_EVENTS.get(state, ()):
        raise TransitionError("event %s is not allowed on a %s entry" % (event, state),
                              range=entry.get("id"))
    new = copy.deepcopy(entry)
    new["history"].append(_event(event, at or utcnow(), details))
    return new


def close_entry(entry, how, at=None, by=None, why=None, source=None, sha256=None, details=None):
    """Return a closed copy of ``entry``. Closing a closed entry the same way is a no-op copy;
    closing it another way is refused (closures are affirmative steps, not overwritten)."""
    if how not in CLOSURES:
        raise ValueError("unknown closure %r" % (how,))
    at = at or utcnow()
    if entry.get("state") == "closed":
        if (entry.get("closure") or {}).get("how") == how:
            return copy.deepcopy(entry)
        raise TransitionError(
            "entry is already closed as %s; it cannot be closed again as %s"
            % ((entry.get("closure") or {}).get("how"), how), range=entry.get("id"),
            next_step="leave it closed, or wait for it to be reopened by a new detection")
    if how == "not_file_data_cleared" and (entry.get("owner") or {}).get("kind") == "file":
        raise TransitionError("a file-data entry closes only as restored or accepted_lost",
                              range=entry.get("id"),
                              next_step="restore from a source or accept the loss")
    event = {"restored": "restored", "accepted_lost": "accepted_lost",
             "not_file_data_cleared": "cleared"}[how]
    new = copy.deepcopy(entry)
    ev_details = dict(details or {})
    ev_details.update(dict((k, v) for k, v in (("by", by), ("why", why), ("source", source),
                                               ("sha256", sha256)) if v is not None))
    if how != "not_file_data_cleared":
        new["history"].append(_event(event, at, ev_details))
    new["state"] = "closed"
    new["closure"] = {"how": how, "at": at, "by": by, "why": why, "source": source,
                      "sha256": sha256}
    return new


def replace_entry(ledger, entry):
    """Return a copy of ``ledger`` with the entry of the same id replaced (or appended)."""
    new = copy.deepcopy(ledger)
    for i, old in enumerate(new["entries"]):
        if old.get("id") == entry.get("id"):
            new["entries"][i] = copy.deepcopy(entry)
            return new
    new["entries"].append(copy.deepcopy(entry))
    return new


OWNER_KINDS = ("file", "metadata", "free", "info_block", "devdax", "raw", "unknown")
_INT = (int,)
_STR = (str,)


def _typed(value, types, nullable=True):
    if value is None:
        return nullable
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _field_problems(where, obj, fields):
    """``fields``: name -> (types, nullable). Missing keys count as null."""
    out = []
    for name, (types, nullable) in fields.items():
        value = obj.get(name)
        if not _typed(value, types, nullable):
            out.append("%s.%s is %s, expected %s%s" % (
                where, name, "missing" if name not in obj else repr(value)[:40],
                "/".join(t.__name__ for t in types), " or null" if nullable else ""))
    return out


_OWNER_FIELDS = {
    "kind": (_STR, False), "device": (_STR, True), "mountpoint": (_STR, True),
    "fstype": (_STR, True), "inode": (_INT, True), "generation": (_INT, True),
    "file_offset": (_INT, True), "length": (_INT, True), "repair_offset": (_INT, True),
    "repair_length": (_INT, True), "shared": ((bool,), True), "attr_fork": ((bool,), True),
    "metadata_kind": (_STR, True), "fs_offset": (_INT, True), "paths": ((list,), True),
}
_RANGE_FIELDS = {
    "id": (_STR, False), "length": (_INT, True), "region": (_STR, True),
    "namespace": (_STR, True), "blockdev": (_STR, True), "partition": (_STR, True),
    "region_offset": (_INT, True), "namespace_offset": (_INT, True),
    "blockdev_offset": (_INT, True), "partition_offset": (_INT, True), "absolute": (_INT, True),
}


def entry_problems(entry):
    """Every problem of one ledger entry (a list of sentences; [] when it is sound). Unknown keys
    are allowed (newer writers may add some); known keys must have their documented types."""
    eid = entry.get("id")
    where = "entry %s" % eid
    out = []
    if entry.get("state") not in STATES:
        out.append("%s: state is %r, expected open or closed" % (where, entry.get("state")))
    owner = entry.get("owner")
    if not isinstance(owner, dict):
        out.append("%s: owner is %s, expected a mapping" % (
            where, "missing" if "owner" not in entry else repr(owner)[:40]))
    else:
        out.extend(_field_problems(where + ": owner", owner, _OWNER_FIELDS))
        if owner.get("kind") not in OWNER_KINDS and isinstance(owner.get("kind"), str):
            out.append("%s: owner.kind %r is not one of %s" % (where, owner["kind"],
                                                               ", ".join(OWNER_KINDS)))
        if isinstance(owner.get("paths"), list) and \
                not all(isinstance(x, str) for x in owner["paths"]):
            out.append("%s: owner.paths holds something other than strings" % where)
    rng = entry.get("range")
    if not isinstance(rng, dict):
        out.append("%s: range is %s, expected a mapping" % (
            where, "missing" if "range" not in entry else repr(rng)[:40]))
    else:
        out.extend(_field_problems(where + ": range", rng, _RANGE_FIELDS))
    history = entry.get("history")
    if not isinstance(history, list):
        out.append("%s: history is %s, expected a list" % (
            where, "missing" if "history" not in entry else repr(history)[:40]))
    else:
        for i, ev in enumerate(history):
            if not isinstance(ev, dict):
                out.append("%s: history[%d] is not a mapping" % (where, i))
                continue
            if ev.get("event") not in EVENTS:
                out.append("%s: history[%d].event is %s, expected one of %s" % (
                    where, i, "missing" if "event" not in ev else repr(ev.get("event"))[:40],
                    ", ".join(EVENTS)))
            if not isinstance(ev.get("at"), str):
                out.append("%s: history[%d].at is %s, expected an ISO 8601 time" % (
                    where, i, "missing" if "at" not in ev else repr(ev.get("at"))[:40]))
            if not isinstance(ev.get("details", {}), dict):
                out.append("%s: history[%d].details is not a mapping" % (where, i))
    closure = entry.get("closure")
    if entry.get("state") == "closed":
        if not isinstance(closure, dict) or closure.get("how") not in CLOSURES:
            out.append("%s: closed, but closure is %s (expected how: %s)" % (
                where, repr(closure)[:60], "|".join(CLOSURES)))
    elif entry.get("state") == "open" and closure is not None:
        out.append("%s: open, but has a closure %s" % (where, repr(closure)[:60]))
    cont = entry.get("containment")
    if cont is not None:
        if not isinstance(cont, dict):
            out.append("%s: containment is %r, expected a mapping" % (where, cont))
        else:
            chmod = cont.get("chmod")
            if chmod is not None and not (isinstance(chmod, dict)
                                          and _typed(chmod.get("mode"), _INT, False)):
                out.append("%s: containment.chmod needs an integer mode, got %r"
                           % (where, chmod))
            renames = cont.get("rename")
            if renames is not None:
                if not isinstance(renames, list):
                    out.append("%s: containment.rename is not a list" % where)
                else:
                    for i, r in enumerate(renames):
                        if not isinstance(r, dict) or not isinstance(r.get("from"), str) \
                                or not isinstance(r.get("to"), str):
                            out.append("%s: containment.rename[%d] needs from and to paths, "
                                       "got %r" % (where, i, r))
            imm = cont.get("immutable")
            if imm is not None and not (isinstance(imm, dict)
                                        and isinstance(imm.get("was_set"), bool)):
                out.append("%s: containment.immutable needs was_set true/false, got %r"
                           % (where, imm))
    return out


def validate(data, path="<ledger>"):
    """Raise GatherError unless ``data`` is a ledger this code understands; every problem is
    named by entry id (the file is never rewritten while invalid)."""
    def bad(why, problems=None):
        return GatherError("ledger %s is corrupt or of an unknown format: %s" % (path, why),
                           device=None, range=None,
                           next_step="inspect and repair the file by hand (keep a copy); it is "
                                     "never rewritten while invalid",
                           details={"problems": problems or [why]})
    if not isinstance(data, dict):
        raise bad("top level is not an object")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise bad("no integer schema")
    if schema > SCHEMA:
        raise GatherError("ledger %s has schema %d; this collection understands up to %d"
                          % (path, schema, SCHEMA), next_step="upgrade the pmem.poison collection")
    if not isinstance(data.get("entries"), list):
        raise bad("entries is not a list")
    seen = set()
    problems = []
    for i, entry in enumerate(data["entries"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            problems.append("entry %d has no id" % i)
            continue
        if entry["id"] in seen:
            problems.append("duplicate entry id %s" % entry["id"])
        seen.add(entry["id"])
        problems.extend(entry_problems(entry))
    if problems:
        shown = problems[:20] + (["... %d more" % (len(problems) - 20)]
                                 if len(problems) > 20 else [])
        raise bad("; ".join(shown), problems)
    return data


def dumps(data):
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------------
# I/O part
# --------------------------------------------------------------------------------------------

def check_path(path):
    """LedgerError unless ``path`` can name a ledger file."""
    if not isinstance(path, str) or not path.strip():
        raise LedgerError("ledger_path is blank", next_step="set ledger_path to the ledger file "
                                                            "(default %s)" % DEFAULT_PATH)
    if path.endswith("/") or os.path.basename(path) in (".", ".."):
        raise LedgerError("ledger_path %s names a directory, not a file" % path,
                          next_step="set ledger_path to a file, e.g. %s"
                                    % os.path.join(path, "ledger.json"))


def check_trusted(st, path, what):
    """LedgerError when ``st`` (of the ledger, its lock or its directory) belongs to another user
    or is writable by group or others: anyone who can write it could forge or erase records."""
    euid = os.geteuid()
    if st.st_uid != euid:
        raise LedgerError(
            "%s %s is owned by uid %d, not by uid %d running this module: not trusted"
            % (what, path, st.st_uid, euid),
            next_step="chown %d %s (after checking its content), or set ledger_path to a "
                      "directory of your own" % (euid, path))
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise LedgerError(
            "%s %s has mode %04o: writable by group or others, not trusted"
            % (what, path, stat.S_IMODE(st.st_mode)),
            next_step="chmod go-w %s (after checking its content)" % path)


def _check_dir(dirpath):
    try:
        st = os.lstat(dirpath)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise from_oserror(e, dirpath, "inspect the ledger directory")
    if not stat.S_ISDIR(st.st_mode):
        raise LedgerError("ledger directory %s is not a directory (symlink?)" % dirpath,
                          next_step="remove it or choose another ledger path")
    check_trusted(st, dirpath, "ledger directory")
    return True


def read_bytes(path):
    """The ledger file's bytes, or None when it does not exist. LedgerError (a GatherError) when
    unreadable, a symlink, or not trusted (another owner, writable by group or others)."""
    check_path(path)
    dirpath = os.path.dirname(os.path.abspath(path))
    if not _check_dir(dirpath):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        if e.errno == errno.ELOOP:
            raise LedgerError("ledger %s is a symlink: not followed" % path,
                              next_step="replace the link by the ledger file itself, or set "
                                        "ledger_path to the real file")
        if e.errno in (errno.EACCES, errno.EPERM):
            raise LedgerError("cannot read ledger %s: %s" % (path, os.strerror(e.errno)),
                              next_step="run as root (the ledger is root-only)")
        raise from_oserror(e, path, "read the ledger")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LedgerError("ledger %s is not a regular file" % path,
                              next_step="set ledger_path to a file")
        check_trusted(st, path, "ledger")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise from_oserror(e, path, "read the ledger")
    finally:
        os.close(fd)


def parse(raw, path="<ledger>"):
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        # RecursionError: nesting deeper than the parser's stack (no ledger this module wrote)
        raise GatherError("ledger %s is corrupt (not JSON: %s)" % (path, e),
                          next_step="inspect the file; it is never rewritten while unreadable")
    return validate(data, path)


def load(path=DEFAULT_PATH, host=None):
    """The ledger at ``path``; an empty one when the file is absent."""
    raw = read_bytes(path)
    if raw is None:
        return empty_ledger(host)
    return parse(raw, path)


def read_open_entries(path=DEFAULT_PATH):
    """Open entries of the ledger at ``path``: [] when absent; GatherError when unreadable/corrupt."""
    raw = read_bytes(path)
    if raw is None:
        return []
    return open_entries(parse(raw, path))


def closed_event_keys(ledger):
    """Keys of the kernel-log/rasdaemon records (kernel_events.py) that closed entries were detected by.

    A record stays in the kernel log after its entry was closed (restored, or the loss accepted);
    a range known only from records whose keys are all here has been handled."""
    keys = set()
    for entry in ledger.get("entries", []):
        if entry.get("state") == "closed":
            keys.update(event_keys_of(entry))
    return keys


def read_summary(path=DEFAULT_PATH):
    """``(open entries, closed_event_keys, warnings)`` of the ledger at ``path`` (warnings: what the
    watcher heard that is no range, see add_warnings); ``([], set(), [])`` when absent."""
    raw = read_bytes(path)
    if raw is None:
        return [], set(), []
    data = parse(raw, path)
    return open_entries(data), closed_event_keys(data), list(data.get("warnings") or [])


def _fsync_dir(dirpath):
    fd = os.open(dirpath, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(dirpath):
    """Create the ledger directory root-only (0700). An existing directory must be a trusted
    directory, not a symlink."""
    try:
        os.makedirs(dirpath, 0o700)
        _fsync_dir(os.path.dirname(os.path.abspath(dirpath)))
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise from_oserror(e, dirpath, "create the ledger directory")
    _check_dir(dirpath)


def save(path, data):
    """Atomically replace the ledger at ``path`` with ``data`` (validated first). Any failure
    (ENOSPC, EROFS, EIO ...) is a LedgerError and leaves the previous ledger as it was."""
    check_path(path)
    validate(data, path)
    dirpath = os.path.dirname(os.path.abspath(path))
    ensure_dir(dirpath)
    payload = dumps(data).encode("utf-8")
    try:
        _save(path, dirpath, payload)
    except OSError as e:
        raise from_oserror(e, path, "write the ledger (the previous ledger is unchanged)")


def _save(path, dirpath, payload):
    try:
        st = os.lstat(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
    else:
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise LedgerError("ledger %s is a symlink or not a regular file: not replaced" % path,
                              next_step="replace it by the ledger file itself, or set "
                                        "ledger_path elsewhere")
    fd, tmp = tempfile.mkstemp(prefix=".ledger.", suffix=".tmp", dir=dirpath)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(payload)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.rename(tmp, path)
        tmp = None
        _fsync_dir(dirpath)
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


class LedgerStore:
    """The ledger under its lock, for one module run.

    with LedgerStore(path, timeout=30) as store:
        store.data            # the ledger (dict)
        store.update(entry)   # replace one entry in memory
        store.commit()        # atomic save if anything changed (write-ahead: call before acting)

    ``readonly=True`` (check mode) creates nothing: it takes a shared lock only if the lock file
    already exists and never saves.
    """

    def __init__(self, path=DEFAULT_PATH, timeout=30.0, readonly=False, host=None):
        check_path(path)
        self.path = path
        self.timeout = timeout
        self.readonly = readonly
        self.lock_path = os.path.join(os.path.dirname(os.path.abspath(path)), LOCK_NAME)
        self._lock_fd = None
        self.data = None
        self.before = None
        self.host = host

    # locking ---------------------------------------------------------------------------------
    def _holder(self):
        try:
            with open(self.lock_path, "r") as f:
                return f.read().strip() or None
        except (IOError, OSError):
            return None

    def acquire(self):
        if not self.readonly:
            # a ledger that cannot be used is refused before the lock file is created: a
            # refused run leaves nothing behind
            raw = read_bytes(self.path)
            if raw is not None:
                parse(raw, self.path)
        try:
            self._acquire()
        except OSError as e:
            raise from_oserror(e, self.lock_path, "lock the ledger with")

    def _open_lock(self):
        """fd of the lock file, or None (read-only and absent). Never follows a symlink."""
        if self.readonly:
            if not _check_dir(os.path.dirname(self.lock_path)):
                return None
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        else:
            ensure_dir(os.path.dirname(self.lock_path))
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.lock_path, flags, 0o600)
        except OSError as e:
            if e.errno == errno.ENOENT and self.readonly:
                return None
            if e.errno == errno.ELOOP:
                raise LedgerError("lock file %s is a symlink: not followed" % self.lock_path,
                                  next_step="remove the symlink (rm %s); the next run creates "
                                            "the lock file itself" % self.lock_path)
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LedgerError("lock file %s is not a regular file" % self.lock_path,
                                  next_step="remove it; the next run creates it")
            check_trusted(st, self.lock_path, "lock file")
        except Exception:
            os.close(fd)
            raise
        return fd

    def _acquire(self):
        fd = self._open_lock()
        if fd is None:
            return
        mode = fcntl.LOCK_SH if self.readonly else fcntl.LOCK_EX
        deadline = time.monotonic() + max(0.0, float(self.timeout))
        try:
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except (IOError, OSError) as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        holder = self._holder()
                        raise LedgerLocked(
                            "ledger %s is locked by another run%s (waited %ss)"
                            % (self.path, " (pid %s)" % holder if holder else "", self.timeout),
                            next_step="wait for that run to finish, or raise the lock timeout")
                    time.sleep(0.1)
            if not self.readonly:
                os.ftruncate(fd, 0)
                os.pwrite(fd, ("%d\n" % os.getpid()).encode(), 0)
                self._remove_stale_temps()
        except Exception:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _remove_stale_temps(self):
        """Temp files of a run killed mid-save (we hold the lock: nobody else is saving)."""
        dirpath = os.path.dirname(self.lock_path)
        for name in os.listdir(dirpath):
            if name.startswith(".ledger.") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(dirpath, name))
                except OSError:
                    pass

    def release(self):
        if self._lock_fd is not None:
            try:
                if not self.readonly:
                    try:
                        os.ftruncate(self._lock_fd, 0)
                    except OSError:
                        pass  # the pid is a hint only; closing the fd releases the lock
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self):
        self.acquire()
        try:
            self.data = load(self.path, self.host)
        except Exception:
            self.release()
            raise
        self.before = copy.deepcopy(self.data)
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    # data ------------------------------------------------------------------------------------
    def entry(self, eid):
        return find_entry(self.data, eid)

    def update(self, entry):
        self.data = replace_entry(self.data, entry)

    @property
    def changed(self):
        return self.data != self.before

    def commit(self):
        """Save if changed since load or the last commit. Returns True if it wrote."""
        if self.readonly:
            return False
        if self.data == self._saved():
            return False
        save(self.path, self.data)
        self._last_saved = copy.deepcopy(self.data)
        return True

    def _saved(self):
        return getattr(self, "_last_saved", self.before)

    def diff(self, entry_ids=None):
        """{before, after} as text (only the given entries when entry_ids is given)."""
        def pick(data):
            if entry_ids is None:
                return data
            ids = set(entry_ids)
            return dict(data, entries=[e for e in data.get("entries", []) if e.get("id") in ids])
        return {"before": dumps(pick(self.before)), "after": dumps(pick(self.data)),
                "before_header": self.path, "after_header": self.path}
