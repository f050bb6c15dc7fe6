#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pmem_resolve
short_description: Find the owners of persistent-memory bad ranges
version_added: 0.1.0
description:
  - For each bad range, name what lives on those bytes. File data (inode, every path, the file
    offset and length of the bad bytes, the page-aligned repair range, whether the blocks are
    shared by reflinked files), filesystem metadata (which kind), free space, the fsdax info-block
    area, a devdax or raw namespace (with the processes that have it open or mapped), or
    V(unknown) with the reason.
  - Mounted XFS with C(rmapbt) is resolved with C(FS_IOC_GETFSMAP) range queries. ext4 and XFS
    without C(rmapbt) use GETFSMAP for metadata and free space and one C(FS_IOC_FIEMAP) pass over
    the filesystem's files for file data. Unmounted filesystems are read from the block device
    with C(xfs_db) or C(debugfs).
  - Paths come from one directory walk per filesystem; it never crosses into other mounts.
  - The module only reads. Files whose data is still in the page cache (delayed allocation) are
    reported as such, never guessed; C(FIEMAP_FLAG_SYNC) is not used.
  - One range failing (outside the device, unreadable, unsupported filesystem) never stops the
    others; it gets its own RV(results[].error) or an V(unknown) owner with a reason.
author:
  - pmem.poison contributors (@pmem-poison)
extends_documentation_fragment:
  - pmem.poison.attributes
  - pmem.poison.attributes.platform
  - pmem.poison.inputs.bad_ranges
options:
  ranges:
    description:
      - Ranges given directly by an operator, in block-device or filesystem coordinates.
      - Mutually exclusive with O(bad_ranges). When neither is given, the module gathers the
        host's bad ranges itself.
      - A range with a negative offset, a length of 0 or less, a device that does not exist, or
        bytes past the device's end gets its own RV(results[].error) naming the device and range;
        the other ranges are resolved.
    type: list
    elements: dict
    suboptions:
      device:
        description:
          - A block device (V(/dev/pmem0p1)); O(ranges[].offset) is then bytes from its sector 0.
          - Or a mount point (V(/mnt/pmem)); O(ranges[].offset) is then bytes in the filesystem's
            device coordinates (GETFSMAP C(fmr_physical), FIEMAP C(fe_physical)).
          - Or a devdax device (V(/dev/dax0.0)).
        type: str
        required: true
      offset:
        description: Byte offset of the first bad byte (0 or more).
        type: int
        required: true
      length:
        description: Length of the range in bytes (1 or more).
        type: int
        required: true
      id:
        description: Range identifier to report; default C(<device name>@<offset>+<length>) in hex.
        type: str
  walk_paths:
    description:
      - Resolve inode numbers to every path (hard links included) with one directory walk per
        filesystem. With V(false), file owners carry only the inode number (unless the FIEMAP pass
        found the path anyway).
    type: bool
    default: true
  max_walk_seconds:
    description:
      - Upper bound for each file scan and directory walk. Owners not reached in time are
        reported with a reason; nothing is guessed. V(0) means no limit.
    type: float
    default: 0
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything; check mode runs the same read-only queries.
  diff_mode:
    support: none
  platform:
    details:
      - Needs Linux. GETFSMAP and offline resolution need root.
notes:
  - Run as root. Without root GETFSMAP is refused and the module falls back to the FIEMAP pass
    over the files it can read.
  - Paths of unmounted filesystems are relative to the filesystem's root.
seealso:
  - module: pmem.poison.pmem_badblocks
  - name: ioctl_getfsmap(2)
    description: The GETFSMAP interface.
    link: https://man7.org/linux/man-pages/man2/ioctl_getfsmap.2.html
"""

EXAMPLES = r"""
- name: Gather bad ranges
  pmem.poison.pmem_badblocks:
  register: bb

- name: Who owns them
  pmem.poison.pmem_resolve:
    bad_ranges: "{{ ansible_facts.pmem.bad_ranges }}"
  register: owners

- name: An operator's own range, in block-device bytes
  pmem.poison.pmem_resolve:
    ranges:
      - device: /dev/pmem0p1
        offset: 1048576
        length: 4096

- name: Owners without the path walk (inode numbers only), bounded in time
  pmem.poison.pmem_resolve:
    ranges:
      - {device: /mnt/pmem, offset: 8392704, length: 512}
    walk_paths: false
    max_walk_seconds: 30
"""

RETURN = r"""
results:
  description: One entry per input range, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    range_id:
      description: The range's identifier.
      type: str
      sample: region1@0x10000+0x1000
    owners:
      description:
        - Owners of the range's bytes (docs/design.md, "Owner"). A range across two files gives
          two owners; a reflinked block gives one owner per file, each with RV(results[].owners[].shared).
      type: list
      elements: dict
      contains:
        kind:
          description: What owns the bytes.
          type: str
          choices: [file, metadata, free, info_block, devdax, raw, unknown]
        device:
          description: Filesystem or namespace device.
          type: str
        mountpoint:
          description: Where the filesystem is mounted; null when unmounted.
          type: str
        fstype:
          description: Filesystem type.
          type: str
        inode:
          description: Owning inode (file data, attribute fork, bmbt, directories).
          type: int
        generation:
          description: Inode generation (C(FS_IOC_GETVERSION)), to detect inode reuse; null when unknown.
          type: int
        paths:
          description: Every path of the inode on that filesystem (hard links included).
          type: list
          elements: str
        file_offset:
          description: Byte offset of the bad bytes in the file.
          type: int
        length:
          description: Number of this owner's bad bytes.
          type: int
        repair_offset:
          description: Page-aligned (4096) start of the smallest whole-page rewrite covering the bad bytes.
          type: int
        repair_length:
          description: Length of that page-aligned rewrite.
          type: int
        fs_offset:
          description: Byte offset of this owner's bad part on the filesystem's device.
          type: int
        shared:
          description: The blocks are shared with other files (reflink).
          type: bool
        attr_fork:
          description: The bytes belong to an extended-attribute fork.
          type: bool
        metadata_kind:
          description: For V(metadata) owners, which metadata (V(sb), V(agf), V(log), V(inodes), V(bmbt),
            V(directory), V(symlink), V(attr_fork), V(cow_staging), ...). Only a regular file's data is a V(file)
            owner; a directory's or symlink's block is metadata of that inode (with its inode and paths).
          type: str
        fs_uuid:
          description: The filesystem's uuid (from its superblock), the stable key of filesystem owners; null when
            the superblock could not be read.
          type: str
        processes:
          description: For V(devdax) and V(raw) owners, the processes with the device open or mapped.
          type: list
          elements: dict
        reason:
          description: Why an owner is V(unknown), or a caveat (unwritten extent, no path found).
          type: str
    error:
      description: Null, or the error that stopped this range (error class, msg, device, range, next_step).
      type: dict
    warnings:
      description: Caveats for this range (filesystem mounted twice, walk errors, page-cache data).
      type: list
      elements: str
summary:
  description: Counts of owners by kind, plus ranges and errors.
  returned: always
  type: dict
  sample: {ranges: 2, errors: 0, owners: {file: 2, metadata: 1}}
"""

from ansible.module_utils.basic import AnsibleModule, _load_params

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as _inputs
from ansible_collections.pmem.poison.plugins.module_utils._pmem import module_result
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as _owners
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_summary as _owner_summary
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError

ARGUMENT_SPEC = dict(
    bad_ranges=dict(type="list", elements="dict", options=_inputs.BAD_RANGE),
    ranges=dict(type="list", elements="dict", options=dict(
        device=dict(type="str", required=True),
        offset=dict(type="int", required=True),
        length=dict(type="int", required=True),
        id=dict(type="str"),
    )),
    walk_paths=dict(type="bool", default=True),
    max_walk_seconds=dict(type="float", default=0),
)


def _gather_bad_ranges():
    """Default input: the host's bad ranges, from the same core as pmem_badblocks."""
    return _ranges.gather_bad_ranges(_topology.gather_topology())


def resolve_direct(ranges, sysfs_root="/sys", **kw):
    """Operator ranges: each checked against its device first; a bad one is an error result in
    its place (device and range named), the others are resolved."""
    slots, todo = [], []
    for item in ranges:
        try:
            _inputs.check_direct_range(item, sysfs_root)
        except PmemError as e:
            slots.append({"range_id": e.range, "owners": [], "error": e.to_dict(),
                          "warnings": []})
            continue
        slots.append(None)
        todo.append(_owners.direct_range(item))
    resolved = iter(_owners.resolve_owners(todo, **kw) if todo else [])
    return [slot if slot is not None else next(resolved) for slot in slots]


def _current_topology():
    return _topology.gather_topology()


def main():
    module, raw = module_result.new_module(
        AnsibleModule, _load_params, "pmem_resolve", ARGUMENT_SPEC,
        mutually_exclusive=[("bad_ranges", "ranges")],
        supports_check_mode=True,
    )
    partial = {"changed": False, "results": [], "summary": _owner_summary.summarize([])}

    def body():
        p = module.params
        problems = []
        if p["max_walk_seconds"] < 0:
            problems.append("max_walk_seconds must be 0 (no limit) or more, got %s"
                            % p["max_walk_seconds"])
        _inputs.raise_problems(problems)
        kw = dict(facts=None, walk_paths=p["walk_paths"],
                  max_walk_seconds=p["max_walk_seconds"] or None)
        if p["ranges"] is not None:
            return resolve_direct(p["ranges"], **kw)
        todo = _inputs.as_given(p, raw, ARGUMENT_SPEC)["bad_ranges"]
        topology = None
        if todo is None:
            todo = _gather_bad_ranges()
        elif any((r or {}).get("identity") for r in todo):
            # given ranges may predate a reboot that renamed the devices: find them by identity
            topology = _current_topology()
        return _owners.resolve_owners(todo, topology=topology, **kw)

    results = module_result.run(module, "pmem_resolve", body, partial)
    module.exit_json(changed=False, results=results, summary=_owner_summary.summarize(results))


if __name__ == "__main__":
    main()
