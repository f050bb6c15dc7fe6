# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Events the filesystems push (Linux 7.x): the XFS health monitor and fanotify FAN_FS_ERROR.

Internal API of pmem.poison (module_utils/_pmem): may change without notice. Stdlib only.

Both are followed by the watcher (watch.py), never by a converge: they report what happens while
someone listens, and nothing keeps them.

- **XFS health monitor** (Linux 7.0+; ABI checked in the 7.3 source, fs/xfs/libxfs/xfs_fs.h and
  fs/xfs/xfs_healthmon.c): ``ioctl(root_dir_fd, XFS_IOC_HEALTH_MONITOR, struct xfs_health_monitor
  {u64 flags; u8 format; u8 pad[23]})``, ``_IOW('X', 68, 32 bytes)``, CAP_SYS_ADMIN, on the
  filesystem's root directory only, one monitor per mount (EEXIST when ``xfs_healer`` holds it).
  It returns a file descriptor; each read() gives 64-byte ``struct xfs_health_monitor_event``
  records ``{u32 domain, type; u64 time_ns; union e (32 bytes); u64 pad[2]}``. The kernel queues
  at most 32 KiB of events and then counts what it dropped: a ``LOST`` event carries that count.
  A DAX memory failure on XFS sends ``MEDIA_ERROR`` on the data device (daddr, bbcount: 512-byte
  units from the start of the filesystem's block device) before the per-file ``DATALOST`` events
  (inode, generation, file position and length).
- **fanotify FAN_FS_ERROR** (Linux 5.16+; ext4 from then, XFS and iomap/DAX data loss in 7.x):
  ``fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID)`` and ``fanotify_mark(FAN_MARK_ADD |
  FAN_MARK_FILESYSTEM, FAN_FS_ERROR, mountpoint)``; each event has an error record (errno, count
  of errors since the last read: the kernel merges a burst into one event) and the file handle
  of the inode concerned. It names no byte range: it is a reason to look, and a warning.

Parsers are pure (bytes in, dicts out); ``open_health_monitor`` and ``open_fs_error_watch`` are the
thin shells (injectable ioctl / libc for tests).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import fcntl
import os
import struct

SOURCE_XFS_HEALTH = "xfs_health"
SOURCE_FS_ERROR = "fs_error"

# --- XFS health monitor (fs/xfs/libxfs/xfs_fs.h, Linux 7.3)
HEALTH_MONITOR_SIZE = 32
XFS_IOC_HEALTH_MONITOR = (1 << 30) | (HEALTH_MONITOR_SIZE << 16) | (ord("X") << 8) | 68
HEALTH_EVENT_SIZE = 64
HEALTH_EVENT_HEAD = "=IIQ"  # domain, type, time_ns; the union follows at byte 16

DOMAINS = {0: "mount", 1: "fs", 2: "ag", 3: "inode", 4: "rtgroup", 5: "datadev", 6: "rtdev",
           7: "logdev", 8: "filerange"}
TYPES = {0: "running", 1: "lost", 2: "unmount", 3: "sick", 4: "corrupt", 5: "healthy",
         6: "shutdown", 7: "media_error", 8: "bufread", 9: "bufwrite", 10: "dioread",
         11: "diowrite", 12: "datalost"}
SHUTDOWN_REASONS = {1: "metadata I/O error", 2: "log I/O error", 4: "forced unmount",
                    8: "in-memory corruption", 16: "on-disk corruption", 32: "device removed"}
BB = 512

# --- fanotify (include/uapi/linux/fanotify.h)
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_REPORT_FID = 0x200
FAN_MARK_ADD = 0x1
FAN_MARK_FILESYSTEM = 0x100
FAN_Q_OVERFLOW = 0x4000
FAN_FS_ERROR = 0x8000
FAN_EVENT_INFO_TYPE_FID = 1
FAN_EVENT_INFO_TYPE_ERROR = 5
FAN_METADATA_FMT = "=IBBHQii"  # event_len, vers, reserved, metadata_len, mask, fd, pid
FAN_METADATA_LEN = struct.calcsize(FAN_METADATA_FMT)  # 24
AT_FDCWD = -100
# XFS file handles (fs/xfs/xfs_export.h): FILEID_INO32_GEN (1) and its 64-bit-inode variant 0x81
_XFS_FILEID_64 = 0x80


def parse_health_events(data):
    """``[event]`` from what a read() of the health monitor returned (whole 64-byte records).

    Each event: ``domain``, ``type`` (names), ``time_ns`` and, by type: ``lost`` (count);
    ``device``/``daddr``/``offset``/``length`` for media errors (bytes from the start of the
    filesystem's device); ``inode``/``generation``/``pos``/``length``/``error`` for file ranges;
    ``inode``/``generation``/``mask`` for inode health; ``reasons`` for a shutdown."""
    out = []
    for off in range(0, len(data) - HEALTH_EVENT_SIZE + 1, HEALTH_EVENT_SIZE):
        dom, typ, time_ns = struct.unpack_from(HEALTH_EVENT_HEAD, data, off)
        ev = {"domain": DOMAINS.get(dom, "domain-%d" % dom), "type": TYPES.get(typ, "type-%d" % typ),
              "time_ns": time_ns}
        u = off + 16
        if ev["type"] == "lost":
            ev["lost"] = struct.unpack_from("=Q", data, u)[0]
        elif ev["type"] == "media_error":
            daddr, bbcount = struct.unpack_from("=QQ", data, u)
            ev.update(device=ev["domain"], daddr=daddr, offset=daddr * BB, length=bbcount * BB)
        elif ev["domain"] == "filerange":
            pos, length, ino, gen, err = struct.unpack_from("=QQQII", data, u)
            ev.update(inode=ino, generation=gen, pos=pos, length=length, error=err)
        elif ev["domain"] == "inode":
            mask, gen, ino = struct.unpack_from("=IIQ", data, u)
            ev.update(inode=ino, generation=gen, mask=mask)
        elif ev["type"] == "shutdown":
            reasons = struct.unpack_from("=I", data, u)[0]
            ev["reasons"] = [name for bit, name in sorted(SHUTDOWN_REASONS.items()) if reasons & bit] \
                or ["0x%x" % reasons]
        elif ev["domain"] in ("fs", "ag", "rtgroup"):
            ev["mask"], ev["group"] = struct.unpack_from("=II", data, u)
        out.append(ev)
    return out


def _kernel_ioctl(fd, request, buf):
    return fcntl.ioctl(fd, request, buf, True)


def open_health_monitor(mountpoint, ioctl=None):
    """A non-blocking health-monitor fd for the XFS mounted at *mountpoint*.

    Raises OSError: ENOTTY (kernel before 7.0, or not XFS), EPERM (not root, or *mountpoint* is
    not the filesystem's root directory: a bind mount of a subtree), EEXIST (another monitor,
    such as xfs_healer, holds this filesystem's)."""
    do_ioctl = ioctl or _kernel_ioctl
    dfd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        req = bytearray(HEALTH_MONITOR_SIZE)  # flags 0 (deltas only), format 0 (binary v0)
        mfd = do_ioctl(dfd, XFS_IOC_HEALTH_MONITOR, req)
    finally:
        os.close(dfd)  # the monitor does not pin the mount
    if isinstance(mfd, int) and mfd >= 0:
        fl = fcntl.fcntl(mfd, fcntl.F_GETFL)
        fcntl.fcntl(mfd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    return mfd


def _xfs_inode(handle_type, handle):
    """Inode number from an XFS file handle (FILEID_INO32_GEN and the 64-bit variant), or None."""
    if handle_type == 1 and len(handle) >= 8:
        return struct.unpack_from("=I", handle, 0)[0]
    if handle_type == 1 | _XFS_FILEID_64 and len(handle) >= 12:
        return struct.unpack_from("=Q", handle, 0)[0]
    if handle_type in (1, 2) and len(handle) >= 8:  # generic FILEID_INO32_GEN(_PARENT): ext4
        return struct.unpack_from("=I", handle, 0)[0]
    return None


def parse_fanotify(data):
    """``[event]`` from a read() of a FAN_REPORT_FID fanotify fd: ``mask``, ``overflow`` (bool),
    ``fs_error`` (bool), ``error`` (errno, positive), ``error_count``, ``fsid``, ``handle_type``,
    ``inode`` (where the handle is one this file can decode)."""
    out = []
    off = 0
    while off + FAN_METADATA_LEN <= len(data):
        event_len, _vers, _res, meta_len, mask, _fd, _pid = struct.unpack_from(FAN_METADATA_FMT, data, off)
        if event_len < FAN_METADATA_LEN or off + event_len > len(data):
            break
        ev = {"mask": mask, "overflow": bool(mask & FAN_Q_OVERFLOW), "fs_error": bool(mask & FAN_FS_ERROR),
              "error": None, "error_count": None, "fsid": None, "handle_type": None, "inode": None}
        pos = off + (meta_len or FAN_METADATA_LEN)
        end = off + event_len
        while pos + 4 <= end:
            info_type, _pad, info_len = struct.unpack_from("=BBH", data, pos)
            if info_len < 4 or pos + info_len > end:
                break
            if info_type == FAN_EVENT_INFO_TYPE_ERROR and info_len >= 12:
                ev["error"], ev["error_count"] = struct.unpack_from("=iI", data, pos + 4)
            elif info_type == FAN_EVENT_INFO_TYPE_FID and info_len >= 20:
                ev["fsid"] = "%08x%08x" % struct.unpack_from("=II", data, pos + 4)
                hbytes, htype = struct.unpack_from("=Ii", data, pos + 12)
                handle = bytes(data[pos + 20:min(pos + 20 + hbytes, pos + info_len)])
                ev["handle_type"] = htype
                ev["inode"] = _xfs_inode(htype, handle)
            pos += info_len
        out.append(ev)
        off += event_len
    return out


class _Libc:
    """fanotify_init / fanotify_mark through ctypes (Python has no wrapper)."""

    def __init__(self):
        name = ctypes.util.find_library("c") or "libc.so.6"
        self.lib = ctypes.CDLL(name, use_errno=True)
        self.lib.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
        self.lib.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64,
                                           ctypes.c_int, ctypes.c_char_p]

    def fanotify_init(self, flags, event_f_flags):
        fd = self.lib.fanotify_init(flags, event_f_flags)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "fanotify_init: %s" % os.strerror(e))
        return fd

    def fanotify_mark(self, fd, flags, mask, dirfd, path):
        if self.lib.fanotify_mark(fd, flags, mask, dirfd, os.fsencode(path)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "fanotify_mark %s: %s" % (path, os.strerror(e)))


def open_fs_error_watch(libc=None):
    """A fanotify fd reporting FAN_FS_ERROR by file id (marks added with watch_fs_errors).
    Raises OSError (ENOSYS/EINVAL: the kernel has no fanotify or no FAN_REPORT_FID)."""
    libc = libc or _Libc()
    return libc.fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_NONBLOCK,
                              os.O_RDONLY | getattr(os, "O_LARGEFILE", 0))


def watch_fs_errors(fan_fd, mountpoint, libc=None):
    """Follow FAN_FS_ERROR of the whole filesystem mounted at *mountpoint*. Raises OSError
    (EINVAL: the kernel has no FAN_FS_ERROR, before 5.16; EOPNOTSUPP: the filesystem reports none)."""
    libc = libc or _Libc()
    libc.fanotify_mark(fan_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_FS_ERROR,
                       AT_FDCWD, mountpoint)


def describe_health(ev, mountpoint):
    """One line for the journal and the ledger's warnings."""
    what = "%s %s" % (ev["domain"], ev["type"])
    if ev["type"] == "media_error":
        return "XFS %s: media error on the %s at byte %d, %d bytes" % (
            mountpoint, ev["device"], ev["offset"], ev["length"])
    if ev["domain"] == "filerange":
        return "XFS %s: %s on inode %d (generation %d) at file offset %d, %d bytes (errno %d)" % (
            mountpoint, ev["type"], ev["inode"], ev["generation"], ev["pos"], ev["length"], ev["error"])
    if ev["type"] == "lost":
        return ("XFS %s: the health monitor dropped %d event(s) (its queue was full): media errors "
                "among them are known only if a list or the kernel log has them; scrub "
                "(pmem_badblocks scrub=true) and converge" % (mountpoint, ev["lost"]))
    if ev["type"] == "shutdown":
        return "XFS %s: filesystem shut down (%s)" % (mountpoint, ", ".join(ev["reasons"]))
    if "inode" in ev:
        return "XFS %s: %s, inode %d" % (mountpoint, what, ev["inode"])
    return "XFS %s: %s" % (mountpoint, what)


def describe_fs_error(ev, mountpoint):
    if ev["overflow"]:
        return ("fanotify on %s: event queue overflowed, filesystem errors were dropped; converge "
                "and check the kernel log" % mountpoint)
    err = ev["error"]
    name = errno.errorcode.get(err, str(err)) if err is not None else "?"
    where = ("inode %d" % ev["inode"]) if ev["inode"] is not None else "the filesystem"
    return "filesystem error on %s: %s (%s) on %s, %s error(s) since the last report" % (
        mountpoint, name, os.strerror(err) if err else "unknown", where, ev["error_count"])
