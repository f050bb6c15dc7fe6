# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build ``ansible_facts.pmem`` from a topology snapshot, its bad ranges and the ledger.

``build_facts`` is pure. ``gather_facts`` is the thin shell the module calls: topology, ranges,
ledger, facts. Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import capabilities as _capabilities
from ansible_collections.pmem.poison.plugins.module_utils._pmem import identity as _identity
from ansible_collections.pmem.poison.plugins.module_utils._pmem import kernel_events as _kernel_events
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as _ledger
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import GatherError, PmemError

SCHEMA_VERSION = 1


def expand_devices(topology, devices):
    """Names a ``devices`` restriction covers.

    Returns ``(wanted, keep, unknown)``: ``wanted`` are the names whose bad ranges are reported (each
    named device and everything below it); ``keep`` adds the ancestors (region, bus) so the
    topology stays readable; ``unknown`` lists names that match no device.
    """
    regions = topology.get("regions", {})
    namespaces = topology.get("namespaces", {})
    blockdevs = topology.get("blockdevs", {})
    dax = topology.get("dax", {})
    wanted, keep, unknown = set(), set(), []

    def below_namespace(ns_name):
        ns = namespaces.get(ns_name) or {}
        out = {ns_name}
        for child in (ns.get("blockdev"), ns.get("dax_device"), ns.get("holder")):
            if child:
                out.add(child)
        bdev = blockdevs.get(ns.get("blockdev") or "") or {}
        out.update(bdev.get("partitions") or {})
        return out

    holders = dict((ns.get("holder"), n) for n, ns in namespaces.items() if ns.get("holder"))
    for name in devices or []:
        if name in holders and name not in dax:
            name = holders[name]  # a pfn/btt/nd-dax device stands for its namespace
        if name in topology.get("buses", {}):
            found = {name}
            for rname in topology["buses"][name].get("regions", []):
                found.add(rname)
                for ns_name in (regions.get(rname) or {}).get("namespaces", []):
                    found |= below_namespace(ns_name)
            wanted |= found
            keep |= found
        elif name in regions:
            found = {name}
            for ns_name in regions[name].get("namespaces", []):
                found |= below_namespace(ns_name)
            wanted |= found
            keep |= found | {regions[name].get("bus")}
        elif name in namespaces:
            found = below_namespace(name)
            region = namespaces[name].get("region")
            wanted |= found
            keep |= found | {region, (regions.get(region) or {}).get("bus")}
        elif name in blockdevs or name in dax:
            ns_name = (blockdevs.get(name) or dax.get(name) or {}).get("namespace")
            found = below_namespace(ns_name) if ns_name else {name}
            if name in blockdevs:
                found.add(name)
                found |= set(blockdevs[name].get("partitions") or {})
            wanted |= found
            region = (namespaces.get(ns_name or "") or {}).get("region")
            keep |= found | {region, (regions.get(region or "") or {}).get("bus")}
        else:
            part_of = [b for b, bdev in blockdevs.items() if name in (bdev.get("partitions") or {})]
            if part_of:
                bdev = part_of[0]
                ns_name = blockdevs[bdev].get("namespace")
                region = (namespaces.get(ns_name or "") or {}).get("region")
                wanted.add(name)
                keep |= {name, bdev, ns_name, region, (regions.get(region or "") or {}).get("bus")}
            else:
                unknown.append(name)
    keep.discard(None)
    return wanted, keep, unknown


def _filter(mapping, keep):
    return dict((k, v) for k, v in mapping.items() if k in keep)


def _public_region(region):
    out = dict(region)
    out["badblock_count"] = len(region.get("badblocks") or [])
    return out


def handled_by_ledger(bad_ranges, closed_keys):
    """Split off the ranges known only from kernel-log/rasdaemon records that closed ledger
    entries already handled: the kernel log keeps a record until it rotates, long after the file
    was restored or its loss accepted. Returns ``(still_bad, handled)``."""
    still, handled = [], []
    for rng in bad_ranges:
        keys = set(ev.get("key") for ev in rng.get("events") or [] if ev.get("key"))
        listed = set(rng.get("sources") or []) & set(_ranges.LIST_SOURCES)
        if keys and not listed and keys <= set(closed_keys or ()):
            handled.append(rng)
        else:
            still.append(rng)
    return still, handled


def build_facts(topology, bad_ranges, open_entries, devices=None, ledger_error=None, extra_errors=None,
                extra_warnings=None, events=None, closed_event_keys=None, watcher=None, ledger_warnings=None):
    """The ``ansible_facts.pmem`` dict (schema in the module's RETURN)."""
    bad_ranges, handled = handled_by_ledger(bad_ranges, closed_event_keys)
    errors = list(topology.get("errors", [])) + list(extra_errors or [])
    warnings = list(topology.get("warnings", [])) + list(extra_warnings or [])
    buses = topology.get("buses", {})
    regions = dict((n, _public_region(r)) for n, r in topology.get("regions", {}).items())
    namespaces = dict(topology.get("namespaces", {}))
    blockdevs = dict(topology.get("blockdevs", {}))
    dax = dict(topology.get("dax", {}))
    mounts = list(topology.get("mounts", []))
    unknown_devices = []
    if devices:
        _wanted, keep, unknown = expand_devices(topology, devices)
        unknown_devices = list(unknown)
        for name in unknown:
            errors.append({"device": name, "file": None,
                           "message": "no such pmem device (not a bus, region, namespace, block device, "
                                      "partition or dax device on this host); the host is not reported clean. "
                                      "Next step: check the name (ndctl list -RN, ls /sys/bus/nd/devices)"})
        buses = _filter(buses, keep)
        regions = _filter(regions, keep)
        namespaces = _filter(namespaces, keep)
        blockdevs = _filter(blockdevs, keep)
        dax = _filter(dax, keep)
        mounts = [m for m in mounts if m.get("blockdev") in keep or m.get("partition") in keep]
    caps = _capabilities.from_topology(topology)
    for name in caps["truncated_lists"]:
        warnings.append("%s: the bad-block list is at the kernel's limit (512 extents or one page of "
                        "text); treat it as a lower bound" % name)
    if ledger_error is not None:
        errors.append(ledger_error)
    for rng in bad_ranges:
        if rng.get("area") == _ranges.AREA_INFO_BLOCK:
            warnings.append("%s lies in the info block/memmap reserve of %s: not reachable through "
                            "the block device (needs raw mode or a region-level clear)"
                            % (rng["id"], rng["namespace"]))
    # a requested device that does not exist was not checked: the host cannot be called clean
    clean = not bad_ranges and not open_entries and ledger_error is None and not unknown_devices
    locations = open_entry_locations(open_entries, topology)
    for eid, loc in sorted(locations.items()):
        if not loc["present"]:
            warnings.append("open ledger entry %s: %s" % (eid, loc["reason"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "gathered_as_root": bool(topology.get("gathered_as_root")),
        "kernel": topology.get("kernel"),
        "ndctl": topology.get("ndctl") or {"used": False, "executable": None},
        "buses": buses,
        "regions": regions,
        "namespaces": namespaces,
        "blockdevs": blockdevs,
        "dax": dax,
        "mounts": mounts,
        "cxl": _cxl_summary(topology.get("cxl")),
        "bad_ranges": list(bad_ranges),
        "handled_records": handled,
        "capabilities": caps,
        "errors": errors,
        "warnings": warnings,
        "unreadable": list(topology.get("unreadable", [])),
        "open_entries": list(open_entries or []),
        "open_entry_locations": locations,
        "ledger_warnings": list(ledger_warnings or []),
        "event_sources": _event_summary(events),
        "watcher": watcher,
        "clean": clean,
    }


_LOCATION_FIELDS = ("present", "reason", "region", "namespace", "blockdev", "partition",
                    "dax_device", "blockdev_offset", "partition_offset", "area", "moved")


def open_entry_locations(open_entries, topology):
    """{entry id: where its bytes are now} for open ledger entries (identity.locate on the
    entry's recorded identity; schema-1 entries by their recorded physical address): the device
    names of now, which may differ from the names the entry was seen under."""
    out = {}
    for entry in open_entries or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        ident = _identity.identity_from_recorded(entry.get("range"))
        loc = _identity.locate(ident, topology) if ident else {
            "present": False, "reason": "recorded by device name only (%s): names move across "
                                        "reboots; resolve it again" % (entry.get("range") or {}).get("id")}
        out[entry["id"]] = dict((k, loc.get(k)) for k in _LOCATION_FIELDS if k in loc)
    return out


def read_ledger_summary(ledger_path):
    """``{entries (open), closed_keys (closed entries' record keys), warnings (the ledger's),
    error (an errors entry or None)}``."""
    out = {"entries": [], "closed_keys": set(), "warnings": [], "error": None}
    if not ledger_path:
        return out
    try:
        # lstat: a symlink (dangling too) is not "no ledger"; the ledger refuses it (O_NOFOLLOW)
        os.lstat(ledger_path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not os.path.islink(os.path.dirname(os.path.abspath(ledger_path))):
            return out  # no ledger: no entries
    try:
        entries, keys, warnings = _ledger.read_summary(ledger_path)
        out.update(entries=list(entries or []), closed_keys=set(keys or ()), warnings=list(warnings or []))
    except PmemError as exc:
        out["error"] = {"device": "ledger", "file": ledger_path, "message": str(exc)}
    except (IOError, OSError, ValueError) as exc:
        out["error"] = {"device": "ledger", "file": ledger_path, "message": "cannot read the ledger: %s" % exc}
    return out


def recorded_event_keys(ledger):
    """Keys of every kernel-log record a ledger entry (open or closed) was detected by."""
    keys = set(ledger["closed_keys"])
    for entry in ledger["entries"]:
        keys.update(_ledger.event_keys_of(entry))
    return keys


def boot_time(proc_root="/proc"):
    """When this boot started, as a ledger timestamp (``btime`` of /proc/stat), or None."""
    try:
        with open(os.path.join(proc_root, "stat")) as f:
            for line in f:
                if line.startswith("btime "):
                    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(line.split()[1])))
    except (IOError, OSError, ValueError):
        pass
    return None


def ledger_warning_messages(ledger_warnings, since):
    """The module warnings for the ledger's warnings recorded at or after ``since`` (this boot;
    all of them when the boot time is unknown): the newest three in full, the rest counted. Older
    ones stay in RV(ansible_facts.pmem.ledger_warnings) without repeating every run."""
    recent = [w for w in ledger_warnings or [] if since is None or (w.get("at") or "") >= since]
    if not recent:
        return []
    out = ["ledger warning (%s, %s): %s" % (w.get("source"), w.get("at"), w.get("message"))
           for w in recent[-3:]]
    if len(recent) > 3:
        out.append("ledger: %d more warning(s) recorded since this boot (ansible_facts.pmem.ledger_warnings)"
                   % (len(recent) - 3))
    return out


def gather_facts(sysfs_root="/sys", proc_root="/proc", dev_root="/dev", ndctl=None, ledger_path=None,
                 devices=None, as_root=None, extra_warnings=None, ndctl_only_if_listed=False,
                 events=None):
    """Gather topology, bad ranges and ledger state; return the facts dict. Never raises PmemError.

    With ``ndctl_only_if_listed`` ndctl is run only when some kernel list has entries: its media-error
    lists come from the same kernel lists, so on a host with empty lists it can add nothing (and it
    costs a few hundred milliseconds on a slow guest).

    ``events`` is what ``kernel_events.gather`` returned (memory failures, machine checks and
    rasdaemon records, which no list holds), or None to read no such source, or a callable giving
    one of those, called once the topology is read (a journal query started before it runs
    meanwhile).
    """
    topo = _topology.gather_topology(sysfs_root=sysfs_root, proc_root=proc_root, dev_root=dev_root,
                                     ndctl=None if ndctl_only_if_listed else ndctl, as_root=as_root)
    if ndctl is not None and ndctl_only_if_listed:
        listed = any(r.get("badblocks") for r in topo["regions"].values()) or any(
            b.get("badblocks") for b in topo["blockdevs"].values())
        if listed:
            topo = _topology.gather_topology(sysfs_root=sysfs_root, proc_root=proc_root, dev_root=dev_root,
                                             ndctl=ndctl, as_root=as_root)
        else:
            topo["ndctl"] = {"used": False, "executable": ndctl if isinstance(ndctl, str) else None,
                             "skipped": "every kernel list is empty: nothing for ndctl to add"}
    if callable(events):
        events = events()
    warnings = list(extra_warnings or [])
    if events is not None:
        warnings.extend(events.get("warnings") or [])
    wanted = expand_devices(topo, devices)[0] if devices else None
    bad = _ranges.gather_bad_ranges(topo, devices=wanted, warnings=warnings,
                                    events=(events or {}).get("events"))
    ledger = read_ledger_summary(ledger_path)
    if events is not None:
        hardware = _kernel_events.hardware_corrupted_warning(events, recorded_event_keys(ledger))
        if hardware:
            warnings.append(hardware)
    warnings.extend(ledger_warning_messages(ledger["warnings"], boot_time(proc_root)))
    return build_facts(topo, bad, ledger["entries"], devices=devices, ledger_error=ledger["error"],
                       extra_warnings=warnings, events=events, closed_event_keys=ledger["closed_keys"],
                       ledger_warnings=ledger["warnings"])


def _cxl_summary(state):
    """The CXL memory devices and regions (cxl.py) for RV(ansible_facts.pmem.cxl)."""
    state = state or {}
    return {"memdevs": dict(state.get("memdevs") or {}), "regions": dict(state.get("regions") or {}),
            "poison_records": len(state.get("poison") or [])}


def _event_summary(events):
    """What the kernel-event sources said, for RV(ansible_facts.pmem.event_sources)."""
    if events is None:
        return {"read": [], "hardware_corrupted": None, "events": 0}
    return {"read": list(events.get("sources_read") or []),
            "hardware_corrupted": events.get("hardware_corrupted"),
            "events": len(events.get("events") or [])}


def gather_events(proc_root="/proc", dev_root="/dev", journal=None):
    """The kernel-event sources of this host (kernel_events.gather), never raising. ``journal``:
    as kernel_events.gather takes it (a started query: kernel_events.start_journal)."""
    try:
        return _kernel_events.gather(proc_root=proc_root, dev_root=dev_root, journal=journal)
    except (IOError, OSError, ValueError) as exc:
        return {"events": [], "boot_id": None, "hardware_corrupted": None, "sources_read": [],
                "warnings": ["cannot read the kernel's memory-failure records: %s" % exc]}


__all__ = ["build_facts", "gather_facts", "gather_events", "expand_devices", "read_ledger_summary", "GatherError"]
