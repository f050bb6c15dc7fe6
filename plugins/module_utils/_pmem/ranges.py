# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad-range math: parse badblocks text, sector/byte conversion, interval merge, and the
translation of a range through region -> namespace -> block device -> partition -> filesystem.

Everything here is pure: it takes the topology dict built by ``topology.gather_topology`` (which
already holds the parsed lists) and returns BadRange dicts as described in docs/design.md.
No I/O, no ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.pmem.poison.plugins.module_utils._pmem import identity as _identity

_DECIMAL = re.compile(r"^[0-9]{1,20}$")

SECTOR = 512
# The kernel's badblocks table: at most 512 extents; sysfs text stops at one page.
KERNEL_MAX_EXTENTS = 512
TRUNCATION_EXTENTS = 500
PAGE_TEXT = 4096
# Longest line badblocks_show() can print: "%llu %d\n".
_MAX_LINE = len("18446744073709551615 512\n")

AREA_DATA = "data"
AREA_INFO_BLOCK = "info_block"
AREA_OUTSIDE_PARTITION = "outside_partition"
AREA_OUTSIDE_NAMESPACE = "outside_namespace"

SOURCE_REGION = "region"
SOURCE_BLOCKDEV = "blockdev"
SOURCE_NDCTL = "ndctl"
# Records of consumed or reported poison that no list holds (kernel_events.py): machine checks,
# memory failures from the kernel log, rasdaemon's database.
SOURCE_MCE = "mce"
SOURCE_MEMORY_FAILURE = "memory_failure"
SOURCE_RASDAEMON = "rasdaemon"
# pushed by the filesystem while the watcher listens (fs_events.py, Linux 7.x): XFS health monitor
SOURCE_XFS_HEALTH = "xfs_health"
# a CXL memory device's poison list (cxl.py: Get Poison List through the cxl_poison trace event)
SOURCE_CXL = "cxl"
SOURCE_ORDER = (SOURCE_REGION, SOURCE_BLOCKDEV, SOURCE_NDCTL, SOURCE_CXL, SOURCE_MCE,
                SOURCE_MEMORY_FAILURE, SOURCE_RASDAEMON, SOURCE_XFS_HEALTH)
LIST_SOURCES = (SOURCE_REGION, SOURCE_BLOCKDEV, SOURCE_NDCTL, SOURCE_CXL)
# what a range says about each CXL poison record inside it
CXL_FIELDS = ("memdev", "serial", "host", "dpa", "length", "source", "region", "region_uuid", "hpa",
              "hpa_offset")
# internal tags: ndctl's region lists are independent evidence; its namespace lists are derived
# (from the region list for fsdax/devdax, from the block-device list for raw namespaces)
_NDCTL_REGION = "ndctl:region"
_NDCTL_NAMESPACE = "ndctl:namespace"


def sectors_to_bytes(sectors):
    return int(sectors) * SECTOR


def bytes_to_sectors(nbytes):
    """Whole sectors covering ``nbytes`` (rounded up)."""
    return (int(nbytes) + SECTOR - 1) // SECTOR


def parse_badblocks(text):
    """Parse ``"<sector> <count>"`` lines.

    Returns ``(entries, errors)``: entries is a list of ``(sector, count)`` tuples in input order;
    errors is a list of ``{"line": n, "text": line, "message": why}`` for every line that is not
    blank and not a valid entry. Never raises for bad lines; ``None`` counts as empty text.
    """
    entries = []
    errors = []
    if text is None:
        return entries, errors
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            message = "expected '<sector> <count>', got %d field(s)" % len(fields)
        elif not (_DECIMAL.match(fields[0]) and _DECIMAL.match(fields[1])):
            message = "sector and count must be decimal integers"
        elif int(fields[1]) <= 0:
            message = "count must be positive"
        else:
            entries.append((int(fields[0]), int(fields[1])))
            continue
        errors.append({"line": number, "text": raw[:200], "message": message})
    return entries, errors


def looks_truncated(text, n_entries):
    """True when a list is at (or near) the kernel limits, so it is only a lower bound."""
    if n_entries >= TRUNCATION_EXTENTS:
        return True
    if text is not None and len(text) > PAGE_TEXT - _MAX_LINE:
        return True
    return False


def merge_intervals(intervals):
    """Merge ``(start, end, sources, dimms)`` half-open byte intervals that overlap or touch.

    Returns a sorted list of ``(start, end, frozenset(sources), tuple(sorted(dimms)))``.
    Idempotent and independent of input order. Empty or inverted intervals are dropped.
    """
    items = []
    for item in intervals:
        start, end = int(item[0]), int(item[1])
        sources = item[2] if len(item) > 2 and item[2] is not None else ()
        dimms = item[3] if len(item) > 3 and item[3] is not None else ()
        if end <= start:
            continue
        items.append((start, end, frozenset(sources), frozenset(dimms)))
    items.sort(key=lambda x: (x[0], x[1]))
    merged = []
    for start, end, sources, dimms in items:
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2] | sources, last[3] | dimms)
        else:
            merged.append((start, end, sources, dimms))
    return [(s, e, src, tuple(sorted(d))) for s, e, src, d in merged]


def split_at(start, end, points):
    """Split ``[start, end)`` at every point strictly inside it; returns ``[(s, e), ...]``."""
    cuts = sorted(set(p for p in points if start < p < end))
    pieces = []
    cur = start
    for p in cuts:
        pieces.append((cur, p))
        cur = p
    pieces.append((cur, end))
    return pieces


def format_id(device, offset, length):
    return "%s@%#x+%#x" % (device, offset, length)


def _sorted_sources(sources):
    sources = set(SOURCE_NDCTL if s.startswith("ndctl") else s for s in sources)
    return [s for s in SOURCE_ORDER if s in sources] + sorted(s for s in sources if s not in SOURCE_ORDER)


# --------------------------------------------------------------------------------------------
# Coordinate translation
# --------------------------------------------------------------------------------------------

def _region_layout(topology, region_name):
    """Namespaces of a region in region-relative byte coordinates, where they can be known.

    Returns a list of dicts ``{name, start, end, data_start, data_end}`` (data_* may be None),
    and a flag telling whether the layout is complete (every namespace placed).
    """
    region = topology.get("regions", {}).get(region_name) or {}
    namespaces = topology.get("namespaces", {})
    names = [n for n in region.get("namespaces", []) if n in namespaces]
    rres = region.get("resource")
    layout = []
    complete = True
    for name in names:
        ns = namespaces[name]
        start = None
        if rres is not None and ns.get("resource") is not None:
            start = ns["resource"] - rres
        elif len(names) == 1 and ns.get("size") and ns.get("size") == region.get("size"):
            # the only namespace and as large as the region: it starts at the region start
            start = 0
        if start is None or ns.get("size") is None:
            complete = False
            continue
        end = start + ns["size"]
        data_start = data_end = None
        if ns.get("data_offset") is not None and ns.get("data_size") is not None:
            data_start = start + ns["data_offset"]
            data_end = data_start + ns["data_size"]
        layout.append({"name": name, "start": start, "end": end,
                       "data_start": data_start, "data_end": data_end})
    return layout, complete


def _data_region_start(topology, ns_name):
    """Region offset of a namespace's data area, or None when it cannot be known."""
    ns = topology.get("namespaces", {}).get(ns_name) or {}
    layout, _complete = _region_layout(topology, ns.get("region"))
    for item in layout:
        if item["name"] == ns_name:
            return item["data_start"]
    return None


def device_address(topology, dev, offset):
    """Physical address of byte *offset* of the block device or partition whose device number is
    *dev* ("major:minor"), or None when it cannot be known (not pmem, a sector-mode namespace, or
    the root-only resource files unreadable). What a filesystem reports in its own device's bytes
    (the XFS health monitor) becomes an address the way a list entry does."""
    namespaces = topology.get("namespaces", {})
    for bdev in topology.get("blockdevs", {}).values():
        start = 0 if bdev.get("dev") == dev else None
        for part in (bdev.get("partitions") or {}).values():
            if part.get("dev") == dev:
                start = part.get("start")
                if start is None:
                    return None
        if start is None:
            continue
        ns = namespaces.get(bdev.get("namespace") or "") or {}
        if not ns or ns.get("mode") == "sector":
            return None
        base = _data_region_start(topology, bdev["namespace"])
        resource = (topology.get("regions", {}).get(ns.get("region") or "") or {}).get("resource")
        if base is None or resource is None:
            return None
        return resource + base + start + offset
    return None


def _find_mount(topology, device_name):
    if not device_name:
        return None
    for mount in topology.get("mounts", []):
        if mount.get("partition") == device_name or (
                mount.get("blockdev") == device_name and not mount.get("partition")):
            return mount
    return None


def _blank_range(length):
    return {
        "id": None,
        "region": None,
        "namespace": None,
        "blockdev": None,
        "partition": None,
        "dax_device": None,
        "length": length,
        "sources": [],
        "software_only": False,
        "dimms": [],
        "area": None,
        "absolute": None,
        "region_offset": None,
        "namespace_offset": None,
        "blockdev_offset": None,
        "partition_offset": None,
        "filesystem": None,
        "events": [],
        "cxl": [],
    }


def _fill_data_area(topology, rng, ns, data_off):
    """Fill blockdev/partition/dax/filesystem fields for a range at data-area offset ``data_off``."""
    mode = ns.get("mode")
    rng["area"] = AREA_DATA
    if mode == "devdax":
        rng["dax_device"] = ns.get("dax_device")
        return
    blockdev = ns.get("blockdev")
    rng["blockdev"] = blockdev
    if not blockdev or mode == "sector":
        # BTT remaps sectors: a physical offset does not name a block-device sector
        return
    rng["blockdev_offset"] = data_off
    bdev = topology.get("blockdevs", {}).get(blockdev) or {}
    partitions = bdev.get("partitions") or {}
    fs_device = blockdev
    fs_offset = data_off
    if partitions:
        fs_device = None
        fs_offset = None
        for pname in sorted(partitions):
            part = partitions[pname]
            if part.get("start") is None or part.get("size") is None:
                continue
            if part["start"] <= data_off < part["start"] + part["size"]:
                rng["partition"] = pname
                rng["partition_offset"] = data_off - part["start"]
                fs_device = pname
                fs_offset = rng["partition_offset"]
                break
        else:
            rng["area"] = AREA_OUTSIDE_PARTITION
    mount = _find_mount(topology, fs_device)
    if mount is not None:
        rng["filesystem"] = {
            "device": mount.get("device"),
            "mountpoint": mount.get("mountpoint"),
            "fstype": mount.get("fstype"),
            "dax": bool(mount.get("dax")),
            "offset": fs_offset,
        }


def locate_region_piece(topology, region_name, start, end, layout):
    """BadRange for ``[start, end)`` in region coordinates (the piece lies in one area)."""
    region = topology.get("regions", {}).get(region_name) or {}
    rng = _blank_range(end - start)
    rng["region"] = region_name
    rng["region_offset"] = start
    if region.get("resource") is not None:
        rng["absolute"] = region["resource"] + start
    ns_item = None
    for item in layout:
        if item["start"] <= start < item["end"]:
            ns_item = item
            break
    if ns_item is None:
        rng["area"] = AREA_OUTSIDE_NAMESPACE
        return rng
    ns = topology["namespaces"][ns_item["name"]]
    rng["namespace"] = ns_item["name"]
    rng["namespace_offset"] = start - ns_item["start"]
    if ns_item["data_start"] is None:
        if ns.get("mode") == "devdax":
            rng["dax_device"] = ns.get("dax_device")
        return rng  # area unknown: the data start could not be read
    if not (ns_item["data_start"] <= start < ns_item["data_end"]):
        rng["area"] = AREA_INFO_BLOCK
        return rng
    _fill_data_area(topology, rng, ns, start - ns_item["data_start"])
    return rng


def _region_boundaries(topology, layout):
    points = []
    namespaces = topology.get("namespaces", {})
    blockdevs = topology.get("blockdevs", {})
    for item in layout:
        points.extend([item["start"], item["end"]])
        if item["data_start"] is None:
            continue
        points.extend([item["data_start"], item["data_end"]])
        ns = namespaces.get(item["name"]) or {}
        bdev = blockdevs.get(ns.get("blockdev") or "") or {}
        for part in (bdev.get("partitions") or {}).values():
            if part.get("start") is None or part.get("size") is None:
                continue
            points.append(item["data_start"] + part["start"])
            points.append(item["data_start"] + part["start"] + part["size"])
    return points


def _data_boundaries(topology, ns):
    bdev = topology.get("blockdevs", {}).get(ns.get("blockdev") or "") or {}
    points = []
    if ns.get("data_size") is not None:
        points.append(ns["data_size"])
    for part in (bdev.get("partitions") or {}).values():
        if part.get("start") is None or part.get("size") is None:
            continue
        points.extend([part["start"], part["start"] + part["size"]])
    return points


def place_events(topology, events, warnings):
    """Kernel-log / rasdaemon events -> ``[(region, region_offset, length, source)]``.

    An event names a physical address; the region whose resource (root-only) holds it gets the
    range. Events outside every pmem region are DRAM (not ours) and are left out silently; events
    that cannot be placed because the region bases are unreadable are a warning."""
    placed = []
    regions = topology.get("regions", {})
    unknown_base = [n for n, r in regions.items() if r.get("resource") is None]
    unplaced = 0
    for ev in events or []:
        addr, length = ev["address"], ev["length"]
        for name, region in sorted(regions.items()):
            base, size = region.get("resource"), region.get("size")
            if base is not None and size and base <= addr < base + size:
                placed.append((name, addr - base, min(length, base + size - addr), ev["source"]))
                break
        else:
            if unknown_base:
                unplaced += 1
    if unplaced:
        warnings.append(
            "%d memory-failure/machine-check record(s) could not be placed in a pmem region: the "
            "region base addresses (resource files) are root-only; run as root" % unplaced)
    return placed


def _attach_events(rng, events):
    if rng.get("absolute") is None:
        return
    lo, hi = rng["absolute"], rng["absolute"] + rng["length"]
    for ev in events or []:
        if ev["address"] < hi and lo < ev["address"] + ev["length"]:
            rng["events"].append(dict((k, ev.get(k)) for k in (
                "source", "key", "address", "length", "at", "boot_id", "outcome", "page_type", "message")))


def place_cxl(topology, records):
    """CXL poison records -> ``([(region, region_offset, length)], [unplaced records])``. A record
    whose HPA lies in an nd region (a CXL pmem region is one, with its HPA base as ``resource``)
    is placed there; the rest (no region maps the DPA, or the region is not an nd region) stay in
    device coordinates."""
    placed, unplaced = [], []
    regions = topology.get("regions", {})
    for rec in records or []:
        hpa = rec.get("hpa")
        for name, region in sorted(regions.items()):
            base, size = region.get("resource"), region.get("size")
            if hpa is not None and base is not None and size and base <= hpa < base + size:
                placed.append((name, hpa - base, min(rec["length"], base + size - hpa)))
                break
        else:
            unplaced.append(rec)
    return placed, unplaced


def _attach_cxl(rng, records):
    """The CXL records inside ``rng``: by physical address, or by memdev and DPA for a range in
    device coordinates."""
    for rec in sorted(records or [], key=lambda r: (r["memdev"], r["dpa"])):
        if rng.get("absolute") is not None and rec.get("hpa") is not None:
            hit = rec["hpa"] < rng["absolute"] + rng["length"] and rng["absolute"] < rec["hpa"] + rec["length"]
        elif rng.get("cxl_memdev") is not None:
            hit = rec["memdev"] == rng["cxl_memdev"] and rec["dpa"] < rng["cxl_dpa"] + rng["length"] \
                and rng["cxl_dpa"] < rec["dpa"] + rec["length"]
        else:
            hit = False
        if hit:
            rng["cxl"].append(dict((k, rec.get(k)) for k in CXL_FIELDS))


def gather_bad_ranges(topology, devices=None, warnings=None, events=None):
    """Every known bad range of ``topology`` as BadRange dicts (docs/design.md), sorted.

    Reports from the region lists, the block-device lists and ndctl are brought into one
    coordinate system where possible (region offsets; this needs the root-only resource files
    for fsdax and devdax), merged when they overlap or touch, split where they cross a
    namespace, data-area or partition boundary, and located. ``devices`` restricts the result
    to ranges that name one of the given devices. Messages about what could not be
    translated are appended to ``warnings`` when given. ``events`` (kernel_events.PoisonEvent
    dicts: memory failures, machine checks, rasdaemon records) are placed by physical address and
    merged like list entries; each range lists the events inside it under ``events``.
    """
    if warnings is None:
        warnings = []
    regions = topology.get("regions", {})
    namespaces = topology.get("namespaces", {})
    blockdevs = topology.get("blockdevs", {})
    domains = {}  # ("region", name) | ("data", namespace) | ("blockdev", name) -> [intervals]

    def add(key, start, length, source, dimms=()):
        if length <= 0 or start < 0:
            return
        domains.setdefault(key, []).append((start, start + length, (source,), tuple(dimms)))

    for rname, region in regions.items():
        for sector, count in region.get("badblocks") or []:
            add(("region", rname), sector * SECTOR, count * SECTOR, SOURCE_REGION)
        for entry in region.get("ndctl_badblocks") or []:
            add(("region", rname), entry["offset"] * SECTOR, entry["length"] * SECTOR,
                _NDCTL_REGION, entry.get("dimms") or ())

    for rname, offset, length, source in place_events(topology, events, warnings):
        add(("region", rname), offset, length, source)

    cxl_records = (topology.get("cxl") or {}).get("poison") or []
    placed, unplaced = place_cxl(topology, cxl_records)
    for rname, offset, length in placed:
        add(("region", rname), offset, length, SOURCE_CXL)
    for rec in unplaced:
        add(("cxl", rec["memdev"]), rec["dpa"], rec["length"], SOURCE_CXL)

    untranslated = set()
    for bname, bdev in blockdevs.items():
        ns_name = bdev.get("namespace")
        ns = namespaces.get(ns_name or "") or {}
        entries = bdev.get("badblocks") or []
        if not entries:
            continue
        if not ns or ns.get("mode") == "sector":
            for sector, count in entries:
                add(("blockdev", bname), sector * SECTOR, count * SECTOR, SOURCE_BLOCKDEV)
            continue
        base = _data_region_start(topology, ns_name)
        for sector, count in entries:
            if base is not None:
                add(("region", ns["region"]), base + sector * SECTOR, count * SECTOR, SOURCE_BLOCKDEV)
            else:
                add(("data", ns_name), sector * SECTOR, count * SECTOR, SOURCE_BLOCKDEV)
        if base is None:
            untranslated.add(bname)

    for ns_name, ns in namespaces.items():
        entries = ns.get("ndctl_badblocks") or []
        if not entries:
            continue
        base = _data_region_start(topology, ns_name)
        for entry in entries:
            start = entry["offset"] * SECTOR
            length = entry["length"] * SECTOR
            if base is not None:
                add(("region", ns.get("region")), base + start, length, _NDCTL_NAMESPACE, entry.get("dimms") or ())
            else:
                add(("data", ns_name), start, length, _NDCTL_NAMESPACE, entry.get("dimms") or ())

    if untranslated:
        warnings.append(
            "bad ranges of %s could not be placed in their region (data start unknown: the "
            "resource files are root-only); they are reported in block-device coordinates and "
            "are not merged with region-list entries" % ", ".join(sorted(untranslated)))

    result = []
    for key in sorted(domains, key=lambda k: (k[0], str(k[1]))):
        kind, name = key
        merged = merge_intervals(domains[key])
        if kind == "region":
            layout, complete = _region_layout(topology, name)
            points = _region_boundaries(topology, layout)
            for start, end, sources, dimms in merged:
                for s, e in split_at(start, end, points):
                    rng = locate_region_piece(topology, name, s, e, layout)
                    if rng["namespace"] is None and not complete:
                        rng["area"] = None
                    _finish(rng, sources, dimms, name, s)
                    _attach_events(rng, events)
                    _attach_cxl(rng, cxl_records)
                    result.append(rng)
        elif kind == "data":
            ns = namespaces.get(name) or {}
            points = _data_boundaries(topology, ns)
            for start, end, sources, dimms in merged:
                for s, e in split_at(start, end, points):
                    rng = _blank_range(e - s)
                    rng["region"] = ns.get("region")
                    rng["namespace"] = name
                    if ns.get("data_offset") == 0:
                        rng["namespace_offset"] = s
                    if ns.get("data_size") is not None and s >= ns["data_size"]:
                        rng["area"] = AREA_OUTSIDE_NAMESPACE
                    else:
                        _fill_data_area(topology, rng, ns, s)
                    _finish(rng, sources, dimms, None, None)
                    if rng["id"] is None:
                        rng["id"] = format_id(rng["dax_device"] or rng["blockdev"] or name, s, e - s)
                    result.append(rng)
        elif kind == "cxl":
            # poison no region maps: only the device and its DPA are known
            for start, end, sources, dimms in merged:
                rng = _blank_range(end - start)
                rng["cxl_memdev"], rng["cxl_dpa"] = name, start
                _finish(rng, sources, dimms, None, None)
                _attach_cxl(rng, cxl_records)
                del rng["cxl_memdev"], rng["cxl_dpa"]
                rng["area"] = AREA_OUTSIDE_NAMESPACE
                rng["id"] = format_id(name, start, end - start)
                result.append(rng)
        else:
            bdev = blockdevs.get(name) or {}
            for start, end, sources, dimms in merged:
                rng = _blank_range(end - start)
                rng["blockdev"] = name
                ns = namespaces.get(bdev.get("namespace") or "") or {}
                rng["namespace"] = bdev.get("namespace")
                rng["region"] = ns.get("region")
                rng["area"] = AREA_DATA
                if ns.get("mode") != "sector":
                    rng["blockdev_offset"] = start
                _finish(rng, sources, dimms, None, None)
                if rng["id"] is None:
                    rng["id"] = format_id(name, start, end - start)
                result.append(rng)

    for rng in result:
        # the id is made of what survives a reboot (namespace uuid, physical address); the
        # name-based id stays only where nothing better is known (identity.stable: false)
        rng["identity"] = _identity.make_identity(rng, topology)
        rng["id"] = _identity.format_range_id(rng["identity"], fallback=rng["id"])
    if devices is not None:
        wanted = set(devices)
        result = [r for r in result if wanted & set(
            v for v in (r["region"], r["namespace"], r["blockdev"], r["partition"], r["dax_device"]) if v)]
    result.sort(key=_sort_key)
    return result


def _finish(rng, sources, dimms, region_name, region_offset):
    rng["sources"] = _sorted_sources(sources)
    rng["software_only"] = SOURCE_BLOCKDEV in sources and not (
        {SOURCE_REGION, _NDCTL_REGION, SOURCE_CXL, SOURCE_MCE, SOURCE_MEMORY_FAILURE, SOURCE_RASDAEMON,
         SOURCE_XFS_HEALTH} & set(sources))
    rng["dimms"] = list(dimms)
    if region_name is not None and region_offset is not None:
        rng["id"] = format_id(region_name, region_offset, rng["length"])
    elif rng["blockdev"] and rng["blockdev_offset"] is not None:
        rng["id"] = format_id(rng["blockdev"], rng["blockdev_offset"], rng["length"])


def _sort_key(rng):
    return (rng["region"] or "", rng["region_offset"] if rng["region_offset"] is not None else -1,
            rng["blockdev"] or "", rng["blockdev_offset"] if rng["blockdev_offset"] is not None else -1,
            rng["id"] or "")
