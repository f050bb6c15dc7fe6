# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CXL memory devices' poison lists (internal API).

Linux (6.4+) keeps no file with a CXL memory device's poison list. Writing ``1`` to
``/sys/bus/cxl/devices/memX/trigger_poison_list`` makes the driver ask the device (the Get Poison
List mailbox command) and emit one ``cxl_poison`` trace event per record, ``trace_type=List``; this
is also how ``cxl list -L`` / ``--media-errors`` (ndctl v80+) reads them. ``gather`` does the same
through a private tracefs instance (``instances/pmem_poison_<pid>``, removed afterwards), so the
host's own tracing is left as it was. Nothing on the device changes: the list is only read.

A record names the memory device, its device physical address (DPA) and length, the device's
error source (``Unknown``, ``External``, ``Internal``, ``Injected``, ``Vendor``) and, when a
committed CXL region maps that DPA, the region and the host physical address (HPA). A pmem
region's HPA range is also an nd region's ``resource``: ``ranges.gather_bad_ranges`` places the
record there like any list entry (namespace, block device, dax device, filesystem).

Clearing (``clear_argv``/``clear_dpa_units``): ``/sys/kernel/debug/cxl/memX/clear_poison`` takes a
DPA and clears 64 bytes (the Clear Poison command writes zeros there); ``inject_poison`` injects
64 bytes the same way (the lab's injector). Both need debugfs and a device that supports the
commands. ``clearing.cxl_clear`` writes through the guard.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

# The Get/Inject/Clear Poison commands work in 64-byte units (CXL 3.x 8.2.9.9.4).
POISON_UNIT = 64
# hpa when no region maps the DPA (ULLONG_MAX)
NO_HPA = (1 << 64) - 1
SOURCE = "cxl"
EVENT = "cxl/cxl_poison"

_TOKEN = re.compile(r"(\w+)=(\S*)")
_MEMDEV = re.compile(r"^mem[0-9]+$")
_REGION = re.compile(r"^region[0-9]+$")


def _int(text, base=0):
    try:
        return int(text, base)
    except (TypeError, ValueError):
        return None


def parse_poison_trace(text):
    """``cxl_poison`` records of tracefs ``trace`` text, in order: dicts with ``memdev``, ``host``,
    ``serial``, ``trace_type`` (List, Inject, Clear), ``region`` (None when unmapped),
    ``region_uuid``, ``hpa`` (None when unmapped), ``dpa``, ``length``, ``source``, ``flags``.
    Lines of other events, comments and malformed lines are skipped."""
    out = []
    for line in (text or "").splitlines():
        if line.startswith("#"):
            continue
        at = line.find(" cxl_poison: ")
        if at < 0:
            continue
        fields = dict(_TOKEN.findall(line[at + len(" cxl_poison: "):]))
        dpa = _int(fields.get("dpa"), 16)
        length = _int(fields.get("dpa_length"), 16)
        if not fields.get("memdev") or dpa is None or not length:
            continue
        hpa = _int(fields.get("hpa"), 16)
        out.append({
            "memdev": fields["memdev"],
            "host": fields.get("host") or None,
            "serial": _int(fields.get("serial"), 10),
            "trace_type": fields.get("trace_type") or None,
            "region": fields.get("region") or None,
            "region_uuid": fields.get("region_uuid") or None,
            "hpa": None if hpa in (None, NO_HPA) else hpa,
            "dpa": dpa,
            "length": length,
            "source": fields.get("source") or None,
            "flags": fields.get("flags") or None,
        })
    return out


def list_records(records):
    """The poison-list records (``trace_type=List``), one per (memdev, dpa, length): a device
    listed twice in one read (a retried trigger) counts once."""
    seen, out = set(), []
    for rec in records:
        if rec.get("trace_type") != "List":
            continue
        key = (rec["memdev"], rec["dpa"], rec["length"])
        if key not in seen:
            seen.add(key)
            out.append(rec)
    return out


def _read(path):
    with open(path) as f:
        return f.read()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _bus_devices(sysfs_root, pattern):
    """``[(name, path)]`` of the CXL bus devices whose name matches ``pattern``; [] without CXL."""
    base = os.path.join(sysfs_root, "bus", "cxl", "devices")
    try:
        names = sorted(n for n in os.listdir(base) if pattern.match(n))
    except OSError:
        return []
    return [(name, os.path.join(base, name)) for name in names]


def memdevs(sysfs_root="/sys"):
    """{memX: {serial, host, pmem_size, ram_size, can_list}} of ``/sys/bus/cxl/devices``; {} on a
    host without CXL."""
    out = {}
    for name, path in _bus_devices(sysfs_root, _MEMDEV):
        info = {"serial": None, "host": None, "pmem_size": None, "ram_size": None,
                "can_list": os.path.exists(os.path.join(path, "trigger_poison_list"))}
        for key, rel in (("serial", "serial"), ("pmem_size", "pmem/size"), ("ram_size", "ram/size")):
            try:
                info[key] = _int(_read(os.path.join(path, rel)).strip())
            except (IOError, OSError):
                pass
        try:
            info["host"] = os.path.basename(os.path.realpath(os.path.join(path, "..")))
        except OSError:
            pass
        out[name] = info
    return out


def regions(sysfs_root="/sys"):
    """{regionN: {mode, resource, size, uuid}} of the CXL bus (the HPA range each maps)."""
    out = {}
    for name, path in _bus_devices(sysfs_root, _REGION):
        info = {}
        for key in ("mode", "resource", "size", "uuid"):
            try:
                text = _read(os.path.join(path, key)).strip()
            except (IOError, OSError):
                text = None
            info[key] = _int(text) if key in ("resource", "size") else (text or None)
        out[name] = info
    return out


def tracefs_root(sysfs_root="/sys"):
    for rel in (("kernel", "tracing"), ("kernel", "debug", "tracing")):
        path = os.path.join(sysfs_root, *rel)
        if os.path.exists(os.path.join(path, "instances")):
            return path
    return None


def _trigger(path):
    _write(path, "1")


def gather(sysfs_root="/sys", as_root=None, instance=None, trigger=_trigger):
    """Read every memory device's poison list. Returns ``{"memdevs", "regions", "records",
    "errors", "warnings"}``; never raises. ``records`` are the List records (``parse_poison_trace``
    shape plus ``hpa_offset`` into the region). A host without CXL memory devices returns empty
    lists and no messages. ``trigger(path)`` asks the kernel for one device's list (writes ``1`` to
    its ``trigger_poison_list``; the events arrive before the write returns)."""
    result = {"memdevs": memdevs(sysfs_root), "regions": regions(sysfs_root), "records": [],
              "errors": [], "warnings": []}
    listable = [n for n, m in sorted(result["memdevs"].items()) if m["can_list"]]
    if not result["memdevs"]:
        return result
    if not listable:
        result["warnings"].append(
            "CXL memory devices %s have no poison list (trigger_poison_list absent: the device "
            "does not support Get Poison List, or the kernel is older than 6.4)"
            % ", ".join(sorted(result["memdevs"])))
        return result
    if as_root is None:
        as_root = os.geteuid() == 0
    if not as_root:
        result["warnings"].append(
            "not running as root: the poison lists of CXL memory devices %s were not read "
            "(trigger_poison_list and tracefs are root-only); become root" % ", ".join(listable))
        return result
    tracing = tracefs_root(sysfs_root)
    if tracing is None:
        result["errors"].append({
            "device": listable[0], "file": os.path.join(sysfs_root, "kernel", "tracing"),
            "message": "tracefs is not mounted: the CXL poison list arrives only as cxl_poison "
                       "trace events. Next step: mount -t tracefs nodev /sys/kernel/tracing"})
        return result
    name = instance or "pmem_poison_%d" % os.getpid()
    inst = os.path.join(tracing, "instances", name)
    try:
        try:
            os.mkdir(inst)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        enable = os.path.join(inst, "events", EVENT, "enable")
        if not os.path.exists(enable):
            result["errors"].append({
                "device": listable[0], "file": enable,
                "message": "this kernel has no cxl_poison trace event: CXL poison lists cannot be read"})
            return result
        _write(os.path.join(inst, "trace"), "")
        _write(enable, "1")
        for mem in listable:
            path = os.path.join(sysfs_root, "bus", "cxl", "devices", mem, "trigger_poison_list")
            try:
                trigger(path)
            except (IOError, OSError) as exc:
                result["errors"].append({"device": mem, "file": path,
                                         "message": "cannot read the poison list: %s. Next step: check "
                                                    "the device (cxl list -m %s) and dmesg" % (exc, mem)})
        _write(enable, "0")
        text = _read(os.path.join(inst, "trace"))
    except (IOError, OSError) as exc:
        result["errors"].append({"device": listable[0], "file": inst,
                                 "message": "cannot read the cxl_poison trace events: %s" % exc})
        return result
    finally:
        try:
            os.rmdir(inst)
        except OSError:
            pass
    result["records"] = place_records(list_records(parse_poison_trace(text)), result["regions"])
    return result


def place_records(records, cxl_regions):
    """Each record with ``hpa_offset`` (its HPA minus its CXL region's base, or None)."""
    out = []
    for rec in records:
        rec = dict(rec, hpa_offset=None)
        base = (cxl_regions.get(rec.get("region") or "") or {}).get("resource")
        if rec.get("hpa") is not None and base is not None and rec["hpa"] >= base:
            rec["hpa_offset"] = rec["hpa"] - base
        out.append(rec)
    return out


def overlapping(records, memdev, dpa, length):
    """Records of ``memdev`` that cover any byte of ``[dpa, dpa + length)``."""
    return [r for r in records if r["memdev"] == memdev and r["dpa"] < dpa + length
            and dpa < r["dpa"] + r["length"]]


def clear_dpa_units(dpa, length):
    """The 64-byte-aligned DPAs whose clears cover ``[dpa, dpa + length)``."""
    start = dpa - dpa % POISON_UNIT
    end = dpa + length
    return list(range(start, end, POISON_UNIT))


def debugfs_file(memdev, what, debugfs_root="/sys/kernel/debug"):
    """``/sys/kernel/debug/cxl/<memdev>/<what>`` (what: clear_poison or inject_poison)."""
    return os.path.join(debugfs_root, "cxl", memdev, what)


__all__ = ["parse_poison_trace", "list_records", "memdevs", "regions", "gather", "place_records",
           "overlapping", "clear_dpa_units", "debugfs_file", "POISON_UNIT", "SOURCE"]
