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

import errno
import fcntl
import json
import os
import stat
import struct

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError

XATTR = "user.pmem_poison.lost_ranges"
QDIR = ".pmem-quarantine"
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IOC_GETVERSION = 0x80087601
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020

O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
O_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class Skip(PmemError):
    """This path/file cannot be handled now; reported per path, the run goes on."""


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
    parent, name = os.path.split(path.rstrip("/"))
    dfd = open_dir_nofollow(parent or "/")
    try:
        fd = os.open(name, O_FILE, dir_fd=dfd)
    except OSError as e:
        os.close(dfd)
        if e.errno == errno.ELOOP:
            raise Skip("%s is a symlink: not followed" % path)
        if e.errno == errno.ENOENT:
            raise Skip("%s no longer exists (deleted or renamed since resolution)" % path)
        raise Skip("cannot open %s: %s" % (path, _err(e)))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        os.close(dfd)
        raise Skip("%s is not a regular file" % path)
    return dfd, name, fd


def get_generation(fd):
    try:
        return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETVERSION, b"\0" * 8)[:4])[0] & 0xffffffff
    except (IOError, OSError):
        return None


def get_flags(fd):
    return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)[:4])[0]


def set_flags(fd, flags):
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags) + b"\0" * 4)


def check_identity(fd, path, owner):
    """Skip unless the open file is the inode (and generation) that was resolved."""
    st = os.fstat(fd)
    if owner.get("inode") is not None and st.st_ino != int(owner["inode"]):
        raise Skip("%s is inode %d now, resolved as %s: replaced since resolution; skipped"
                   % (path, st.st_ino, owner["inode"]))
    gen = owner.get("generation")
    if gen is not None:
        now = get_generation(fd)
        if now is not None and now != int(gen) & 0xffffffff:
            raise Skip("%s generation changed (%s -> %s): inode reused since resolution; skipped"
                       % (path, gen, now))
    return st


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


def _qname(entry, path, index):
    owner = entry.get("owner") or {}
    return "ino%s.%d.%s" % (owner.get("inode"), index, os.path.basename(path))


def quarantine_entry(entry, ledger_path, containment=(), check=False):
    """Mark and contain the file of one open file-data entry.

    Returns ``(new_entry, result)``; result = {entry_id, changed, marked, contained, skipped[]}.
    The new entry carries a ``quarantined`` event (only when something changed) and the original
    values needed to undo containment in ``entry['containment']``.
    """
    owner = entry.get("owner") or {}
    result = {"entry_id": entry["id"], "changed": False, "marked": [], "contained": [],
              "skipped": []}
    if owner.get("kind") != "file":
        result["skipped"].append("owner kind %s has no file to mark" % owner.get("kind"))
        return entry, result
    if entry.get("state") != "open":
        result["skipped"].append("entry is closed: not quarantined")
        return entry, result
    cont = dict(entry.get("containment") or {})
    paths = list(owner.get("paths") or [])
    renamed = dict((r["from"], r["to"]) for r in cont.get("rename", []))
    done = []
    for index, path in enumerate(paths):
        cur = renamed.get(path, path)
        try:
            dfd, name, fd = open_file_nofollow(cur)
        except Skip as e:
            result["skipped"].append(str(e))
            continue
        try:
            check_identity(fd, cur, owner)
            # one inode, several links: the marker is per inode; mark once
            if _write_marker(fd, cur, marker_for(read_marker(fd), entry, ledger_path), check):
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
                cont["chmod"] = {"mode": stat.S_IMODE(os.fstat(fd).st_mode)}
                if not check:
                    os.fchmod(fd, 0)
                result["changed"] = True
                done.append("chmod")
            if "rename" in containment and path not in renamed:
                if flags is not None and flags & FS_IMMUTABLE_FL:
                    raise Skip("%s is immutable: cannot rename (chattr -i first)" % cur)
                qfd = ensure_qdir(owner.get("mountpoint") or "/", check)
                target = _qname(entry, path, index)
                try:
                    if not check:
                        os.rename(name, target, src_dir_fd=dfd, dst_dir_fd=qfd)
                finally:
                    if qfd is not None:
                        os.close(qfd)
                to = os.path.join(owner.get("mountpoint") or "/", QDIR, target)
                cont.setdefault("rename", []).append({"from": path, "to": to})
                renamed[path] = to
                result["changed"] = True
                done.append("rename")
            if "immutable" in containment and index == len(paths) - 1 and "immutable" not in cont:
                if flags is None:
                    raise Skip("%s: filesystem has no inode flags; immutable not set" % cur)
                cont["immutable"] = {"was_set": bool(flags & FS_IMMUTABLE_FL)}
                if not check and not flags & FS_IMMUTABLE_FL:
                    set_flags(fd, flags | FS_IMMUTABLE_FL)
                result["changed"] = True
                done.append("immutable")
        except Skip as e:
            result["skipped"].append(str(e))
        except OSError as e:
            result["skipped"].append("%s: %s" % (cur, _err(e)))
        finally:
            os.close(fd)
            os.close(dfd)
    result["contained"] = sorted(cont)
    new = entry
    if result["changed"] or cont != (entry.get("containment") or {}):
        new = L.apply_event(entry, "quarantined", None,
                            {"done": done, "paths": result["marked"],
                             "skipped": result["skipped"]})
        new["containment"] = cont
    elif not any(h.get("event") == "quarantined" for h in entry.get("history", [])) \
            and result["marked"]:
        new = L.apply_event(entry, "quarantined", None, {"done": [], "paths": result["marked"]})
        result["changed"] = True
    return new, result


def release_entry(entry, ledger_path, check=False):
    """Undo containment of a closed entry (reverse order) and update the marker: a restored
    range leaves the marker, an accepted loss stays listed as ``accepted_lost``."""
    result = {"entry_id": entry["id"], "changed": False, "released": [], "skipped": []}
    if entry.get("state") != "closed":
        result["skipped"].append("entry %s is open: containment is released only after it is "
                                 "restored or accepted as lost" % entry["id"])
        return entry, result
    owner = entry.get("owner") or {}
    cont = dict(entry.get("containment") or {})
    renames = list(cont.get("rename", []))
    paths = [dict((r["from"], r["to"]) for r in renames).get(p, p) for p in owner.get("paths") or []]
    if not paths:
        return entry, result
    undone = []
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
                if flags & FS_IMMUTABLE_FL and not check:
                    set_flags(fd, flags & ~FS_IMMUTABLE_FL)
            del cont["immutable"]
            undone.append("immutable")
        for r in list(renames):
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
                if not check:
                    os.rename(src_name, dst_name, src_dir_fd=sfd, dst_dir_fd=ddfd)
            finally:
                os.close(sfd)
                os.close(ddfd)
            renames.remove(r)
            undone.append("rename")
        if renames:
            cont["rename"] = renames
        else:
            cont.pop("rename", None)
        if "chmod" in cont:
            if not check:
                os.fchmod(fd, cont["chmod"]["mode"])
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
    if undone:
        new = L.apply_event(entry, "released", None, {"undone": undone,
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
    return L.close_entry(entry, "accepted_lost", at, by=by, why=why)


def run_quarantine(ledger_path=L.DEFAULT_PATH, state="present", results=None, bad_ranges=None,
                   entry_ids=None, containment=(), by=None, why=None, check=False,
                   lock_timeout=30.0):
    """The pmem_quarantine run: record first (saved before any file is touched), then act."""
    out = {"changed": False, "entries": [], "recorded": [], "ledger_path": ledger_path}
    touched = set()
    with L.LedgerStore(ledger_path, timeout=lock_timeout, readonly=check) as store:
        if results:
            store.data, out["recorded"] = L.merge_detections(store.data, results, bad_ranges)
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
                new, res = release_entry(entry, ledger_path, check)
                out["entries"].append(res)
            else:
                if entry.get("state") != "open" or \
                        (entry.get("owner") or {}).get("kind") != "file":
                    continue
                new, res = quarantine_entry(entry, ledger_path, containment, check)
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
    path = paths[0]
    try:
        dfd, _n, fd = open_file_nofollow(renamed.get(path, path))
    except Skip as e:
        return False, [str(e)]
    try:
        check_identity(fd, path, entry["owner"])
        return _write_marker(fd, path, marker_for(read_marker(fd), entry, ledger_path), check), []
    except Skip as e:
        return False, [str(e)]
    finally:
        os.close(fd)
        os.close(dfd)
