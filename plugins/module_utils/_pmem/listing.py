# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is a recorded range still listed? The one badblocks provider the acting modules use (internal
API).

``TopologyBadblocks`` reads what ``pmem_badblocks`` reads (``topology.gather_topology`` +
``ranges.gather_bad_ranges``: region lists, block-device lists and ``ndctl list -M``); a range
listed in any of them counts. Tests pass their own provider object with the same methods
(``listed_range``, ``invalidate``, ``notify_written``, ``topology``) as a parameter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import GatherError


def _overlaps(a_off, a_len, b_off, b_len):
    return a_off < b_off + b_len and b_off < a_off + a_len


def range_matches(rng, listed):
    """Does the listed BadRange ``listed`` cover any byte of the ledger range ``rng``?

    Compared by namespace uuid and offset when both identities have them, else by physical
    address when both have it (both stable across device renames), else in region coordinates,
    else in block-device coordinates, else by id. A namespace uuid decides alone: the same
    region name and offset on another namespace (recreated, or renamed onto) is not a match."""
    length = rng.get("length") or 0
    mine, theirs = rng.get("identity") or {}, listed.get("identity") or {}
    if mine.get("namespace_uuid") and theirs.get("namespace_uuid"):
        if mine["namespace_uuid"] != theirs["namespace_uuid"]:
            return False
        for key in ("namespace_offset", "data_offset"):
            if mine.get(key) is not None and theirs.get(key) is not None:
                return _overlaps(mine[key], length, theirs[key], listed.get("length") or 0)
    if rng.get("absolute") is not None and listed.get("absolute") is not None:
        return _overlaps(rng["absolute"], length, listed["absolute"], listed.get("length") or 0)
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


def summary(listed):
    return dict((k, listed.get(k)) for k in ("id", "sources", "region", "region_offset",
                                             "blockdev", "blockdev_offset", "length"))


def sub_range(rng, blockdev_offset, length):
    """The part [blockdev_offset, +length) of ``rng`` (block-device bytes), every coordinate
    shifted alike: one owner's share of a range that spans several owners."""
    delta = blockdev_offset - (rng.get("blockdev_offset") or 0)
    out = dict(rng, length=length, blockdev_offset=blockdev_offset)
    for key in ("absolute", "region_offset", "namespace_offset", "partition_offset"):
        if rng.get(key) is not None:
            out[key] = rng[key] + delta
    out["id"] = "%s[part %#x+%#x]" % (rng.get("id"), blockdev_offset, length)
    return out


class TopologyBadblocks(object):
    """The facts core's lists. One snapshot is cached until ``invalidate``/``notify_written``
    (every write invalidates it before verifying)."""

    def __init__(self, sysfs_root="/sys", proc_root="/proc", dev_root="/dev", ndctl="auto",
                 as_root=None):
        self.roots = {"sysfs_root": sysfs_root, "proc_root": proc_root, "dev_root": dev_root}
        self.ndctl = ndctl
        self.as_root = as_root
        self._ranges = None
        self._topology = None
        self.errors = []
        self.warnings = []

    def topology(self):
        if self._topology is None:
            ndctl = _topology.find_ndctl() if self.ndctl == "auto" else self.ndctl
            self._topology = _topology.gather_topology(ndctl=ndctl, as_root=self.as_root, **self.roots)
        return self._topology

    def ranges(self):
        if self._ranges is None:
            topo = self.topology()
            self.warnings = list(topo.get("warnings") or [])
            self.errors = list(topo.get("errors") or [])
            self._ranges = _ranges.gather_bad_ranges(topo, warnings=self.warnings)
        return self._ranges

    def invalidate(self):
        self._ranges = None
        self._topology = None

    def notify_written(self, blockdev, offset, length):
        """The kernel updates its own lists on a write; only the snapshot is stale."""
        self.invalidate()

    def has_list(self, rng):
        """Is there a badblocks list that would report ``rng``? A range on a device with no
        list (not pmem, or gone) is never "verified cleared"."""
        topo = self.topology()
        absolute = rng.get("absolute")
        if absolute is not None:
            for region in (topo.get("regions") or {}).values():
                start, size = region.get("resource"), region.get("size")
                if start is not None and size and start <= absolute < start + size:
                    return True
        return bool(rng.get("blockdev") in (topo.get("blockdevs") or {})
                    or rng.get("region") in (topo.get("regions") or {}))

    def listed_range(self, rng):
        found = [summary(r) for r in self.ranges() if range_matches(rng, r)]
        if not found and not self.has_list(rng):
            raise GatherError(
                "cannot verify: no badblocks list covers this range (the device is not a pmem "
                "namespace, or it is gone)", device=rng.get("blockdev") or rng.get("region"),
                range=rng.get("id"),
                next_step="check the namespaces (ndctl list -N) and re-run; the entry stays open")
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


def drop_stale_reopens(ledger, results, provider):
    """Resolver results minus those that would reopen an entry verified cleared whose range is
    not listed now: facts gathered before another run cleared the range must not undo that run.
    Only reopen candidates are looked up in the lists."""
    by_range = {}
    for entry in (ledger or {}).get("entries", []):
        rid = (entry.get("range") or {}).get("id")
        if rid and entry.get("state") == "closed":
            by_range.setdefault(rid, []).append(entry)
    out = []
    for result in results or []:
        closed = by_range.get(result.get("range_id")) or []
        reopen = [e for e in closed if _last_poison(e) == "cleared"]
        if reopen and provider is not None and not _listed(provider, reopen[0]["range"]):
            continue
        out.append(result)
    return out


def _last_poison(entry):
    for ev in reversed(entry.get("history") or []):
        if ev.get("event") in ("detected", "cleared", "clear_failed"):
            return ev.get("event")
    return None


def _listed(provider, rng):
    try:
        return provider.listed_range(rng)
    except GatherError:
        return True  # the lists cannot tell: keep the result (reopening is the safe side)
