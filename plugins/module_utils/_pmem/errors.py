# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain errors. Each one carries what an operator needs: the device, the range and the next step."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


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
