# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""resolve_owners(bad_ranges, facts): who owns each bad range (docs/design.md, "Owner"). The
dispatch; each backend is its own file.

Dispatch per range:

- ``area: info_block`` -> owner kind ``info_block``; outside the namespace/partition -> ``unknown``.
- devdax namespace (``dax_device``) or a block device with no filesystem -> ``devdax``/``raw`` with
  the processes that have the device open or mapped (/proc/*/fd, /proc/*/maps).
- mounted filesystem: owners_mounted.py (GETFSMAP, then one FIEMAP pass for what it cannot name;
  on ext2/3/4 as root the debugfs candidates of owners_ext4.py first).
- unmounted filesystem: owners_offline.py (xfs_db / debugfs on the block device).
- paths of every inode owner: owners_paths.py (one walk, inode_paths.py).
- anything else -> ``unknown`` with the reason. No range is dropped; one range failing never stops
  the others.

Ranges are grouped by filesystem device number, so a filesystem mounted twice is resolved once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat as _stat

from ansible_collections.pmem.poison.plugins.module_utils._pmem import identity as _identity
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_record as _record
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_mounted as _mounted
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_offline as _offline
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    GatherError, InputError, RangeOutsideDevice)
from ansible_collections.pmem.poison.plugins.module_utils._pmem.owner_record import new_owner

SUPPORTED_FS = ("xfs", "ext4", "ext3", "ext2")


# ------------------------------------------------------------------ small helpers
def read_mountinfo(proc_root="/proc"):
    """The mounts of /proc/self/mountinfo (topology.parse_mountinfo), [] when unreadable."""
    try:
        with open(os.path.join(proc_root, "self", "mountinfo")) as f:
            return _topology.parse_mountinfo(f.read())
    except (IOError, OSError):
        return []


def mount_dev(mount):
    """(major, minor) of a topology mount (``dev: "259:1"``)."""
    major, minor = mount["dev"].split(":")
    return int(major), int(minor)


def mounts_by_dev(mounts):
    """{(major, minor): [mount, ...]} with whole-filesystem mounts (root '/') first."""
    by = {}
    for m in mounts:
        by.setdefault(mount_dev(m), []).append(m)
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
    filesystem bytes) -> a BadRange-shaped dict; ``given`` keeps the operator's device and offset
    (no list named these bytes, so there are no region or namespace coordinates)."""
    device = item["device"]
    offset = int(item["offset"])
    length = int(item["length"])
    name = os.path.basename(device.rstrip("/")) or device
    rng = {"id": item.get("id") or "%s@%#x+%#x" % (name, offset, length), "region": None,
           "namespace": None, "blockdev": None, "partition": None, "dax_device": None,
           "length": length, "area": "data", "absolute": None, "blockdev_offset": None,
           "partition_offset": None, "filesystem": None,
           "given": {"device": device, "offset": offset}}
    if name.startswith("dax") and "." in name:
        rng["dax_device"] = name
    return rng


# ------------------------------------------------------------------ dispatch
class _Target(object):
    """One range, normalised: where on which device, and what kind of thing lives there. Backends
    ``add`` what they find (owner_record.Found); ``resolve_owners`` returns ``result``."""

    def __init__(self, rng):
        self.rng = rng
        self.rid = rng.get("id")
        self.length = int(rng.get("length") or 0)
        self.result = {"range_id": self.rid, "owners": [], "error": None, "warnings": []}
        self.fs = None          # {device, mountpoint, fstype, dev, mount_root}
        self.offset = None      # bytes on the filesystem's device
        self.devpath = None
        self.found = []         # [owner_record.Found]

    def add(self, owner, **state):
        """Add an owner (with the resolution state a backend learnt, see owner_record.Found)."""
        found = _record.Found(owner, **state)
        self.found.append(found)
        return found

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
        if t.fs is not None and not t.found and not t.result["error"]:
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
    for t in targets:
        t.result["owners"] = [f.owner for f in t.found]
    return [t.result for t in targets]


def _classify(t, facts, by_dev, proc_root, dev_root, sysfs_root="/sys"):
    rng = t.rng
    area = rng.get("area") or "data"
    if area == "info_block":
        t.add(new_owner(
            "info_block", t.rid, device=_blockdev_path(rng, dev_root), length=t.length,
            reason="namespace info block / memmap reserve: not reachable through the block device"))
        return
    if area in ("outside_partition", "outside_namespace"):
        t.add(new_owner(
            "unknown", t.rid, length=t.length,
            reason="range lies %s: no filesystem or device owns it" % area.replace("_", " ")))
        return
    if rng.get("dax_device"):
        path = os.path.join(dev_root, rng["dax_device"])
        offset = (rng.get("given") or {}).get("offset")  # device bytes: known for a range given directly
        size = dax_device_size(rng["dax_device"], sysfs_root)
        if offset is not None and (offset < 0 or (size is not None and offset + t.length > size)):
            t.fail(RangeOutsideDevice(
                "bytes %d-%d lie beyond the end of the device (%s bytes)" % (
                    offset, offset + t.length, size), device=path, range=t.rid,
                next_step="check the range's coordinates (devdax offsets start at the data area)"))
            return
        t.add(new_owner(
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
    given = rng.get("given")
    path = given["device"] if given else _blockdev_path(rng, dev_root)
    if given:
        t.offset = given["offset"]
    elif rng.get("partition"):
        t.offset = rng.get("partition_offset")
    else:
        t.offset = rng.get("blockdev_offset")
    if path is None or t.offset is None:
        t.add(new_owner(
            "unknown", t.rid, length=t.length,
            reason="no block device offset for this range (need root for region math?)"))
        return
    try:
        st = os.stat(path)
    except OSError as e:
        raise GatherError("cannot stat %s: %s" % (path, e.strerror), device=path, range=t.rid)
    if _stat.S_ISDIR(st.st_mode):  # a mount point: offsets are filesystem bytes
        dev = (os.major(st.st_dev), os.minor(st.st_dev))
        _require_mount_point(path, dev, by_dev, t.rid)
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
            t.add(new_owner(
                "metadata", t.rid, fs, metadata_kind="log", length=t.length, fs_offset=t.offset,
                reason="external log device of the %s filesystem mounted at %s" % (
                    m["fstype"], m["mountpoint"])))
        else:
            t.add(new_owner(
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
        t.add(new_owner(
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
            for opt in (m.get("super_options") or "").split(","):
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


def _require_mount_point(path, dev, by_dev, rid):
    """A directory given as the device must be where the filesystem is mounted: offsets are bytes
    of the whole filesystem, and a directory inside it would be read as if the operator meant
    offsets relative to it."""
    mountpoints = [m["mountpoint"] for m in by_dev.get(dev) or []]
    real = os.path.realpath(path)
    if any(os.path.realpath(mp) == real for mp in mountpoints):
        return
    raise InputError(
        "%s is a directory, not a mount point: a range given by a directory is bytes of the "
        "filesystem mounted there, so it must be the mount point itself" % path, device=path, range=rid,
        next_step="give the mount point (%s) with filesystem byte offsets, or the block device"
        % (", ".join(mountpoints) or "none found in mountinfo for device %d:%d" % dev))


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
            t.add(new_owner(
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
        _offline.resolve(live, fs, run)
    else:
        _mounted.resolve(live, fs, walk_paths, max_walk_seconds, run=run,
                         ext4_debugfs=ext4_debugfs, dev_root=dev_root)


def _fs_uuid(fs, dev_root):
    """The filesystem uuid from its superblock (the stable key of filesystem owners: device names
    move across reboots), or None when the device cannot be read (not root)."""
    return (_offline.probe_filesystem(fs, dev_root) or {}).get("uuid")
