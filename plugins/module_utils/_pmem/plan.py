# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PURE planning: (facts, resolve results, ledger, policy, capabilities) -> [Action].

No I/O here: everything the decision needs comes in as data, so check mode can print the plan and
unit tests can enumerate the clearing matrix (docs/design.md, "Actions" and "Policy").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import posixpath
import re

from ansible_collections.pmem.poison.plugins.module_utils._pmem import capabilities as CAP
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as _ledger

ACTIONS = ("record", "quarantine", "contain", "accept_loss", "rewrite", "reallocate",
           "device_write", "ndctl_clear", "cxl_clear", "refuse", "offline_required")
FILE_METHODS = ("auto", "rewrite", "reallocate", "none")
RAW_METHODS = ("auto", "device_write", "ndctl", "cxl", "none")
CONTAINMENT = ("rename", "chmod", "immutable")
ZEROS = "zeros"

DEFAULT_POLICY = {
    "method": {"file": "auto", "free": "auto", "raw": "auto", "devdax": "auto",
               "metadata": "none", "info_block": "none", "unknown": "none"},
    "containment": [],
    "restore_sources": {},
    "accepted_loss": [],
    "offline_window_allowed": False,
}


def normalize_policy(policy):
    """Fill defaults and check values. Raises ValueError naming the bad key."""
    policy = dict(policy or {})
    out = dict(DEFAULT_POLICY)
    out.update(dict((k, v) for k, v in policy.items() if v is not None))
    method = dict(DEFAULT_POLICY["method"])
    method.update(policy.get("method") or {})
    for kind, value in method.items():
        allowed = FILE_METHODS if kind == "file" else RAW_METHODS
        if value not in allowed:
            raise ValueError("policy.method.%s=%r: expected one of %s"
                             % (kind, value, ", ".join(allowed)))
    out["method"] = method
    for c in out["containment"]:
        if c not in CONTAINMENT:
            raise ValueError("policy.containment: %r is not one of %s" % (c, ", ".join(CONTAINMENT)))
    if not isinstance(out["restore_sources"], dict):
        raise ValueError("policy.restore_sources must be a mapping path-or-glob -> copy path")
    out["accepted_loss"] = list(out["accepted_loss"] or [])
    out["offline_window_allowed"] = bool(out["offline_window_allowed"])
    return out


_GLOB = re.compile(r"[*?\[]")


def find_source(path, restore_sources):
    """Known-good copy for ``path``: an exact key maps to a file; a glob key maps to a directory
    and the copy is that directory + the path relative to the glob's fixed leading directory."""
    if not path:
        return None
    if path in restore_sources:
        return restore_sources[path]
    for pattern in sorted(restore_sources):
        if not _GLOB.search(pattern) or not fnmatch.fnmatchcase(path, pattern):
            continue
        fixed = _GLOB.split(pattern, 1)[0]
        base = fixed if fixed.endswith("/") else posixpath.dirname(fixed)
        rel = posixpath.relpath(path, base or "/")
        return posixpath.join(restore_sources[pattern], rel)
    return None


def _accepted_by_policy(entry_id, paths, accepted):
    for item in accepted:
        if item == entry_id:
            return True
        for p in paths:
            if item == p or (_GLOB.search(item) and fnmatch.fnmatchcase(p, item)):
                return True
    return False


def _base(entry_id, bad_range, owner, **kw):
    action = {
        "action": None, "entry_id": entry_id, "range_id": bad_range.get("id"),
        "device": owner.get("device") or ("/dev/%s" % bad_range["blockdev"]
                                          if bad_range.get("blockdev") else None),
        "path": (owner.get("paths") or [None])[0], "paths": list(owner.get("paths") or []),
        "offset": None, "length": None, "method": None, "reason": None, "fail_host": False,
    }
    action.update(kw)
    return action


def _bus_text(caps):
    return caps.get("description") or caps.get("bus_kind") or "this device"


def _file_plan(eid, entry, bad_range, owner, policy, caps, kernel, listed):
    """Actions for one file-data owner."""
    out = []
    paths = owner.get("paths") or []
    closed = entry is not None and entry.get("state") == "closed"
    closure = (entry or {}).get("closure") or {}
    fs = bad_range.get("filesystem") or {}
    history = [h.get("event") for h in (entry or {}).get("history", [])]
    dev_name = owner.get("device") or fs.get("device") or bad_range.get("blockdev")
    rng = {"offset": owner.get("repair_offset"), "length": owner.get("repair_length")}

    if closed and (closure.get("how") == "restored" or not listed):
        return out  # done; nothing listed or data restored
    if not closed:
        if "quarantined" not in history or entry is None:
            out.append(_base(eid, bad_range, owner, action="quarantine",
                             reason="mark every path with user.pmem_poison.lost_ranges"))
        missing = [c for c in policy["containment"]
                   if c not in ((entry or {}).get("containment") or {})]
        if missing:
            out.append(_base(eid, bad_range, owner, action="contain", method=",".join(missing),
                             reason="containment requested by policy"))

    method = policy["method"]["file"]
    source = None
    for p in paths:
        source = find_source(p, policy["restore_sources"])
        if source:
            break
    accepted = (closed and closure.get("how") == "accepted_lost") or \
        _accepted_by_policy(eid, paths, policy["accepted_loss"])
    if accepted and not closed:
        out.append(_base(eid, bad_range, owner, action="accept_loss",
                         reason="listed in policy.accepted_loss"))
    if method == "none":
        out.append(_base(eid, bad_range, owner, action="record",
                         reason="policy.method.file=none: recorded and left open"))
        return out
    if method == "auto":
        if source:
            method = "rewrite"
        elif accepted and listed:
            method = "rewrite"
            source = ZEROS
        else:
            if not accepted:
                out.append(_base(eid, bad_range, owner, action="record",
                                 reason="no restore source: quarantined and left open until "
                                        "restored from a known-good copy or accepted as lost"))
            return out
    if method == "rewrite" and not source:
        if accepted:
            source = ZEROS
        else:
            out.append(_base(eid, bad_range, owner, action="refuse", method="rewrite",
                             reason="rewrite needs a restore source; zeros only for ranges "
                                    "accepted as lost",
                             next_step="add the file to policy.restore_sources or accept the loss"))
            return out
    if owner.get("attr_fork"):
        out.append(_base(eid, bad_range, owner, action="offline_required", method=method,
                         fail_host=True, reason="bad range is in an extended-attribute fork",
                         steps=["unmount %s" % fs.get("mountpoint"), "xfs_repair/e2fsck",
                                "then clear the range"]))
        return out

    # a shared (reflinked) page: a DAX write to it copies the poisoned block first (EIO on 6.1)
    # and a copy-on-write leaves the poison with the other owners either way. Restore this owner
    # away from the block: punch the page out of this file, write the good page into a fresh
    # block. It needs no clear from the device, so no capability refuses it.
    if owner.get("shared") and method in ("rewrite", "auto") and source:
        out.append(_base(eid, bad_range, owner, action="rewrite", method="unshare", source=source,
                         reason=("unshare from %s: punch the shared page out of this file and "
                                 "write the good page into a fresh block" % source)
                         if source != ZEROS else "unshare with zeros (loss accepted)",
                         device=dev_name and ("/dev/" + os.path.basename(dev_name)), **rng))
        return out

    # the clearing matrix (docs/pmem-poison-facts section 4)
    write_clears = caps.get("write_clears")
    if listed and write_clears is False:
        out.append(_base(eid, bad_range, owner, action="refuse", method=method, source=source,
                         reason="%s cannot clear poison by write (the write fails with EIO, "
                                "EFAULT with DAX)" % _bus_text(caps), **rng))
        out[-1]["next_step"] = ("restore the data to other media; clearing needs platform "
                                "support (ARS/clear DSMs) or a namespace recreate")
        return out
    if listed and fs.get("dax") and caps.get("dax_write_clears") is False:
        out.append(_base(eid, bad_range, owner, action="refuse", method=method, source=source,
                         reason="%s cannot clear poison by a DAX write (no recovery write path "
                                "on this bus)" % _bus_text(caps), **rng))
        out[-1]["next_step"] = "remount %s without dax, then rewrite" % fs.get("mountpoint")
        return out
    if method == "rewrite" and fs.get("dax") and listed and CAP.kernel_at_least(kernel, CAP.RECOVERY_WRITE_KERNEL) is False:
        out.append(_base(eid, bad_range, owner, action="refuse", method="rewrite", source=source,
                         reason="DAX recovery write needs kernel 5.19 or later (running %s)"
                                % kernel, next_step="remount without dax, then rewrite", **rng))
        return out
    if method == "reallocate":
        if fs.get("fstype") == "xfs" and fs.get("dax") and write_clears is not True:
            out.append(_base(eid, bad_range, owner, action="refuse", method="reallocate",
                             reason="punch+reallocate on XFS with DAX zeroes the new allocation "
                                    "in place and can shut the filesystem down on %s"
                                    % _bus_text(caps),
                             next_step="use method rewrite from a source, or clear offline",
                             **rng))
            return out
        remains = fs.get("fstype") == "ext4" and fs.get("dax")
        out.append(_base(eid, bad_range, owner, action="reallocate", method="reallocate",
                         source=source, poison_may_remain=True,
                         reason="punch hole and reallocate; poison may stay in free space"
                                + (" (ext4 with DAX never hands the block back)" if remains
                                   else "") + ": the entry stays open", **rng))
        return out
    out.append(_base(eid, bad_range, owner, action="rewrite", method="rewrite", source=source,
                     reason=("rewrite from %s" % source) if source != ZEROS
                     else "rewrite with zeros (loss accepted)", device=dev_name
                     and ("/dev/" + os.path.basename(dev_name)), **rng))
    return out


def _needs_window(eid, bad_range, owner, method, rng):
    """Device writes and ndctl clear-errors take the namespace's data offline: only with the
    operator's opt-in, even when nothing is mounted on it now."""
    return _base(eid, bad_range, owner, action="offline_required", method=method,
                 offline_window=False,
                 steps=["keep the namespace unmounted and unused",
                        "pmem_clear method=%s with policy.offline_window_allowed: true" % method],
                 reason="%s needs the offline-window opt-in (policy.offline_window_allowed is "
                        "false)" % method, **rng)


def _raw_plan(eid, entry, bad_range, owner, policy, caps, listed):
    """free / raw / devdax / unknown owners: device-level clears only."""
    kind = owner.get("kind")
    fs = bad_range.get("filesystem") or {}
    closed = entry is not None and entry.get("state") == "closed"
    if not listed:
        return []  # nothing listed any more: verified by the next clear or gone with a reboot
    off = bad_range.get("blockdev_offset")
    rng = {"offset": off, "length": bad_range.get("length")}
    method = policy["method"].get(kind, "none")
    if kind == "unknown":
        return [_base(eid, bad_range, owner, action="refuse", fail_host=False,
                      reason="owner unknown (%s): not cleared" % (owner.get("reason") or "?"),
                      next_step="resolve the owner (pmem_resolve) before clearing")]
    if method == "none":
        return [_base(eid, bad_range, owner, action="record",
                      reason="policy.method.%s=none: reported, not cleared" % kind)]
    # raw/devdax data is accepted by entry id or by the device path (or a glob over it)
    by_policy = _accepted_by_policy(eid, [owner["device"]] if owner.get("device") else [],
                                    policy["accepted_loss"])
    accepted = closed or kind == "free" or by_policy
    if kind in ("raw", "devdax") and not accepted:
        return [_base(eid, bad_range, owner, action="record",
                      reason="%s namespace data has no file to restore: left open until the "
                             "loss is accepted" % kind)]
    lead = []
    if kind in ("raw", "devdax") and by_policy and not closed:
        lead = [_base(eid, bad_range, owner, action="accept_loss",
                      reason="listed in policy.accepted_loss")]
    if fs.get("mountpoint"):
        steps = ["unmount %s" % fs["mountpoint"],
                 "pmem_clear method=device_write on %s" % (fs.get("device") or "?"),
                 "mount again"]
        return lead + [_base(eid, bad_range, owner, action="offline_required", steps=steps,
                             offline_window=policy["offline_window_allowed"],
                             reason="free space on a mounted filesystem: reported and left for an "
                                    "offline window" + ("" if policy["offline_window_allowed"] else
                                                        " (policy.offline_window_allowed is false)"),
                             **rng)]
    in_cxl_list = "cxl" in (bad_range.get("sources") or [])
    if method == "auto":
        if in_cxl_list:
            method = "cxl"  # the device's own Clear Poison: no bus command, no block device needed
        elif kind == "devdax" or (caps.get("write_clears") is False and caps.get("ndctl_clear")):
            method = "ndctl"
        else:
            method = "device_write"
    if method == "cxl":
        if not in_cxl_list:
            return lead + [_base(eid, bad_range, owner, action="refuse", method="cxl",
                                 reason="the range is not in a CXL memory device's poison list",
                                 next_step="use device_write or ndctl for this device", **rng)]
        if not policy["offline_window_allowed"]:
            return lead + [_needs_window(eid, bad_range, owner, "cxl", rng)]
        return lead + [_base(eid, bad_range, owner, action="cxl_clear", method="cxl",
                             namespace=bad_range.get("namespace"),
                             reason="CXL Clear Poison (64-byte units, zeros) on the unused namespace",
                             **rng)]
    if method == "ndctl":
        if not caps.get("ndctl_clear"):
            return lead + [_base(eid, bad_range, owner, action="refuse", method="ndctl",
                                 reason="%s has no clear-error command (ndctl clear-errors fails: "
                                        "scrub not supported)" % _bus_text(caps),
                                 next_step="use device_write on an e820 namespace, or accept", **rng)]
        if not policy["offline_window_allowed"]:
            return lead + [_needs_window(eid, bad_range, owner, "ndctl", rng)]
        return lead + [_base(eid, bad_range, owner, action="ndctl_clear", method="ndctl",
                             namespace=bad_range.get("namespace"),
                             reason="ndctl clear-errors on the unmounted namespace", **rng)]
    if kind == "devdax":
        return lead + [_base(eid, bad_range, owner, action="refuse", method=method,
                             reason="device-dax has no block device to write",
                             next_step="use method ndctl on a bus that can clear")]
    if caps.get("write_clears") is False:
        return lead + [_base(eid, bad_range, owner, action="refuse", method="device_write",
                             reason="%s cannot clear poison by write (EIO)" % _bus_text(caps),
                             next_step="recreate the namespace or use a bus with clear support", **rng)]
    if off is None:
        return lead + [_base(eid, bad_range, owner, action="offline_required",
                             reason="range is outside the block device data area",
                             steps=["namespace in raw mode or region-level clear"], **rng)]
    if not policy["offline_window_allowed"]:
        return lead + [_needs_window(eid, bad_range, owner, "device_write", rng)]
    return lead + [_base(eid, bad_range, owner, action="device_write", method="device_write",
                         device="/dev/%s" % bad_range.get("blockdev"),
                         reason="whole-sector write on the unmounted block device", **rng)]


def _metadata_what(owner):
    """"directory /mnt/p/dir (inode 131)": which inode's metadata, for the operator's message
    (what xfs_repair/e2fsck may rebuild); the metadata kind alone for filesystem structures."""
    what = owner.get("metadata_kind") or "?"
    paths = owner.get("paths") or []
    if paths:
        what += " " + ", ".join(paths)
    if owner.get("inode") is not None:
        what += (" (inode %s)" if paths else " of inode %s") % owner["inode"]
    return what


def plan_actions(facts, resolve_results, ledger, policy=None, capabilities=None):
    """Actions for every (range, owner) reported now and every open ledger entry.

    facts: ansible_facts.pmem (uses ``bad_ranges``); resolve_results: pmem_resolve results;
    ledger: the ledger dict; policy: see DEFAULT_POLICY / docs/design.md "Policy";
    capabilities: ``{kernel: "6.1.0", devices: {pmem0: {bus_kind, write_clears, ndctl_clear,
    description}}}``.
    """
    policy = normalize_policy(policy)
    capabilities = capabilities or {}
    ledger = ledger or _ledger.empty_ledger("")
    ranges = dict((r.get("id"), r) for r in (facts or {}).get("bad_ranges") or [])
    listed_ids = set(ranges)
    kernel = capabilities.get("kernel")
    merged, changes = _ledger.merge_detections(ledger, resolve_results or [], ranges, at="plan")
    changed_ids = set(c["entry_id"] for c in changes)

    pairs = []
    seen = set()
    for result in resolve_results or []:
        rid = result.get("range_id")
        owners = result.get("owners") or [{"kind": "unknown", "range_id": rid,
                                           "reason": result.get("error") or "no owner"}]
        for owner in owners:
            eid = _ledger.entry_id(rid, owner)
            if eid not in seen:
                seen.add(eid)
                pairs.append((eid, ranges.get(rid) or {"id": rid}, owner))
    # the merged ledger: an entry re-keyed by identity (device names moved) is planned once, under
    # its stable id, never again under the old name-based one
    for entry in _ledger.open_entries(merged):
        if entry["id"] not in seen:
            seen.add(entry["id"])
            rng = entry.get("range") or {}
            # fresh facts win over what the ledger remembers (mount state may have changed)
            pairs.append((entry["id"], ranges.get(rng.get("id")) or rng, entry.get("owner") or {}))

    actions = []
    for eid, bad_range, owner in pairs:
        entry = _ledger.find_entry(ledger, eid)
        listed = bad_range.get("id") in listed_ids
        if eid in changed_ids:
            change = [c for c in changes if c["entry_id"] == eid][0]
            actions.append(_base(eid, bad_range, owner, action="record",
                                 reason="%s: %s" % (change["change"], change["reason"])))
            entry = _ledger.find_entry(merged, eid)
        caps = CAP.for_device(capabilities, bad_range.get("blockdev"), owner.get("device"),
                              bad_range.get("namespace"), bad_range.get("region"),
                              bad_range.get("dax_device"))
        kind = owner.get("kind") or "unknown"
        area = bad_range.get("area") or "data"
        if area == "info_block" or kind == "info_block":
            actions.append(_base(eid, bad_range, owner, action="offline_required",
                                 reason="bad range in the namespace info block / memmap area: "
                                        "not reachable through the block device",
                                 steps=["disable the namespace", "clear with the namespace in "
                                        "raw mode or a region-level clear", "enable it again"],
                                 offline_window=policy["offline_window_allowed"]))
        elif kind == "metadata":
            fs = bad_range.get("filesystem") or {}
            fstype = owner.get("fstype") or fs.get("fstype") or "?"
            tool = {"xfs": "xfs_repair", "ext4": "e2fsck -f"}.get(fstype, "fsck")
            mnt = owner.get("mountpoint") or fs.get("mountpoint")
            dev = owner.get("device") or fs.get("device")
            actions.append(_base(eid, bad_range, owner, action="offline_required",
                                 fail_host=True, method="none",
                                 reason="filesystem metadata (%s) is never cleared online" % (
                                     _metadata_what(owner)),
                                 steps=["unmount %s" % (mnt or dev),
                                        "clear the range (pmem_clear method=device_write or "
                                        "ndctl) on %s" % dev,
                                        "%s %s" % (tool, dev), "mount again"]))
        elif kind == "file":
            actions.extend(_file_plan(eid, entry, bad_range, owner, policy, caps, kernel, listed))
        else:
            actions.extend(_raw_plan(eid, entry, bad_range, owner, policy, caps, listed))
    order = dict((a, i) for i, a in enumerate(ACTIONS))
    actions.sort(key=lambda a: (a["entry_id"] or "", order[a["action"]]))
    return actions


def summarize(actions):
    """{failed: bool, msg} for a host: metadata (offline_required with fail_host) fails it."""
    failing = [a for a in actions if a.get("fail_host")]
    if not failing:
        return {"failed": False, "msg": None}
    return {"failed": True, "msg": "; ".join(
        "%s range %s: %s. Next step: %s" % (a.get("device"), a.get("range_id"), a.get("reason"),
                                            ", ".join(a.get("steps") or [])) for a in failing)}


def describe(actions, check=False):
    """One line per host saying what the run does (or, in check mode, would do): records,
    markers, restores from which copy, ranges that need an offline window, refusals."""
    def count(kind):
        # entries, not actions: a new entry with no restore source is both recorded and left open
        return len(set(a.get("entry_id") or id(a) for a in actions if a["action"] == kind))
    parts = []
    for kind, text in (("record", "record %d"), ("quarantine", "mark %d file(s)"),
                       ("contain", "contain %d"), ("accept_loss", "accept %d loss(es)")):
        if count(kind):
            parts.append(text % count(kind))
    for a in actions:
        if a["action"] in ("rewrite", "reallocate"):
            parts.append("%s %s from %s" % ("unshare" if a.get("method") == "unshare"
                                            else a["action"], a.get("path"), a.get("source")))
        elif a["action"] in ("device_write", "ndctl_clear", "cxl_clear"):
            parts.append("%s %s on %s" % (a["action"], a.get("range_id"), a.get("device")
                                          or a.get("namespace")))
    offline = [a for a in actions if a["action"] == "offline_required"]
    if offline:
        parts.append("%d range(s) need an offline window (%s)" % (
            len(offline), ", ".join(sorted(set(a.get("range_id") or "?" for a in offline)))))
    if count("refuse"):
        parts.append("%d refused" % count("refuse"))
    text = "; ".join(parts) if parts else "nothing to do"
    return ("would: " + text) if check else text
