# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clearing poison: one function per method, each with its own refusal checks, and verification.

Write-ahead protocol for every clear (see ``execute``):
  1. ``clear_planned`` appended to the entry and the ledger saved (fsynced) BEFORE touching data;
  2. the action (rewrite / reallocate / device_write / ndctl);
  3. verification: re-read the badblocks list(s), and for file rewrites read the range back;
  4. ``cleared`` (plus the closure) or ``clear_failed`` appended and saved.
A rerun that finds a ``clear_planned`` without a result first checks whether the previous run
already completed the write (content equals the good data and the range is no longer listed) and
then only records the result: nothing is done twice.

Bad-range lists are read through ONE provider object: ``TopologyBadblocks`` (the facts core,
``topology.gather_topology`` + ``ranges.gather_bad_ranges``: region lists, block-device lists and
``ndctl list -M`` all count; a range still listed in any of them after a clear is a failure).
``PMEM_POISON_TEST_BADBLOCKS`` (a JSON file) swaps in ``FileBadblocks`` for host tests on loop
devices, which cannot be poisoned.
``PMEM_POISON_TEST_CRASH_AT=<point>`` makes the process SIGKILL itself at a named point.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import signal
import subprocess

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine as Q
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    DeviceCannotClear,
    GatherError,
    MountedFilesystem,
    PmemError,
    SourceMismatch,
)

PAGE = 4096
SECTOR = 512
ZEROS = "zeros"
CRASH_ENV = "PMEM_POISON_TEST_CRASH_AT"
FAKE_ENV = "PMEM_POISON_TEST_BADBLOCKS"
CRASH_POINTS = ("after_clear_planned", "after_write", "after_verify", "after_result")
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


def crash_point(name):
    """Test hook: SIGKILL this process at the named point when the env var asks for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# bad-range providers
# --------------------------------------------------------------------------------------------

def parse_badblocks(text):
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]), int(parts[1])))
    return out


def _overlaps(a_off, a_len, b_off, b_len):
    return a_off < b_off + b_len and b_off < a_off + a_len


def range_matches(rng, listed):
    """Does the listed BadRange ``listed`` cover any byte of the ledger range ``rng``?

    Compared in region coordinates when both have them (the region list, ndctl and the block
    device list all land there as root), else in block-device coordinates, else by id."""
    length = rng.get("length") or 0
    if rng.get("region") and rng.get("region_offset") is not None and \
            listed.get("region") == rng["region"] and listed.get("region_offset") is not None:
        return _overlaps(rng["region_offset"], length, listed["region_offset"],
                         listed.get("length") or 0)
    if rng.get("blockdev") and rng.get("blockdev_offset") is not None and \
            listed.get("blockdev") == rng["blockdev"] and \
            listed.get("blockdev_offset") is not None:
        return _overlaps(rng["blockdev_offset"], length, listed["blockdev_offset"],
                         listed.get("length") or 0)
    return bool(rng.get("id")) and rng.get("id") == listed.get("id")


def _summary(listed):
    return dict((k, listed.get(k)) for k in ("id", "sources", "region", "region_offset",
                                             "blockdev", "blockdev_offset", "length"))


class SysfsBadblocks:
    """``/sys/block/<dev>/badblocks`` only (sectors from sector 0 of the whole block device).

    Kept as the base of the host-test fake; pmem_clear verifies with ``TopologyBadblocks``."""

    def __init__(self, sysfs_root="/sys"):
        self.sysfs_root = sysfs_root

    def sectors(self, blockdev):
        dev = re.sub(r"(?<=\d)p\d+$", "", os.path.basename(blockdev))
        try:
            with open(os.path.join(self.sysfs_root, "block", dev, "badblocks")) as f:
                return parse_badblocks(f.read())
        except (IOError, OSError):
            return []

    def invalidate(self):
        """Forget any cached snapshot (called after every clear attempt)."""

    def notify_written(self, blockdev, offset, length):
        """The kernel updates its own lists; nothing to do."""

    def listed(self, blockdev, offset, length):
        """Sectors of [offset, offset+length) (bytes, whole-device) still listed."""
        if blockdev is None or offset is None:
            return []
        lo, hi = offset // SECTOR, -(-(offset + length) // SECTOR)
        return [(s, c) for s, c in self.sectors(blockdev) if s < hi and s + c > lo]

    def listed_range(self, rng):
        """Listed ranges (BadRange summaries) covering the ledger range ``rng``."""
        blockdev, off = rng.get("blockdev"), rng.get("blockdev_offset")
        out = []
        for s, c in self.listed(blockdev, off, rng.get("length") or 0):
            out.append({"id": "%s@%#x+%#x" % (blockdev, s * SECTOR, c * SECTOR),
                        "sources": ["blockdev"], "region": None, "region_offset": None,
                        "blockdev": blockdev, "blockdev_offset": s * SECTOR,
                        "length": c * SECTOR})
        return out


class TopologyBadblocks(object):
    """The facts core (``topology.gather_topology`` + ``ranges.gather_bad_ranges``): the region
    lists, the block-device lists and ``ndctl list -M`` all count. One snapshot is cached until
    ``invalidate``/``notify_written`` (every clear attempt invalidates it before verifying)."""

    def __init__(self, sysfs_root="/sys", proc_root="/proc", dev_root="/dev", ndctl="auto",
                 as_root=None):
        self.roots = {"sysfs_root": sysfs_root, "proc_root": proc_root, "dev_root": dev_root}
        self.ndctl = ndctl
        self.as_root = as_root
        self._ranges = None
        self.errors = []
        self.warnings = []

    def ranges(self):
        if self._ranges is None:
            from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as R
            from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as T
            ndctl = T.find_ndctl() if self.ndctl == "auto" else self.ndctl
            topo = T.gather_topology(ndctl=ndctl, as_root=self.as_root, **self.roots)
            self.warnings = list(topo.get("warnings") or [])
            self.errors = list(topo.get("errors") or [])
            self._ranges = R.gather_bad_ranges(topo, warnings=self.warnings)
        return self._ranges

    def invalidate(self):
        self._ranges = None

    def notify_written(self, blockdev, offset, length):
        self.invalidate()

    def listed_range(self, rng):
        found = [_summary(r) for r in self.ranges() if range_matches(rng, r)]
        names = set(v for v in (rng.get("region"), rng.get("namespace"), rng.get("blockdev"))
                    if v)
        unread = [e for e in self.errors
                  if e.get("device") in names or e.get("device") == "ndctl"]
        if unread and not found:
            raise GatherError("cannot verify: the lists could not be read (%s)" % "; ".join(
                "%s: %s" % (e.get("file") or e.get("device"), e.get("message")) for e in unread),
                device=rng.get("blockdev") or rng.get("region"), range=rng.get("id"),
                next_step="check the device and re-run pmem_clear")
        return found


class FileBadblocks(SysfsBadblocks):
    """Host-test provider: ``{"devices": {"loop0": [[sector, count]]}, "write_clears": true,
    "write_errno": null}`` in a JSON file. A covering write removes whole sectors (e820 pmem) when
    ``write_clears``; ``write_errno`` (e.g. 5) makes writes over listed sectors fail (QEMU)."""

    def __init__(self, path):
        SysfsBadblocks.__init__(self)
        self.path = path

    def _load(self):
        with open(self.path) as f:
            return json.load(f)

    def sectors(self, blockdev):
        dev = re.sub(r"(?<=\d)p\d+$", "", os.path.basename(blockdev))
        return [tuple(x) for x in self._load().get("devices", {}).get(dev, [])]

    def write_error(self, blockdev, offset, length):
        data = self._load()
        if data.get("write_errno") and self.listed(blockdev, offset, length):
            return int(data["write_errno"])
        return None

    def notify_written(self, blockdev, offset, length):
        data = self._load()
        if not data.get("write_clears", True):
            return
        dev = re.sub(r"(?<=\d)p\d+$", "", os.path.basename(blockdev))
        lo, hi = offset // SECTOR, (offset + length) // SECTOR  # whole sectors only
        kept = []
        for s, c in data.get("devices", {}).get(dev, []):
            for sec in range(s, s + c):
                if not lo <= sec < hi:
                    kept.append([sec, 1])
        data.setdefault("devices", {})[dev] = kept
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.rename(tmp, self.path)


def default_provider(sysfs_root="/sys", proc_root="/proc", dev_root="/dev"):
    if os.environ.get(FAKE_ENV):
        return FileBadblocks(os.environ[FAKE_ENV])
    return TopologyBadblocks(sysfs_root, proc_root, dev_root)


# --------------------------------------------------------------------------------------------
# capabilities (the clearing matrix, read off sysfs)
# --------------------------------------------------------------------------------------------

def probe_capabilities(sysfs_root="/sys"):
    """{kernel, devices: {pmemN: {bus_kind, provider, write_clears, ndctl_clear, description}}}.

    e820 legacy pmem and virtio-pmem: the kernel treats a clear as done -> a covering write
    clears. nfit_test: clears by write and by ndctl. ACPI.NFIT without ``nfit/scrub`` (the QEMU
    NVDIMM): no ARS and no clear DSM -> writes fail, ndctl clear-errors fails. Real NFIT with
    ARS: unknown until tried (``write_clears: None``; verification decides)."""
    caps = {"kernel": os.uname()[2], "devices": {}}
    block = os.path.join(sysfs_root, "block")
    try:
        names = sorted(n for n in os.listdir(block) if n.startswith("pmem"))
    except OSError:
        names = []
    for name in names:
        real = os.path.realpath(os.path.join(block, name, "device"))
        m = re.search(r"/(ndbus\d+)(/|$)", real)
        info = {"bus_kind": "unknown", "provider": None, "write_clears": None,
                "ndctl_clear": False, "description": "pmem device %s" % name}
        if m:
            bus = os.path.join(real[:m.end(1)])
            try:
                with open(os.path.join(bus, "provider")) as f:
                    provider = f.read().strip()
            except (IOError, OSError):
                provider = ""
            info["provider"] = provider
            if provider == "e820":
                info.update(bus_kind="e820", write_clears=True,
                            description="%s (e820 legacy pmem)" % name)
            elif provider.startswith("nfit_test"):
                info.update(bus_kind="nfit_test", write_clears=True, ndctl_clear=True,
                            description="%s (nfit_test bus)" % name)
            elif provider.startswith("virtio"):
                info.update(bus_kind="virtio", write_clears=True,
                            description="%s (virtio-pmem)" % name)
            elif provider == "ACPI.NFIT":
                if os.path.exists(os.path.join(bus, "nfit", "scrub")):
                    info.update(bus_kind="acpi_nfit", ndctl_clear=True,
                                description="%s (ACPI NFIT with ARS)" % name)
                else:
                    info.update(bus_kind="acpi_nfit", write_clears=False,
                                description="%s (ACPI NFIT without ARS/clear DSMs, e.g. the "
                                            "QEMU NVDIMM)" % name)
        caps["devices"][name] = info
    return caps


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def pread_exact(fd, length, offset):
    out = b""
    while len(out) < length:
        chunk = os.pread(fd, length - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return out


def mounted_devices(proc_root="/proc"):
    """Set of device numbers (major, minor) with a mounted filesystem (mountinfo field 3)."""
    out = set()
    try:
        with open(os.path.join(proc_root, "self", "mountinfo")) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and ":" in parts[2]:
                    a, b = parts[2].split(":", 1)
                    out.add((int(a), int(b)))
    except (IOError, OSError):
        pass
    return out


_libc = None


def fallocate(fd, mode, offset, length):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong,
                                    ctypes.c_longlong]
    if _libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _range_info(entry):
    rng = entry.get("range") or {}
    return rng.get("blockdev"), rng.get("blockdev_offset"), rng.get("length") or 0


# --------------------------------------------------------------------------------------------
# methods: each returns a details dict or raises PmemError; none touches the ledger
# --------------------------------------------------------------------------------------------

def good_data(entry, source, offset, length, file_size):
    """Bytes to write at [offset, offset+length): from ``source`` at the same offsets, or zeros.
    Past the target's EOF the page is padded with zeros (the caller truncates back)."""
    if source == ZEROS:
        return b"\0" * length, None
    try:
        dfd, _name, sfd = Q.open_file_nofollow(source)
    except Q.Skip as e:
        raise SourceMismatch("restore source unusable: %s" % e, range=entry["id"],
                             next_step="fix policy.restore_sources / source")
    try:
        st = os.fstat(sfd)
        if st.st_size != file_size:
            raise SourceMismatch(
                "source %s has %d bytes, the damaged file %d: not a copy of it"
                % (source, st.st_size, file_size), range=entry["id"],
                next_step="give a known-good copy of the same file")
        data = pread_exact(sfd, min(length, max(0, file_size - offset)), offset)
    except OSError as e:
        raise SourceMismatch("cannot read source %s: %s" % (source, os.strerror(e.errno)),
                             range=entry["id"], next_step="give a readable known-good copy")
    finally:
        os.close(sfd)
        os.close(dfd)
    return data + b"\0" * (length - len(data)), source


def _open_target(entry):
    """(path, read-only fd) of the damaged file, identity checked, no symlink followed."""
    owner = entry.get("owner") or {}
    renamed = dict((r["from"], r["to"]) for r in
                   (entry.get("containment") or {}).get("rename", []))
    skipped = []
    for p in owner.get("paths") or []:
        path = renamed.get(p, p)
        try:
            dfd, _name, rfd = Q.open_file_nofollow(path)
        except Q.Skip as e:
            skipped.append(str(e))
            continue
        os.close(dfd)
        try:
            Q.check_identity(rfd, path, owner)
        except Q.Skip as e:
            os.close(rfd)
            skipped.append(str(e))
            continue
        return path, rfd
    raise SourceMismatch("no usable path for the damaged file: %s" % "; ".join(skipped),
                         range=entry["id"], next_step="re-run pmem_resolve; the file changed")


class _Unimmutable:
    """Lift FS_IMMUTABLE_FL for the write when our containment set it."""

    def __init__(self, fd, entry):
        self.fd, self.entry, self.flags = fd, entry, None

    def __enter__(self):
        try:
            flags = Q.get_flags(self.fd)
        except (IOError, OSError):
            return self
        if flags & Q.FS_IMMUTABLE_FL:
            if "immutable" not in (self.entry.get("containment") or {}):
                raise PmemError("file is immutable (not set by pmem.poison)",
                                range=self.entry["id"], next_step="chattr -i the file")
            Q.set_flags(self.fd, flags & ~Q.FS_IMMUTABLE_FL)
            self.flags = flags
        return self

    def __exit__(self, *exc):
        if self.flags is not None:
            Q.set_flags(self.fd, self.flags)
        return False


def _write_error(entry, e, where):
    blockdev, off, length = _range_info(entry)
    name = errno.errorcode.get(e.errno, str(e.errno))
    return DeviceCannotClear(
        "%s failed: %s (%s)" % (where, os.strerror(e.errno), name), device=blockdev,
        range=(entry.get("range") or {}).get("id"),
        next_step="the device did not clear the poison; the data is recorded and quarantined",
        details={"errno": e.errno, "errno_name": name})


def rewrite(entry, source, provider, reallocate=False):
    """Whole-page pwrite of good data over the owner range (optionally punching first)."""
    owner = entry["owner"]
    offset, length = owner.get("repair_offset"), owner.get("repair_length")
    if offset is None or offset % PAGE or not length or length % PAGE:
        raise PmemError("repair range %s+%s is not page aligned" % (offset, length),
                        range=entry["id"], next_step="re-run pmem_resolve")
    if source == ZEROS and not (entry.get("closure") or {}).get("how") == "accepted_lost":
        raise PmemError("zeros may only be written over ranges accepted as lost",
                        range=entry["id"], next_step="accept the loss first or give a source")
    path, fd = _open_target(entry)
    wfd = None
    try:
        size = os.fstat(fd).st_size
        data, src = good_data(entry, source, offset, length, size)
        blockdev, boff, blen = _range_info(entry)
        fake_err = getattr(provider, "write_error", lambda *a: None)(blockdev, boff, blen)
        with _Unimmutable(fd, entry):
            try:
                # reopen the very inode for writing (no path lookup, so no race)
                wfd = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_CLOEXEC)
                if reallocate:
                    fallocate(wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
                if fake_err:
                    raise OSError(fake_err, os.strerror(fake_err))
                pwrite_all(wfd, data, offset)
                if os.fstat(wfd).st_size != size:
                    os.ftruncate(wfd, size)
                os.fsync(wfd)
            except OSError as e:
                raise _write_error(entry, e, "%s of %s at %d+%d" % (
                    "reallocate" if reallocate else "rewrite", path, offset, length))
        if boff is not None:
            provider.notify_written(blockdev, boff, blen)  # the kernel does this in the write
        crash_point("after_write")
        back = pread_exact(fd, min(length, max(0, size - offset)), offset)
        if back != data[:len(back)]:
            raise PmemError("read-back of %s at %d differs from what was written" % (path, offset),
                            range=entry["id"], next_step="check the device")
    finally:
        if wfd is not None:
            os.close(wfd)
        os.close(fd)
    return {"method": "reallocate" if reallocate else "rewrite", "path": path,
            "offset": offset, "length": length, "source": src or ZEROS,
            "sha256": sha256(data[:max(0, min(length, size - offset))])}


def already_rewritten(entry, source):
    """After a crash: does the file already hold the good data (so the write is not repeated)?"""
    owner = entry["owner"]
    offset, length = owner.get("repair_offset"), owner.get("repair_length")
    try:
        path, fd = _open_target(entry)
    except PmemError:
        return None
    try:
        size = os.fstat(fd).st_size
        data, _src = good_data(entry, source, offset, length, size)
        n = max(0, min(length, size - offset))
        try:
            back = pread_exact(fd, n, offset)
        except OSError:
            return None  # still poisoned (EIO)
        if back == data[:n]:
            return {"method": "rewrite", "path": path, "offset": offset, "length": length,
                    "source": source, "sha256": sha256(back), "completed_by_previous_run": True}
    finally:
        os.close(fd)
    return None


def device_write(entry, provider, dev_root="/dev", proc_root="/proc", blocked_devs=None):
    """Zeros over whole sectors through the unmounted block device."""
    owner = entry.get("owner") or {}
    closed_lost = (entry.get("closure") or {}).get("how") == "accepted_lost"
    if owner.get("kind") not in ("free", "raw", "unknown") and not closed_lost:
        raise PmemError("device_write only covers ranges with no file owner or accepted as lost "
                        "(owner kind %s)" % owner.get("kind"), range=entry["id"],
                        next_step="restore the file (rewrite) or accept the loss")
    blockdev, off, length = _range_info(entry)
    if not blockdev or off is None:
        raise PmemError("range has no block-device offset (outside the data area)",
                        range=entry["id"], next_step="clear with the namespace in raw mode")
    rng = entry.get("range") or {}
    # write through the partition when the range is inside one: the other partitions of the
    # same disk may stay mounted (an O_EXCL open of the whole disk fails while any is claimed)
    shift = 0
    if rng.get("partition") and rng.get("partition_offset") is not None:
        dev = os.path.join(dev_root, os.path.basename(rng["partition"]))
        shift = off - rng["partition_offset"]
    else:
        dev = os.path.join(dev_root, re.sub(r"(?<=\d)p\d+$", "", blockdev))
    lo = off // SECTOR * SECTOR
    hi = -(-(off + length) // SECTOR) * SECTOR
    try:
        fd = os.open(dev, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise MountedFilesystem("%s is in use (mounted or held open)" % dev, device=dev,
                                    range=entry["range"].get("id"),
                                    next_step="unmount every filesystem on it first")
        raise PmemError("cannot open %s: %s" % (dev, os.strerror(e.errno)), device=dev)
    try:
        st = os.fstat(fd)
        mounted = blocked_devs if blocked_devs is not None else mounted_devices(proc_root)
        if (os.major(st.st_rdev), os.minor(st.st_rdev)) in mounted:
            raise MountedFilesystem("%s is mounted" % dev, device=dev,
                                    range=entry["range"].get("id"),
                                    next_step="unmount it first")
        fake_err = getattr(provider, "write_error", lambda *a: None)(blockdev, off, length)
        try:
            if fake_err:
                raise OSError(fake_err, os.strerror(fake_err))
            pwrite_all(fd, b"\0" * (hi - lo), lo - shift)
            os.fsync(fd)
        except OSError as e:
            raise _write_error(entry, e, "write of %s at %d+%d" % (dev, lo, hi - lo))
        provider.notify_written(blockdev, lo, hi - lo)
        crash_point("after_write")
    finally:
        os.close(fd)
    return {"method": "device_write", "device": dev, "offset": lo - shift, "length": hi - lo,
            "blockdev_offset": lo}


def ndctl_clear(entry, runner=None, proc_root="/proc"):
    """``ndctl clear-errors <namespace>`` (argument list, never a shell string)."""
    ns = (entry.get("range") or {}).get("namespace")
    if not ns:
        raise PmemError("range has no namespace", range=entry["id"],
                        next_step="use device_write")
    argv = ["ndctl", "clear-errors", ns]
    runner = runner or (lambda a: subprocess.run(a, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE,
                                                 universal_newlines=True, check=False))
    proc = runner(argv)
    if proc.returncode != 0:
        raise DeviceCannotClear("ndctl clear-errors failed: %s" % (proc.stderr or "").strip(),
                                device=ns, range=(entry.get("range") or {}).get("id"),
                                next_step="this bus cannot clear; recreate the namespace")
    return {"method": "ndctl", "argv": argv, "stdout": proc.stdout}


def verify(entry, provider):
    """Listed ranges (summaries) still covering the entry's range: [] means cleared."""
    return provider.listed_range(entry.get("range") or {})


# --------------------------------------------------------------------------------------------
# the write-ahead executor
# --------------------------------------------------------------------------------------------

def _pending_plan(entry):
    """The last clear_planned event if no result followed it."""
    for ev in reversed(entry.get("history", [])):
        if ev["event"] in ("cleared", "clear_failed"):
            return None
        if ev["event"] == "clear_planned":
            return ev
    return None


def execute(store, action, provider, check=False, runner=None, dev_root="/dev",
            proc_root="/proc"):
    """Carry out one clear action (from plan.plan_actions) against ``store`` (a LedgerStore).

    Returns a result dict {entry_id, action, changed, status: cleared|failed|skipped|planned,
    details, error}. Raises nothing for per-range failures; they are in the result and the
    ledger (clear_failed)."""
    eid = action["entry_id"]
    res = {"entry_id": eid, "action": action["action"], "range_id": action.get("range_id"),
           "changed": False, "status": None, "details": {}, "error": None}
    entry = store.entry(eid)
    if entry is None:
        res.update(status="skipped", error="entry %s is not in the ledger" % eid)
        return res
    method = {"rewrite": "rewrite", "reallocate": "reallocate", "device_write": "device_write",
              "ndctl_clear": "ndctl"}[action["action"]]
    source = action.get("source")
    pending = _pending_plan(entry)
    if method == "reallocate" and any(
            h["event"] in ("cleared", "clear_failed")
            and h["details"].get("method") == "reallocate" for h in entry["history"]):
        res.update(status="skipped", details={"reason": "already reallocated; poison stays in "
                                                        "free space until cleared offline"})
        return res
    if check:
        res.update(status="planned", changed=True)
        return res
    if pending is not None and method == "rewrite":
        done = already_rewritten(entry, pending["details"].get("source") or source)
        provider.invalidate()
        if done is not None and not verify(entry, provider):
            entry = L.apply_event(entry, "cleared", None, dict(done, verified=True))
            entry = _close_after_clear(entry, done)
            store.update(entry)
            store.commit()
            res.update(status="cleared", changed=True, details=done)
            return res
    planned = {"method": method, "source": source, "offset": action.get("offset"),
               "length": action.get("length"), "pid": os.getpid()}
    store.update(L.apply_event(entry, "clear_planned", None, planned))
    store.commit()  # write-ahead: fsynced before the action
    crash_point("after_clear_planned")
    entry = store.entry(eid)
    try:
        if method in ("rewrite", "reallocate"):
            details = rewrite(entry, source, provider, reallocate=(method == "reallocate"))
        elif method == "device_write":
            details = device_write(entry, provider, dev_root, proc_root)
        else:
            details = ndctl_clear(entry, runner, proc_root)
        provider.invalidate()  # verify on a fresh read of every list
        still = verify(entry, provider)
        crash_point("after_verify")
    except (PmemError, OSError) as e:
        if not isinstance(e, PmemError):
            e = PmemError("%s failed: %s" % (method, e), range=eid)
        fail = dict(e.to_dict(), method=method)
        store.update(L.apply_event(entry, "clear_failed", None, fail))
        store.commit()
        res.update(status="failed", changed=True, error=str(e), details=fail)
        return res
    if still:
        rng = entry.get("range") or {}
        text = str(PmemError(
            "range still listed after %s: %s" % (method, ", ".join(
                "%s (%s list)" % (r.get("id"), "/".join(r.get("sources") or ["?"]))
                for r in still)),
            device=rng.get("blockdev") or rng.get("region"), range=rng.get("id"),
            next_step="the device did not clear the poison; the entry stays as recorded"
                      + (" (the file itself reads back good data)" if method == "reallocate"
                         else "; restore the data elsewhere or clear offline")))
        fail = dict(details, method=method, still_listed=still, msg=text)
        if method == "reallocate":
            fail.update(file_rewritten=True, poison_remains_in_free_space=True)
        store.update(L.apply_event(entry, "clear_failed", None, fail))
        store.commit()
        res.update(status="failed", changed=True, details=fail,
                   error=None if method == "reallocate" else text)
        return res
    details["verified"] = True
    entry = L.apply_event(entry, "cleared", None, details)
    if method != "reallocate":
        entry = _close_after_clear(entry, details)
    store.update(entry)
    store.commit()
    crash_point("after_result")
    res.update(status="cleared", changed=True, details=details)
    if (entry.get("owner") or {}).get("kind") == "file" and entry.get("state") == "closed":
        # After the record: a crash here leaves a stale marker that `state: released` refreshes.
        _unused, skipped = Q.refresh_marker(entry, store.path)
        if skipped:
            res["marker_skipped"] = skipped
    return res


def _close_after_clear(entry, details):
    if entry.get("state") == "closed":
        return entry
    kind = (entry.get("owner") or {}).get("kind")
    if kind == "file":
        if details.get("source") in (None, ZEROS):
            return entry  # zeros only over accepted (already closed) entries
        return L.close_entry(entry, "restored", None, by="pmem_clear",
                             why="rewritten from a known-good copy",
                             source=details.get("source"), sha256=details.get("sha256"))
    return L.close_entry(entry, "not_file_data_cleared", None, by="pmem_clear",
                         why="%s verified" % details.get("method"))


# --------------------------------------------------------------------------------------------
# the pmem_clear run (the module is a thin wrapper around this)
# --------------------------------------------------------------------------------------------

def merge_capabilities(probed, given):
    """Given capabilities (e.g. ``ansible_facts.pmem.capabilities``) win per device and key;
    devices or keys they lack come from the sysfs probe, ``kernel`` from uname."""
    out = {"kernel": (given or {}).get("kernel") or probed.get("kernel"),
           "devices": dict((k, dict(v)) for k, v in (probed.get("devices") or {}).items())}
    for name, info in ((given or {}).get("devices") or {}).items():
        merged = out["devices"].setdefault(name, {})
        merged.update(dict((k, v) for k, v in (info or {}).items() if v is not None
                           or k not in merged))
    return out


def listed_facts(ledger, provider):
    """A minimal ``{bad_ranges: [...]}`` from the ledger's ranges that are still listed."""
    seen = {}
    for entry in ledger.get("entries", []):
        rng = entry.get("range") or {}
        if rng.get("id") and rng["id"] not in seen and verify(entry, provider):
            seen[rng["id"]] = rng
    return {"bad_ranges": list(seen.values())}


def run_clear(ledger_path=L.DEFAULT_PATH, method="auto", entry_ids=None, source=None,
              policy=None, results=None, facts=None, capabilities=None, check=False,
              lock_timeout=30.0, provider=None, runner=None, dev_root="/dev", proc_root="/proc",
              sysfs_root="/sys", accepted_by=None, accepted_reason=None):
    """Plan and carry out clears. Returns the module result dict (never raises PmemError for a
    per-range failure; LedgerLocked/GatherError propagate with nothing changed)."""
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import plan as P
    provider = provider or default_provider(sysfs_root, proc_root, dev_root)
    policy = dict(policy or {})
    policy["method"] = dict(policy.get("method") or {})
    if method in ("rewrite", "reallocate"):
        policy["method"]["file"] = method
    elif method in ("device_write", "ndctl"):
        for kind in ("free", "raw", "devdax"):
            policy["method"][kind] = method
    caps = merge_capabilities(probe_capabilities(sysfs_root), capabilities)
    out = {"changed": False, "plan": [], "results": [], "ledger_path": ledger_path,
           "failed": False, "msg": ""}
    with L.LedgerStore(ledger_path, timeout=lock_timeout, readonly=check) as store:
        if results:
            store.data = L.merge_detections(store.data, results,
                                            (facts or {}).get("bad_ranges"))[0]
            store.commit()
        if source is not None:
            sources = dict(policy.get("restore_sources") or {})
            for entry in store.data["entries"]:
                if entry_ids and entry["id"] not in entry_ids:
                    continue
                for p in (entry.get("owner") or {}).get("paths") or []:
                    sources.setdefault(p, source)
            policy["restore_sources"] = sources
        use_facts = facts if facts is not None else listed_facts(store.data, provider)
        actions = P.plan_actions(use_facts, results or [], store.data, policy, caps)
        if entry_ids:
            actions = [a for a in actions if a["entry_id"] in entry_ids]
        out["plan"] = actions
        errors = []
        for a in actions:
            if a["action"] == "accept_loss":
                entry = store.entry(a["entry_id"])
                if check:
                    out["results"].append({"entry_id": a["entry_id"], "action": "accept_loss",
                                           "status": "planned", "changed": True})
                    continue
                store.update(L.close_entry(
                    entry, "accepted_lost", None, by=accepted_by or "policy",
                    why=accepted_reason or "listed in policy.accepted_loss",
                    details={"accepted_via": "policy.accepted_loss"}))
                store.commit()
                out["results"].append({"entry_id": a["entry_id"], "action": "accept_loss",
                                       "status": "closed", "changed": True})
            elif a["action"] in ("rewrite", "reallocate", "device_write", "ndctl_clear"):
                r = execute(store, a, provider, check=check, runner=runner, dev_root=dev_root,
                            proc_root=proc_root)
                out["results"].append(r)
                if r["error"]:
                    errors.append("%s: %s" % (a["entry_id"], r["error"]))
            elif a["action"] == "refuse":
                errors.append(str(PmemError(a["reason"], device=a.get("device"),
                                            range=a.get("range_id"),
                                            next_step=a.get("next_step"))))
        summary = P.summarize(actions)
        if summary["failed"]:
            errors.append(summary["msg"])
        out["changed"] = store.changed or any(r.get("changed") for r in out["results"])
        out["diff"] = store.diff()
        out["open_entries"] = [e["id"] for e in L.open_entries(store.data)]
    if errors:
        out["failed"] = True
        out["msg"] = "; ".join(errors)
    else:
        out["msg"] = "%d action(s), %d clear(s)" % (
            len(out["plan"]), len([r for r in out["results"] if r.get("status") == "cleared"]))
    return out
