# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private API: the shape of every structured module input, and the consent rules.

* Argument-spec pieces (``BAD_RANGE``, ``RESULT``, ``POLICY``, ``CAPABILITIES``) shared by the
  modules, so ``bad_ranges`` means the same in pmem_resolve, pmem_quarantine and pmem_clear; the
  documentation of each is the doc fragment ``pmem.poison.inputs``.
* ``strict_type_problems``: Ansible turns ``"a,b"`` into ``["a", "b"]`` and ``"k=v"`` into a
  dict; for this collection a string where a list or a mapping belongs is refused instead
  (``remediate_accept_loss: "/x/*"`` must never become the characters ``/``, ``x``, ``*``).
* ``prune_to_given``: Ansible fills every suboption the caller left out with ``None``; the core
  sees the input as given (with Ansible's conversions), so ``None`` never stands for a value.
* Consent: non-blank names and reasons, explicit ids, the offline-window opt-in
  (``consent_problems_*``); each problem is one sentence naming the option and the next step.
* ``check_direct_range``: an operator's ``{device, offset, length}`` checked against the device
  before any owner is looked up (a per-range error, never invented owners).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import (
    GatherError,
    InputError,
    RangeOutsideDevice,
)

OWNER_KINDS = ["file", "metadata", "free", "info_block", "devdax", "raw", "unknown"]
AREAS = ["data", "info_block", "outside_partition", "outside_namespace"]
FILE_METHODS = ["auto", "rewrite", "reallocate", "none"]
DEVICE_METHODS = ["auto", "device_write", "ndctl", "cxl", "none"]
CONTAINMENT = ["rename", "chmod", "immutable"]

FILESYSTEM = dict(
    device=dict(type="str"),
    mountpoint=dict(type="str"),
    fstype=dict(type="str"),
    dax=dict(type="bool"),
    offset=dict(type="int"),
)

BAD_RANGE = dict(
    id=dict(type="str", required=True),
    region=dict(type="str"),
    namespace=dict(type="str"),
    blockdev=dict(type="str"),
    partition=dict(type="str"),
    dax_device=dict(type="str"),
    length=dict(type="int"),
    sources=dict(type="list", elements="str"),
    software_only=dict(type="bool"),
    dimms=dict(type="list", elements="str"),
    area=dict(type="str", choices=AREAS),
    absolute=dict(type="int"),
    region_offset=dict(type="int"),
    namespace_offset=dict(type="int"),
    blockdev_offset=dict(type="int"),
    partition_offset=dict(type="int"),
    filesystem=dict(type="dict", options=FILESYSTEM),
    # how to find the bytes again after device names moved (identity.py); shape decided there
    identity=dict(type="dict"),
    # kernel-log and rasdaemon records inside the range (kernel_events.py)
    events=dict(type="list", elements="dict"),
    # CXL poison-list records inside the range (cxl.py)
    cxl=dict(type="list", elements="dict"),
)

PROCESS = dict(
    pid=dict(type="int"),
    comm=dict(type="str"),
    how=dict(type="list", elements="str"),
)

OWNER = dict(
    kind=dict(type="str", required=True, choices=OWNER_KINDS),
    range_id=dict(type="str"),
    device=dict(type="str"),
    mountpoint=dict(type="str"),
    fstype=dict(type="str"),
    inode=dict(type="int"),
    generation=dict(type="int"),
    paths=dict(type="list", elements="str"),
    file_offset=dict(type="int"),
    length=dict(type="int"),
    repair_offset=dict(type="int"),
    repair_length=dict(type="int"),
    shared=dict(type="bool"),
    attr_fork=dict(type="bool"),
    metadata_kind=dict(type="str"),
    processes=dict(type="list", elements="dict", options=PROCESS),
    reason=dict(type="str"),
    fs_offset=dict(type="int"),
    fs_uuid=dict(type="str"),
)

RESULT = dict(
    range_id=dict(type="str", required=True),
    owners=dict(type="list", elements="dict", options=OWNER),
    error=dict(type="raw"),
    warnings=dict(type="list", elements="str"),
)

POLICY_METHOD = dict(
    file=dict(type="str", choices=FILE_METHODS),
    free=dict(type="str", choices=DEVICE_METHODS),
    raw=dict(type="str", choices=DEVICE_METHODS),
    devdax=dict(type="str", choices=DEVICE_METHODS),
    metadata=dict(type="str", choices=["none"]),
    info_block=dict(type="str", choices=["none"]),
    unknown=dict(type="str", choices=["none"]),
)

POLICY = dict(
    method=dict(type="dict", options=POLICY_METHOD),
    containment=dict(type="list", elements="str", choices=CONTAINMENT),
    restore_sources=dict(type="dict"),
    accepted_loss=dict(type="list", elements="str"),
    offline_window_allowed=dict(type="bool"),
)

CAPABILITIES = dict(
    kernel=dict(type="str"),
    kernel_version=dict(type="list", elements="int"),
    recovery_write=dict(type="bool"),
    devices=dict(type="dict"),
    write_clears=dict(type="dict"),
    dax_write_clears=dict(type="dict"),
    bus_can_clear=dict(type="dict"),
    scrub=dict(type="dict"),
    buses=dict(type="dict"),
    lists_may_be_truncated=dict(type="bool"),
    truncated_lists=dict(type="list", elements="str"),
)

# capabilities.devices.<name>: keys and the types they must have (None = unknown, allowed)
DEVICE_CAPS = {
    "bus": (str,), "bus_kind": (str,), "provider": (str,), "description": (str,),
    "write_clears": (bool,), "dax_write_clears": (bool,), "ndctl_clear": (bool,),
}

_TYPE_WORD = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false",
              int: "an integer", float: "a number"}


def _what(value):
    if isinstance(value, bool):
        return "a boolean (%r)" % value
    for typ in (dict, list, str, int, float):
        if isinstance(value, typ):
            shown = repr(value)
            return "%s (%s)" % (_TYPE_WORD[typ], shown if len(shown) <= 60 else shown[:57] + "...")
    return type(value).__name__


def strict_type_problems(spec, params, prefix=""):
    """Problems (sentences) where ``params`` (as the caller gave them, before Ansible's
    conversions) holds a string or number where ``spec`` wants a list or a mapping, or a list or
    mapping where it wants a scalar. Recurses into ``options``."""
    problems = []
    for name, opt in spec.items():
        if not isinstance(params, dict) or params.get(name) is None:
            continue
        value = params[name]
        label = prefix + name
        typ = opt.get("type", "str")
        if typ == "list":
            if not isinstance(value, list):
                example = ", ".join(p.strip() for p in value.split(",")) \
                    if isinstance(value, str) else value
                problems.append(
                    "%s must be a list, got %s; write it as a YAML list ([%s]), a string is "
                    "never split into items" % (label, _what(value), example))
                continue
            for i, item in enumerate(value):
                where = "%s[%d]" % (label, i)
                if opt.get("elements") == "dict":
                    if not isinstance(item, dict):
                        problems.append("%s must be a mapping, got %s" % (where, _what(item)))
                    elif opt.get("options"):
                        problems.extend(strict_type_problems(opt["options"], item, where + "."))
                elif opt.get("elements") in ("str", "path") and isinstance(item, (list, dict)):
                    problems.append("%s must be a string, got %s" % (where, _what(item)))
        elif typ == "dict":
            if not isinstance(value, dict):
                problems.append("%s must be a mapping, got %s; write it as a YAML mapping "
                                "(key: value), a string is never parsed into one"
                                % (label, _what(value)))
            elif opt.get("options"):
                problems.extend(strict_type_problems(opt["options"], value, label + "."))
        elif typ in ("int", "float") and isinstance(value, bool):
            # Ansible takes True as 1 (bool is an int): a length of "true" would be 1 byte
            problems.append("%s must be %s, got %s" % (
                label, "an integer" if typ == "int" else "a number", _what(value)))
        elif typ in ("str", "path", "int", "float", "bool") and isinstance(value, (list, dict)):
            problems.append("%s must be %s, got %s" % (
                label, {"str": "a string", "path": "a path", "int": "an integer",
                        "float": "a number", "bool": "true or false"}[typ], _what(value)))
    return problems


def prune_to_given(validated, raw, spec):
    """``validated`` (Ansible's converted params) restricted, at every level with ``options``,
    to the keys present in ``raw`` (the caller's params)."""
    if not isinstance(validated, dict) or not isinstance(raw, dict):
        return validated
    out = {}
    for key, value in validated.items():
        if key not in raw:
            continue
        opt = spec.get(key) or {}
        sub = opt.get("options")
        if sub and opt.get("type") == "dict" and isinstance(value, dict):
            value = prune_to_given(value, raw[key], sub)
        elif sub and opt.get("type") == "list" and isinstance(value, list) \
                and isinstance(raw[key], list):
            value = [prune_to_given(v, r, sub) for v, r in zip(value, raw[key])]
        out[key] = value
    return out


def as_given(params, raw, spec):
    """Module params with every structured option (one with ``options``) pruned to what the
    caller gave (``prune_to_given``); plain options keep their defaults."""
    out = dict(params)
    for key, opt in spec.items():
        if opt.get("options") and isinstance(raw, dict) and key in raw and out.get(key) is not None:
            out[key] = prune_to_given({key: out[key]}, {key: raw[key]}, spec)[key]
    return out


def ledger_path_problem(path):
    if blank(path):
        return ("ledger_path is blank: name the ledger file (default "
                "/var/lib/pmem-poison/ledger.json)")
    if path.endswith("/"):
        return "ledger_path %s ends with /: name the ledger file, not its directory" % path
    if not path.startswith("/"):
        # a module runs in a temporary directory that is removed after the run: a relative ledger
        # would be written there, and the record of lost data deleted with it
        return ("ledger_path %s is relative: a module runs in a temporary directory that is removed "
                "after the run, so the record would be lost with it; give an absolute path (default "
                "/var/lib/pmem-poison/ledger.json)" % path)
    return None


def lock_timeout_problem(seconds):
    """The ledger lock's wait: NaN compared as no wait at all, and inf waited forever."""
    if not 0 <= seconds < float("inf"):
        return "lock_timeout must be 0 or more seconds (a finite number), got %s" % seconds
    return None


def blank(value):
    """True for None and for strings made only of whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def text_problem(name, value, what):
    """A problem sentence when a consent string (a name, a reason) is missing or blank."""
    if value is None:
        return "%s is required: %s" % (name, what)
    if blank(value):
        return "%s is blank (%r): %s; whitespace is not consent" % (name, value, what)
    return None


def empty_ids_problem(name, value):
    if value is not None and len(value) == 0:
        return ("%s is an empty list: an empty list names no entry (it never means every "
                "entry); list the ledger entry ids to act on, or leave %s out" % (name, name))
    return None


def blank_items(name, items):
    return ["%s[%d] is blank (%r): every item must name something" % (name, i, item)
            for i, item in enumerate(items or []) if blank(item)]


def _absolute_or_id(item):
    return item.startswith("/") or "|" in item


def copy_problem(name, key, copy):
    """The problem with ``copy``, given for ``name[key]`` as the known-good copy to restore
    from (None when it is an absolute path)."""
    if not isinstance(copy, str) or blank(copy) or not copy.startswith("/"):
        return "%s[%r] must be the absolute path of the known-good copy, got %s" % (name, key, _what(copy))
    return None


def policy_problems(policy):
    """Problems in the parts of ``policy`` the argument spec cannot describe (free keys)."""
    problems = []
    if not policy:
        return problems
    sources = policy.get("restore_sources") or {}
    for key, copy in sorted(sources.items(), key=lambda kv: str(kv[0])):
        if not isinstance(key, str) or not key.startswith("/"):
            problems.append("policy.restore_sources key %r must be an absolute path or an "
                            "absolute shell pattern" % (key,))
        problems.append(copy_problem("policy.restore_sources", key, copy))
    accepted = policy.get("accepted_loss") or []
    problems.extend(blank_items("policy.accepted_loss", accepted))
    for i, item in enumerate(accepted):
        if not blank(item) and not _absolute_or_id(item):
            problems.append("policy.accepted_loss[%d] (%r) is neither a ledger entry id nor an "
                            "absolute path or pattern: a relative pattern like '*' would match "
                            "every file" % (i, item))
    return problems


def capabilities_problems(capabilities):
    """Problems in ``capabilities.devices`` (a mapping keyed by device name)."""
    problems = []
    devices = (capabilities or {}).get("devices") or {}
    for name in sorted(devices, key=str):
        info = devices[name]
        label = "capabilities.devices.%s" % name
        if not isinstance(info, dict):
            problems.append("%s must be a mapping, got %s" % (label, _what(info)))
            continue
        for key in sorted(info):
            if key not in DEVICE_CAPS:
                problems.append("%s.%s is not a known capability (known: %s)"
                                % (label, key, ", ".join(sorted(DEVICE_CAPS))))
            elif info[key] is not None and (not isinstance(info[key], DEVICE_CAPS[key])
                                            or (bool not in DEVICE_CAPS[key]
                                                and isinstance(info[key], bool))):
                problems.append("%s.%s must be %s or null, got %s; a string like 'false' is "
                                "never read as false" % (label, key,
                                                         _TYPE_WORD[DEVICE_CAPS[key][0]],
                                                         _what(info[key])))
    return problems


def raise_problems(problems, next_step="fix the task's options and re-run"):
    """InputError naming every problem (nothing has been done yet)."""
    problems = [p for p in problems if p]
    if problems:
        raise InputError("invalid input, nothing was done: " + "; ".join(problems),
                         next_step=next_step, details={"problems": problems})


# ------------------------------------------------------------------ direct ranges (pmem_resolve)

def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (IOError, OSError, ValueError):
        return None


def device_bytes(path, sysfs_root="/sys"):
    """(kind, size in bytes or None) of ``path``: kind ``blockdev``, ``devdax``, ``mount`` (a
    directory: filesystem coordinates, sized by its block device) or ``other``. Raises OSError
    when it does not exist."""
    st = os.stat(path)
    if stat.S_ISBLK(st.st_mode):
        size = _read_int(os.path.join(sysfs_root, "dev", "block", "%d:%d" % (
            os.major(st.st_rdev), os.minor(st.st_rdev)), "size"))
        return "blockdev", None if size is None else size * 512
    if stat.S_ISCHR(st.st_mode) and os.path.basename(path).startswith("dax"):
        return "devdax", _read_int(os.path.join(sysfs_root, "bus", "dax", "devices",
                                                os.path.basename(path), "size"))
    if stat.S_ISDIR(st.st_mode):
        size = _read_int(os.path.join(sysfs_root, "dev", "block", "%d:%d" % (
            os.major(st.st_dev), os.minor(st.st_dev)), "size"))
        return "mount", None if size is None else size * 512
    return "other", None


def check_direct_range(item, sysfs_root="/sys"):
    """Raise a PmemError (device, range, next step) unless ``{device, offset, length}`` names an
    existing block device, devdax device or mount point and lies inside it."""
    device, offset, length = item.get("device"), item.get("offset"), item.get("length")
    rid = item.get("id") or "%s@%s+%s" % (os.path.basename(str(device).rstrip("/")) or device,
                                          offset, length)
    if blank(device):
        raise InputError("device is blank", device=device, range=rid,
                         next_step="name a block device, a devdax device or a mount point")
    if length is None or length <= 0:
        raise InputError("length %s is not a positive number of bytes" % (length,),
                         device=device, range=rid, next_step="give the range's length in bytes")
    if offset is None or offset < 0:
        raise RangeOutsideDevice("offset %s is negative: ranges start at byte 0 of the device"
                                 % (offset,), device=device, range=rid,
                                 next_step="give the offset in bytes from the device's start")
    try:
        kind, size = device_bytes(device, sysfs_root)
    except OSError as e:
        raise GatherError("no such device or mount point (%s)" % os.strerror(e.errno or 0),
                          device=device, range=rid,
                          next_step="check the name (ls /dev/pmem* /dev/dax*, findmnt)")
    if kind == "other":
        raise InputError("not a block device, devdax device or mount point", device=device,
                         range=rid, next_step="name /dev/pmemN[pM], /dev/daxX.Y or a mount point")
    if size is not None and offset + length > size:
        raise RangeOutsideDevice(
            "bytes %d-%d lie beyond the end of the %s (%d bytes)" % (
                offset, offset + length, {"mount": "filesystem's device"}.get(kind, "device"),
                size), device=device, range=rid,
            next_step="check the range's coordinates (bytes, from the device's first byte)")
    return rid
