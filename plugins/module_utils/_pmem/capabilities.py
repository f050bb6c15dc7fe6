# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a device and the running kernel can do about poison: the one place it is decided
(internal API).

The rules are the clearing matrix of the reference (pmem-poison-facts.md section 4), per bus
provider and kernel version. ``from_topology`` is pure and gives the ``ansible_facts.pmem.capabilities``
block; ``for_device`` finds one device's entry in it; ``merge`` lets given capabilities (the role
passes the facts) win over the ones pmem_clear decides itself from the same topology. Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import os
import re

# the recovery-write path: since 5.19 a page-aligned whole-page write through DAX clears poison
RECOVERY_WRITE_KERNEL = (5, 19)

# bus providers with no clear command: the kernel treats a clear as done (reference section 4)
_NO_CLEAR_COMMAND = ("e820", "virtio_pmem", "of_pmem")


def kernel_version(release):
    """``"6.1.0-27-amd64"`` -> ``[6, 1, 0]``; None when it does not start with a version."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", release or "")
    if not match:
        return None
    return [int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)]


def kernel_at_least(release, want):
    """``"6.1.0-18-amd64"`` >= ``(5, 19)``? None when the release is unknown."""
    version = kernel_version(release)
    if version is None:
        return None
    return tuple(version[:len(want)]) >= tuple(want)


def bus_kind(provider):
    """The short name of a bus provider the plan and the messages use."""
    provider = provider or ""
    if provider == "e820":
        return "e820"
    if provider.startswith("nfit_test"):
        return "nfit_test"
    if provider.startswith("virtio"):
        return "virtio"
    if provider == "ACPI.NFIT":
        return "acpi_nfit"
    return "unknown"


def bus_capabilities(bus, version):
    """What a writer may expect of one nvdimm bus (``bus``: a topology bus, ``version``: see
    ``kernel_version``).

    - ``write_clears``: a page-aligned whole-page write (buffered or O_DIRECT, or a raw block-device
      write of whole sectors) clears the poison.
    - ``dax_write_clears``: the same write through a DAX mapping/`-o dax` file clears it (the recovery
      write path of kernel 5.19 and later).
    - ``bus_can_clear``: ``ndctl clear-errors`` can work (the bus has the clear-error command);
      ``"n/a"`` on buses without a clear command, where writes clear instead.
    Values are None where the provider is unknown.
    """
    provider = bus.get("provider") or ""
    recovery = version is not None and tuple(version[:2]) >= RECOVERY_WRITE_KERNEL
    commands = set(bus.get("commands") or [])
    caps = {"provider": provider or None, "clear_error_command": "clear_error" in commands,
            "write_clears": None, "dax_write_clears": None, "bus_can_clear": None}
    if provider in _NO_CLEAR_COMMAND or provider.startswith("virtio"):
        caps.update(write_clears=True, dax_write_clears=recovery, bus_can_clear="n/a")
    elif provider.startswith("nfit_test"):
        # the nfit_test build returns EIO for a DAX write over poison instead of the recovery path
        caps.update(write_clears=True, dax_write_clears=False, bus_can_clear=True)
    elif provider == "ACPI.NFIT":
        if "clear_error" in commands:
            # a real platform: the write asks the firmware to clear and fails where that fails;
            # unmeasured here, so unknown until a clear is verified
            caps.update(write_clears=None, dax_write_clears=None if recovery else False, bus_can_clear=True)
        else:
            # QEMU nvdimm: no DSMs, writes fail with EIO (EFAULT through DAX), clear-errors fails
            caps.update(write_clears=False, dax_write_clears=False, bus_can_clear=False)
    return caps


def device_capabilities(topology, bus_caps):
    """Per block device and dax device: ``{bus, bus_kind, provider, write_clears,
    dax_write_clears, ndctl_clear, description}`` (what the plan and the guard read)."""
    out = {}
    namespaces = topology.get("namespaces") or {}
    regions = topology.get("regions") or {}
    names = [(n, b.get("namespace")) for n, b in (topology.get("blockdevs") or {}).items()]
    names += [(n, d.get("namespace")) for n, d in (topology.get("dax") or {}).items()]
    for name, ns_name in sorted(names):
        region = (namespaces.get(ns_name or "") or {}).get("region")
        bus = (regions.get(region or "") or {}).get("bus")
        caps = bus_caps.get(bus or "") or {}
        out[name] = {
            "bus": bus,
            "bus_kind": bus_kind(caps.get("provider")),
            "provider": caps.get("provider"),
            "write_clears": caps.get("write_clears"),
            "dax_write_clears": caps.get("dax_write_clears"),
            "ndctl_clear": caps.get("bus_can_clear") is True,
            "description": "%s (%s on %s)" % (name, caps.get("provider") or "unknown bus", bus or "?"),
        }
    return out


def from_topology(topology):
    """The ``ansible_facts.pmem.capabilities`` block of one topology snapshot."""
    release = topology.get("kernel")
    version = kernel_version(release)
    topo_buses = topology.get("buses") or {}
    buses = dict((name, bus_capabilities(topo_buses[name], version)) for name in sorted(topo_buses))
    truncated = sorted(
        [n for n, r in (topology.get("regions") or {}).items() if r.get("badblocks_truncated")]
        + [n for n, b in (topology.get("blockdevs") or {}).items() if b.get("badblocks_truncated")])
    return {
        "kernel": release,
        "kernel_version": version,
        "devices": device_capabilities(topology, buses),
        "recovery_write": None if version is None else tuple(version[:2]) >= RECOVERY_WRITE_KERNEL,
        "dax_write_clears": dict((n, c["dax_write_clears"]) for n, c in buses.items()),
        "write_clears": dict((n, c["write_clears"]) for n, c in buses.items()),
        "bus_can_clear": dict((n, c["bus_can_clear"]) for n, c in buses.items()),
        "scrub": dict((n, bool(topo_buses[n].get("scrub_supported"))) for n in buses),
        "buses": buses,
        "lists_may_be_truncated": bool(truncated),
        "truncated_lists": truncated,
    }


# statx(2) (Linux 4.11+; STATX_ATTR_DAX since 5.8): the one exact answer to "is this file
# DAX-mapped now", whatever the mount option (dax=always, dax=inode + FS_XFLAG_DAX, dax=never)
_AT_EMPTY_PATH = 0x1000
_STATX_ATTR_DAX = 0x00200000
_STATX_BUFFER = 256
_statx = []


def _statx_call():
    if not _statx:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            call = libc.statx
            call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
        except (OSError, AttributeError):
            call = None
        _statx.append(call)
    return _statx[0]


def file_dax(fd):
    """Is the open file ``fd`` accessed through DAX? True/False, None when the kernel or libc
    cannot tell (no statx, or a kernel before 5.8 that does not report the attribute)."""
    call = _statx_call()
    if call is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_BUFFER)
    if call(fd, b"", _AT_EMPTY_PATH, 0, buf) != 0:
        return None
    # struct statx: u64 stx_attributes at byte 8, u64 stx_attributes_mask at byte 56
    attributes = int.from_bytes(buf.raw[8:16], "little")
    supported = int.from_bytes(buf.raw[56:64], "little")
    if not supported & _STATX_ATTR_DAX:
        return None
    return bool(attributes & _STATX_ATTR_DAX)


def merge(decided, given):
    """Given capabilities (e.g. ``ansible_facts.pmem.capabilities``) win per device and key where
    they say something (not None); devices or keys they lack come from ``decided``, and so does
    the kernel."""
    given = given or {}
    out = {"kernel": given.get("kernel") or decided.get("kernel"),
           "devices": dict((k, dict(v)) for k, v in (decided.get("devices") or {}).items())}
    for name, info in (given.get("devices") or {}).items():
        merged = out["devices"].setdefault(name, {})
        merged.update(dict((k, v) for k, v in (info or {}).items() if v is not None
                           or k not in merged))
    return out


def for_device(capabilities, *names):
    """The entry of the first named device found (blockdev, namespace, region, dax); a partition
    (``pmem0p1``) has the capabilities of its disk. ``{}`` when none is known."""
    devices = (capabilities or {}).get("devices") or {}
    for name in names:
        if not name:
            continue
        key = os.path.basename(name)
        for candidate in (key, re.sub(r"(?<=\d)p\d+$", "", key)):
            if candidate in devices:
                return devices[candidate] or {}
    return {}


__all__ = ["RECOVERY_WRITE_KERNEL", "kernel_version", "kernel_at_least", "bus_kind", "bus_capabilities",
           "device_capabilities", "from_topology", "file_dax", "merge", "for_device"]
