# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""resolve_owners(bad_ranges, facts): who owns each bad range (docs/design.md, "Owner").

Dispatch per range:

- ``area: info_block`` -> owner kind ``info_block``; outside the namespace/partition -> ``unknown``.
- devdax namespace (``dax_device``) or a block device with no filesystem -> ``devdax``/``raw`` with
  the processes that have the device open or mapped (/proc/*/fd, /proc/*/maps).
- mounted filesystem: GETFSMAP (fsmap.py) names file owners (XFS rmapbt), metadata and free space;
  bytes it reports as "unknown" (ext4 file data, XFS without rmapbt) or everything when GETFSMAP is
  unavailable go to one FIEMAP pass (fiemap.py). Paths: XFS parent pointers where the filesystem
  has them (xfs_parents.py), else one walk (inode_paths.py).
- mounted ext2/3/4 as root with debugfs: before that pass, ``syncfs`` then one ``debugfs -c icheck``
  and one ``ncheck -c`` on the block device give CANDIDATE owners (on-disk metadata may be stale
  while mounted); each candidate is verified on the live filesystem (open the path, same st_dev and
  st_ino, its FIEMAP really covers the bad bytes; file offsets come from the live FIEMAP). ext4 has
  no reflink, so one verified owner settles those bytes; only bytes left without a verified owner
  go to the FIEMAP pass.
- unmounted filesystem: owners_offline.py (xfs_db / debugfs on the block device).
- anything else -> ``unknown`` with the reason. No range is dropped; one range failing never stops
  the others.

Ranges are grouped by filesystem device number, so a filesystem mounted twice is resolved once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shutil
import stat as _stat
import threading

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as _fsmap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import identity as _identity
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as _paths
from ansible_collections.pmem.poison.plugins.module_utils._pmem import xfs_parents as _parents
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline as _offline
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    GatherError, RangeOutsideDevice)

PAGE = 4096
SUPPORTED_FS = ("xfs", "ext4", "ext3", "ext2")
OWNER_KINDS = ("file", "metadata", "free", "info_block", "devdax", "raw", "unknown")


# ------------------------------------------------------------------ small helpers
def repair_cover(offset, length, page=PAGE):
    """Page-aligned (offset, length) covering [offset, offset+length)."""
    start = (offset // page) * page
    end = -(-(offset + length) // page) * page
    return start, end - start


def new_owner(kind, range_id, fs=None, **kw):
    o = {"kind": kind, "range_id": range_id, "device": None, "mountpoint": None, "fstype": None,
         "inode": None, "generation": None, "paths": [], "file_offset": None, "length": None,
         "repair_offset": None, "repair_length": None, "shared": False, "attr_fork": False,
         "metadata_kind": None, "processes": [], "reason": None, "fs_offset": None,
         "fs_uuid": None}
    if fs:
        o["device"] = fs.get("device")
        o["mountpoint"] = fs.get("mountpoint")
        o["fstype"] = fs.get("fstype")
        o["fs_uuid"] = fs.get("uuid")
    o.update(kw)
    if o["kind"] == "file" and o["file_offset"] is not None and o["length"]:
        o["repair_offset"], o["repair_length"] = repair_cover(o["file_offset"], o["length"])
    return o


def _unescape(s):
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace(
        "\\134", "\\")


def parse_mountinfo(text):
    """/proc/self/mountinfo -> [{major, minor, root, mountpoint, fstype, source, options}]."""
    out = []
    for line in text.splitlines():
        parts = line.split(" - ", 1)
        if len(parts) != 2:
            continue
        left, right = parts[0].split(), parts[1].split()
        if len(left) < 6 or len(right) < 2:
            continue
        major, minor = (int(x) for x in left[2].split(":"))
        out.append({"major": major, "minor": minor, "root": _unescape(left[3]),
                    "mountpoint": _unescape(left[4]), "mount_options": left[5],
                    "fstype": right[0], "source": _unescape(right[1]),
                    "options": right[2] if len(right) > 2 else ""})
    return out


def read_mountinfo(proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, "self", "mountinfo")) as f:
            return parse_mountinfo(f.read())
    except (IOError, OSError):
        return []


def mounts_by_dev(mounts):
    """{(major, minor): [mount, ...]} with whole-filesystem mounts (root '/') first."""
    by = {}
    for m in mounts:
        by.setdefault((m["major"], m["minor"]), []).append(m)
    for lst in by.values():
        lst.sort(key=lambda m: (m["root"] != "/", len(m["mountpoint"])))
    return by


def dax_device_size(name, sysfs_root="/sys"):
    """Bytes of a devdax character device (its size attribute is in bytes), or None."""
    try:
        with open(os.path.join(sysfs_root, "bus", "dax", "devices", name, "size")) as f:
            return int(f.read().strip())
    except (IOError, OSError, ValueError):
        return None


def device_size(major, minor, sysfs_root="/sys"):
    try:
        with open(os.path.join(sysfs_root, "dev", "block", "%d:%d" % (major, minor), "size")) as f:
            return int(f.read().strip()) * 512
    except (IOError, OSError, ValueError):
        return None


def processes_using(paths, proc_root="/proc"):
    """[{pid, comm, how}] of processes with any of *paths* open (fd) or mapped (maps)."""
    wanted = set(p for p in paths if p)
    out = []
    try:
        pids = [p for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        base = os.path.join(proc_root, pid)
        how = set()
        try:
            for fd in os.listdir(os.path.join(base, "fd")):
                try:
                    if os.readlink(os.path.join(base, "fd", fd)) in wanted:
                        how.add("open")
                        break
                except OSError:
                    continue
        except OSError:
            pass
        try:
            with open(os.path.join(base, "maps")) as f:
                for line in f:
                    if line.rstrip("\n").split(None, 5)[-1] in wanted:
                        how.add("mapped")
                        break
        except (IOError, OSError, IndexError):
            pass
        if how:
            comm = None
            try:
                with open(os.path.join(base, "comm")) as f:
                    comm = f.read().strip()
            except (IOError, OSError):
                pass
            out.append({"pid": int(pid), "comm": comm, "how": sorted(how)})
    return out


def direct_range(item, mounts=None):
    """An operator's ``{device, offset, length}`` (block device bytes, or a mount point with
    filesystem bytes) -> a BadRange-shaped dict."""
    device = item["device"]
    offset = int(item["offset"])
    length = int(item["length"])
    name = os.path.basename(device.rstrip("/")) or device
    rng = {"id": item.get("id") or "%s@%#x+%#x" % (name, offset, length), "region": None,
           "namespace": None, "blockdev": None, "partition": None, "dax_device": None,
           "length": length, "area": "data", "absolute": None, "blockdev_offset": None,
           "partition_offset": None, "filesystem": None, "_device_path": device,
           "_offset": offset}
    if name.startswith("dax") and "." in name:
        rng["dax_device"] = name
    return rng


# ------------------------------------------------------------------ dispatch
class _Target:
    """One range, normalised: where on which device, and what kind of thing lives there."""

    def __init__(self, rng):
        self.rng = rng
        self.rid = rng.get("id")
        self.length = int(rng.get("length") or 0)
        self.result = {"range_id": self.rid, "owners": [], "error": None, "warnings": []}
        self.fs = None          # {device, mountpoint, fstype, dev, mount_root}
        self.offset = None      # bytes on the filesystem's device
        self.devpath = None

    def fail(self, exc):
        self.result["error"] = exc.to_dict() if hasattr(exc, "to_dict") else {"msg": str(exc)}


def _namespace_mode(facts, rng):
    """Best effort: the namespace mode from facts (raw/fsdax/devdax/sector) or None."""
    ns = rng.get("namespace")
    if not ns or not isinstance(facts, dict):
        return None
    for key in ("namespaces",):
        val = facts.get(key) or (facts.get("topology") or {}).get(key)
        items = val.values() if isinstance(val, dict) else (val or [])
        for n in items:
            if isinstance(n, dict) and (n.get("name") == ns or n.get("dev") == ns):
                return n.get("mode")
    return None


def resolve_owners(bad_ranges, facts=None, walk_paths=True, max_walk_seconds=None,
                   proc_root="/proc", dev_root="/dev", sysfs_root="/sys", mounts=None,
                   run=None, ext4_debugfs=True, topology=None):
    """Resolve every range; returns [{range_id, owners, error, warnings}] in input order.

    *ext4_debugfs*: on mounted ext2/3/4 as root, take candidate owners from debugfs and verify
    them with FIEMAP before (instead of, when they settle everything) the full FIEMAP pass.
    *topology*: the current topology; ranges that carry a stable identity (facts gathered
    earlier, perhaps before a reboot, or a ledger's record) are first found again by it
    (identity.refresh_range), so their device names are those of now; a range whose bytes are
    not on this host now gets an error, never another device's owners."""
    run = run or _offline.default_run
    if mounts is None:
        mounts = read_mountinfo(proc_root)
    by_dev = mounts_by_dev(mounts)
    targets = []
    for r in bad_ranges:
        why = None
        if topology is not None:
            now, why = _identity.refresh_range(r, topology)
            r = now or r
        t = _Target(r)
        if why:
            t.fail(GatherError("the bytes of this range are not on this host now: %s" % why,
                               range=t.rid, next_step="gather facts again (pmem_badblocks)"))
        targets.append(t)
    groups = {}   # (major, minor) -> [target]
    for t in targets:
        if t.result["error"]:
            continue
        try:
            _classify(t, facts, by_dev, proc_root, dev_root, sysfs_root)
        except Exception as e:  # noqa: BLE001 - one range never stops the rest
            t.fail(e)
            continue
        if t.fs is not None and not t.result["owners"] and not t.result["error"]:
            groups.setdefault(t.fs["dev"], []).append(t)
    for dev, group in groups.items():
        try:
            _resolve_fs(group, walk_paths, max_walk_seconds, sysfs_root, run,
                        ext4_debugfs=ext4_debugfs, dev_root=dev_root)
        except Exception as e:  # noqa: BLE001
            for t in group:
                if not t.result["error"]:
                    t.fail(GatherError("owner resolution failed: %s" % e,
                                       device=t.fs.get("device"), range=t.rid))
    return [t.result for t in targets]


def _classify(t, facts, by_dev, proc_root, dev_root, sysfs_root="/sys"):
    rng = t.rng
    area = rng.get("area") or "data"
    if area == "info_block":
        t.result["owners"].append(new_owner(
            "info_block", t.rid, device=_blockdev_path(rng, dev_root), length=t.length,
            reason="namespace info block / memmap reserve: not reachable through the block device"))
        return
    if area in ("outside_partition", "outside_namespace"):
        t.result["owners"].append(new_owner(
            "unknown", t.rid, length=t.length,
            reason="range lies %s: no filesystem or device owns it" % area.replace("_", " ")))
        return
    if rng.get("dax_device"):
        path = os.path.join(dev_root, rng["dax_device"])
        offset = rng.get("_offset")  # device bytes: known for a range given directly
        size = dax_device_size(rng["dax_device"], sysfs_root)
        if offset is not None and (offset < 0 or (size is not None and offset + t.length > size)):
            t.fail(RangeOutsideDevice(
                "bytes %d-%d lie beyond the end of the device (%s bytes)" % (
                    offset, offset + t.length, size), device=path, range=t.rid,
                next_step="check the range's coordinates (devdax offsets start at the data area)"))
            return
        t.result["owners"].append(new_owner(
            "devdax", t.rid, device=path, length=t.length,
            processes=processes_using([path, "/dev/" + rng["dax_device"]], proc_root)))
        return
    fsinfo = rng.get("filesystem")
    if fsinfo and fsinfo.get("mountpoint"):
        st = os.stat(fsinfo["mountpoint"])
        dev = (os.major(st.st_dev), os.minor(st.st_dev))
        t.offset = int(fsinfo.get("offset") if fsinfo.get("offset") is not None else 0)
        _set_mounted(t, dev, by_dev, fsinfo)
        return
    # block device (or a mount point given directly)
    path = rng.get("_device_path") or _blockdev_path(rng, dev_root)
    if rng.get("_device_path") is not None:
        t.offset = rng["_offset"]
    elif rng.get("partition"):
        t.offset = rng.get("partition_offset")
    else:
        t.offset = rng.get("blockdev_offset")
    if path is None or t.offset is None:
        t.result["owners"].append(new_owner(
            "unknown", t.rid, length=t.length,
            reason="no block device offset for this range (need root for region math?)"))
        return
    try:
        st = os.stat(path)
    except OSError as e:
        raise GatherError("cannot stat %s: %s" % (path, e.strerror), device=path, range=t.rid)
    import stat as _stat
    if _stat.S_ISDIR(st.st_mode):  # a mount point: offsets are filesystem bytes
        dev = (os.major(st.st_dev), os.minor(st.st_dev))
        _set_mounted(t, dev, by_dev, None)
        return
    if not _stat.S_ISBLK(st.st_mode):
        raise GatherError("%s is neither a block device nor a mount point" % path, device=path,
                          range=t.rid)
    dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    t.devpath = path
    if dev in by_dev:
        _set_mounted(t, dev, by_dev, None)
        return
    role = _external_role(dev, by_dev)
    if role is not None:
        what, m = role
        fs = {"device": path, "mountpoint": m["mountpoint"], "fstype": m["fstype"]}
        if what == "logdev":
            t.result["owners"].append(new_owner(
                "metadata", t.rid, fs, metadata_kind="log", length=t.length, fs_offset=t.offset,
                reason="external log device of the %s filesystem mounted at %s" % (
                    m["fstype"], m["mountpoint"])))
        else:
            t.result["owners"].append(new_owner(
                "unknown", t.rid, fs, length=t.length, fs_offset=t.offset,
                reason="realtime device of the %s filesystem mounted at %s: owners of realtime "
                       "extents are not resolved online; unmount it and inspect with xfs_db "
                       "before anything is cleared" % (m["fstype"], m["mountpoint"])))
        return
    # unmounted: is there a filesystem?
    try:
        geom = _offline.probe_device(path)
    except (IOError, OSError) as e:
        raise GatherError("cannot read %s: %s" % (path, e.strerror), device=path, range=t.rid,
                          next_step="run as root")
    if geom is None:
        mode = _namespace_mode(facts, rng) or "raw"
        kind = "devdax" if mode == "devdax" else "raw"
        t.result["owners"].append(new_owner(
            kind, t.rid, device=path, length=t.length, fs_offset=t.offset,
            processes=processes_using([path, "/dev/" + os.path.basename(path)], proc_root),
            reason="no XFS or ext4 superblock on the device: raw use"))
        return
    t.fs = {"device": path, "mountpoint": None, "fstype": geom["fstype"], "dev": dev,
            "mount_root": None, "offline": True, "geom": geom}


def _external_role(dev, by_dev):
    """("logdev"|"rtdev", mount) when block device *dev* is the external log or realtime device of
    a mounted filesystem (XFS shows them as ``logdev=``/``rtdev=`` mount options), else None: such
    a device has no superblock of its own and must not look like raw, unused space."""
    for mnts in by_dev.values():
        for m in mnts:
            for opt in (m.get("options") or "").split(","):
                key, _sep, value = opt.partition("=")
                if key not in ("logdev", "rtdev") or not value.startswith("/"):
                    continue
                try:
                    st = os.stat(value)
                except OSError:
                    continue
                if _stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == dev:
                    return key, m
    return None


def _blockdev_path(rng, dev_root):
    name = rng.get("partition") or rng.get("blockdev")
    return os.path.join(dev_root, name) if name else None


def _set_mounted(t, dev, by_dev, fsinfo):
    mnts = by_dev.get(dev)
    if not mnts:
        raise GatherError("no mount found for device %d:%d" % dev, range=t.rid)
    m = mnts[0]
    t.fs = {"device": (fsinfo or {}).get("device") or m["source"], "mountpoint": m["mountpoint"],
            "fstype": m["fstype"], "dev": dev, "mount_root": m["root"], "offline": False,
            "mountpoints": [x["mountpoint"] for x in mnts]}
    if len(mnts) > 1:
        t.result["warnings"].append(
            "filesystem %d:%d is mounted %d times (%s); resolved once through %s" % (
                dev[0], dev[1], len(mnts), ", ".join(x["mountpoint"] for x in mnts),
                m["mountpoint"]))
    if m["root"] != "/":
        t.result["warnings"].append(
            "only a subtree (%s) of the filesystem is mounted; files outside it have no path"
            % m["root"])


# ------------------------------------------------------------------ per filesystem
def _resolve_fs(group, walk_paths, max_walk_seconds, sysfs_root, run, ext4_debugfs=True,
                dev_root="/dev"):
    fs = group[0].fs
    if fs["fstype"] not in SUPPORTED_FS:
        for t in group:
            t.result["owners"].append(new_owner(
                "unknown", t.rid, fs, length=t.length, fs_offset=t.offset,
                reason="%s: no owner backend (supported: xfs, ext4)" % fs["fstype"]))
        return
    size = device_size(fs["dev"][0], fs["dev"][1], sysfs_root)
    live = []
    for t in group:
        if t.offset < 0 or (size is not None and t.offset + t.length > size):
            t.fail(RangeOutsideDevice(
                "bytes %d-%d lie beyond the end of the device (%s bytes)" % (
                    t.offset, t.offset + t.length, size), device=fs["device"], range=t.rid,
                next_step="check the range's coordinates (partition offset?)"))
        else:
            live.append(t)
    if not live:
        return
    if fs.get("uuid") is None:
        fs["uuid"] = _fs_uuid(fs, dev_root)
    if fs.get("offline"):
        _resolve_offline(live, fs, run)
    else:
        _resolve_mounted(live, fs, walk_paths, max_walk_seconds, run=run,
                         ext4_debugfs=ext4_debugfs, dev_root=dev_root)


def _piece_to_owner(t, fs, p):
    kind = p["kind"]
    kw = {"length": p["length"], "fs_offset": p["physical"], "inode": p.get("inode"),
          "metadata_kind": p.get("metadata_kind"), "shared": bool(p.get("shared")),
          "attr_fork": bool(p.get("attr_fork"))}
    if kind == "file" or p.get("metadata_kind") == "attr_fork":
        kw["file_offset"] = p.get("file_offset")
    o = new_owner(kind, t.rid, fs, **kw)
    if p.get("prealloc") or p.get("unwritten"):
        o["reason"] = "unwritten (preallocated) extent: reads return zeros"
    if p.get("fork") == "data" and p.get("inode") is not None and kind == "unknown":
        # GETFSMAP names the inode, not its type: settled by _settle_inode_types()
        o["_fork"] = "data"
        o["_file_offset"] = p.get("file_offset")
    return o


def _apply_inode_type(o, inode_type):
    """Give an inode's data-fork owner its kind now that the inode's type is known (owner_kind
    decides; None leaves it ``unknown`` with the reason)."""
    o.pop("_fork", None)
    file_offset = o.pop("_file_offset", None)
    kind, mkind = _kind.inode_owner_kind(inode_type)
    o["kind"], o["metadata_kind"] = kind, mkind
    if kind == "file":
        o["file_offset"] = file_offset
        if file_offset is not None and o["length"]:
            o["repair_offset"], o["repair_length"] = repair_cover(file_offset, o["length"])
    elif kind == "unknown":
        o["reason"] = _join(o["reason"], _kind.UNKNOWN_TYPE_REASON % o["inode"])


def _settle_inode_types(group, fd, ioctl=None):
    """Data-fork owners from GETFSMAP: read each inode's type by number (XFS bulkstat: no path is
    followed, nothing is opened) and decide file data vs directory/symlink metadata. Where bulkstat
    is not available the type comes from the path walk's d_type (_finish)."""
    want = set(o["inode"] for t in group for o in t.result["owners"] if o.get("_fork") == "data")
    if not want:
        return
    try:
        types = _fsmap.inode_types(fd, want, ioctl=ioctl)
    except (_fsmap.FsmapUnsupported, OSError):
        return
    for t in group:
        for o in t.result["owners"]:
            if o.get("_fork") != "data":
                continue
            info = types.get(o["inode"])
            if info is None:
                _apply_inode_type(o, None)
                continue
            _apply_inode_type(o, info["type"])
            o["_generation"] = info["generation"]
            o["_nlink"] = info["nlink"]


def _merge(owners):
    """Join adjacent pieces of the same owner (contiguous on the device and in the file)."""
    out = []
    for o in owners:
        prev = out[-1] if out else None
        if (prev and prev["kind"] == o["kind"] and prev["inode"] == o["inode"]
                and not prev.get("_fork") and not o.get("_fork")
                and prev["metadata_kind"] == o["metadata_kind"] and prev["shared"] == o["shared"]
                and prev["fs_offset"] is not None and o["fs_offset"] is not None
                and prev["fs_offset"] + prev["length"] == o["fs_offset"]
                and ((prev["file_offset"] is None and o["file_offset"] is None)
                     or (prev["file_offset"] is not None and o["file_offset"] is not None
                         and prev["file_offset"] + prev["length"] == o["file_offset"]))):
            prev["length"] += o["length"]
            if prev["file_offset"] is not None and prev["kind"] == "file":
                prev["repair_offset"], prev["repair_length"] = repair_cover(
                    prev["file_offset"], prev["length"])
            continue
        out.append(o)
    return out


def _resolve_mounted(group, fs, walk_paths, max_walk_seconds, run=None, ext4_debugfs=True,
                     dev_root="/dev"):
    mp = fs["mountpoint"]
    fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        geom = _fsmap.xfs_geometry(fd) if fs["fstype"] == "xfs" else None
        fs_size = geom["size"] if geom else None
        agsize = geom["agblocks"] * geom["blocksize"] if geom and geom.get("agblocks") else None
        size_known = fs_size is not None  # ext*: the superblock is read only when needed
        pending = []        # (start, end, tag) for the FIEMAP pass
        fsmap_note = None
        fast = None
        if ext4_debugfs and fs["fstype"] in EXT_FS:
            fast = _Ext4Candidates.start(group, fs, fd, run or _offline.default_run, dev_root)
        for t in group:
            if fs_size is not None and t.offset >= fs_size:
                t.result["owners"].append(new_owner(
                    "unknown", t.rid, fs, length=t.length, fs_offset=t.offset,
                    reason="beyond the end of the filesystem (%s bytes): not used by it" % fs_size))
                continue
            try:
                recs = _fsmap.owners_of(fd, t.offset, t.offset + t.length)
                unaccounted = []
                if _fsmap.unaccounted(t.offset, t.offset + t.length, recs):
                    # the point query left bytes unaccounted: widen it before calling them unknown
                    if not size_known:
                        size_known = True
                        fs_size = _ext_fs_size(fs, dev_root)
                    recs, unaccounted = _fsmap.owners_covering(
                        fd, t.offset, t.offset + t.length, agsize=agsize, fs_size=fs_size,
                        point=recs)
            except _fsmap.FsmapUnsupported as e:
                fsmap_note = "GETFSMAP unavailable (%s): file owners from FIEMAP only" % e
                pending.append((t.offset, t.offset + t.length, t))
                continue
            for r in recs:
                if r["kind"] == "unknown" and r["inode"] is None:
                    pending.append((r["overlap_start"], r["overlap_start"] + r["overlap_length"], t))
                    continue
                p = dict(r, physical=r["overlap_start"], length=r["overlap_length"])
                if r["metadata_kind"] == "fs_headers":
                    p["metadata_kind"] = _fsmap.refine_xfs_header(r["overlap_start"], geom) or \
                        ("sb" if fs["fstype"] != "xfs" else "fs_headers")
                t.result["owners"].append(_piece_to_owner(t, fs, p))
            for lo, hi in unaccounted:
                t.result["owners"].append(new_owner(
                    "unknown", t.rid, fs, length=hi - lo, fs_offset=lo,
                    reason=_no_owner_reason(lo, fs_size)))
        _settle_inode_types(group, fd)
        if fast is not None:
            pending = fast.finish(pending)
        if pending:
            _fiemap_pass(pending, fs, fsmap_note, max_walk_seconds)
            if fast is not None:
                fast.name_unmapped(group)
        for t in group:
            t.result["owners"].sort(key=lambda o: (o["fs_offset"] if o["fs_offset"] is not None
                                                   else -1, o["inode"] or 0))
            t.result["owners"] = _merge(t.result["owners"])
        if walk_paths:
            _attach_paths(group, fs, max_walk_seconds, fd=fd, geom=geom)
        else:
            for t in group:
                for o in t.result["owners"]:
                    if o.get("_fork") == "data":
                        _apply_inode_type(o, None)  # no walk: no d_type to fall back on
                    for k in ("_path_hint", "_nlink", "_generation", "_verified"):
                        o.pop(k, None)
                    known = o.pop("_paths", None)
                    if known:
                        o["paths"] = known  # verified already, at no walking cost
    finally:
        os.close(fd)


EXT_FS = ("ext4", "ext3", "ext2")


def _no_owner_reason(lo, fs_size):
    """Why GETFSMAP named no owner for bytes starting at *lo* (callers split at *fs_size*)."""
    if fs_size is not None and lo >= fs_size:
        return "beyond the end of the filesystem (%d bytes): not used by it" % fs_size
    where = ("inside the filesystem (%d bytes)" % fs_size if fs_size is not None
             else "filesystem size unknown")
    return ("no owner reported by GETFSMAP (%s), even with the query widened around these bytes: "
            "resolve with the filesystem unmounted (xfs_db/debugfs) before clearing" % where)


def _fs_uuid(fs, dev_root):
    """The filesystem uuid from its superblock (the stable key of filesystem owners: device names
    move across reboots), or None when the device cannot be read (not root)."""
    if fs.get("geom"):
        return fs["geom"].get("uuid")
    devpath = _fs_block_device(fs, dev_root) if not fs.get("offline") else fs.get("device")
    if devpath is None:
        return None
    try:
        geom = _offline.probe_device(devpath)
    except (IOError, OSError):
        return None
    return (geom or {}).get("uuid")


def _ext_fs_size(fs, dev_root):
    """Bytes the ext2/3/4 filesystem spans (superblock block count), or None."""
    if fs.get("fstype") not in EXT_FS:
        return None
    devpath = _fs_block_device(fs, dev_root)
    if devpath is None:
        return None
    try:
        geom = _offline.probe_device(devpath)
    except (IOError, OSError):
        return None
    return (geom or {}).get("size")


_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def _syncfs(fd):
    """syncfs(2) on the filesystem of *fd* (so debugfs sees committed metadata and delayed
    allocations have a place); sync(2) where libc has no syncfs."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(int(fd)) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.sync()


def _fs_block_device(fs, dev_root):
    """The block device node of a mounted filesystem (checked by st_rdev) or None."""
    for cand in (fs.get("device"), os.path.join(dev_root, "block", "%d:%d" % fs["dev"])):
        if not cand or not cand.startswith("/"):
            continue
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if _stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == fs["dev"]:
            return cand
    return None


def _find_tool(name):
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


class _Ext4Candidates:
    """Fast path for mounted ext2/3/4 (root + debugfs): debugfs candidates, FIEMAP-verified.

    ``start()`` runs syncfs and then ``debugfs -c icheck`` over every block of the group's ranges
    in a background thread, so it overlaps the GETFSMAP queries; ``finish(pending)`` takes the
    candidates for the bytes GETFSMAP left "unknown", runs one ``ncheck -c``, verifies every
    candidate on the live filesystem, adds the verified owners and returns the part of *pending*
    [(start, end, target)] no verified owner covers (for the FIEMAP pass). Tool trouble never
    raises: *pending* comes back untouched with a warning and the FIEMAP pass does the work."""

    def __init__(self, fs, fd, run, devpath, debugfs, geom):
        self.fs, self.fd, self.run = fs, fd, run
        self.devpath, self.debugfs, self.bs = devpath, debugfs, geom["blocksize"]
        self.fs_blocks = geom["size"] // geom["blocksize"]
        self.owner_of = None
        self.error = None
        self.thread = None
        self.unopened = {}      # candidate inode never opened -> (type, live paths)

    @classmethod
    def start(cls, group, fs, fd, run, dev_root):
        if os.geteuid() != 0:
            return None
        debugfs = _find_tool("debugfs")
        devpath = _fs_block_device(fs, dev_root)
        if debugfs is None or devpath is None:
            return None
        try:
            geom = _offline.probe_device(devpath)
        except (IOError, OSError):
            return None
        if not geom or geom.get("fstype") != "ext4":
            return None
        self = cls(fs, fd, run, devpath, debugfs, geom)
        blocks = set()
        for t in group:
            first = t.offset // self.bs
            last = min((t.offset + max(t.length, 1) - 1) // self.bs, self.fs_blocks - 1)
            blocks.update(range(first, last + 1))
        try:
            _syncfs(fd)
        except OSError as e:
            self.error = e
            return self
        self.thread = threading.Thread(target=self._icheck, args=(sorted(blocks),))
        self.thread.daemon = True
        self.thread.start()
        return self

    def _icheck(self, blocks):
        try:
            self.owner_of = _offline.ext4_icheck(self.devpath, blocks, run=self.run,
                                                 debugfs=self.debugfs)
        except Exception as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self, pending):
        if self.thread is not None:
            self.thread.join()
        if not pending:
            return pending
        fs, bs = self.fs, self.bs
        try:
            if self.error is not None:
                raise self.error
            cands = set()
            for s, e, _t in pending:
                for b in range(s // bs, (e - 1) // bs + 1):
                    ino = self.owner_of.get(b)
                    if ino:
                        cands.add(ino)
            cands = sorted(cands)
            names = _offline.ext4_ncheck(
                self.devpath, [i for i in cands if i >= _offline.EXT4_FIRST_INO], run=self.run,
                debugfs=self.debugfs) if cands else {}
        except (_offline.OfflineError, OSError, ValueError, AttributeError) as e:
            for t in set(t for _s, _e, t in pending):
                t.result["warnings"].append(
                    "debugfs candidates unavailable on %s (%s): file owners from the FIEMAP pass"
                    % (fs["device"], e))
            return pending
        tags = dict((id(t), t) for _s, _e, t in pending)
        rs = _fiemap.RangeSet([(s, e, id(t)) for s, e, t in pending])
        root_dev = os.fstat(self.fd).st_dev
        mp = fs["mountpoint"]
        mroot = (fs.get("mount_root") or "/").rstrip("/")
        buf = _fiemap._buffer(32)
        for ino in cands:
            if rs.empty():
                break
            paths = []
            for rel in (["/"] if ino == 2 else names.get(ino, [])):
                if mroot:
                    if rel != mroot and not rel.startswith(mroot + "/"):
                        continue  # outside the mounted subtree: no path through this mount
                    rel = rel[len(mroot):] or "/"
                paths.append(mp if rel == "/" else os.path.join(mp, rel.lstrip("/")))
            unopened = _verify_candidate(ino, paths, rs, tags, fs, root_dev, buf)
            if unopened:
                self.unopened[ino] = unopened
        return [(s, e, tags[tag]) for s, e, tag in rs.items]

    def name_unmapped(self, group):
        """After the FIEMAP pass: bytes it left ``unknown`` that debugfs names as a block of a
        symlink (or other inode that is never opened) still living at its path become that
        inode's metadata. Sound because the pass proved no regular file or directory maps them;
        the candidate only says whose metadata they are."""
        if not self.unopened or not self.owner_of:
            return
        for t in group:
            for o in t.result["owners"]:
                if o["kind"] != "unknown" or o["inode"] is not None or o["fs_offset"] is None:
                    continue
                first = o["fs_offset"] // self.bs
                last = (o["fs_offset"] + max(o["length"] or 1, 1) - 1) // self.bs
                inos = set(self.owner_of.get(b) for b in range(first, last + 1))
                if len(inos) != 1:
                    continue
                ino = inos.pop()
                if ino not in self.unopened:
                    continue
                inode_type, live_paths = self.unopened[ino]
                o["kind"], o["metadata_kind"] = _kind.inode_owner_kind(inode_type)
                o["inode"] = ino
                o["paths"] = list(live_paths)
                o["reason"] = ("debugfs names inode %d (a %s) for these bytes and no regular file "
                               "or directory maps them" % (ino, inode_type))


def _verify_candidate(ino, paths, rs, tags, fs, root_dev, buf):
    """Open *ino* through one of *paths* and record every pending byte its live FIEMAP covers.

    A candidate that is a symlink, device node, fifo or socket is never opened (no follow, no
    device open): returns (type, [live paths]) for it, else None."""
    live_paths = []
    unopened = []
    unopened_type = None
    fd = None
    st = None
    for p in paths:
        try:
            lst = os.lstat(p)
        except OSError:
            continue
        if lst.st_ino != ino or lst.st_dev != root_dev:
            continue  # stale name: another inode lives there now
        if not (_stat.S_ISREG(lst.st_mode) or _stat.S_ISDIR(lst.st_mode)):
            unopened.append(p)
            unopened_type = _kind.type_from_mode(lst.st_mode)
            continue
        live_paths.append(p)
        if fd is None:
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _fiemap.O_NOATIME)
            except OSError:
                try:
                    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
            st = os.fstat(fd)
            if st.st_ino != ino or st.st_dev != root_dev:  # replaced between lstat and open
                os.close(fd)
                fd, st = None, None
                live_paths.pop()
    if fd is None:
        return (unopened_type, sorted(unopened)) if unopened else None
    inode_type = _kind.type_from_mode(st.st_mode)
    is_dir = inode_type == _kind.DIRECTORY
    try:
        gen = _fiemap.get_generation(fd)
        found = []
        for logical, physical, length, flags in _fiemap.extents(fd, buf=buf):
            if flags & _fiemap.NO_PHYSICAL:
                continue
            for s, e, tag in rs.overlapping(physical, physical + length):
                found.append((s, e, tag, logical + (s - physical), flags, False))
        if not rs.empty():
            # an xattr block (ext4 i_file_acl, an XFS attr fork extent) the candidate owns
            try:
                for logical, physical, length, flags in _fiemap.extents(fd, buf=buf, xattr=True):
                    if flags & _fiemap.NO_PHYSICAL:
                        continue
                    for s, e, tag in rs.overlapping(physical, physical + length):
                        found.append((s, e, tag, logical + (s - physical), flags, True))
            except (_fiemap.FiemapUnsupported, OSError):
                pass
    except (_fiemap.FiemapUnsupported, OSError):
        return
    finally:
        os.close(fd)
    for s, e, tag, file_offset, flags, attr in found:
        t = tags[tag]
        kind, mkind = _kind.inode_owner_kind(inode_type, attr_fork=attr)
        o = new_owner(kind, t.rid, fs, inode=ino, length=e - s,
                      file_offset=file_offset if kind == "file" or attr else None, fs_offset=s,
                      shared=bool(flags & _fiemap.FIEMAP_EXTENT_SHARED),
                      metadata_kind=mkind, attr_fork=attr)
        if flags & _fiemap.FIEMAP_EXTENT_UNWRITTEN:
            o["reason"] = "unwritten (preallocated) extent: reads return zeros"
        if len(live_paths) >= st.st_nlink or (is_dir and live_paths):
            o["_paths"] = sorted(live_paths)  # every link verified: no walk needed
            o["_generation"] = gen
        else:
            o["_path_hint"] = live_paths[0] if live_paths else None
            o["_nlink"] = st.st_nlink
        t.result["owners"].append(o)
        if not (flags & _fiemap.FIEMAP_EXTENT_SHARED):
            rs.remove(s, e)


def _fiemap_pass(pending, fs, note, max_walk_seconds):
    tags = {}
    intervals = []
    for s, e, t in pending:
        tags[id(t)] = t
        intervals.append((s, e, id(t)))
    scan = _fiemap.scan(fs["mountpoint"], intervals, max_seconds=max_walk_seconds)
    for h in scan["hits"]:
        t = tags[h["tag"]]
        kind, mkind = _kind.inode_owner_kind(h.get("inode_type") or (
            _kind.DIRECTORY if h["is_dir"] else _kind.REGULAR))
        o = new_owner(kind, t.rid, fs, inode=h["inode"], length=h["length"],
                      file_offset=h["file_offset"] if kind == "file" else None,
                      fs_offset=h["physical"], shared=h["shared"], metadata_kind=mkind)
        o["_path_hint"] = h["path"]
        o["_nlink"] = h["nlink"]
        if h["unwritten"]:
            o["reason"] = "unwritten (preallocated) extent: reads return zeros"
        # a shared block seen through a hard link twice: keep one
        if not any(x["inode"] == o["inode"] and x["fs_offset"] == o["fs_offset"]
                   for x in t.result["owners"]):
            t.result["owners"].append(o)
    found_shared = set((id(tags[h["tag"]]), h["physical"]) for h in scan["hits"] if h["shared"])
    for s, e, tag in scan["unaccounted"]:
        t = tags[tag]
        if any(k[0] == tag and s <= k[1] < e for k in found_shared):
            continue  # reflinked bytes stay "pending" by design; owners were found
        why = []
        if note:
            why.append(note)
        if scan["timed_out"]:
            why.append("the file scan hit max_walk_seconds before reaching every file")
        if scan["pending_writeback_count"]:
            why.append("%d file(s) have data only in the page cache (delayed allocation), e.g. %s;"
                       " it has no place on the device yet: run sync and resolve again" % (
                           scan["pending_writeback_count"], scan["pending_writeback"][0]))
        if scan["errors_count"]:
            why.append("%d file(s)/directories could not be read, e.g. %s: %s" % (
                scan["errors_count"], scan["errors"][0]["path"], scan["errors"][0]["error"]))
        if not why:
            why.append("allocated but no file or directory maps it: filesystem metadata "
                       "(extent tree, xattr or journal block) or an unlinked-but-open file")
        t.result["owners"].append(new_owner("unknown", t.rid, fs, length=e - s, fs_offset=s,
                                            reason="; ".join(why)))
    for t in set(tags.values()):
        if scan["pending_writeback_count"]:
            t.result["warnings"].append(
                "%d file(s) on %s have unwritten page-cache data not yet on pmem" % (
                    scan["pending_writeback_count"], fs["mountpoint"]))


def _wants_path(o):
    return o["inode"] is not None and (o["kind"] in ("file", "metadata") or o.get("_fork"))


def _attach_paths(group, fs, max_walk_seconds, fd=None, geom=None):
    mp = fs["mountpoint"]
    want = {}
    nlinks = {}
    for t in group:
        for o in t.result["owners"]:
            if not _wants_path(o):
                continue
            hint = o.pop("_path_hint", None)
            nlink = o.pop("_nlink", None)
            known = o.pop("_paths", None)
            if known:
                o["paths"] = known
                o["_verified"] = True
                continue
            if hint is not None and nlink == 1:
                o["paths"] = [hint]
                continue
            if nlink:
                nlinks[o["inode"]] = nlink
            want.setdefault(o["inode"], []).append(o)
    if not want:
        _finish(group, {}, fs, None)
        return
    complete_nlinks = nlinks if set(nlinks) == set(want) else None
    gens = dict((o["inode"], o.get("_generation")) for same in want.values() for o in same)
    res = _parents.find_paths(mp, want.keys(), fd=fd, geom=geom, generations=gens,
                              max_seconds=max_walk_seconds, nlinks=complete_nlinks)
    _finish(group, res["paths"], fs, res)


def _finish(group, paths, fs, res):
    gens = {}
    types = (res or {}).get("types") or {}
    for t in group:
        for o in t.result["owners"]:
            o.pop("_path_hint", None)
            o.pop("_nlink", None)
            o.pop("_paths", None)
            gen_known = o.pop("_generation", None)
            verified = o.pop("_verified", False)
            if o.get("_fork") == "data":
                # bulkstat was not available: the walk's d_type is the inode's type
                _apply_inode_type(o, types.get(o["inode"]))
            if not _wants_path(o) and not (o["inode"] is not None and o["kind"] == "unknown"):
                continue
            if res is not None and o["inode"] in paths:
                o["paths"] = paths[o["inode"]]
            if o["kind"] == "unknown":
                continue
            if not o["paths"]:
                if res is None:
                    continue
                why = "inode %d has no path on %s: freed since the query, unlinked but still " \
                      "open, or in a directory the walk could not read" % (o["inode"], fs["mountpoint"])
                if res.get("timed_out"):
                    why = "the path walk hit max_walk_seconds before finding inode %d" % o["inode"]
                elif res.get("errors_count"):
                    why += " (%d walk errors, e.g. %s: %s)" % (
                        res["errors_count"], res["errors"][0]["path"], res["errors"][0]["error"])
                o["reason"] = _join(o["reason"], why)
                o["generation"] = gen_known
                continue
            if (verified or gen_known is not None) and o["inode"] not in gens:
                gens[o["inode"]] = (gen_known, None)  # opened and checked, or read by number
            if o["inode"] not in gens:
                gens[o["inode"]] = _verify(o["paths"], o["inode"], fs)
            gen, problem = gens[o["inode"]]
            o["generation"] = gen
            if problem:
                o["reason"] = _join(o["reason"], problem)
        if res is not None and res.get("errors_count"):
            t.result["warnings"].append("path walk on %s: %d error(s), e.g. %s: %s" % (
                fs["mountpoint"], res["errors_count"], res["errors"][0]["path"],
                res["errors"][0]["error"]))


def _join(a, b):
    return "%s; %s" % (a, b) if a else b


def _verify(paths, ino, fs):
    """(generation, problem): check the first path that still exists is inode *ino* (lstat: a
    symlink is never followed); open it for the generation only when it is a regular file or a
    directory (a device node or fifo is never opened)."""
    for p in paths:
        try:
            lst = os.lstat(p)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            return None, "cannot stat %s: %s" % (p, e.strerror)
        if lst.st_ino != ino or (os.major(lst.st_dev), os.minor(lst.st_dev)) != fs["dev"]:
            return None, "path %s changed during the walk (now inode %d)" % (p, lst.st_ino)
        if not (_stat.S_ISREG(lst.st_mode) or _stat.S_ISDIR(lst.st_mode)):
            return None, None
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP):
                continue
            return None, "cannot open %s: %s" % (p, e.strerror)
        try:
            st = os.fstat(fd)
            if st.st_ino != ino or (os.major(st.st_dev), os.minor(st.st_dev)) != fs["dev"]:
                return None, "path %s changed during the walk (now inode %d)" % (p, st.st_ino)
            return _fiemap.get_generation(fd), None
        finally:
            os.close(fd)
    return None, "every path of inode %d vanished during the walk" % ino


def _resolve_offline(group, fs, run):
    geom = fs["geom"]
    dev = fs["device"]
    intervals = []
    for t in group:
        if t.offset >= geom["size"]:
            t.result["owners"].append(new_owner(
                "unknown", t.rid, fs, length=t.length, fs_offset=t.offset,
                reason="beyond the end of the filesystem (%d bytes): not used by it" % geom["size"]))
            continue
        end = min(t.offset + t.length, geom["size"])
        intervals.append((t.offset, end, t))
        if end < t.offset + t.length:
            t.result["owners"].append(new_owner(
                "unknown", t.rid, fs, length=t.offset + t.length - end, fs_offset=end,
                reason="beyond the end of the filesystem"))
    if not intervals:
        return
    keyed = [(s, e, id(t)) for s, e, t in intervals]
    by = dict((id(t), t) for _s, _e, t in intervals)
    infos = {}
    if fs["fstype"] == "xfs":
        pieces = _offline.xfs_owners(dev, keyed, geom, run=run)
    else:
        pieces, infos = _offline.ext4_owners(dev, keyed, geom, run=run)
    inodes = set()
    for tag, plist in pieces.items():
        t = by[tag]
        for p in plist:
            t.result["owners"].append(_piece_to_owner(t, fs, p))
            if p.get("inode"):
                inodes.add(p["inode"])
    inodes = sorted(inodes)
    nlinks = {}
    if fs["fstype"] == "xfs":
        paths = _offline.xfs_paths(dev, inodes, run=run)
        nlinks = _offline.xfs_nlinks(dev, inodes, run=run)
    else:
        paths = _offline.ext4_paths(dev, inodes, run=run)
    for t in group:
        t.result["owners"].sort(key=lambda o: (o["fs_offset"] if o["fs_offset"] is not None
                                               else -1, o["inode"] or 0))
        t.result["owners"] = _merge(t.result["owners"])
        for o in t.result["owners"]:
            if o["inode"] is not None:
                o["paths"] = paths.get(o["inode"], [])
                n = nlinks.get(o["inode"])
                if n is not None and n > len(o["paths"]) and o["kind"] == "file":
                    o["reason"] = _join(o["reason"], (
                        "inode has %d links, xfs_db ncheck names %d: mount the filesystem to "
                        "list every hard link") % (n, len(o["paths"])))
                if o["inode"] in infos:
                    o["generation"] = infos[o["inode"]].get("generation")
        t.result["warnings"].append(
            "filesystem not mounted: owners read from %s; paths are relative to its root" % dev)
