# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markers and containment for files that lost data.

* marker: ``user.pmem_poison.lost_ranges`` xattr on the inode (all hard links see it), JSON
  ``{"v": 1, "ledger": path, "ranges": [{entry, range, file_offset, length, state}]}``;
* containment, each idempotent and reversible, original values kept in the ledger entry's
  ``containment`` field: ``chmod`` (mode 000), ``rename`` (into ``<mount>/.pmem-quarantine/``,
  root-only, created with openat/O_NOFOLLOW), ``immutable`` (FS_IMMUTABLE_FL via FS_IOC_SETFLAGS).

Paths are walked component by component with ``O_NOFOLLOW`` from ``/``: a symlink anywhere in a
path is refused, never followed. A file whose inode number or generation changed since
resolution is skipped with a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import fcntl
import json
import os
import stat
import struct

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as _ledger
from ansible_collections.pmem.poison.plugins.module_utils._pmem import listing
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError

XATTR = "user.pmem_poison.lost_ranges"
QDIR = ".pmem-quarantine"
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020

O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
O_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class Skip(PmemError):
    """This path/file cannot be handled now; reported per path, the run goes on."""


class NotTheRecordedFile(Skip):
    """The path holds no file, or another file than the one recorded (another inode, or the same
    inode number with another generation: deleted and the number reused)."""


def _err(e):
    return os.strerror(e.errno) if getattr(e, "errno", None) else str(e)


def open_dir_nofollow(path):
    """fd of directory ``path``, opened component by component, refusing symlinks."""
    if not path.startswith("/"):
        raise Skip("not an absolute path: %s" % path)
    fd = os.open("/", O_DIR)
    try:
        for comp in [c for c in path.split("/") if c]:
            if comp in (".", ".."):
                raise Skip("path %s has . or .. components" % path)
            try:
                nfd = os.open(comp, O_DIR, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Skip("path %s: %s is a symlink or not a directory; not followed"
                               % (path, comp))
                raise Skip("path %s: cannot open %s: %s" % (path, comp, _err(e)))
            os.close(fd)
            fd = nfd
        return fd
    except Exception:
        os.close(fd)
        raise


def open_file_nofollow(path):
    """(dir_fd, name, fd) for a regular file, no symlink anywhere in the path."""
    if not path.startswith("/"):
        raise Skip("not an absolute path: %s" % path)  # the whole path, not its directory
    parent, name = os.path.split(path.rstrip("/"))
    dfd = open_dir_nofollow(parent or "/")
    try:
        fd = os.open(name, O_FILE, dir_fd=dfd)
    except OSError as e:
        os.close(dfd)
        if e.errno == errno.ELOOP:
            raise Skip("%s is a symlink: not followed" % path)
        if e.errno == errno.ENOENT:
            raise NotTheRecordedFile("%s no longer exists (deleted or renamed since resolution)" % path)
        raise Skip("cannot open %s: %s" % (path, _err(e)))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        os.close(dfd)
        raise Skip("%s is not a regular file" % path)
    return dfd, name, fd


def get_flags(fd):
    return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)[:4])[0]


def set_flags(fd, flags):
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags) + b"\0" * 4)


def check_identity(fd, path, owner):
    """Skip unless the open file is the inode (and generation) that was resolved."""
    st = os.fstat(fd)
    if owner.get("inode") is not None and st.st_ino != int(owner["inode"]):
        raise NotTheRecordedFile("%s is inode %d now, resolved as %s: replaced since resolution; skipped"
                                 % (path, st.st_ino, owner["inode"]))
    gen = owner.get("generation")
    if gen is not None:
        now = _fiemap.get_generation(fd)
        if now is not None and now != int(gen) & 0xffffffff:
            raise NotTheRecordedFile("%s generation changed (%s -> %s): inode reused since resolution; skipped"
                                     % (path, gen, now))
    return st


def with_size(entry):
    """``entry`` with its file's size recorded in the owner, when the record lacks it and the file
    (no symlink followed, the recorded inode and generation) can be opened; else ``entry``. The
    write guard holds the file to that size: zeros for an accepted loss never land in a file
    truncated and written anew since."""
    owner = entry.get("owner") or {}
    if owner.get("kind") != "file" or owner.get("size") is not None or entry.get("state") != "open":
        return entry
    for path in owner.get("paths") or []:
        try:
            dfd, _name, fd = open_file_nofollow(path)
        except Skip:
            continue
        try:
            size = check_identity(fd, path, owner).st_size
        except Skip:
            continue
        finally:
            os.close(fd)
            os.close(dfd)
        return dict(entry, owner=dict(owner, size=size))
    return entry


def read_marker(fd):
    try:
        raw = os.getxattr(fd, XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, getattr(errno, "ENOATTR", errno.ENODATA)):
            return None
        raise
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return None


def marker_item(entry):
    owner = entry.get("owner") or {}
    item = {"entry": entry["id"], "range": (entry.get("range") or {}).get("id"),
            "file_offset": owner.get("file_offset"), "length": owner.get("length"),
            "repair_offset": owner.get("repair_offset"),
            "repair_length": owner.get("repair_length"), "state": "lost"}
    closure = entry.get("closure") or {}
    if closure.get("how") == "accepted_lost":
        item["state"] = "accepted_lost"
    return item


def merged_marker(old, entry, ledger_path, remove=False):
    ranges = [r for r in (old or {}).get("ranges", []) if r.get("entry") != entry["id"]]
    if not remove:
        ranges.append(marker_item(entry))
    ranges.sort(key=lambda r: (r.get("file_offset") or 0, r.get("entry")))
    return {"v": 1, "ledger": ledger_path, "ranges": ranges}


def marker_for(old, entry, ledger_path):
    """The marker as the ledger says it must be for this entry: listed as ``lost`` while open, as
    ``accepted_lost`` once the loss is accepted, gone once the range is restored (good data again;
    a stale "lost" would send its users to a backup)."""
    restored = entry.get("state") == "closed" and \
        (entry.get("closure") or {}).get("how") != "accepted_lost"
    return merged_marker(old, entry, ledger_path, remove=restored)


def _write_marker(fd, path, marker, check):
    old = read_marker(fd)
    if old == marker or (old is None and not marker["ranges"]):
        return False  # an empty marker is no xattr at all
    if check:
        return True
    try:
        if marker["ranges"]:
            os.setxattr(fd, XATTR, json.dumps(marker, sort_keys=True).encode())
        elif old is not None:
            os.removexattr(fd, XATTR)
    except OSError as e:
        if e.errno == errno.EROFS:
            raise Skip("%s: filesystem is mounted read-only; marker not written" % path)
        if e.errno == errno.EPERM:
            raise Skip("%s is immutable or append-only; marker not written (chattr -i first)"
                       % path)
        if e.errno == errno.ENOTSUP:
            raise Skip("%s: filesystem does not support user xattrs" % path)
        raise Skip("%s: cannot set %s: %s" % (path, XATTR, _err(e)))
    return True


def ensure_qdir(mountpoint, check=False):
    """fd of ``<mount>/.pmem-quarantine`` (root-owned, 0700), created safely. None in check mode
    when it does not exist yet."""
    mfd = open_dir_nofollow(mountpoint)
    try:
        try:
            if check:
                os.stat(QDIR, dir_fd=mfd, follow_symlinks=False)
            else:
                os.mkdir(QDIR, 0o700, dir_fd=mfd)
        except OSError as e:
            if e.errno == errno.EEXIST:
                pass
            elif check:
                return None
            elif e.errno == errno.EROFS:
                raise Skip("%s is mounted read-only: cannot create %s" % (mountpoint, QDIR))
            else:
                raise
        try:
            qfd = os.open(QDIR, O_DIR, dir_fd=mfd)
        except OSError as e:
            if e.errno == errno.ENOENT and check:
                return None
            raise Skip("%s/%s is not a plain directory (%s): refusing" % (mountpoint, QDIR,
                                                                          _err(e)))
        st = os.fstat(qfd)
        if st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o077:
            if st.st_uid == 0 and not check:
                os.fchmod(qfd, 0o700)
            else:
                os.close(qfd)
                raise Skip("%s/%s is owned by uid %d mode %o: refusing to use it"
                           % (mountpoint, QDIR, st.st_uid, stat.S_IMODE(st.st_mode)))
        return qfd
    finally:
        os.close(mfd)


NAME_MAX = 255


def _qname(entry, path, index):
    """The name in the quarantine directory: ``ino<inode>.<index>.<name>``, the name cut so the
    whole fits NAME_MAX bytes (a 250-byte name would fail the rename with ENAMETOOLONG). The
    release uses the recorded ``to``, so a cut name needs no parsing back."""
    owner = entry.get("owner") or {}
    prefix = os.fsencode("ino%s.%d." % (owner.get("inode"), index))
    name = os.fsencode(os.path.basename(path))
    return os.fsdecode(prefix + name[:max(0, NAME_MAX - len(prefix))])


def _no_journal(entry):
    """Default journal: keep the entry in memory only (unit tests of the pure steps)."""


def _no_hooks(point):
    """Default hook: nothing (tests pass a callable that kills the process at a point)."""


def _drop_pending(cont, intent):
    cont["pending"].remove(intent)
    if not cont["pending"]:
        del cont["pending"]


def _journal(work, cont, journal):
    """Persist the working entry (fsynced ledger through ``journal``) with ``cont``."""
    work["containment"] = copy.deepcopy(cont)
    journal(copy.deepcopy(work))


def _our_file(path, owner):
    """Is ``path`` (no symlink followed) the damaged inode? True / False."""
    try:
        dfd, _name, fd = open_file_nofollow(path)
    except Skip:
        return False
    try:
        check_identity(fd, path, owner)
        return True
    except Skip:
        return False
    finally:
        os.close(fd)
        os.close(dfd)


def _current(path, cont):
    return dict((r["from"], r["to"]) for r in cont.get("rename", [])).get(path, path)


def recover_pending(entry, cont):
    """Finish or forget the containment steps a killed run had announced (``cont["pending"]``):
    a step whose effect is on disk is recorded as done, one that never happened is dropped (the
    caller does it again, or not). Returns messages for steps that cannot be decided."""
    owner = entry.get("owner") or {}
    unsure = []
    for intent in list(cont.get("pending") or []):
        step = intent.get("step")
        decided = True
        if step == "rename":
            if _our_file(intent["to"], owner):
                cont.setdefault("rename", []).append({"from": intent["from"], "to": intent["to"]})
            elif not _our_file(intent["from"], owner):
                decided = False
        elif step == "unrename":
            if _our_file(intent["from"], owner):
                cont["rename"] = [r for r in cont.get("rename", []) if r["from"] != intent["from"]]
                if not cont["rename"]:
                    del cont["rename"]
            elif not _our_file(intent["to"], owner):
                decided = False
        elif step == "marker":
            pass  # the marker is rewritten from the ledger whenever it differs: nothing to decide
        elif step in ("chmod", "unchmod", "immutable", "unimmutable"):
            path = intent.get("path")
            try:
                dfd, _name, fd = open_file_nofollow(path)
            except Skip:
                unsure.append("pending %s of %s: file not found there" % (step, path))
                continue
            try:
                check_identity(fd, path, owner)
                mode = stat.S_IMODE(os.fstat(fd).st_mode)
                flags = None
                try:
                    flags = get_flags(fd)
                except (IOError, OSError):
                    pass
                if step == "chmod" and mode == intent["new"]:
                    cont["chmod"] = {"mode": intent["old"]}
                elif step == "unchmod" and mode == intent["mode"]:
                    cont.pop("chmod", None)
                elif step == "immutable" and flags is not None and flags & FS_IMMUTABLE_FL:
                    cont["immutable"] = {"was_set": intent["was_set"]}
                elif step == "unimmutable" and flags is not None and \
                        not flags & FS_IMMUTABLE_FL:
                    cont.pop("immutable", None)
            except Skip as e:
                unsure.append("pending %s: %s" % (step, e))
                continue
            finally:
                os.close(fd)
                os.close(dfd)
        if decided:
            cont["pending"].remove(intent)
        else:
            unsure.append("pending %s %s -> %s: the file is at neither path"
                          % (step, intent.get("from"), intent.get("to")))
    if not cont.get("pending"):
        cont.pop("pending", None)
    return unsure


def quarantine_entry(entry, ledger_path, containment=(), check=False, journal=None, hooks=None):
    """Mark and contain the file of one open file-data entry.

    Write-ahead: each containment step is announced in ``entry['containment']['pending']`` and
    persisted through ``journal(entry)`` (the fsynced ledger) before it happens, and recorded as
    done after; a rerun after a kill finishes or forgets the step (``recover_pending``).

    Returns ``(new_entry, result)``; result = {entry_id, changed, marked, contained, skipped[]}.
    The new entry carries a ``quarantined`` event (only when something changed) and the original
    values needed to undo containment in ``entry['containment']``.
    """
    journal = journal or _no_journal
    hooks = hooks or _no_hooks
    owner = entry.get("owner") or {}
    result = {"entry_id": entry["id"], "changed": False, "marked": [], "contained": [],
              "skipped": []}
    if owner.get("kind") != "file":
        result["skipped"].append("owner kind %s has no file to mark" % owner.get("kind"))
        return entry, result
    if entry.get("state") != "open":
        result["skipped"].append("entry is closed: not quarantined")
        return entry, result
    work = copy.deepcopy(entry)
    cont = copy.deepcopy(entry.get("containment") or {})
    before = copy.deepcopy(cont)
    if cont.get("pending") and not check:
        result["skipped"].extend(recover_pending(work, cont))
    paths = list(owner.get("paths") or [])
    done = []
    size_seen = None
    for index, path in enumerate(paths):
        cur = _current(path, cont)
        try:
            dfd, name, fd = open_file_nofollow(cur)
        except Skip as e:
            result["skipped"].append(str(e))
            continue
        try:
            st = check_identity(fd, cur, owner)
            if size_seen is None:
                size_seen = st.st_size
            # one inode, several links: the marker is per inode; mark once
            marker = marker_for(read_marker(fd), entry, ledger_path)
            if _write_marker(fd, cur, marker, True):
                if not check:
                    # announced in the ledger first: a ledger that cannot be written (full,
                    # read-only) fails the run before the file is touched
                    intent = {"step": "marker", "path": cur}
                    cont.setdefault("pending", []).append(intent)
                    _journal(work, cont, journal)
                    try:
                        _write_marker(fd, cur, marker, False)
                    except Skip:
                        # nothing was written (ENOSPC, EPERM...): the announced step is withdrawn
                        # in the ledger too, or every rerun found it pending, dropped it and
                        # logged another 'quarantined' event (changed every run)
                        _drop_pending(cont, intent)
                        _journal(work, cont, journal)
                        raise
                    _drop_pending(cont, intent)
                result["changed"] = True
                done.append("marker")
            result["marked"].append(cur)
            flags = None
            try:
                flags = get_flags(fd)
            except (IOError, OSError):
                pass
            if "chmod" in containment and "chmod" not in cont:
                if flags is not None and flags & FS_IMMUTABLE_FL:
                    raise Skip("%s is immutable: cannot chmod (chattr -i first)" % cur)
                old = stat.S_IMODE(os.fstat(fd).st_mode)
                if not check:
                    cont.setdefault("pending", []).append(
                        {"step": "chmod", "path": cur, "old": old, "new": 0})
                    _journal(work, cont, journal)
                    hooks("before_chmod")
                    os.fchmod(fd, 0)
                    hooks("after_chmod")
                    cont["pending"] = [p for p in cont["pending"] if p.get("step") != "chmod"]
                    if not cont["pending"]:
                        del cont["pending"]
                cont["chmod"] = {"mode": old}
                if not check:
                    _journal(work, cont, journal)
                result["changed"] = True
                done.append("chmod")
            if "rename" in containment and _current(path, cont) == path:
                if flags is not None and flags & FS_IMMUTABLE_FL:
                    raise Skip("%s is immutable: cannot rename (chattr -i first)" % cur)
                qfd = ensure_qdir(owner.get("mountpoint") or "/", check)
                target = _qname(entry, path, index)
                to = os.path.join(owner.get("mountpoint") or "/", QDIR, target)
                try:
                    if not check:
                        intent = {"step": "rename", "from": path, "to": to}
                        cont.setdefault("pending", []).append(intent)
                        _journal(work, cont, journal)
                        hooks("before_rename")
                        os.rename(name, target, src_dir_fd=dfd, dst_dir_fd=qfd)
                        hooks("after_rename")
                        cont["pending"].remove(intent)
                        if not cont["pending"]:
                            del cont["pending"]
                finally:
                    if qfd is not None:
                        os.close(qfd)
                cont.setdefault("rename", []).append({"from": path, "to": to})
                if not check:
                    _journal(work, cont, journal)
                result["changed"] = True
                done.append("rename")
            if "immutable" in containment and index == len(paths) - 1 and "immutable" not in cont:
                if flags is None:
                    raise Skip("%s: filesystem has no inode flags; immutable not set" % cur)
                was_set = bool(flags & FS_IMMUTABLE_FL)
                if not check and not was_set:
                    cont.setdefault("pending", []).append(
                        {"step": "immutable", "path": _current(path, cont), "was_set": was_set})
                    _journal(work, cont, journal)
                    hooks("before_immutable")
                    set_flags(fd, flags | FS_IMMUTABLE_FL)
                    hooks("after_immutable")
                    cont["pending"] = [p for p in cont["pending"]
                                       if p.get("step") != "immutable"]
                    if not cont["pending"]:
                        del cont["pending"]
                cont["immutable"] = {"was_set": was_set}
                result["changed"] = True
                done.append("immutable")
        except Skip as e:
            result["skipped"].append(str(e))
        except OSError as e:
            result["skipped"].append("%s: %s" % (cur, _err(e)))
        finally:
            os.close(fd)
            os.close(dfd)
    result["contained"] = sorted(k for k in cont if k != "pending")
    new = entry
    if result["changed"] or cont != before:
        new = _ledger.apply_event(entry, "quarantined", None,
                                  {"done": done, "paths": result["marked"],
                                   "skipped": result["skipped"]})
        new["containment"] = cont
    elif not any(h.get("event") == "quarantined" for h in entry.get("history", [])) \
            and result["marked"]:
        new = _ledger.apply_event(entry, "quarantined", None, {"done": [], "paths": result["marked"]})
        result["changed"] = True
    if new is not entry and size_seen is not None and owner.get("size") is None:
        # the size the write guard holds the file to (a restore into a file that grew or
        # shrank since it was recorded is refused)
        new["owner"] = dict(new.get("owner") or {}, size=size_seen)
    return new, result


def release_entry(entry, ledger_path, check=False, journal=None, hooks=None):
    """Undo containment of a closed entry (reverse order: immutable, renames, chmod) and update
    the marker: a restored range leaves the marker, an accepted loss stays listed as
    ``accepted_lost``. Write-ahead like quarantine_entry: each undo is announced, then done."""
    journal = journal or _no_journal
    hooks = hooks or _no_hooks
    result = {"entry_id": entry["id"], "changed": False, "released": [], "skipped": []}
    if entry.get("state") != "closed":
        result["skipped"].append("entry %s is open: containment is released only after it is "
                                 "restored or accepted as lost" % entry["id"])
        return entry, result
    owner = entry.get("owner") or {}
    work = copy.deepcopy(entry)
    cont = copy.deepcopy(entry.get("containment") or {})
    before = copy.deepcopy(cont)
    if cont.get("pending") and not check:
        result["skipped"].extend(recover_pending(work, cont))
    paths = [_current(p, cont) for p in owner.get("paths") or []]
    if not paths:
        return entry, result
    undone = []

    def step(intent, point, action):
        if check:
            return
        cont.setdefault("pending", []).append(intent)
        _journal(work, cont, journal)
        hooks("before_" + point)
        action()
        hooks("after_" + point)
        cont["pending"].remove(intent)
        if not cont["pending"]:
            del cont["pending"]

    try:
        dfd, name, fd = open_file_nofollow(paths[-1])
    except Skip as e:
        result["skipped"].append(str(e))
        return entry, result
    try:
        check_identity(fd, paths[-1], owner)
        if "immutable" in cont:
            if not cont["immutable"].get("was_set"):
                flags = get_flags(fd)
                if flags & FS_IMMUTABLE_FL:
                    step({"step": "unimmutable", "path": paths[-1]}, "unimmutable",
                         lambda: set_flags(fd, flags & ~FS_IMMUTABLE_FL))
            del cont["immutable"]
            if not check:
                _journal(work, cont, journal)
            undone.append("immutable")
        for r in list(cont.get("rename", [])):
            src_dir, src_name = os.path.split(r["to"])
            dst_dir, dst_name = os.path.split(r["from"])
            sfd = open_dir_nofollow(src_dir)
            ddfd = open_dir_nofollow(dst_dir)
            try:
                try:
                    os.stat(dst_name, dir_fd=ddfd, follow_symlinks=False)
                    raise Skip("cannot move %s back: %s exists again" % (r["to"], r["from"]))
                except OSError:
                    pass
                step({"step": "unrename", "from": r["from"], "to": r["to"]}, "unrename",
                     lambda: os.rename(src_name, dst_name, src_dir_fd=sfd, dst_dir_fd=ddfd))
            finally:
                os.close(sfd)
                os.close(ddfd)
            cont["rename"] = [x for x in cont.get("rename", []) if x["from"] != r["from"]]
            if not cont["rename"]:
                del cont["rename"]
            if not check:
                _journal(work, cont, journal)
            undone.append("rename")
        if "chmod" in cont:
            mode = cont["chmod"]["mode"]
            step({"step": "unchmod", "path": _current(owner["paths"][-1], cont), "mode": mode},
                 "unchmod", lambda: os.fchmod(fd, mode))
            del cont["chmod"]
            undone.append("chmod")
        if _write_marker(fd, paths[-1], marker_for(read_marker(fd), entry, ledger_path), check):
            undone.append("marker")
    except Skip as e:
        result["skipped"].append(str(e))
    except OSError as e:
        result["skipped"].append("%s: %s" % (paths[-1], _err(e)))
    finally:
        os.close(fd)
        os.close(dfd)
    new = entry
    if undone or cont != before:
        new = _ledger.apply_event(entry, "released", None, {"undone": undone,
                                                            "skipped": result["skipped"]})
        new["containment"] = cont
        result["changed"] = True
        result["released"] = undone
    return new, result


def accept_loss(entry, by, why, at=None):
    """Close an entry as accepted lost (affirmative step; ``by`` and ``why`` required)."""
    if not by or not why:
        raise PmemError("accepting a loss needs who (by) and why", range=entry.get("id"),
                        next_step="pass by= and why=")
    return _ledger.close_entry(entry, "accepted_lost", at, by=by, why=why)


def run_quarantine(ledger_path=_ledger.DEFAULT_PATH, state="present", results=None, bad_ranges=None,
                   entry_ids=None, containment=(), by=None, why=None, check=False,
                   lock_timeout=30.0, badblocks=None, hooks=None):
    """The pmem_quarantine run: record first (saved before any file is touched), then act.

    ``badblocks`` (the lists, default the facts core's) is consulted only for results that would
    reopen an entry verified cleared; ``hooks`` is called at the containment write-ahead points.
    Tests pass both."""
    out = {"changed": False, "entries": [], "recorded": [], "ledger_path": ledger_path}
    touched = set()
    with _ledger.LedgerStore(ledger_path, timeout=lock_timeout, readonly=check) as store:
        def journal(entry):
            store.update(entry)
            store.commit()

        if results:
            provider = badblocks or listing.TopologyBadblocks()
            results = listing.drop_stale_reopens(store.data, results, provider)
        if results:
            store.data, out["recorded"] = _ledger.merge_detections(store.data, results, bad_ranges)
            touched.update(c["entry_id"] for c in out["recorded"])
            store.commit()  # the record exists before any marker or containment
        wanted = set(entry_ids or [])
        missing = wanted - set(e["id"] for e in store.data["entries"])
        if missing:
            raise PmemError("no such ledger entries: %s" % ", ".join(sorted(missing)),
                            next_step="list entries with pmem_badblocks (open_entries)")
        for entry in list(store.data["entries"]):
            if wanted and entry["id"] not in wanted:
                continue
            if state == "accepted_lost":
                if entry.get("state") == "closed" and \
                        (entry.get("closure") or {}).get("how") == "accepted_lost":
                    out["entries"].append({"entry_id": entry["id"], "changed": False,
                                           "skipped": ["already accepted as lost"]})
                    continue
                new = accept_loss(entry, by, why)
                out["entries"].append({"entry_id": entry["id"], "changed": True, "skipped": []})
                if not check:
                    store.update(new)
                    store.commit()  # the closure is on disk before the marker says it
                    touched.add(entry["id"])
                # keep the marker truthful: the range is now an accepted loss
                if (entry.get("owner") or {}).get("kind") == "file" and not check:
                    _unused, res = refresh_marker(new, ledger_path)
                    out["entries"][-1]["skipped"] = res
            elif state == "released":
                if entry.get("state") == "closed" and not entry.get("containment") and \
                        (entry.get("owner") or {}).get("kind") == "file":
                    # nothing to undo, but the marker must not outlive a restore
                    marker_changed, res = refresh_marker(entry, ledger_path, check)
                    if marker_changed or wanted:
                        out["entries"].append({"entry_id": entry["id"], "changed": marker_changed,
                                               "released": ["marker"] if marker_changed else [],
                                               "skipped": res})
                    continue
                if entry.get("state") != "closed" or not entry.get("containment"):
                    if wanted:
                        out["entries"].append({"entry_id": entry["id"], "changed": False,
                                               "skipped": ["entry is open or not contained"]})
                    continue
                new, res = release_entry(entry, ledger_path, check, journal, hooks)
                out["entries"].append(res)
            else:
                if entry.get("state") != "open" or \
                        (entry.get("owner") or {}).get("kind") != "file":
                    continue
                new, res = quarantine_entry(entry, ledger_path, containment, check, journal,
                                            hooks)
                out["entries"].append(res)
            if new != entry:
                touched.add(entry["id"])
                store.update(new)
                store.commit()
        out["changed"] = store.changed or any(r.get("changed") for r in out["entries"])
        out["diff"] = store.diff(sorted(touched))
    return out


def refresh_marker(entry, ledger_path, check=False):
    """Bring the file's marker in line with the entry (see marker_for), opening the file itself.
    Returns (changed, skipped messages)."""
    paths = (entry.get("owner") or {}).get("paths") or []
    if not paths:
        return False, []
    renamed = dict((r["from"], r["to"]) for r in (entry.get("containment") or {}).get("rename", []))
    skipped = []
    # the marker is on the inode: any recorded name that still holds the recorded file will do
    # (the first one may have been removed, or replaced by another file, since the record)
    for path in paths:
        try:
            dfd, _n, fd = open_file_nofollow(renamed.get(path, path))
        except Skip as e:
            skipped.append(str(e))
            continue
        try:
            check_identity(fd, path, entry["owner"])
            return _write_marker(fd, path, marker_for(read_marker(fd), entry, ledger_path), check), []
        except Skip as e:
            skipped.append(str(e))
        finally:
            os.close(fd)
            os.close(dfd)
    return False, skipped
