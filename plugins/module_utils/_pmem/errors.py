# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain errors. Each one carries what an operator needs: the device, the range and the next step."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno as _errno
import os as _os


class PmemError(Exception):
    """Base class: a refusal or failure that names device, range and next step."""

    def __init__(self, message, device=None, range=None, next_step=None, details=None):
        super(PmemError, self).__init__(message)
        self.message = message
        self.device = device
        self.range = range
        self.next_step = next_step
        self.details = details or {}

    def __str__(self):
        parts = []
        if self.device:
            parts.append(str(self.device))
        if self.range:
            parts.append("range %s" % (self.range,))
        text = ("%s: %s" % (" ".join(parts), self.message)) if parts else self.message
        if self.next_step:
            text += ". Next step: %s" % self.next_step
        return text

    def to_dict(self):
        return {
            "error": type(self).__name__,
            "msg": str(self),
            "device": self.device,
            "range": self.range,
            "next_step": self.next_step,
            "details": self.details,
        }


class GatherError(PmemError):
    """A source (sysfs file, ndctl, ioctl) could not be read or parsed."""


class RangeOutsideDevice(PmemError):
    """A range lies beyond the device, namespace data area or filesystem."""


class MetadataOwned(PmemError):
    """A range belongs to filesystem metadata: never cleared online."""


class MountedFilesystem(PmemError):
    """The action needs the filesystem unmounted."""


class DeviceCannotClear(PmemError):
    """This device/bus/kernel cannot honour the requested clear method."""


class SourceMismatch(PmemError):
    """A restore source does not match the damaged file (size, identity or checksum)."""


class LedgerLocked(PmemError):
    """Another run holds the ledger lock."""


class InputError(PmemError):
    """A module option or role variable is malformed, or consent is missing: nothing was done."""


class LedgerError(GatherError):
    """The ledger or its lock could not be read, written or trusted (the file is left as it was)."""


# errno -> what the operator does next; the rest get the generic advice of the caller
_ERRNO_NEXT = {
    "ENOSPC": "free space on the filesystem that holds %(dir)s (or set ledger_path elsewhere), then re-run",
    "EDQUOT": "raise the disk quota on the filesystem that holds %(dir)s, then re-run",
    "EROFS": "remount the filesystem that holds %(dir)s read-write, or set ledger_path on a writable filesystem",
    "EACCES": "run as root (become: true), or give root ownership and mode 0700 to %(dir)s",
    "EPERM": "run as root (become: true); check the immutable flag (lsattr) of %(path)s and %(dir)s",
    "ELOOP": "%(path)s is a symlink; the ledger never follows symlinks: remove the link",
    "ENOTDIR": "a component of %(path)s is not a directory: fix the path or set ledger_path",
    "EISDIR": "%(path)s is a directory: set ledger_path to a file inside it",
    "ENOENT": "create %(dir)s (root-owned, mode 0700) or set ledger_path to an existing directory",
    "EIO": "the filesystem that holds %(dir)s reported an I/O error: check it (dmesg) before re-running",
}


def from_oserror(exc, path, what, next_step=None):
    """A LedgerError naming ``path``, ``what`` failed (e.g. "write the ledger"), the errno and the
    next step. ``exc`` is an OSError (or anything with errno/strerror)."""
    code = getattr(exc, "errno", None)
    name = _errno.errorcode.get(code, "") if code else ""
    reason = _os.strerror(code) if code else str(exc)
    advice = _ERRNO_NEXT.get(name)
    where = {"path": path, "dir": _os.path.dirname(_os.path.abspath(path)) if path else "?"}
    step = (advice % where) if advice else (next_step or "check %s and re-run" % path)
    return LedgerError("cannot %s %s: %s%s" % (what, path, reason, " (%s)" % name if name else ""),
                       next_step=step, details={"path": path, "errno": name or None, "operation": what})
