# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clearing poison: one function per method, each writing only through the write guard
(``guard.guarded_write``), and verification per owner and per range.

Write-ahead protocol for every clear (see ``execute``):
  1. under the ledger lock, the action is re-checked against the current ledger and lists (an
     entry closed by another run, a range no longer listed: skipped, and the result says so);
  2. ``clear_planned`` appended to the entry and the ledger saved (fsynced) BEFORE touching data;
  3. the action, through the guard (rewrite / unshare / reallocate / device_write / ndctl);
  4. verification: the owner's pages read back as the good data (file owners), and the owner's
     own part of the range re-read in every list;
  5. ``cleared`` and the closure, or ``clear_failed``, appended and saved.
A rerun that finds a ``clear_planned`` without a result first checks whether the previous run
already completed the write (content equals the good data) and then only records the result.

Providers (the badblocks lists, the device runner, hooks at named points) are parameters; tests
pass fakes. Nothing here reads the environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os

from ansible_collections.pmem.poison.plugins.module_utils._pmem import capabilities as CAP
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import guard as _guard
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as _ledger
from ansible_collections.pmem.poison.plugins.module_utils._pmem import listing
from ansible_collections.pmem.poison.plugins.module_utils._pmem import plan as _plan
from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine as _quarantine
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    DeviceCannotClear,
    PmemError,
    SourceMismatch,
)

PAGE = 4096
SECTOR = 512
ZEROS = "zeros"
# named points where ``hooks(point)`` is called (tests kill the process there)
HOOK_POINTS = ("after_clear_planned", "before_write", "after_write", "after_verify",
               "after_result")
TopologyBadblocks = listing.TopologyBadblocks
range_matches = listing.range_matches


def default_provider(sysfs_root="/sys", proc_root="/proc", dev_root="/dev"):
    return listing.TopologyBadblocks(sysfs_root, proc_root, dev_root)


# --------------------------------------------------------------------------------------------
# capabilities (decided in capabilities.py)
# --------------------------------------------------------------------------------------------

def decided_capabilities(provider):
    """What the devices can do, decided by ``capabilities.from_topology`` over the provider's
    topology (the one ``pmem_badblocks`` reads), so a run without the role's capabilities applies
    the same rules; the kernel from uname when the topology does not name it."""
    try:
        topology = provider.topology()
    except PmemError:
        topology = {}
    caps = CAP.from_topology(topology)
    caps["kernel"] = caps.get("kernel") or os.uname()[2]
    return caps


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def _rng(entry):
    return entry.get("range") or {}


def _partition_shift(rng):
    """Whole-disk bytes minus filesystem-device bytes (a filesystem on a partition)."""
    if rng.get("partition") and rng.get("partition_offset") is not None and \
            rng.get("blockdev_offset") is not None:
        return rng["blockdev_offset"] - rng["partition_offset"]
    return 0


def owner_part(entry):
    """The owner's own bytes of the range, as a sub-range (block-device coordinates): one range
    can span two files, and each is verified by its own part."""
    rng, owner = _rng(entry), entry.get("owner") or {}
    fs_off, length = owner.get("fs_offset"), owner.get("length")
    if fs_off is None or not length or rng.get("blockdev_offset") is None:
        return rng
    off = fs_off + _partition_shift(rng)
    lo, hi = max(off, rng["blockdev_offset"]), min(off + length,
                                                   rng["blockdev_offset"] + (rng.get("length") or 0))
    if hi <= lo or (lo == rng["blockdev_offset"] and hi - lo == rng.get("length")):
        return rng
    return listing.sub_range(rng, lo, hi - lo)


def landed(fd, offset, length):
    """Where [offset, offset+length) of the file lives now: [(fs_physical, length)] (FIEMAP)."""
    out = []
    try:
        for logical, physical, elen, flags in _fiemap.extents(fd):
            if flags & _fiemap.NO_PHYSICAL or logical >= offset + length or logical + elen <= offset:
                continue
            lo, hi = max(logical, offset), min(logical + elen, offset + length)
            out.append((physical + lo - logical, hi - lo))
    except (_fiemap.FiemapUnsupported, OSError):
        return None
    return out


# --------------------------------------------------------------------------------------------
# methods: each writes through the guard, returns a details dict or raises PmemError; none
# touches the ledger
# --------------------------------------------------------------------------------------------

def _is_the_damaged_file(entry, st):
    """Is the file with stat ``st`` the entry's damaged file (the same inode on the recorded
    filesystem: the recorded path, a hard link or its quarantine name)?"""
    owner = entry.get("owner") or {}
    if owner.get("inode") is None or st.st_ino != owner["inode"] or not owner.get("mountpoint"):
        return False
    try:
        return os.stat(owner["mountpoint"]).st_dev == st.st_dev
    except OSError:
        return False


def good_data(entry, source, offset, length, file_size):
    """Bytes to write at [offset, offset+length): from ``source`` at the same offsets, or zeros.
    Past the target's EOF the page is padded with zeros (the caller truncates back)."""
    if source == ZEROS:
        return b"\0" * length, None
    try:
        dfd, _name, sfd = _quarantine.open_file_nofollow(source)
    except _quarantine.Skip as e:
        raise SourceMismatch("restore source unusable: %s" % e, range=entry["id"],
                             next_step="fix policy.restore_sources / source")
    try:
        st = os.fstat(sfd)
        if _is_the_damaged_file(entry, st):
            raise SourceMismatch(
                "source %s is the damaged file itself (inode %d): its pages are the lost data, "
                "not a copy of them" % (source, st.st_ino), range=entry["id"],
                next_step="give a known-good copy kept elsewhere (a backup); nothing was written")
        if st.st_size != file_size:
            raise SourceMismatch(
                "source %s has %d bytes, the damaged file %d: not a copy of it"
                % (source, st.st_size, file_size), range=entry["id"],
                next_step="give a known-good copy of the same file")
        data = _guard.pread_exact(sfd, min(length, max(0, file_size - offset)), offset)
    except OSError as e:
        raise SourceMismatch("cannot read source %s: %s" % (source, os.strerror(e.errno)),
                             range=entry["id"], next_step="give a readable known-good copy")
    finally:
        os.close(sfd)
        os.close(dfd)
    return data + b"\0" * (length - len(data)), source


def _write_error(entry, e, where, ctx, mode):
    rng = _rng(entry)
    name = errno.errorcode.get(e.errno, str(e.errno))
    caps = ctx.device_caps(rng.get("blockdev"), (entry.get("owner") or {}).get("device"))
    shared = (entry.get("owner") or {}).get("shared")
    if caps.get("write_clears") is False:
        step = "the device did not clear the poison; the data is recorded and quarantined"
    elif shared and mode == "rewrite":
        step = ("the page is shared (reflinked): a DAX write copies the poisoned block first; "
                "restore it with method unshare")
    else:
        step = ("the write failed on %s; the data is recorded and quarantined; check the "
                "kernel log" % (rng.get("blockdev") or "the device"))
    return DeviceCannotClear(
        "%s failed: %s (%s)" % (where, os.strerror(e.errno), name), device=rng.get("blockdev"),
        range=rng.get("id"), next_step=step, details={"errno": e.errno, "errno_name": name})


def rewrite(entry, source, ctx, mode="rewrite"):
    """Whole-page write of good data over the owner's damaged pages, through the guard.

    mode ``rewrite``: in place (the DAX recovery write clears the poison); ``unshare``: punch the
    pages out of this file first, so the good data lands in a fresh block and the poisoned
    (shared) block is never read or copied; ``reallocate``: the same for an unshared owner
    (poison may stay in free space)."""
    owner = entry["owner"]
    offset, length = owner.get("repair_offset"), owner.get("repair_length")
    rng = _rng(entry)

    def write(target):
        data, src = good_data(entry, source, offset, length, target.size)
        try:
            ctx.hooks("before_write")
            if mode in ("unshare", "reallocate"):
                target.punch(offset, length)
            target.pwrite(data, offset)
            target.restore_size()
            target.fsync()
        except OSError as e:
            where_text = "%s of %s at %d+%d" % (mode, target.path, offset, length)
            raise _write_error(entry, e, where_text, ctx, mode)
        # where the good data went: in place for a rewrite (the recorded block), a fresh block
        # (FIEMAP) after a punch; the provider learns it (the kernel clears what it writes)
        where = landed(target.fd, offset, length)
        if mode == "rewrite":
            part = owner_part(entry)
            if part.get("blockdev_offset") is not None:
                ctx.badblocks.notify_written(rng.get("blockdev"), part["blockdev_offset"],
                                             part.get("length") or 0)
        else:
            for phys, n in where or []:
                ctx.badblocks.notify_written(rng.get("blockdev"), phys + _partition_shift(rng), n)
        ctx.hooks("after_write")
        n = max(0, min(length, target.size - offset))
        try:
            back = target.read_back(n, offset)
        except OSError as e:
            raise PmemError("read-back of %s at %d failed: %s" % (target.path, offset,
                                                                  os.strerror(e.errno)),
                            device=rng.get("blockdev"), range=entry["id"],
                            next_step="the data did not reach good media; the entry stays open")
        if back != data[:n]:
            raise PmemError("read-back of %s at %d differs from what was written"
                            % (target.path, offset), range=entry["id"],
                            next_step="check the device")
        return {"method": mode, "path": target.path, "offset": offset, "length": length,
                "source": src or ZEROS, "sha256": sha256(data[:n]),
                "landed": [[p + _partition_shift(rng), k] for p, k in where or []]}
    return _guard.guarded_write(entry, mode, ctx, write, source=source)


def already_rewritten(entry, source, ctx):
    """After a crash: does the file already hold the good data (so the write is not repeated)?"""
    owner = entry["owner"]
    offset, length = owner.get("repair_offset"), owner.get("repair_length")
    try:
        fd, path, size = _guard.open_file(entry, "rewrite", ctx)
    except PmemError:
        return None
    try:
        data, _src = good_data(entry, source, offset, length, size)
        n = max(0, min(length, size - offset))
        try:
            back = _guard.pread_exact(fd, n, offset)
        except OSError:
            return None  # still poisoned (EIO)
        if back == data[:n]:
            return {"method": "rewrite", "path": path, "offset": offset, "length": length,
                    "source": source, "sha256": sha256(back), "completed_by_previous_run": True}
    except PmemError:
        return None
    finally:
        os.close(fd)
    return None


def device_write(entry, ctx):
    """Zeros over whole sectors through the unmounted pmem block device (or its partition)."""
    def write(target):
        try:
            ctx.hooks("before_write")
            target.pwrite(b"\0" * (target.hi - target.lo), target.lo)
            target.fsync()
        except OSError as e:
            raise _write_error(entry, e, "write of %s at %d+%d" % (
                target.name, target.lo, target.hi - target.lo), ctx, "device_write")
        ctx.badblocks.notify_written(target.blockdev, target.lo + target.shift,
                                     target.hi - target.lo)
        ctx.hooks("after_write")
        return {"method": "device_write", "device": target.name, "offset": target.lo,
                "length": target.hi - target.lo, "blockdev": target.blockdev,
                "blockdev_offset": target.lo + target.shift}
    return _guard.guarded_write(entry, "device_write", ctx, write)


def ndctl_clear(entry, ctx):
    """``ndctl clear-errors <namespace>`` (argument list, never a shell string)."""
    def write(target):
        ctx.hooks("before_write")
        proc = target.run()
        if proc.returncode != 0:
            raise DeviceCannotClear("ndctl clear-errors failed: %s" % (proc.stderr or "").strip(),
                                    device=target.namespace, range=_rng(entry).get("id"),
                                    next_step="this bus cannot clear; recreate the namespace")
        ctx.badblocks.invalidate()
        ctx.hooks("after_write")
        return {"method": "ndctl", "argv": target.argv, "stdout": proc.stdout}
    return _guard.guarded_write(entry, "ndctl", ctx, write)


def cxl_clear(entry, ctx):
    """The Clear Poison command for each 64-byte unit of the range (debugfs ``clear_poison``)."""
    def write(target):
        ctx.hooks("before_write")
        try:
            cleared = target.clear()
        except (IOError, OSError) as e:
            raise DeviceCannotClear("CXL clear_poison failed: %s" % e, device=(target.units or [("?",)])[0][0],
                                    range=_rng(entry).get("id"),
                                    next_step="check dmesg and cxl list -L; the entry stays open")
        ctx.badblocks.invalidate()
        ctx.hooks("after_write")
        return {"method": "cxl", "units": cleared}
    return _guard.guarded_write(entry, "cxl", ctx, write)


def verify(entry, provider):
    """Listed ranges (summaries) still covering the entry's range: [] means cleared."""
    return provider.listed_range(_rng(entry))


def verify_owner(entry, provider):
    """Listed ranges still covering this owner's own part of the range."""
    return provider.listed_range(owner_part(entry))


# --------------------------------------------------------------------------------------------
# the write-ahead executor
# --------------------------------------------------------------------------------------------

def _pending_plan(entry):
    """The last clear_planned event if no result followed it."""
    for ev in reversed(entry.get("history", [])):
        if ev.get("event") in ("cleared", "clear_failed", "restored"):
            return None
        if ev.get("event") == "clear_planned":
            return ev
    return None


METHOD_OF_ACTION = {"rewrite": "rewrite", "reallocate": "reallocate",
                    "device_write": "device_write", "ndctl_clear": "ndctl", "cxl_clear": "cxl"}


def still_true(entry, action, ctx):
    """None when the action still applies to the current ledger and lists, else why not."""
    if entry is None:
        return "entry %s is not in the ledger" % action["entry_id"]
    method = action.get("method") if action["action"] == "rewrite" and \
        action.get("method") == "unshare" else METHOD_OF_ACTION[action["action"]]
    closure = entry.get("closure") or {}
    if closure.get("how") == "restored":
        return "already restored (%s by %s)" % (closure.get("at"), closure.get("by"))
    if closure.get("how") == "not_file_data_cleared":
        return "already cleared (%s)" % closure.get("at")
    if method in ("device_write", "ndctl", "cxl") or closure.get("how") == "accepted_lost":
        last = _ledger.last_poison_event(entry)
        if last is not None and last.get("event") == "cleared" and not _listed_or_unknown(
                entry, ctx.badblocks):
            return "already cleared (%s) and no longer listed" % last.get("at")
    return None


def _listed_or_unknown(entry, provider):
    """Listed summaries, or True when the lists cannot tell (then nothing counts as cleared)."""
    try:
        return verify(entry, provider)
    except PmemError:
        return True


def execute(store, action, provider=None, check=False, runner=None, dev_root="/dev",
            proc_root="/proc", hooks=None, ctx=None):
    """Carry out one clear action (from plan.plan_actions) against ``store`` (a LedgerStore).

    Returns a result dict {entry_id, action, changed, status: cleared|restored|failed|skipped|
    planned, details, error}. Raises nothing for per-range failures; they are in the result and
    the ledger (clear_failed)."""
    ctx = ctx or _guard.WriteContext(provider, dev_root=dev_root, proc_root=proc_root, runner=runner,
                                     hooks=hooks)
    eid = action["entry_id"]
    res = {"entry_id": eid, "action": action["action"], "range_id": action.get("range_id"),
           "changed": False, "status": None, "details": {}, "error": None}
    entry = store.entry(eid)
    why_not = still_true(entry, action, ctx)
    if why_not:
        res.update(status="skipped", details={"reason": why_not})
        return res
    method = METHOD_OF_ACTION[action["action"]]
    if method == "rewrite" and action.get("method") == "unshare":
        method = "unshare"
    source = action.get("source")
    pending = _pending_plan(entry)
    if method == "reallocate" and any(
            h.get("event") in ("cleared", "clear_failed")
            and (h.get("details") or {}).get("method") == "reallocate" for h in entry["history"]):
        res.update(status="skipped", details={"reason": "already reallocated; poison stays in "
                                                        "free space until cleared offline"})
        return res
    if check:
        res.update(status="planned", changed=True)
        return res
    if pending is not None and method in ("rewrite", "unshare"):
        done = already_rewritten(entry, (pending.get("details") or {}).get("source") or source,
                                 ctx)
        if done is not None:
            done["method"] = (pending.get("details") or {}).get("method") or method
            return _record_file_result(store, entry, done, ctx, res)
    try:
        size = _guard.preflight(entry, method, ctx, source)
        if size is not None:
            # the restore source, checked as the write will check it (same size, readable)
            owner = entry.get("owner") or {}
            good_data(entry, source, owner.get("repair_offset"), owner.get("repair_length"), size)
    except _guard.AlreadyDone as e:  # nothing left to write (the lost file is gone)
        res.update(status="skipped", details={"reason": e.message})
        return res
    except (PmemError, OSError) as e:
        # refused before anything is planned: the ledger stays as it was (a rerun refused for
        # the same reason is changed=0); the task fails with the reason
        if not isinstance(e, PmemError):
            e = PmemError("%s refused: %s" % (method, e), range=eid)
        res.update(status="failed", error=str(e), details=dict(e.to_dict(), method=method, refused=True))
        return res
    planned = {"method": method, "source": source, "offset": action.get("offset"),
               "length": action.get("length"), "pid": os.getpid()}
    store.update(_ledger.apply_event(entry, "clear_planned", None, planned))
    store.commit()  # write-ahead: fsynced before the action
    ctx.hooks("after_clear_planned")
    entry = store.entry(eid)
    try:
        if method in ("rewrite", "reallocate", "unshare"):
            details = rewrite(entry, source, ctx, mode=method)
        elif method == "device_write":
            details = device_write(entry, ctx)
        elif method == "cxl":
            details = cxl_clear(entry, ctx)
        else:
            details = ndctl_clear(entry, ctx)
    except _guard.AlreadyDone as e:
        res.update(status="skipped", details={"reason": e.message})
        return res
    except (PmemError, OSError) as e:
        if not isinstance(e, PmemError):
            e = PmemError("%s failed: %s" % (method, e), range=eid)
        fail = dict(e.to_dict(), method=method)
        store.update(_ledger.apply_event(entry, "clear_failed", None, fail))
        store.commit()
        res.update(status="failed", changed=True, error=str(e), details=fail)
        return res
    if (entry.get("owner") or {}).get("kind") == "file":
        return _record_file_result(store, entry, details, ctx, res)
    ctx.badblocks.invalidate()
    try:
        still = verify(entry, ctx.badblocks)
    except PmemError as e:
        fail = dict(e.to_dict(), method=method, written=details)
        store.update(_ledger.apply_event(entry, "clear_failed", None, fail))
        store.commit()
        res.update(status="failed", changed=True, error=str(e), details=fail)
        return res
    ctx.hooks("after_verify")
    if still:
        return _record_failure(store, entry, details, still, method, ctx, res)
    details["verified"] = True
    entry = _ledger.apply_event(entry, "cleared", None, details)
    entry = _close_after_clear(entry, details)
    store.update(entry)
    store.commit()
    ctx.hooks("after_result")
    res.update(status="cleared", changed=True, details=details)
    return res


def _listed_text(still):
    return ", ".join("%s (%s list)" % (r.get("id"), "/".join(r.get("sources") or ["?"]))
                     for r in still)


def _record_failure(store, entry, details, still, method, ctx, res):
    rng = _rng(entry)
    caps = ctx.device_caps(rng.get("blockdev"), (entry.get("owner") or {}).get("device"),
                           rng.get("namespace"))
    if caps.get("write_clears") is False:
        step = "the device did not clear the poison; the entry stays as recorded"
    elif method == "ndctl":
        step = ("ndctl clear-errors returned success but the range is still listed; start a "
                "scrub and re-check, or recreate the namespace")
    elif method == "cxl":
        step = ("the device accepted Clear Poison but its poison list still holds the range; check "
                "cxl list -L and dmesg, the entry stays as recorded")
    else:
        step = ("the write reached the range but it is still listed (the list may lag a scrub, "
                "or the platform refused the clear); re-check after a scrub, the entry stays "
                "as recorded")
    text = str(PmemError("range still listed after %s: %s" % (method, _listed_text(still)),
                         device=rng.get("blockdev") or rng.get("region"), range=rng.get("id"),
                         next_step=step))
    fail = dict(details, method=method, still_listed=still, msg=text)
    if method == "reallocate":
        fail.update(file_rewritten=True, poison_remains_in_free_space=True)
    store.update(_ledger.apply_event(entry, "clear_failed", None, fail))
    store.commit()
    res.update(status="failed", changed=True, details=fail,
               error=None if method == "reallocate" else text)
    return res


def _record_file_result(store, entry, details, ctx, res):
    """A file owner's data reads back good: verify its own part of the range, then close it.

    * own part no longer listed: ``cleared`` + closed as restored;
    * unshared (reflinked owner moved to a fresh block): closed as restored; the poison stays in
      the block the other owners still share (or free space once none is left), not a failure;
    * reallocated: the file is good, the poison may stay in free space: the entry stays open;
    * still listed under a rewrite in place: ``clear_failed``, open, with the real cause."""
    method = details.get("method")
    ctx.badblocks.invalidate()
    try:
        still = verify_owner(entry, ctx.badblocks)
    except PmemError as e:
        # the data is good again, but whether the poison is gone cannot be told: stay open
        fail = dict(e.to_dict(), method=method, data_restored=True, sha256=details.get("sha256"))
        store.update(_ledger.apply_event(entry, "clear_failed", None, fail))
        store.commit()
        res.update(status="failed", changed=True, error=str(e), details=fail)
        return res
    ctx.hooks("after_verify")
    if still and method in ("rewrite", "reallocate"):
        return _record_failure(store, entry, details, still, method, ctx, res)
    details = dict(details, verified=True, owner_part_listed=bool(still))
    if still:
        details["poison_stays_with"] = ("the block still shared by the other owners of this "
                                        "range, or free space once they are restored too")
    else:
        entry = _ledger.apply_event(entry, "cleared", None, details)
    entry = _close_after_clear(entry, details)
    if still and entry.get("state") != "closed":
        entry = _ledger.apply_event(entry, "clear_failed", None, details)
    store.update(entry)
    store.commit()
    ctx.hooks("after_result")
    res.update(status="cleared" if not still else "restored", changed=True, details=details)
    if entry.get("state") == "closed":
        release_after_restore(store, entry, res, ctx.hooks)
    return res


def release_after_restore(store, entry, res, hooks=None):
    """The entry closed: undo its containment (write-ahead, see quarantine.release_entry) and
    bring the marker in line. A crash here leaves what `state: released` finishes."""
    if entry.get("containment"):
        def journal(e):
            store.update(e)
            store.commit()
        new, rel = _quarantine.release_entry(entry, store.path, journal=journal, hooks=hooks)
        if new != entry:
            journal(new)
        res["released"] = rel.get("released") or []
        if rel.get("skipped"):
            res["release_skipped"] = rel["skipped"]
        return
    _unused, skipped = _quarantine.refresh_marker(entry, store.path)
    if skipped:
        res["marker_skipped"] = skipped


def _close_after_clear(entry, details):
    if entry.get("state") == "closed":
        return entry
    kind = (entry.get("owner") or {}).get("kind")
    if kind == "file":
        if details.get("method") == "reallocate" or details.get("source") in (None, ZEROS):
            return entry  # zeros only over accepted (already closed) entries
        return _ledger.close_entry(entry, "restored", None, by="pmem_clear",
                                   why="rewritten from a known-good copy" + (
                                       " into a fresh block (unshared)"
                                       if details.get("method") == "unshare" else ""),
                                   source=details.get("source"), sha256=details.get("sha256"))
    return _ledger.close_entry(entry, "not_file_data_cleared", None, by="pmem_clear",
                               why="%s verified" % details.get("method"))


# --------------------------------------------------------------------------------------------
# the pmem_clear run (the module is a thin wrapper around this)
# --------------------------------------------------------------------------------------------

_DEVICE_ACTIONS = ("device_write", "ndctl_clear", "cxl_clear", "refuse", "offline_required")


def _device_method_not_planned(method, entry_ids, actions, ledger):
    """Refusals for the open entries named with an explicit device method that the plan gives
    no device action, refusal or offline plan (file data not accepted as lost, raw/devdax data
    whose loss is not accepted): without them the task reported success having done nothing."""
    acting = set(a["entry_id"] for a in actions if a["action"] in _DEVICE_ACTIONS)
    out = []
    for eid in entry_ids:
        entry = _ledger.find_entry(ledger, eid)
        if eid in acting or entry is None or entry.get("state") != "open":
            continue
        owner = entry.get("owner") or {}
        kind = owner.get("kind") or "unknown"
        what = "%s data%s" % (kind, (" of " + ", ".join(owner["paths"])) if owner.get("paths") else "")
        if kind == "file":
            step = ("restore the file (method rewrite with a source) or accept its loss "
                    "(pmem_quarantine state=accepted_lost) first; nothing was written")
        else:
            step = ("accept the loss of entry %s first (pmem_quarantine state=accepted_lost, or "
                    "policy.accepted_loss); nothing was written" % eid)
        out.append(str(PmemError(
            "method=%s does not apply to entry %s: it holds %s whose loss is not accepted, and "
            "a device clear writes zeros over it" % (method, eid, what),
            device=owner.get("device"), range=(entry.get("range") or {}).get("id"), next_step=step)))
    return out


def listed_facts(ledger, provider):
    """A minimal ``{bad_ranges: [...]}`` from the ledger's ranges that are still listed."""
    seen = {}
    for entry in ledger.get("entries", []):
        rng = entry.get("range") or {}
        if rng.get("id") and rng["id"] not in seen and _listed_or_unknown(entry, provider):
            seen[rng["id"]] = rng
    return {"bad_ranges": list(seen.values())}


def _sources_for(policy, source, entry_ids, ledger):
    sources = dict(policy.get("restore_sources") or {})
    if source is None:
        return sources
    for entry in ledger["entries"]:
        if entry_ids is not None and entry["id"] not in entry_ids:
            continue
        for p in (entry.get("owner") or {}).get("paths") or []:
            sources.setdefault(p, source)
    return sources


def already_done(store, results, actions):
    """Skipped results for the resolver's owners whose entries another run (or an earlier one)
    already closed: the run says so instead of acting on them again."""
    planned = set(a["entry_id"] for a in actions)
    out, seen = [], set()
    for result in results or []:
        for owner in result.get("owners") or []:
            eid = _ledger.entry_id(result.get("range_id"), owner)
            entry = store.entry(eid)
            if eid in planned or eid in seen or entry is None or entry.get("state") != "closed":
                continue
            seen.add(eid)
            closure = entry.get("closure") or {}
            out.append({"entry_id": eid, "action": None, "range_id": result.get("range_id"),
                        "changed": False, "status": "skipped", "error": None,
                        "details": {"reason": "already %s (%s by %s)" % (
                            closure.get("how"), closure.get("at"), closure.get("by"))}})
    return out


def range_verdicts(store, results, provider):
    """Per range touched in this run: is it still listed, and why (once every owner was
    handled)? ``[{range_id, listed, owners, open_owners, unshared, cause}]``."""
    by_range = {}
    for r in results:
        if r.get("status") in ("cleared", "restored", "failed") and r.get("range_id"):
            by_range.setdefault(r["range_id"], []).append(r)
    verdicts = []
    for rid, rs in sorted(by_range.items()):
        entries = [e for e in store.data["entries"] if (e.get("range") or {}).get("id") == rid]
        if not entries:
            continue
        provider.invalidate()
        try:
            listed = verify(entries[0], provider)
        except PmemError as e:
            verdicts.append({"range_id": rid, "listed": None, "owners": [r["entry_id"] for r in rs],
                             "open_owners": [], "unshared": [], "cause": str(e)})
            continue
        open_ids = [e["id"] for e in entries if e.get("state") == "open"]
        unshared = [r["entry_id"] for r in rs if (r.get("details") or {}).get("method") == "unshare"]
        cause = None
        free_id = None
        if listed:
            if unshared and not open_ids:
                free_id = record_free_space(store, entries)
                cause = ("every file owner was restored away from the poisoned block: it is "
                         "free space now%s, left for an offline window" % (
                             " (recorded as %s)" % free_id if free_id else ""))
            elif open_ids:
                cause = "other owners of the range are still open: %s" % ", ".join(open_ids)
            else:
                cause = "still listed after every owner was handled"
        verdicts.append({"range_id": rid, "listed": bool(listed),
                         "owners": [r["entry_id"] for r in rs], "open_owners": open_ids,
                         "unshared": unshared, "cause": cause, "free_space_entry": free_id})
    return verdicts


def record_free_space(store, entries):
    """Every file owner of a still-listed range was unshared away from it: the poisoned block
    is free space now. Record it as the resolver will report it (same entry id and owner
    fields), so the next converge finds it known and plans the offline clear (changed=0).
    Only when the unshared owners' parts cover the whole range; else the next resolve says."""
    rng = dict(entries[0].get("range") or {})
    fs = rng.get("filesystem") or {}
    covered = set()
    for e in entries:
        o = e.get("owner") or {}
        if o.get("kind") != "file" or o.get("fs_offset") is None or not o.get("length"):
            return None
        covered.update(range(o["fs_offset"], o["fs_offset"] + o["length"], SECTOR))
    if fs.get("offset") is None or not rng.get("length") or not fs.get("device") or \
            covered != set(range(fs["offset"], fs["offset"] + rng["length"], SECTOR)):
        return None
    owner = {"kind": "free", "range_id": rng.get("id"), "device": fs.get("device"),
             "mountpoint": fs.get("mountpoint"), "fstype": fs.get("fstype"), "inode": None,
             "generation": None, "paths": [], "file_offset": None, "length": rng["length"],
             "repair_offset": None, "repair_length": None, "shared": False, "attr_fork": False,
             "metadata_kind": None, "processes": [],
             "reason": None, "fs_offset": fs["offset"],
             # the filesystem's identity, as the resolver gives it: the same free-space entry id
             # the next converge resolves (ledger.entry_id keys filesystem owners by fs uuid)
             "fs_uuid": next((e["owner"]["fs_uuid"] for e in entries if (e.get("owner") or {}).get("fs_uuid")),
                             None)}
    store.data, changes = _ledger.merge_detections(store.data, [{"range_id": rng["id"],
                                                                 "owners": [owner]}], [rng])
    store.commit()
    return _ledger.entry_id(rng["id"], owner) if changes or _ledger.find_entry(
        store.data, _ledger.entry_id(rng["id"], owner)) else None


def run_clear(ledger_path=_ledger.DEFAULT_PATH, method="auto", entry_ids=None, source=None,
              policy=None, results=None, facts=None, capabilities=None, check=False,
              lock_timeout=30.0, provider=None, runner=None, dev_root="/dev", proc_root="/proc",
              sysfs_root="/sys", accepted_by=None, accepted_reason=None, hooks=None):
    """Plan and carry out clears. Returns the module result dict (never raises PmemError for a
    per-range failure; LedgerLocked/GatherError propagate with nothing changed).

    ``provider`` (the badblocks lists and topology), ``runner`` (device commands) and ``hooks``
    (called at HOOK_POINTS) are for tests; the defaults are the real ones."""
    provider = provider or default_provider(sysfs_root, proc_root, dev_root)
    policy = dict(policy or {})
    policy["method"] = dict(policy.get("method") or {})
    if method in ("rewrite", "reallocate"):
        policy["method"]["file"] = method
    elif method in ("device_write", "ndctl", "cxl"):
        for kind in ("free", "raw", "devdax"):
            policy["method"][kind] = method
    caps = CAP.merge(decided_capabilities(provider), capabilities)
    norm = _plan.normalize_policy(policy)
    ctx = _guard.WriteContext(provider, capabilities=caps,
                              consent={"offline_window": norm["offline_window_allowed"]},
                              dev_root=dev_root, proc_root=proc_root, runner=runner, hooks=hooks,
                              debugfs_root=os.path.join(sysfs_root, "kernel", "debug"))
    out = {"changed": False, "plan": [], "results": [], "ledger_path": ledger_path,
           "failed": False, "msg": "", "ranges": [], "check_mode": bool(check)}
    with _ledger.LedgerStore(ledger_path, timeout=lock_timeout, readonly=check) as store:
        # everything below sees the ledger and the lists as they are now, under the lock
        fresh = listing.drop_stale_reopens(store.data, results, provider)
        # planned from the ledger before this run records anything, so the plan (and check
        # mode's summary) shows the records too
        ledger_before = store.data
        if fresh:
            store.data, changes = _ledger.merge_detections(store.data, fresh,
                                                           (facts or {}).get("bad_ranges"))
            for change in changes:
                # the size the guard holds the file to, as pmem_quarantine records it
                store.update(_quarantine.with_size(store.entry(change["entry_id"])))
            store.commit()
        policy["restore_sources"] = _sources_for(policy, source, entry_ids, store.data)
        use_facts = facts if facts is not None else listed_facts(store.data, provider)
        actions = _plan.plan_actions(use_facts, fresh, ledger_before, policy, caps)
        if entry_ids is not None:
            actions = [a for a in actions if a["entry_id"] in entry_ids]
        out["plan"] = actions
        errors = []
        if method in ("device_write", "ndctl", "cxl") and entry_ids:
            errors.extend(_device_method_not_planned(method, entry_ids, actions, store.data))
        for a in actions:
            if a["action"] == "accept_loss":
                entry = store.entry(a["entry_id"])
                if entry is None or entry.get("state") == "closed":
                    out["results"].append({"entry_id": a["entry_id"], "action": "accept_loss",
                                           "status": "skipped", "changed": False,
                                           "details": {"reason": "entry already closed"}})
                    continue
                if check:
                    out["results"].append({"entry_id": a["entry_id"], "action": "accept_loss",
                                           "status": "planned", "changed": True})
                    continue
                store.update(_ledger.close_entry(
                    entry, "accepted_lost", None, by=accepted_by or "policy",
                    why=accepted_reason or "listed in policy.accepted_loss",
                    details={"accepted_via": "policy.accepted_loss"}))
                store.commit()
                out["results"].append({"entry_id": a["entry_id"], "action": "accept_loss",
                                       "status": "closed", "changed": True})
            elif a["action"] in METHOD_OF_ACTION:
                r = execute(store, a, check=check, ctx=ctx)
                out["results"].append(r)
                if r["error"]:
                    errors.append("%s: %s" % (a["entry_id"], r["error"]))
            elif a["action"] == "refuse":
                errors.append(str(PmemError(a["reason"], device=a.get("device"),
                                            range=a.get("range_id"),
                                            next_step=a.get("next_step"))))
        out["results"].extend(already_done(store, results, actions))
        if not check:
            out["ranges"] = range_verdicts(store, out["results"], provider)
        summary = _plan.summarize(actions)
        if summary["failed"]:
            errors.append(summary["msg"])
        out["changed"] = store.changed or any(r.get("changed") for r in out["results"])
        out["diff"] = store.diff()
        out["open_entries"] = [e["id"] for e in _ledger.open_entries(store.data)]
    out["summary"] = _plan.describe(actions, check=check)
    if errors:
        out["failed"] = True
        out["msg"] = "; ".join(errors)
    else:
        out["msg"] = ("check mode: " if check else "") + out["summary"]
    return out
