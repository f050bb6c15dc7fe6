# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stable identities of bad ranges: what survives a reboot that renames every device.

pmemN, regionN, namespaceX.Y and daxX.Y are probe-order names: with the modules loaded in another
order the same bytes come back under other names (pmem0/1/2 -> pmem1/2/0). A bad range is
therefore keyed by

1. the namespace uuid (``namespaceX.Y/uuid``, labelled namespaces) and the offset from the
   namespace start (root: the resource files are 0400), or from the start of its data area when
   only that is known; else
2. its physical address (region resource + region offset; root), else
3. (no root, no uuid) the names it was seen under: ``stable: false``, flagged wherever it is used.

Filesystem owners are keyed by the filesystem uuid (owners.py puts it in ``fs_uuid``).

``locate(identity, topology)`` is the one way back from an identity to the device names and
offsets of *now*: the write guard, facts and the ledger migration all call it. Pure; stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

KIND_NAMESPACE = "namespace_uuid"
KIND_PHYSICAL = "physical"
KIND_NAME = "name"

NAME_FIELDS = ("region", "namespace", "blockdev", "partition", "dax_device")


def _hex(value):
    return "%#x" % value


def make_identity(rng, topology=None):
    """The identity of a located BadRange (ranges.py fills the names and offsets).

    Returns ``{kind, namespace_uuid, namespace_offset, data_offset, absolute, length, stable}``:
    every coordinate that is known (a root run knows them all for a labelled namespace) so two
    runs that know different subsets can still be matched (same_place()); *kind* says which one
    the range id is made of."""
    topology = topology or {}
    ns = (topology.get("namespaces") or {}).get(rng.get("namespace") or "") or {}
    uuid = ns.get("uuid") or None
    ns_offset = rng.get("namespace_offset")
    data_offset = rng.get("blockdev_offset")
    if data_offset is None and ns_offset is not None and ns.get("data_offset") is not None \
            and rng.get("area") == "data":
        data_offset = ns_offset - ns["data_offset"]   # devdax: no block device offset
    ident = {"kind": KIND_NAME, "namespace_uuid": uuid,
             "namespace_offset": ns_offset if uuid else None,
             "data_offset": data_offset if uuid else None,
             "absolute": rng.get("absolute"), "length": rng.get("length"), "stable": True}
    if uuid and (ns_offset is not None or data_offset is not None):
        ident["kind"] = KIND_NAMESPACE
    elif ident["absolute"] is not None:
        ident["kind"] = KIND_PHYSICAL
    else:
        ident["stable"] = False
    return ident


def format_range_id(ident, fallback=None):
    """The range id for an identity: ``ns-<uuid>@<ns offset>+<len>``, ``ns-<uuid>:data@<data
    offset>+<len>`` (only the data-area offset known), ``phys@<address>+<len>``; *fallback* (the
    name-based ``region1@...``/``pmem0@...`` id) when the identity is not stable."""
    length = ident.get("length") or 0
    if ident.get("kind") == KIND_NAMESPACE:
        if ident.get("namespace_offset") is not None:
            return "ns-%s@%s+%s" % (ident["namespace_uuid"], _hex(ident["namespace_offset"]),
                                    _hex(length))
        return "ns-%s:data@%s+%s" % (ident["namespace_uuid"], _hex(ident["data_offset"]),
                                     _hex(length))
    if ident.get("kind") == KIND_PHYSICAL:
        return "phys@%s+%s" % (_hex(ident["absolute"]), _hex(length))
    return fallback


def is_stable_id(range_id):
    return str(range_id or "").startswith(("ns-", "phys@"))


def seen_as(rng, at=None):
    """The names a range had when it was seen (never used to find it again)."""
    out = dict((k, rng.get(k)) for k in NAME_FIELDS)
    fs = rng.get("filesystem") or {}
    out["filesystem_device"] = fs.get("device")
    out["mountpoint"] = fs.get("mountpoint")
    if at is not None:
        out["at"] = at
    return out


def same_place(a, b):
    """True when identities *a* and *b* name the same bytes. Namespace uuids decide when both have
    one (same uuid and the same namespace or data-area offset); else physical addresses; name-only
    identities never match anything (names are not identities)."""
    if not a or not b or a.get("length") != b.get("length"):
        return False
    ua, ub = a.get("namespace_uuid"), b.get("namespace_uuid")
    if ua and ub:
        if ua != ub:
            return False
        for key in ("namespace_offset", "data_offset"):
            if a.get(key) is not None and b.get(key) is not None:
                return a[key] == b[key]
        return False
    if a.get("absolute") is not None and b.get("absolute") is not None:
        return a["absolute"] == b["absolute"]
    return False


def identity_from_recorded(recorded_range):
    """The identity of a range as a ledger entry recorded it: its ``identity`` when it has one; for
    entries written before identities (schema 1), what its recorded absolute address proves
    (``kind: physical``), else None (only names: nothing to prove it by)."""
    recorded_range = recorded_range or {}
    if recorded_range.get("identity"):
        return recorded_range["identity"]
    if recorded_range.get("absolute") is not None and recorded_range.get("length"):
        return {"kind": KIND_PHYSICAL, "namespace_uuid": None, "namespace_offset": None,
                "data_offset": None, "absolute": recorded_range["absolute"],
                "length": recorded_range["length"], "stable": True}
    return None


def _not_present(reason):
    return {"present": False, "reason": reason}


def locate(identity, topology):
    """Where the bytes of *identity* are now.

    *identity*: a BadRange's or a ledger entry's ``identity`` dict; *topology*: the current
    ``topology.gather_topology()`` dict (or pmem_badblocks facts: same keys).

    Returns ``{present: True, region, region_offset, namespace, namespace_offset, blockdev,
    blockdev_offset, partition, partition_offset, dax_device, absolute, area, filesystem, length,
    moved}`` with the names and offsets of now (``moved``: a namespace found by uuid now sits at
    another physical address), or ``{present: False, reason}`` when the namespace (uuid) or the
    physical range is not on this host now, or when the identity is only names (``stable:
    false``), which can never be proven. Raises nothing."""
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges
    if not identity:
        return _not_present("no identity recorded")
    topology = topology or {}
    length = identity.get("length") or 0
    if length <= 0:
        return _not_present("identity has no length")
    namespaces = topology.get("namespaces") or {}
    regions = topology.get("regions") or {}
    uuid = identity.get("namespace_uuid")
    if uuid:
        found = [n for n in sorted(namespaces) if namespaces[n].get("uuid") == uuid]
        if not found:
            return _not_present("namespace uuid %s is not on this host now (destroyed, disabled or "
                                "its DIMM removed)" % uuid)
        ns = namespaces[found[0]]
        region = regions.get(ns.get("region") or "") or {}
        ns_offset = identity.get("namespace_offset")
        if ns_offset is None and identity.get("data_offset") is not None \
                and ns.get("data_offset") is not None:
            ns_offset = ns["data_offset"] + identity["data_offset"]
        if ns_offset is not None and ns.get("resource") is not None \
                and region.get("resource") is not None:
            start = ns["resource"] - region["resource"] + ns_offset
            return _from_region(topology, ns["region"], start, length, identity, _ranges)
        if identity.get("data_offset") is not None:
            rng = _ranges._blank_range(length)
            rng["region"], rng["namespace"] = ns.get("region"), found[0]
            rng["namespace_offset"] = ns_offset
            _ranges._fill_data_area(topology, rng, ns, identity["data_offset"])
            return _present(rng, identity)
        return _not_present("namespace %s (uuid %s) is here, but placing the range needs the "
                            "root-only resource files: run as root" % (found[0], uuid))
    absolute = identity.get("absolute")
    if absolute is not None:
        for name in sorted(regions):
            region = regions[name]
            base, size = region.get("resource"), region.get("size")
            if base is None or size is None:
                continue
            if base <= absolute and absolute + length <= base + size:
                return _from_region(topology, name, absolute - base, length, identity, _ranges)
        if any(r.get("resource") is None for r in regions.values()):
            return _not_present("physical range %#x+%#x: region addresses are root-only; run as "
                                "root" % (absolute, length))
        return _not_present("no region covers physical range %#x+%#x now" % (absolute, length))
    return _not_present("recorded by device name only (%s): names move across reboots, so the "
                        "bytes cannot be found again with certainty" % (
                            identity.get("seen_as") or "no coordinates"))


def _from_region(topology, region_name, start, length, identity, _ranges):
    layout, _complete = _ranges._region_layout(topology, region_name)
    rng = _ranges.locate_region_piece(topology, region_name, start, start + length, layout)
    return _present(rng, identity)


def _present(rng, identity):
    out = {"present": True, "length": rng.get("length")}
    for key in ("region", "region_offset", "namespace", "namespace_offset", "blockdev",
                "blockdev_offset", "partition", "partition_offset", "dax_device", "absolute",
                "area", "filesystem"):
        out[key] = rng.get(key)
    out["moved"] = bool(identity.get("absolute") is not None and rng.get("absolute") is not None
                        and identity["absolute"] != rng["absolute"])
    return out


def refresh_range(rng, topology):
    """``(range_now, None)``: a copy of BadRange *rng* with the names, offsets and filesystem of
    *topology* (its bytes found again by identity), or ``(None, reason)`` when they are not on this
    host now. A range without a stable identity (names only) comes back unchanged: nothing better
    is known, and its identity says so (``stable: false``)."""
    ident = (rng or {}).get("identity")
    if not ident or not ident.get("stable"):
        return rng, None
    loc = locate(ident, topology)
    if not loc.get("present"):
        return None, loc.get("reason")
    out = dict(rng)
    for key in ("region", "region_offset", "namespace", "namespace_offset", "blockdev",
                "blockdev_offset", "partition", "partition_offset", "dax_device", "area",
                "filesystem"):
        out[key] = loc.get(key)
    if loc.get("absolute") is not None:
        out["absolute"] = loc["absolute"]
    return out, None
