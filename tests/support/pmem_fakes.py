# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test doubles for the acting modules, injected through parameters (never the environment).

``FileBadblocks``: a badblocks provider backed by a JSON file, for loop devices (which cannot be
poisoned) and unit tests::

    {"devices": {"loop0": [[sector, count]]},   # listed sectors, whole-device
     "write_clears": true,                       # a covering write removes whole sectors (e820)
     "write_errno": null,                        # e.g. 5: writes over listed sectors fail (QEMU)
     "topology": {"blockdevs": {...}, "namespaces": {...}}}   # what sysfs would say

``pmem_topology(dev, size, data_start)`` builds that topology for one loop device posing as the
data area of an fsdax namespace. ``KillAt(point)``: a hook that SIGKILLs the process at a point.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import signal

SECTOR = 512


def _disk(name):
    return re.sub(r"(?<=\d)p\d+$", "", os.path.basename(name or ""))


def pmem_topology(dev, size, data_start=0x100000000, uuid="6a7c8d5e-0000-4000-8000-000000000001",
                  partitions=None):
    """A topology in which block device ``dev`` (e.g. ``loop3``) is the data area of an fsdax
    namespace starting at physical address ``data_start``. ``dev`` numbers come from sysfs."""
    name = os.path.basename(dev)
    try:
        with open("/sys/class/block/%s/dev" % name) as f:
            devnum = f.read().strip()
    except (IOError, OSError):
        devnum = None
    return {"blockdevs": {name: {"name": name, "namespace": "namespace9.0", "size": size,
                                 "dev": devnum, "device": "/dev/" + name,
                                 "partitions": partitions or {}}},
            "namespaces": {"namespace9.0": {"name": "namespace9.0", "region": "region9",
                                            "mode": "fsdax", "uuid": uuid, "blockdev": name,
                                            "data_start": data_start, "data_size": size}},
            "mounts": []}


class FileBadblocks(object):
    """A provider with the methods of listing.TopologyBadblocks, backed by a JSON file."""

    def __init__(self, path):
        self.path = path
        self.written = []

    def _load(self):
        with open(self.path) as f:
            return json.load(f)

    def _save(self, data):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.rename(tmp, self.path)

    def sectors(self, blockdev):
        return [tuple(x) for x in self._load().get("devices", {}).get(_disk(blockdev), [])]

    def topology(self):
        return self._load().get("topology") or {"blockdevs": {}, "namespaces": {}, "mounts": []}

    def invalidate(self):
        """Nothing cached."""

    def listed(self, blockdev, offset, length):
        if blockdev is None or offset is None:
            return []
        lo, hi = offset // SECTOR, -(-(offset + length) // SECTOR)
        return [(s, c) for s, c in self.sectors(blockdev) if s < hi and s + c > lo]

    def listed_range(self, rng):
        blockdev, off = rng.get("blockdev"), rng.get("blockdev_offset")
        return [{"id": "%s@%#x+%#x" % (blockdev, s * SECTOR, c * SECTOR),
                 "sources": ["blockdev"], "region": None, "region_offset": None,
                 "blockdev": blockdev, "blockdev_offset": s * SECTOR, "length": c * SECTOR}
                for s, c in self.listed(blockdev, off, rng.get("length") or 0)]

    def notify_written(self, blockdev, offset, length):
        """The kernel's side of a write: whole sectors written are no longer listed (e820)."""
        self.written.append((blockdev, offset, length))
        data = self._load()
        if not data.get("write_clears", True):
            return
        dev = _disk(blockdev)
        lo, hi = offset // SECTOR, (offset + length) // SECTOR
        kept = []
        for s, c in data.get("devices", {}).get(dev, []):
            for sec in range(s, s + c):
                if not lo <= sec < hi:
                    kept.append([sec, 1])
        data.setdefault("devices", {})[dev] = kept
        self._save(data)


def write_error_hook(provider, err, then=None):
    """A hook raising OSError(err) at ``before_write`` while the fake lists anything (a device
    that cannot clear answers the write with EIO); other points go to ``then``."""
    def hook(point):
        if point == "before_write" and any(provider._load().get("devices", {}).values()):
            raise OSError(err, os.strerror(err))
        if then is not None:
            then(point)
    return hook


class KillAt(object):
    """Hook: SIGKILL this process at the named point (crash tests)."""

    def __init__(self, point):
        self.point = point
        self.seen = []

    def __call__(self, point):
        self.seen.append(point)
        if point == self.point:
            os.kill(os.getpid(), signal.SIGKILL)
