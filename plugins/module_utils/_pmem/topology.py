# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather the persistent-memory topology: nvdimm buses, regions, namespaces, block devices and
their partitions, device-dax devices, mounts, and the raw bad-block lists of each.

The imperative shell of pmem_badblocks. Every root (sysfs, proc, dev) is a parameter so unit tests
point it at captured fixture trees. Missing, unreadable or malformed sources never raise: they
become entries in ``errors`` (something is wrong), ``unreadable`` (permission: what could not be read
and why) or ``warnings``. Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
import shutil
import subprocess
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import cxl as _cxl
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges

NDCTL_LIST_ARGS = ["list", "-B", "-R", "-N", "-M"]
NDCTL_TIMEOUT = 60

_RE_BUS = re.compile(r"^ndbus(\d+)$")
_RE_REGION = re.compile(r"^region(\d+)$")
_RE_CHILD = re.compile(r"^(namespace|pfn|dax|btt)(\d+)\.(\d+)$")

# kernel namespace "mode" attribute (and ndctl's names) -> ndctl vocabulary
_MODE_NAMES = {
    "memory": "fsdax",
    "fsdax": "fsdax",
    "dax": "devdax",
    "devdax": "devdax",
    "safe": "sector",
    "sector": "sector",
    "raw": "raw",
}
# pfn/dax "mode" attribute -> ndctl "map" value
_MAP_NAMES = {"ram": "mem", "pmem": "dev", "none": None}


class _Unreadable(Exception):
    def __init__(self, reason, err):
        super(_Unreadable, self).__init__(reason)
        self.reason = reason
        self.errno = err


class Gatherer:
    """Reads one snapshot of the topology. Use ``gather_topology()``."""

    def __init__(self, sysfs_root="/sys", proc_root="/proc", dev_root="/dev", as_root=None):
        self.sysfs = sysfs_root
        self.proc = proc_root
        self.dev = dev_root
        self.as_root = (os.geteuid() == 0) if as_root is None else bool(as_root)
        self.errors = []
        self.warnings = []
        self.unreadable = []

    # -- low-level reads -------------------------------------------------------------------

    def _read(self, path, root_only=False):
        """Text of a sysfs/proc file, stripped. None when it does not exist.

        Raises _Unreadable on permission problems and on other read errors. ``root_only``
        marks files that are 0400: when not gathering as root they are not even tried
        (an unprivileged read would fail with EACCES anyway).
        """
        if root_only and not self.as_root:
            raise _Unreadable("permission denied: mode 0400, root only", errno.EACCES)
        try:
            with open(path, "rb") as handle:
                data = handle.read(1 << 20)
        except (IOError, OSError) as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _Unreadable("permission denied (%s)" % os.strerror(exc.errno), exc.errno)
            if exc.errno == errno.ENXIO:
                raise _Unreadable("no such device or address: the device is disabled", exc.errno)
            raise _Unreadable(os.strerror(exc.errno) if exc.errno else str(exc), exc.errno)
        return data.decode("utf-8", "replace").strip("\n")

    def attr(self, device, path, root_only=False, default=None):
        """Read an attribute, recording failures against ``device``; returns default on failure."""
        try:
            value = self._read(path, root_only=root_only)
        except _Unreadable as exc:
            entry = {"device": device, "file": path, "reason": exc.reason}
            if exc.errno in (errno.EACCES, errno.EPERM):
                self.unreadable.append(entry)
            elif exc.errno == errno.ENXIO:
                self.warnings.append("%s: %s: %s" % (device, path, exc.reason))
            else:
                self.error(device, path, "cannot read: %s" % exc.reason)
            return default
        return default if value is None else value

    def int_attr(self, device, path, base=10, root_only=False):
        value = self.attr(device, path, root_only=root_only)
        if value is None or value.strip() == "":
            return None
        try:
            if base == 10:
                try:
                    return int(value.strip(), 10)
                except ValueError:
                    return int(value.strip(), 0)  # e.g. region "align" is printed in hex
            return int(value.strip(), base)
        except ValueError:
            self.error(device, path, "not an integer: %r" % value[:80])
            return None

    def error(self, device, path, message):
        self.errors.append({"device": device, "file": path, "message": message})

    def _listdir(self, path):
        try:
            return sorted(os.listdir(path))
        except (IOError, OSError):
            return []

    def _readlink_name(self, path):
        try:
            return os.path.basename(os.readlink(path).rstrip("/"))
        except (IOError, OSError):
            return None

    # -- gatherers -------------------------------------------------------------------------

    def kernel(self):
        path = os.path.join(self.proc, "sys", "kernel", "osrelease")
        value = self.attr("kernel", path)
        return value.strip() if value else None

    def gather(self):
        topo = {
            "kernel": self.kernel(),
            "gathered_as_root": self.as_root,
            "buses": {},
            "regions": {},
            "namespaces": {},
            "blockdevs": {},
            "dax": {},
            "mounts": [],
        }
        nd = os.path.join(self.sysfs, "bus", "nd", "devices")
        names = self._listdir(nd)
        if not os.path.isdir(nd):
            self.warnings.append(
                "%s does not exist: no nvdimm bus (libnvdimm not loaded or no persistent memory)" % nd)
        for name in names:
            if _RE_BUS.match(name):
                self._bus(topo, nd, name)
        for name in names:
            if _RE_REGION.match(name):
                self._region(topo, nd, name)
        for name in names:
            match = _RE_CHILD.match(name)
            if match and match.group(1) == "namespace":
                self._namespace(topo, nd, name, match)
        self._blockdevs(topo)
        self._link_blockdevs(topo)
        self._mounts(topo)
        return topo

    def _bus(self, topo, nd, name):
        path = os.path.join(nd, name)
        bus = {
            "name": name,
            "provider": self.attr(name, os.path.join(path, "provider")),
            "commands": (self.attr(name, os.path.join(path, "commands")) or "").split(),
            "scrub_supported": False,
            "scrub_count": None,
            "scrub_running": None,
            "regions": [],
        }
        scrub_path = os.path.join(path, "nfit", "scrub")
        if os.path.exists(scrub_path):
            bus["scrub_supported"] = True
            count, running = parse_scrub(self.attr(name, scrub_path))
            bus["scrub_count"] = count
            bus["scrub_running"] = running
        bus["regions"] = [c for c in self._listdir(path) if _RE_REGION.match(c)]
        topo["buses"][name] = bus

    def _region(self, topo, nd, name):
        path = os.path.join(nd, name)
        if not os.path.isdir(path):
            self.error(name, path, "device disappeared while reading")
            return
        bus = None
        for bname, binfo in topo["buses"].items():
            if name in binfo["regions"]:
                bus = bname
        if bus is None:
            real = os.path.realpath(path)
            for part in real.split(os.sep):
                if _RE_BUS.match(part):
                    bus = part
        if bus is None and len(topo["buses"]) == 1:
            bus = list(topo["buses"])[0]
        if bus is not None and bus in topo["buses"] and name not in topo["buses"][bus]["regions"]:
            topo["buses"][bus]["regions"].append(name)
        bb_path = os.path.join(path, "badblocks")
        text = self.attr(name, bb_path)
        entries, bad_lines = _ranges.parse_badblocks(text)
        for bad in bad_lines:
            self.error(name, bb_path, "line %d ignored (%s): %r" % (bad["line"], bad["message"], bad["text"]))
        region = {
            "name": name,
            "bus": bus,
            "devtype": self.attr(name, os.path.join(path, "devtype")),
            "size": self.int_attr(name, os.path.join(path, "size")),
            "resource": self.int_attr(name, os.path.join(path, "resource"), base=16, root_only=True),
            "align": self.int_attr(name, os.path.join(path, "align")),
            "persistence_domain": (self.attr(name, os.path.join(path, "persistence_domain")) or "").strip() or None,
            "nstype": self.int_attr(name, os.path.join(path, "nstype")),
            "mappings": self.int_attr(name, os.path.join(path, "mappings")),
            "read_only": self.attr(name, os.path.join(path, "read_only")) == "1",
            "badblocks": [list(e) for e in entries],
            "badblocks_truncated": _ranges.looks_truncated(text, len(entries)),
            "ndctl_badblocks": [],
            "namespaces": [],
        }
        topo["regions"][name] = region

    def _namespace(self, topo, nd, name, match):
        path = os.path.join(nd, name)
        region_name = "region%s" % match.group(2)
        size = self.int_attr(name, os.path.join(path, "size"))
        if not os.path.isdir(path):
            self.error(name, path, "device disappeared while reading")
            return
        if not size:
            return  # a seed namespace (size 0): nothing there yet
        holder = (self.attr(name, os.path.join(path, "holder")) or "").strip() or None
        kernel_mode = (self.attr(name, os.path.join(path, "mode")) or "").strip() or None
        mode = None
        if holder:
            kind = _RE_CHILD.match(holder)
            mode = {"pfn": "fsdax", "dax": "devdax", "btt": "sector"}.get(kind.group(1)) if kind else None
        if mode is None and kernel_mode is not None:
            mode = _MODE_NAMES.get(kernel_mode)
        if mode is None:
            mode = "unknown"
            self.error(name, os.path.join(path, "mode"),
                       "unknown namespace mode %r (holder %r): its ranges are reported without "
                       "data-area coordinates" % (kernel_mode, holder))
        ns = {
            "name": name,
            "region": region_name,
            "devtype": self.attr(name, os.path.join(path, "devtype")),
            "mode": mode,
            "kernel_mode": kernel_mode,
            "size": size,
            "uuid": (self.attr(name, os.path.join(path, "uuid")) or "").strip() or None,
            "resource": self.int_attr(name, os.path.join(path, "resource"), base=16, root_only=True),
            "holder": holder,
            "map": None,
            "align": None,
            "data_offset": None,
            "data_size": None,
            "data_start": None,
            "blockdev": None,
            "dax_device": None,
            "ndctl_badblocks": [],
        }
        if mode == "raw" or (mode == "fsdax" and not holder):
            # no info block: a raw namespace, or legacy pmem mapped without a pfn device
            # (kernel mode "memory" without holder; ndctl calls it fsdax with map=mem)
            if mode == "fsdax":
                ns["map"] = "mem"
            ns["data_offset"] = 0
            ns["data_size"] = size
            ns["data_start"] = ns["resource"]
            ns["blockdev"] = self._first_block(os.path.join(path, "block"))
        elif mode in ("fsdax", "devdax") and holder:
            hpath = os.path.join(nd, holder)
            ns["map"] = _MAP_NAMES.get((self.attr(holder, os.path.join(hpath, "mode")) or "").strip())
            ns["align"] = self.int_attr(holder, os.path.join(hpath, "align"))
            ns["data_size"] = self.int_attr(holder, os.path.join(hpath, "size"))
            data_start = self.int_attr(holder, os.path.join(hpath, "resource"), base=16, root_only=True)
            ns["data_start"] = data_start
            if data_start is not None and ns["resource"] is not None:
                ns["data_offset"] = data_start - ns["resource"]
            if mode == "fsdax":
                ns["blockdev"] = self._first_block(os.path.join(hpath, "block"))
            else:
                ns["dax_device"] = self._dax_device(topo, hpath, holder, name)
        elif mode == "sector" and holder:
            ns["blockdev"] = self._first_block(os.path.join(nd, holder, "block"))
        if region_name in topo["regions"]:
            topo["regions"][region_name]["namespaces"].append(name)
        else:
            self.error(name, path, "namespace of unknown region %s" % region_name)
        topo["namespaces"][name] = ns

    def _first_block(self, block_dir):
        children = self._listdir(block_dir)
        return children[0] if children else None

    def _dax_device(self, topo, hpath, holder, ns_name):
        # the device-dax instance sits below the nd dax device (daxX.Y/daxX.Y); some kernels
        # put it under daxX.Y/dax/ (class dax)
        candidates = [c for c in self._listdir(hpath) if re.match(r"^dax\d+\.\d+$", c)]
        if not candidates:
            candidates = [c for c in self._listdir(os.path.join(hpath, "dax")) if re.match(r"^dax\d+\.\d+$", c)]
        if not candidates:
            return None
        name = candidates[0]
        dpath = os.path.join(hpath, name)
        if not os.path.isdir(dpath):
            dpath = os.path.join(hpath, "dax", name)
        chardev = os.path.join(self.dev, name)
        topo["dax"][name] = {
            "name": name,
            "nd_device": holder,
            "namespace": ns_name,
            "size": self.int_attr(name, os.path.join(dpath, "size")),
            "align": self.int_attr(name, os.path.join(dpath, "align")),
            "resource": self.int_attr(name, os.path.join(dpath, "resource"), base=16, root_only=True),
            "dev": (self.attr(name, os.path.join(dpath, "dev")) or "").strip() or None,
            "chardev": ("/dev/" + name) if os.path.exists(chardev) else None,
        }
        return name

    def _blockdevs(self, topo):
        block = os.path.join(self.sysfs, "block")
        for name in self._listdir(block):
            if not name.startswith("pmem"):
                continue
            path = os.path.join(block, name)
            if not os.path.isdir(path):
                self.error(name, path, "device disappeared while reading")
                continue
            sectors = self.int_attr(name, os.path.join(path, "size"))
            bb_path = os.path.join(path, "badblocks")
            text = self.attr(name, bb_path)
            entries, bad_lines = _ranges.parse_badblocks(text)
            for bad in bad_lines:
                self.error(name, bb_path, "line %d ignored (%s): %r" % (bad["line"], bad["message"], bad["text"]))
            parent = self._readlink_name(os.path.join(path, "device"))
            partitions = {}
            for child in self._listdir(path):
                cpath = os.path.join(path, child)
                if not child.startswith(name) or not os.path.exists(os.path.join(cpath, "partition")):
                    continue
                start = self.int_attr(child, os.path.join(cpath, "start"))
                psize = self.int_attr(child, os.path.join(cpath, "size"))
                partitions[child] = {
                    "name": child,
                    "number": self.int_attr(child, os.path.join(cpath, "partition")),
                    "start": None if start is None else start * _ranges.SECTOR,
                    "size": None if psize is None else psize * _ranges.SECTOR,
                    "dev": (self.attr(child, os.path.join(cpath, "dev")) or "").strip() or None,
                    "device": "/dev/" + child,
                }
            topo["blockdevs"][name] = {
                "name": name,
                "parent": parent,
                "namespace": None,
                "size": None if sectors is None else sectors * _ranges.SECTOR,
                "dev": (self.attr(name, os.path.join(path, "dev")) or "").strip() or None,
                "device": "/dev/" + name,
                "ro": self.attr(name, os.path.join(path, "ro")) == "1",
                "badblocks": [list(e) for e in entries],
                "badblocks_truncated": _ranges.looks_truncated(text, len(entries)),
                "partitions": partitions,
            }

    def _link_blockdevs(self, topo):
        by_holder = {}
        for ns in topo["namespaces"].values():
            by_holder[ns["name"]] = ns["name"]
            if ns.get("holder"):
                by_holder[ns["holder"]] = ns["name"]
        for name, bdev in topo["blockdevs"].items():
            ns_name = by_holder.get(bdev.get("parent") or "")
            if ns_name is None:
                for ns in topo["namespaces"].values():
                    if ns.get("blockdev") == name:
                        ns_name = ns["name"]
            bdev["namespace"] = ns_name
            if ns_name is not None and topo["namespaces"][ns_name].get("blockdev") is None:
                topo["namespaces"][ns_name]["blockdev"] = name

    def _mounts(self, topo):
        path = os.path.join(self.proc, "self", "mountinfo")
        text = self.attr("mounts", path)
        if text is None:
            return
        devnums = {}
        for bname, bdev in topo["blockdevs"].items():
            if bdev.get("dev"):
                devnums[bdev["dev"]] = (bname, None)
            for pname, part in bdev["partitions"].items():
                if part.get("dev"):
                    devnums[part["dev"]] = (bname, pname)
        for mount in parse_mountinfo(text):
            owner = devnums.get(mount["dev"])
            if owner is None:
                base = os.path.basename(mount["source"] or "")
                for bname, bdev in topo["blockdevs"].items():
                    if base == bname:
                        owner = (bname, None)
                    elif base in bdev["partitions"]:
                        owner = (bname, base)
            if owner is None:
                continue
            mount["blockdev"], mount["partition"] = owner
            mount["device"] = "/dev/" + (owner[1] or owner[0])
            topo["mounts"].append(mount)


def parse_scrub(text):
    """``ndbusX/nfit/scrub`` text: ``"3"`` or ``"3+"`` (running) -> (count, running)."""
    if text is None:
        return None, None
    text = text.strip()
    running = text.endswith("+")
    digits = text.rstrip("+").strip()
    if not digits.isdigit():
        return None, None
    return int(digits), running


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """/proc/self/mountinfo -> list of mount dicts; malformed lines are skipped."""
    mounts = []
    for line in (text or "").splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        opts = fields[5].split(",")
        super_opts = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        all_opts = set(opts) | set(super_opts)
        mounts.append({
            "dev": fields[2],
            "mountpoint": _unescape(fields[4]),
            "root": _unescape(fields[3]),
            "fstype": fields[sep + 1],
            "source": _unescape(fields[sep + 2]),
            "options": fields[5],
            "super_options": ",".join(super_opts),
            "dax": "dax" in all_opts or "dax=always" in all_opts,
            "ro": "ro" in opts or "ro" in super_opts,
            "device": None,
            "blockdev": None,
            "partition": None,
        })
    return mounts


def find_ndctl():
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    return shutil.which("ndctl", path=path)


def run_ndctl(executable, args, timeout=NDCTL_TIMEOUT):
    """Run ndctl with an argument list. Returns (stdout, error message or None)."""
    try:
        proc = subprocess.run([executable] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, "timed out after %ss" % timeout
    except (IOError, OSError) as exc:
        return None, "cannot run: %s" % exc
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        return out, "exit status %d: %s" % (proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[:500])
    return out, None


def _walk_json(node, found):
    if isinstance(node, dict):
        dev = node.get("dev")
        if isinstance(dev, str):
            found.append(node)
        for value in node.values():
            _walk_json(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_json(value, found)


def _ndctl_badblocks(node):
    """Valid ``badblocks`` entries of one ndctl JSON object (offset/length in sectors)."""
    out = []
    bad = 0
    for entry in node.get("badblocks") or []:
        if not isinstance(entry, dict):
            bad += 1
            continue
        offset, length = entry.get("offset"), entry.get("length")
        if not isinstance(offset, int) or not isinstance(length, int) or isinstance(offset, bool) \
                or offset < 0 or length <= 0:
            bad += 1
            continue
        dimms = [d for d in entry.get("dimms") or [] if isinstance(d, str)]
        out.append({"offset": offset, "length": length, "dimms": dimms})
    return out, bad


def apply_ndctl(topo, data, errors, source="ndctl list"):
    """Attach ndctl's media-error lists (``-M``) to the regions and namespaces of ``topo``."""
    if isinstance(data, (str, bytes)):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if not text.strip():
            data = []
        else:
            try:
                data = json.loads(text)
            except ValueError as exc:
                errors.append({"device": "ndctl", "file": source,
                               "message": "output is not JSON (%s); ndctl ignored" % exc})
                return
    nodes = []
    _walk_json(data, nodes)
    for node in nodes:
        dev = node["dev"]
        entries, bad = _ndctl_badblocks(node)
        if bad:
            errors.append({"device": dev, "file": source,
                           "message": "%d malformed badblocks entr%s ignored" % (bad, "y" if bad == 1 else "ies")})
        if dev in topo["regions"]:
            topo["regions"][dev]["ndctl_badblocks"] = entries
        elif dev in topo["namespaces"]:
            if topo["gathered_as_root"]:
                # unprivileged ndctl cannot place namespace lists (resource is root-only)
                topo["namespaces"][dev]["ndctl_badblocks"] = entries


def gather_topology(sysfs_root="/sys", proc_root="/proc", dev_root="/dev", ndctl=None, as_root=None):
    """One snapshot of the topology.

    ``ndctl`` is None (do not use ndctl), the path of the ndctl executable, or already-parsed
    (or raw text) ``ndctl list -BRNM`` output. ``as_root`` overrides the euid check (tests).
    Returns the topology dict with ``errors``, ``warnings`` and ``unreadable`` lists.
    """
    gatherer = Gatherer(sysfs_root, proc_root, dev_root, as_root=as_root)
    topo = gatherer.gather()
    topo["ndctl"] = {"used": False, "executable": None}
    if ndctl is not None:
        if isinstance(ndctl, str) and not ndctl.lstrip().startswith(("[", "{")):
            out, err = run_ndctl(ndctl, NDCTL_LIST_ARGS)
            topo["ndctl"] = {"used": True, "executable": ndctl}
            if err is not None:
                gatherer.errors.append({"device": "ndctl", "file": " ".join(["ndctl"] + NDCTL_LIST_ARGS),
                                        "message": err})
            if out is not None:
                apply_ndctl(topo, out, gatherer.errors, source=" ".join(["ndctl"] + NDCTL_LIST_ARGS))
        else:
            topo["ndctl"] = {"used": True, "executable": None}
            apply_ndctl(topo, ndctl, gatherer.errors)
    # CXL memory devices' poison lists (cxl.py); nothing on a host without CXL memory devices
    cxl_state = _cxl.gather(sysfs_root=sysfs_root, as_root=gatherer.as_root)
    topo["cxl"] = {"memdevs": cxl_state["memdevs"], "regions": cxl_state["regions"],
                   "poison": cxl_state["records"]}
    gatherer.errors.extend(cxl_state["errors"])
    gatherer.warnings.extend(cxl_state["warnings"])
    if gatherer.unreadable and not gatherer.as_root:
        gatherer.warnings.append(
            "not running as root: %d root-only file(s) (mode 0400: physical addresses) were not read, "
            "so absolute addresses are unknown and block-device lists cannot be matched to region lists; "
            "become root for full coordinates" % len(gatherer.unreadable))
    topo["errors"] = gatherer.errors
    topo["warnings"] = gatherer.warnings
    topo["unreadable"] = gatherer.unreadable
    return topo


def start_scrub(topo, bus_names=None, ndctl=None, timeout=300, sysfs_root="/sys", clock=None, sleep=None,
                poll=1.0):
    """Start an address range scrub on each bus that has one and wait for it, up to ``timeout`` s.

    Uses ``ndctl start-scrub``/``wait-scrub`` when ``ndctl`` (the executable) is given, else writes
    ``1`` to ``ndbusX/nfit/scrub`` and polls it. Returns ``{"buses": {name: {...}}, "progress": [...],
    "timed_out": bool, "started": [names]}``; never raises.
    """
    clock = clock or time.time
    sleep = sleep or time.sleep
    result = {"buses": {}, "progress": [], "timed_out": False, "started": []}
    t0 = clock()
    names = sorted(topo.get("buses", {})) if bus_names is None else sorted(bus_names)
    for name in names:
        bus = topo["buses"].get(name)
        if bus is None:
            continue
        entry = {"provider": bus.get("provider"), "supported": bool(bus.get("scrub_supported")),
                 "started": False, "completed": False, "count_before": bus.get("scrub_count"),
                 "count_after": None, "seconds": 0.0, "message": None}
        result["buses"][name] = entry
        if not entry["supported"]:
            entry["message"] = "%s (%s) has no address range scrub (no nfit/scrub): nothing to start" % (
                name, bus.get("provider"))
            result["progress"].append(entry["message"])
            continue
        scrub_path = os.path.join(sysfs_root, "bus", "nd", "devices", name, "nfit", "scrub")
        started_at = clock()
        remaining = max(1, int(timeout - (started_at - t0)))
        if ndctl:
            _out, err = run_ndctl(ndctl, ["start-scrub", name], timeout=remaining)
            if err is not None:
                entry["message"] = "ndctl start-scrub %s failed: %s" % (name, err)
                result["progress"].append(entry["message"])
                continue
            entry["started"] = True
            result["started"].append(name)
            result["progress"].append("%s: scrub started (ndctl start-scrub)" % name)
            remaining = max(1, int(timeout - (clock() - t0)))
            _out, err = run_ndctl(ndctl, ["wait-scrub", name], timeout=remaining)
            entry["count_after"] = parse_scrub(_read_quiet(scrub_path))[0]
            if err is not None:
                entry["message"] = "ndctl wait-scrub %s: %s" % (name, err)
                result["timed_out"] = result["timed_out"] or "timed out" in err
            else:
                entry["completed"] = True
        else:
            try:
                with open(scrub_path, "w") as handle:
                    handle.write("1\n")
            except (IOError, OSError) as exc:
                entry["message"] = "cannot start a scrub on %s: %s: %s" % (name, scrub_path, exc)
                result["progress"].append(entry["message"])
                continue
            entry["started"] = True
            result["started"].append(name)
            result["progress"].append("%s: scrub started (wrote 1 to %s)" % (name, scrub_path))
            before = entry["count_before"] or 0
            while True:
                sleep(poll)
                count, running = parse_scrub(_read_quiet(scrub_path))
                entry["count_after"] = count
                if count is not None and not running and count > before:
                    entry["completed"] = True
                    break
                if clock() - t0 >= timeout:
                    result["timed_out"] = True
                    entry["message"] = "%s: scrub still running after %ss" % (name, timeout)
                    break
        entry["seconds"] = round(clock() - started_at, 3)
        if entry["completed"]:
            result["progress"].append("%s: scrub finished in %.1fs (count %s)" % (
                name, entry["seconds"], entry["count_after"]))
        elif entry["message"]:
            result["progress"].append(entry["message"])
    return result


def _read_quiet(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None
