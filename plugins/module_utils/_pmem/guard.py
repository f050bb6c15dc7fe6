# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write guard: the one door every byte the collection writes to a damaged file, a block
device or a device command goes through (internal API).

``guarded_write(entry, method, ctx, write)`` checks the target against the ledger entry it serves,
opens it, and hands ``write`` a target object whose ``pwrite``/``punch``/``run`` refuse anything
outside the entry's range. Nothing else in module_utils calls ``os.pwrite``, ``fallocate`` or runs
a device command (a unit test keeps it so).

Checks (docs/design.md, "The write guard and write-ahead order"):

* consent: the method is one the entry allows (zeros only over an accepted loss; device writes
  and ``ndctl clear-errors`` only with the offline-window opt-in and never over file data that is
  not accepted as lost, nor over an unknown owner);
* capabilities: the device can honour the method (``write_clears: false`` refuses every write
  meant to clear; ``dax_write_clears: false`` refuses an in-place rewrite of a file that is
  DAX-mapped now, as statx reports it, not as the record remembers; ``ndctl`` needs
  ``ndctl_clear``);
* file: opened component by component with ``O_NOFOLLOW`` (a symlink anywhere is refused), a
  regular file on the recorded filesystem, the same inode and generation (FS_IOC_GETVERSION),
  the recorded size, the repair range inside the file;
* device: a plain name (no ``/``, no ``..``) under the device root, a block device that sysfs puts
  in an nd namespace (``topology.blockdevs[<name>].namespace``), located by its physical address
  when the record has it (the absolute address must fall in that namespace's data area at the
  recorded block-device offset), the range inside the data area (and the partition), not mounted,
  opened ``O_EXCL`` (nobody holds it), the node's device number equal to sysfs's, and the range
  still listed right before the write;
* cxl (the Clear Poison command through ``/sys/kernel/debug/cxl/memX/clear_poison``): the range's
  namespace present and not mounted, the range still in a CXL poison list right before the
  write, and only the 64-byte units of the poison records that lie inside the recorded range
  (by host physical address) are cleared, each by its DPA on its own memory device.

Providers come in through ``WriteContext`` (tests pass fakes); nothing here reads the environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import os
import re
import stat
import subprocess

from ansible_collections.pmem.poison.plugins.module_utils._pmem import capabilities as CAP
from ansible_collections.pmem.poison.plugins.module_utils._pmem import cxl as _cxl
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as _fiemap
from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine as _quarantine
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    DeviceCannotClear,
    MountedFilesystem,
    PmemError,
    RangeOutsideDevice,
    SourceMismatch,
)

PAGE = 4096
SECTOR = 512
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FILE_METHODS = ("rewrite", "reallocate", "unshare")
DEVICE_METHODS = ("device_write", "ndctl", "cxl")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class GuardRefused(PmemError):
    """The guard refused a write: the target is not what the record says, or no consent."""


class AlreadyDone(PmemError):
    """What the action would achieve is already true (range no longer listed): skip it."""


def no_hooks(point):
    """Default hook: nothing. Tests pass a callable (e.g. one that SIGKILLs at a point)."""


class WriteContext(object):
    """Everything the guard consults, passed in (never read from the environment).

    badblocks: provider with ``listed_range(range)``, ``invalidate()``,
    ``notify_written(blockdev, offset, length)`` and ``topology()`` (the facts core's topology:
    ``blockdevs``, ``namespaces``); capabilities: ``{kernel, devices: {pmemN: {...}}}``;
    consent: ``{offline_window: bool}``; runner: argv -> CompletedProcess; hooks: point -> None;
    file_dax: fd -> True/False/None (is the open file DAX-mapped; capabilities.file_dax).
    """

    def __init__(self, badblocks, capabilities=None, consent=None, dev_root="/dev",
                 proc_root="/proc", runner=None, hooks=None, file_dax=None,
                 debugfs_root="/sys/kernel/debug"):
        self.badblocks = badblocks
        self.file_dax = file_dax or CAP.file_dax
        self.debugfs_root = debugfs_root
        self.capabilities = capabilities or {}
        self.consent = dict(consent or {})
        self.dev_root = dev_root
        self.proc_root = proc_root
        self.runner = runner or _run
        self.hooks = hooks or no_hooks

    def device_caps(self, *names):
        return CAP.for_device(self.capabilities, *names)


def _run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)


_libc = None


def _fallocate(fd, mode, offset, length):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong,
                                    ctypes.c_longlong]
    if _libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def mounted_devices(proc_root="/proc"):
    """Device numbers (major, minor) with a mounted filesystem (mountinfo field 3)."""
    out = set()
    try:
        with open(os.path.join(proc_root, "self", "mountinfo")) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and ":" in parts[2]:
                    a, b = parts[2].split(":", 1)
                    out.add((int(a), int(b)))
    except (IOError, OSError, ValueError):
        pass
    return out


# --------------------------------------------------------------------------------------------
# targets: the only objects that write
# --------------------------------------------------------------------------------------------

class _Target(object):
    """An open, checked target; every write is bounded to [lo, hi)."""

    def __init__(self, fd, name, lo, hi, entry):
        self.fd, self.name, self.lo, self.hi, self.entry = fd, name, lo, hi, entry
        self.written = []

    def _bounded(self, offset, length, what):
        if offset < self.lo or offset + length > self.hi or length < 0:
            raise GuardRefused(
                "%s of %s at %d+%d is outside the range the record allows (%d..%d)"
                % (what, self.name, offset, length, self.lo, self.hi),
                device=self.name, range=(self.entry.get("range") or {}).get("id"),
                next_step="this is a bug in pmem.poison; nothing was written")

    def pwrite(self, data, offset):
        self._bounded(offset, len(data), "write")
        view = memoryview(data)
        pos = offset
        while view:
            n = os.pwrite(self.fd, view, pos)
            view = view[n:]
            pos += n
        self.written.append((offset, len(data)))

    def fsync(self):
        os.fsync(self.fd)


class FileTarget(_Target):
    """A damaged file, reopened for writing through its checked descriptor."""

    def __init__(self, fd, wfd, path, lo, hi, entry, size):
        _Target.__init__(self, wfd, path, lo, hi, entry)
        self.rfd, self.path, self.size = fd, path, size

    def punch(self, offset, length):
        self._bounded(offset, length, "punch")
        _fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)

    def restore_size(self):
        if os.fstat(self.fd).st_size != self.size:
            os.ftruncate(self.fd, self.size)

    def read_back(self, length, offset):
        """Read through the checked read-only descriptor (what a reader of the file sees)."""
        return pread_exact(self.rfd, length, offset)


def pread_exact(fd, length, offset):
    """``length`` bytes at ``offset`` (fewer only at end of file): the one read loop of every
    restore, verification and read-back."""
    out = b""
    while len(out) < length:
        chunk = os.pread(fd, length - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return out


class DeviceTarget(_Target):
    """A pmem block device (or one of its partitions) opened O_EXCL."""

    def __init__(self, fd, dev, lo, hi, entry, shift, blockdev):
        _Target.__init__(self, fd, dev, lo - shift, hi - shift, entry)
        self.shift, self.blockdev = shift, blockdev


class CxlTarget(object):
    """The Clear Poison units of one checked range: ``[(memdev, dpa)]`` in 64-byte steps, each
    written to its device's debugfs ``clear_poison`` (the device writes zeros there)."""

    def __init__(self, units, debugfs_root, entry):
        self.units, self.debugfs_root, self.entry = list(units), debugfs_root, entry

    def clear(self):
        done = []
        for memdev, dpa in self.units:
            path = _cxl.debugfs_file(memdev, "clear_poison", self.debugfs_root)
            with open(path, "w") as f:
                f.write("%#x\n" % dpa)
            done.append({"memdev": memdev, "dpa": dpa, "length": _cxl.POISON_UNIT})
        return done


class CommandTarget(object):
    """A device command (ndctl clear-errors) on one checked, unused namespace."""

    def __init__(self, namespace, runner, entry):
        self.namespace, self.runner, self.entry = namespace, runner, entry
        self.argv = ["ndctl", "clear-errors", namespace]

    def run(self):
        return self.runner(list(self.argv))


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

def _rid(entry):
    return (entry.get("range") or {}).get("id") or entry.get("id")


def still_shared(fd, offset, length):
    """Does FIEMAP still flag every extent of [offset, offset+length) shared (reflinked)?"""
    try:
        seen = False
        for logical, _phys, elen, flags in _fiemap.extents(fd):
            if logical + elen <= offset or logical >= offset + length:
                continue
            seen = True
            if not flags & _fiemap.FIEMAP_EXTENT_SHARED:
                return False
        return seen
    except (_fiemap.FiemapUnsupported, OSError):
        return False


def check_consent(entry, method, ctx, source=None):
    """Refuse a method the entry's record or the operator's consent does not allow."""
    owner = entry.get("owner") or {}
    kind = owner.get("kind")
    accepted = (entry.get("closure") or {}).get("how") == "accepted_lost"
    rng = entry.get("range") or {}
    dev = rng.get("partition") or rng.get("blockdev") or rng.get("namespace")
    if method in FILE_METHODS:
        if kind != "file":
            raise GuardRefused("%s writes file data; this entry's owner is %s" % (method, kind),
                               device=dev, range=_rid(entry),
                               next_step="use the plan pmem_clear makes for this owner kind")
        if source in (None, "", "zeros") and not accepted:
            raise GuardRefused("zeros may only be written over ranges accepted as lost",
                               device=dev, range=_rid(entry),
                               next_step="accept the loss first or give a restore source")
        return
    if method not in DEVICE_METHODS:
        raise GuardRefused("unknown write method %r" % (method,), device=dev, range=_rid(entry),
                           next_step="use rewrite, reallocate, device_write or ndctl")
    if not ctx.consent.get("offline_window"):
        raise GuardRefused(
            "%s takes the namespace's data offline and the offline-window opt-in is false"
            % method, device=dev, range=_rid(entry),
            next_step="set policy.offline_window_allowed (remediate_allow_offline_window) to "
                      "true once the namespace is unmounted and unused")
    if kind == "unknown" or (kind == "file" and not accepted) or kind is None:
        raise GuardRefused(
            "%s would zero data of a %s owner that is not accepted as lost" % (method, kind),
            device=dev, range=_rid(entry),
            next_step="resolve the owner, restore the file, or accept the loss first")


def _still_listed(rng, ctx):
    """Is the range in a badblocks list now? True when that cannot be told (refuse, not guess)."""
    if getattr(ctx, "badblocks", None) is None:
        return True
    try:
        ctx.badblocks.invalidate()
        return bool(ctx.badblocks.listed_range(rng))
    except PmemError:
        return True


def check_capabilities(entry, method, ctx, shared=False):
    rng = entry.get("range") or {}
    caps = ctx.device_caps(rng.get("blockdev"), (entry.get("owner") or {}).get("device"),
                           rng.get("namespace"), rng.get("region"))
    what = caps.get("description") or rng.get("blockdev") or "this device"
    if method == "cxl":
        return caps  # what the device can do is checked on its poison records (cxl_units)
    if method == "ndctl":
        if not caps.get("ndctl_clear"):
            raise DeviceCannotClear("%s has no clear-error command (ndctl clear-errors would fail)"
                                    % what, device=rng.get("namespace") or rng.get("blockdev"),
                                    range=_rid(entry),
                                    next_step="use device_write on a bus whose writes clear, or "
                                              "accept the loss")
        return caps
    # a shared owner is restored into a fresh block: it does not need the write to clear
    if caps.get("write_clears") is False and not (method == "unshare" and shared):
        if method in ("rewrite", "reallocate") and not _still_listed(rng, ctx):
            # no list holds the range any more (software badblocks vanish at a reboot, a scrub
            # may have cleared it): writing the good data is a restore, which any device can do
            return caps
        raise DeviceCannotClear("%s cannot clear poison by write (the write fails with EIO)"
                                % what, device=rng.get("blockdev"), range=_rid(entry),
                                next_step="restore the data to other media; clearing needs "
                                          "platform support or a namespace recreate")
    return caps


def check_dax_rewrite(entry, method, ctx, caps, fd, path):
    """An in-place rewrite of a DAX-mapped file clears poison only on a device with the recovery
    write path; elsewhere the write fails (EIO, or EFAULT through DAX) and on nfit_test it can take
    the filesystem down. The plan refuses it from the facts; the guard decides it again from the
    file as it is opened now (a remount since the plan changes the answer)."""
    if method != "rewrite" or caps.get("dax_write_clears") is not False:
        return
    dax = ctx.file_dax(fd)
    if dax is False:
        return
    rng = entry.get("range") or {}
    if not _still_listed(rng, ctx):
        return  # nothing to clear: writing the good data is a restore, as on any device
    what = caps.get("description") or rng.get("blockdev") or "this device"
    mnt = (entry.get("owner") or {}).get("mountpoint") or "the filesystem"
    if dax is None:
        reason = ("cannot tell whether %s is DAX-mapped (no statx DAX attribute on this kernel) "
                  "and %s cannot clear poison by a DAX write" % (path, what))
    else:
        reason = "%s is DAX-mapped and %s cannot clear poison by a DAX write" % (path, what)
    raise DeviceCannotClear(reason, device=rng.get("blockdev"), range=_rid(entry),
                            next_step="remount %s without dax, then rewrite; nothing was written" % mnt)


def open_file(entry, method, ctx):
    """(rfd, wfd, path, size) of the damaged file after every identity check."""
    owner = entry.get("owner") or {}
    renamed = dict((r.get("from"), r.get("to")) for r in
                   (entry.get("containment") or {}).get("rename", []))
    problems = []
    elsewhere = []  # paths that hold no file or another file than the recorded one
    for p in owner.get("paths") or []:
        path = renamed.get(p) or p
        try:
            dfd, _name, rfd = _quarantine.open_file_nofollow(path)
        except _quarantine.Skip as e:
            problems.append(str(e))
            elsewhere.append(isinstance(e, _quarantine.NotTheRecordedFile))
            continue
        os.close(dfd)
        try:
            st = _quarantine.check_identity(rfd, path, owner)
            _check_filesystem(rfd, path, owner)
            size = st.st_size
            want = owner.get("size")
            if want is not None and int(want) != size:
                raise _quarantine.Skip("%s has %d bytes, the record says %d: changed since resolution"
                                       % (path, size, int(want)))
            off, length = owner.get("repair_offset"), owner.get("repair_length")
            if off is None or not length or off < 0 or off % PAGE or length % PAGE:
                raise _quarantine.Skip("repair range %s+%s of %s is not whole pages" % (off, length, path))
            if off >= -(-size // PAGE) * PAGE:
                raise _quarantine.Skip("repair range %d+%d lies past the end of %s (%d bytes)"
                                       % (off, length, path, size))
        except _quarantine.Skip as e:
            os.close(rfd)
            problems.append(str(e))
            elsewhere.append(isinstance(e, _quarantine.NotTheRecordedFile))
            continue
        return rfd, path, size
    found = "; ".join(problems) or "the record has no path"
    gone = bool(elsewhere) and all(elsewhere)
    if gone and _loss_accepted(entry):
        # nothing of the lost file is left to zero: writing into what the paths hold now would
        # destroy another file's data. The entry stays closed; the range, while listed, stays in
        # the facts, and its owner now is resolved like any other.
        raise AlreadyDone("the file whose loss was accepted is no longer at any recorded path (%s): "
                          "nothing of it to zero, nothing was written" % found,
                          device=owner.get("device"), range=_rid(entry))
    if gone and _inode_reused_logged(entry):
        next_step = ("the recorded file was deleted and its inode number now holds another file "
                     "(the ledger's resolved event says inode_reused): its data cannot go back "
                     "into it. Accept the loss of entry %s (pmem_quarantine state=accepted_lost, or "
                     "the role's remediate_accept_loss) to close the record; nothing was written"
                     % entry.get("id"))
    elif gone:
        next_step = ("re-run pmem_resolve: a renamed file gets its new path recorded. If it was "
                     "deleted, accept the loss of entry %s (pmem_quarantine state=accepted_lost, or "
                     "the role's remediate_accept_loss); nothing was written" % entry.get("id"))
    else:
        next_step = "re-run pmem_resolve (the file changed); nothing was written"
    raise GuardRefused("no path of the damaged file is the file the record names: %s" % found,
                       device=owner.get("device"), range=_rid(entry), next_step=next_step)


def _loss_accepted(entry):
    return entry.get("state") == "closed" and (entry.get("closure") or {}).get("how") == "accepted_lost"


def _inode_reused_logged(entry):
    return any((h.get("details") or {}).get("inode_reused") for h in entry.get("history") or []
               if h.get("event") == "resolved")


def _check_filesystem(fd, path, owner):
    """The file lives on the filesystem mounted at the recorded mountpoint (not another one
    mounted over it since)."""
    mnt = owner.get("mountpoint")
    if not mnt:
        return
    try:
        mfd = _quarantine.open_dir_nofollow(mnt)
    except _quarantine.Skip as e:
        raise _quarantine.Skip("%s: mountpoint %s: %s" % (path, mnt, e))
    try:
        if os.fstat(mfd).st_dev != os.fstat(fd).st_dev:
            raise _quarantine.Skip("%s is not on the filesystem mounted at %s" % (path, mnt))
    finally:
        os.close(mfd)


def locate_device(entry, topology, dev_root="/dev"):
    """(device path, blockdev name, sysfs dev "maj:min", shift, lo, hi) of the pmem block device
    (or partition) holding the entry's range, located by physical address when recorded."""
    rng = entry.get("range") or {}
    rid = _rid(entry)
    off, length = rng.get("blockdev_offset"), rng.get("length")
    if off is None or not isinstance(off, int) or off < 0 or not length or length <= 0:
        raise RangeOutsideDevice("range has no block-device offset inside a data area",
                                 device=rng.get("blockdev") or rng.get("region"), range=rid,
                                 next_step="clear it with the namespace in raw mode or a "
                                           "region-level clear (offline plan)")
    names = [n for n in (rng.get("blockdev"), rng.get("partition")) if n is not None]
    for n in names:
        if not isinstance(n, str) or not _NAME.match(n) or n in (".", ".."):
            raise GuardRefused("device name %r is not a plain device name" % (n,), device=n,
                               range=rid, next_step="the record is wrong; nothing was written")
    blockdevs = (topology or {}).get("blockdevs") or {}
    namespaces = (topology or {}).get("namespaces") or {}
    recorded = rng.get("blockdev")
    chosen = None
    ident = rng.get("identity") or {}
    # the stable identity (identity.py) first: device names move across reboots
    absolute = rng.get("absolute") if rng.get("absolute") is not None else ident.get("absolute")
    uuid = rng.get("namespace_uuid") or ident.get("namespace_uuid")
    if absolute is None and not uuid:
        # a schema-1 entry migrated as unproven, or one recorded without root: the name it gives
        # may carry other bytes now, and writing zeros there is the one thing never to do
        raise GuardRefused(
            "the record names only %s (no physical address, no namespace uuid): device names "
            "move across reboots, so that name may hold other bytes now" % (
                "/".join(names) or "no device"), device=recorded, range=rid,
            next_step="list and record the range again as root (pmem_badblocks, "
                      "pmem_quarantine) so it is keyed by its identity; nothing was written")
    for bname, bdev in sorted(blockdevs.items()):
        ns = namespaces.get(bdev.get("namespace") or "") or {}
        if uuid and ns.get("uuid") != uuid:
            continue
        if absolute is not None:
            start, size = ns.get("data_start"), ns.get("data_size") or bdev.get("size")
            if start is None or size is None or not start <= absolute < start + size:
                continue
            if absolute - start != off:
                raise GuardRefused(
                    "physical address %#x is at block-device offset %d of %s, the record "
                    "says %d" % (absolute, absolute - start, bname, off), device=bname,
                    range=rid, next_step="re-read the facts; nothing was written")
        chosen = bname
        break
    if chosen is None:
        raise GuardRefused(
            "no pmem block device holds %s now (%s)" % (
                "physical address %#x" % absolute if absolute is not None else "the range",
                "namespace uuid %s" % uuid if uuid else "recorded on %s" % recorded),
            device=recorded, range=rid,
            next_step="check the namespaces (ndctl list -N); nothing was written")
    bdev = blockdevs.get(chosen or "")
    if not bdev or not bdev.get("namespace"):
        raise GuardRefused("%s is not a pmem block device of an nd namespace (sysfs)" % chosen,
                           device=chosen, range=rid,
                           next_step="clear poison only on pmem namespaces; nothing was written")
    ns = namespaces.get(bdev["namespace"]) or {}
    data_size = ns.get("data_size") or bdev.get("size")
    if data_size is None or off + length > data_size:
        raise RangeOutsideDevice("range %d+%d is outside the data area of %s (%s bytes)"
                                 % (off, length, chosen, data_size), device=chosen, range=rid,
                                 next_step="clear it with the namespace in raw mode (offline)")
    lo = off // SECTOR * SECTOR
    hi = -(-(off + length) // SECTOR) * SECTOR
    shift, name, devnum = 0, chosen, bdev.get("dev")
    if rng.get("partition"):
        part = None
        for pname, p in (bdev.get("partitions") or {}).items():
            if p.get("start") is not None and p.get("size") is not None and \
                    p["start"] <= lo and hi <= p["start"] + p["size"]:
                part = (pname, p)
        if part is None:
            raise RangeOutsideDevice("range %d+%d is inside no partition of %s"
                                     % (off, length, chosen), device=chosen, range=rid,
                                     next_step="re-read the facts; nothing was written")
        name, shift, devnum = part[0], part[1]["start"], part[1].get("dev")
    return os.path.join(dev_root, name), chosen, devnum, shift, lo, hi


def open_device(entry, ctx, topology):
    dev, blockdev, devnum, shift, lo, hi = locate_device(entry, topology, ctx.dev_root)
    rid = _rid(entry)
    try:
        fd = os.open(dev, os.O_RDWR | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise MountedFilesystem("%s is in use (mounted or held open)" % dev, device=dev,
                                    range=rid, next_step="unmount every filesystem on it and "
                                                         "stop its users, then re-run")
        if e.errno == errno.ELOOP:
            raise GuardRefused("%s is a symlink: not followed" % dev, device=dev, range=rid,
                               next_step="nothing was written; check %s" % ctx.dev_root)
        raise GuardRefused("cannot open %s: %s" % (dev, os.strerror(e.errno)), device=dev,
                           range=rid, next_step="check the device node")
    try:
        st = os.fstat(fd)
        if not stat.S_ISBLK(st.st_mode):
            raise GuardRefused("%s is not a block device" % dev, device=dev, range=rid,
                               next_step="nothing was written; check %s" % ctx.dev_root)
        here = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        if devnum and here != devnum:
            raise GuardRefused("%s is device %s, sysfs says %s is %s" % (dev, here, blockdev,
                                                                         devnum),
                               device=dev, range=rid, next_step="nothing was written")
        if (os.major(st.st_rdev), os.minor(st.st_rdev)) in mounted_devices(ctx.proc_root):
            raise MountedFilesystem("%s is mounted" % dev, device=dev, range=rid,
                                    next_step="unmount it first")
    except Exception:
        os.close(fd)
        raise
    return DeviceTarget(fd, dev, lo, hi, entry, shift, blockdev)


def _require_listed(entry, ctx):
    """Right before the write: the range must still be listed (another run or the kernel may
    have cleared it since the plan was made)."""
    ctx.badblocks.invalidate()
    if not ctx.badblocks.listed_range(entry.get("range") or {}):
        raise AlreadyDone("no longer listed in any badblocks list: nothing to clear",
                          device=(entry.get("range") or {}).get("blockdev"), range=_rid(entry),
                          next_step="none (another run or the kernel cleared it)")


def check_namespace_unused(entry, ctx, topology):
    rng = entry.get("range") or {}
    ns_name = rng.get("namespace")
    namespaces = (topology or {}).get("namespaces") or {}
    uuid = rng.get("namespace_uuid") or (rng.get("identity") or {}).get("namespace_uuid")
    if uuid:
        found = [n for n, ns in namespaces.items() if ns.get("uuid") == uuid]
        ns_name = found[0] if found else None
    if not ns_name or ns_name not in namespaces or not _NAME.match(ns_name):
        raise GuardRefused("namespace %s of the range is not present" % ns_name,
                           device=rng.get("blockdev"), range=_rid(entry),
                           next_step="check ndctl list -N; nothing was run")
    bname = namespaces[ns_name].get("blockdev")
    mounted = [m for m in (topology or {}).get("mounts") or [] if m.get("blockdev") == bname]
    if bname and mounted:
        raise MountedFilesystem("%s (namespace %s) is mounted at %s" % (
            bname, ns_name, mounted[0].get("mountpoint")), device=bname, range=_rid(entry),
            next_step="unmount it first")
    return ns_name


def cxl_units(entry, topology, debugfs_root):
    """``[(memdev, dpa)]``: the 64-byte Clear Poison units of the CXL poison records listed now
    that lie inside the entry's range (by host physical address; never a byte outside it)."""
    rng = entry.get("range") or {}
    lo, length = rng.get("absolute"), rng.get("length") or 0
    dev = rng.get("dax_device") or rng.get("namespace")
    if lo is None:
        raise DeviceCannotClear(
            "the range has no host physical address (no CXL region maps it, or the facts were "
            "gathered without root): the Clear Poison units cannot be told", device=dev,
            range=_rid(entry), next_step="gather the facts as root; nothing was written")
    hi = lo + length
    if lo % _cxl.POISON_UNIT or hi % _cxl.POISON_UNIT:
        # Clear Poison zeroes whole 64-byte units: rounding out would zero bytes outside the record
        raise GuardRefused("the range %#x+%#x is not in whole 64-byte Clear Poison units" % (lo, length),
                           device=dev, range=_rid(entry), next_step="nothing was written; record the range again")
    units = []
    for rec in (topology.get("cxl") or {}).get("poison") or []:
        if rec.get("hpa") is None or rec["hpa"] >= hi or rec["hpa"] + rec["length"] <= lo:
            continue
        if rec["hpa"] % _cxl.POISON_UNIT or rec["dpa"] % _cxl.POISON_UNIT:
            raise DeviceCannotClear("%s lists poison at DPA %#x, not in 64-byte units" % (rec["memdev"], rec["dpa"]),
                                    device=rec["memdev"], range=_rid(entry), next_step="nothing was written")
        start = max(rec["hpa"], lo)
        end = min(rec["hpa"] + rec["length"], hi)
        for hpa in range(start, end, _cxl.POISON_UNIT):
            units.append((rec["memdev"], rec["dpa"] + hpa - rec["hpa"]))
    if not units:
        raise AlreadyDone("no CXL poison record inside the range any more: nothing to clear",
                          device=dev, range=_rid(entry), next_step="none (another run or the device cleared it)")
    for memdev in sorted(set(m for m, _dpa in units)):
        if not _NAME.match(memdev):
            raise GuardRefused("CXL device name %r is not a plain name" % memdev, device=memdev,
                               range=_rid(entry), next_step="nothing was written")
        path = _cxl.debugfs_file(memdev, "clear_poison", debugfs_root)
        if not os.path.exists(path):
            raise DeviceCannotClear(
                "%s has no %s (debugfs not mounted, or the device does not support Clear Poison)"
                % (memdev, path), device=memdev, range=_rid(entry),
                next_step="mount -t debugfs none /sys/kernel/debug, or restore the data to other media")
    return sorted(set(units))


# --------------------------------------------------------------------------------------------
# the one door
# --------------------------------------------------------------------------------------------

def _check_unshare(entry, method, caps, rfd, path):
    owner = entry.get("owner") or {}
    if method == "unshare" and caps.get("write_clears") is False and \
            not still_shared(rfd, owner["repair_offset"], owner["repair_length"]):
        # the other owners were restored away: punching now frees the poisoned block
        # and the new allocation may be zeroed right over it (XFS+DAX shutdown risk)
        raise DeviceCannotClear(
            "%s is no longer shared and %s cannot clear poison by write" % (
                path, caps.get("description") or "this device"),
            device=(entry.get("range") or {}).get("blockdev"), range=_rid(entry),
            next_step="restore the data to other media, or clear the range offline")


def check_file_flags(entry, fd, path):
    """An append-only file (chattr +a) takes no write in place and no punch; an immutable one
    (chattr +i) none at all unless our containment set the flag (lifted for the write). Refused
    here, before the clear is planned, not by EPERM in the write."""
    try:
        flags = _quarantine.get_flags(fd)
    except (IOError, OSError):
        return  # no FS_IOC_GETFLAGS here: the write itself tells
    if flags & _quarantine.FS_APPEND_FL:
        raise GuardRefused("%s is append-only (chattr +a, not set by pmem.poison): the kernel "
                           "refuses a write in place" % path, range=_rid(entry),
                           device=(entry.get("owner") or {}).get("device"),
                           next_step="chattr -a %s, then re-run (set it again after the restore); "
                                     "nothing was written" % path)
    if flags & _quarantine.FS_IMMUTABLE_FL and "immutable" not in (entry.get("containment") or {}):
        raise GuardRefused("%s is immutable (chattr +i, not set by pmem.poison)" % path,
                           range=_rid(entry), device=(entry.get("owner") or {}).get("device"),
                           next_step="chattr -i %s, then re-run (set it again after the restore); "
                                     "nothing was written" % path)


def _checked_file(entry, method, ctx, source):
    """Consent, capabilities, then the damaged file itself: ``(rfd, path, size, caps)`` of the
    file every check passed on, open read-only (the caller closes ``rfd``)."""
    check_consent(entry, method, ctx, source)
    caps = check_capabilities(entry, method, ctx, shared=bool((entry.get("owner") or {}).get("shared")))
    rfd, path, size = open_file(entry, method, ctx)
    try:
        check_file_flags(entry, rfd, path)
        check_dax_rewrite(entry, method, ctx, caps, rfd, path)
        _check_unshare(entry, method, caps, rfd, path)
    except Exception:
        os.close(rfd)
        raise
    return rfd, path, size, caps


def _checked_device(entry, method, ctx, source):
    """Consent, capabilities, then the namespace (unused) or the block device (the one the
    record names): ``(topology, namespace)``, the topology they were checked against and the
    namespace of ndctl/cxl (None for device_write)."""
    check_consent(entry, method, ctx, source)
    check_capabilities(entry, method, ctx, shared=bool((entry.get("owner") or {}).get("shared")))
    topology = ctx.badblocks.topology()
    if method in ("ndctl", "cxl"):
        return topology, check_namespace_unused(entry, ctx, topology)
    locate_device(entry, topology, ctx.dev_root)  # refuse a wrong target before anything else
    return topology, None


def preflight(entry, method, ctx, source=None):
    """guarded_write's refusals, with nothing opened for writing and nothing changed (no
    immutable flag lifted, no device opened exclusively).

    Called before a clear is planned in the ledger, so a refused clear leaves the ledger as it
    was and a rerun refused for the same reason reports changed=0. guarded_write checks it all
    again right before it writes: the target may change in between. Returns the size of the
    checked file for a file method (what the write's own source check compares), else None."""
    if method in FILE_METHODS:
        rfd, _path, size, _caps = _checked_file(entry, method, ctx, source)
        os.close(rfd)
        return size
    _checked_device(entry, method, ctx, source)
    return None


def guarded_write(entry, method, ctx, write, source=None):
    """Check the target of ``method`` against ``entry``, open it, call ``write(target)``.

    Returns what ``write`` returns. Raises GuardRefused/DeviceCannotClear/MountedFilesystem/
    RangeOutsideDevice before anything is written, AlreadyDone when the range is no longer listed
    (device methods), SourceMismatch from the write's own checks."""
    if method in FILE_METHODS:
        rfd, path, size, _caps = _checked_file(entry, method, ctx, source)
        wfd = None
        try:
            with _Unimmutable(rfd, entry):
                # the very inode we checked, reopened for writing (no second path lookup)
                wfd = os.open("/proc/self/fd/%d" % rfd, os.O_WRONLY | os.O_CLOEXEC)
                if os.fstat(wfd).st_ino != os.fstat(rfd).st_ino:
                    raise GuardRefused("reopened %s is another inode" % path, range=_rid(entry),
                                       next_step="nothing was written; re-run")
                owner = entry.get("owner") or {}
                off, length = owner["repair_offset"], owner["repair_length"]
                return write(FileTarget(rfd, wfd, path, off, off + length, entry, size))
        finally:
            if wfd is not None:
                os.close(wfd)
            os.close(rfd)
    topology, ns = _checked_device(entry, method, ctx, source)
    _require_listed(entry, ctx)
    if method == "ndctl":
        return write(CommandTarget(ns, ctx.runner, entry))
    if method == "cxl":
        units = cxl_units(entry, ctx.badblocks.topology(), ctx.debugfs_root)
        return write(CxlTarget(units, ctx.debugfs_root, entry))
    target = open_device(entry, ctx, topology)
    try:
        return write(target)
    finally:
        os.close(target.fd)


class _Unimmutable(object):
    """Lift FS_IMMUTABLE_FL for the write when our containment set it."""

    def __init__(self, fd, entry):
        self.fd, self.entry, self.flags = fd, entry, None

    def __enter__(self):
        try:
            flags = _quarantine.get_flags(self.fd)
        except (IOError, OSError):
            return self
        if flags & _quarantine.FS_IMMUTABLE_FL:
            if "immutable" not in (self.entry.get("containment") or {}):
                raise GuardRefused("file is immutable (not set by pmem.poison)",
                                   range=self.entry.get("id"), next_step="chattr -i the file")
            _quarantine.set_flags(self.fd, flags & ~_quarantine.FS_IMMUTABLE_FL)
            self.flags = flags
        return self

    def __exit__(self, *exc):
        if self.flags is not None:
            _quarantine.set_flags(self.fd, self.flags)
        return False


__all__ = ["guarded_write", "WriteContext", "GuardRefused", "AlreadyDone", "SourceMismatch"]
