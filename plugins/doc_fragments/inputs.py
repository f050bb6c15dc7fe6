# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the structured inputs shared by the modules (spec: module_utils/_pmem/inputs.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options: {}
"""

    BAD_RANGES = r"""
options:
  bad_ranges:
    description:
    - Bad ranges (C(ansible_facts.pmem.bad_ranges) from M(pmem.poison.pmem_badblocks)). Keys not listed
      here are refused; offsets and lengths are bytes.
    type: list
    elements: dict
    suboptions:
      id:
        description: Stable range name (V(region1@0x10000+0x1000), or V(pmem1@0x0+0x1000) without root).
        type: str
        required: true
      region:
        description: Region, or null.
        type: str
      namespace:
        description: Namespace, or null.
        type: str
      blockdev:
        description: Block device, or null.
        type: str
      partition:
        description: Partition holding the range, or null.
        type: str
      dax_device:
        description: device-dax device (devdax namespaces).
        type: str
      length:
        description: Bytes.
        type: int
      sources:
        description: Lists that reported the range.
        type: list
        elements: str
      software_only:
        description: Only the block-device list has it.
        type: bool
      dimms:
        description: DIMMs named by C(ndctl list -M).
        type: list
        elements: str
      area:
        description: Where in the namespace the range lies.
        type: str
        choices:
        - data
        - info_block
        - outside_partition
        - outside_namespace
      absolute:
        description: Physical address; null without root.
        type: int
      region_offset:
        description: Offset from the region start.
        type: int
      namespace_offset:
        description: Offset from the namespace start.
        type: int
      blockdev_offset:
        description: Offset from sector 0 of the block device.
        type: int
      partition_offset:
        description: Offset from the partition start.
        type: int
      filesystem:
        description: The mounted filesystem that covers the range, or null.
        type: dict
        suboptions:
          device:
            description: Filesystem device.
            type: str
          mountpoint:
            description: Mount point.
            type: str
          fstype:
            description: Filesystem type.
            type: str
          dax:
            description: Mounted with DAX.
            type: bool
          offset:
            description: Bytes from the start of the filesystem's device (FIEMAP/GETFSMAP physical).
            type: int
      identity:
        description: How to find the range's bytes again when device names moved (namespace uuid or
          physical address and offset); as RV(pmem.poison.pmem_badblocks#module:ansible_facts.pmem.bad_ranges)
          gives it.
        type: dict
      events:
        description: Kernel-log and rasdaemon records inside the range, as
          RV(pmem.poison.pmem_badblocks#module:ansible_facts.pmem.bad_ranges) gives them.
        type: list
        elements: dict
      cxl:
        description: CXL poison-list records inside the range (memory device, DPA, HPA, error source), as
          RV(pmem.poison.pmem_badblocks#module:ansible_facts.pmem.bad_ranges) gives them.
        type: list
        elements: dict
"""

    RESULTS = r"""
options:
  results:
    description:
    - Resolver output (RV(pmem.poison.pmem_resolve#module:results)); recorded in the ledger first. Keys
      not listed here are refused.
    type: list
    elements: dict
    suboptions:
      range_id:
        description: The range's id (C(ansible_facts.pmem.bad_ranges[].id)).
        type: str
        required: true
      owners:
        description: Owners of the range's bytes (docs/design.md, C(Owner)).
        type: list
        elements: dict
        suboptions:
          kind:
            description: What owns the bytes.
            type: str
            choices:
            - file
            - metadata
            - free
            - info_block
            - devdax
            - raw
            - unknown
            required: true
          range_id:
            description: The range the owner belongs to.
            type: str
          device:
            description: Filesystem or namespace device.
            type: str
          mountpoint:
            description: Mount point; null when unmounted.
            type: str
          fstype:
            description: Filesystem type.
            type: str
          inode:
            description: Owning inode.
            type: int
          generation:
            description: Inode generation; null when unknown.
            type: int
          paths:
            description: Every path of the inode (hard links included).
            type: list
            elements: str
          file_offset:
            description: Offset of the bad bytes in the file.
            type: int
          length:
            description: Number of this owner's bad bytes.
            type: int
          repair_offset:
            description: Page-aligned start of the rewrite covering the bad bytes.
            type: int
          repair_length:
            description: Length of that rewrite.
            type: int
          shared:
            description: Blocks shared with other files (reflink).
            type: bool
          attr_fork:
            description: The bytes belong to an extended-attribute fork.
            type: bool
          metadata_kind:
            description: Which metadata, for V(metadata) owners.
            type: str
          processes:
            description: Processes with a devdax or raw device open or mapped.
            type: list
            elements: dict
            suboptions:
              pid:
                description: Process id.
                type: int
              comm:
                description: Command name.
                type: str
              how:
                description: V(open) and/or V(mapped).
                type: list
                elements: str
          reason:
            description: Why an owner is V(unknown), or a caveat.
            type: str
          fs_offset:
            description: Offset of this owner's bad part on the filesystem's device.
            type: int
          fs_uuid:
            description: UUID of the owner's filesystem (its stable identity across reboots).
            type: str
      error:
        description: Null, or the error that stopped this range.
        type: raw
      warnings:
        description: Caveats for this range.
        type: list
        elements: str
"""

    POLICY = r"""
options:
  policy:
    description:
    - Remediation policy (docs/design.md, C(Policy)). Unknown keys are refused; a string where a mapping
      or a list belongs is refused, never split or parsed.
    type: dict
    suboptions:
      method:
        description: Clear method per owner kind.
        type: dict
        suboptions:
          file:
            description: File data. V(auto) rewrites from a restore source, else leaves the entry open;
              V(rewrite) needs a source (zeros only over accepted losses); V(reallocate) leaves the poison
              in free space.
            type: str
            choices:
            - auto
            - rewrite
            - reallocate
            - none
          free:
            description: Free space (device-level clear, unmounted namespaces only).
            type: str
            choices: &id001
            - auto
            - device_write
            - ndctl
            - cxl
            - none
          raw:
            description: Raw namespace data (device-level clear, only once the loss is accepted).
            type: str
            choices: *id001
          devdax:
            description: device-dax namespace data (only once the loss is accepted).
            type: str
            choices: *id001
          metadata:
            description: 'Filesystem metadata: never cleared online.'
            type: str
            choices:
            - none
          info_block:
            description: 'Info block: never cleared online.'
            type: str
            choices:
            - none
          unknown:
            description: 'Unknown owners: never cleared.'
            type: str
            choices:
            - none
      containment:
        description: Containment of file owners on top of the marker.
        type: list
        elements: str
        choices:
        - rename
        - chmod
        - immutable
      restore_sources:
        description: Known-good copies. Keys are absolute paths (value is the copy file) or absolute shell
          patterns (value is a directory holding copies at the same relative paths). Values must be absolute
          paths.
        type: dict
      accepted_loss:
        description: DESTRUCTIVE. Ledger entry ids, absolute paths or absolute patterns whose loss is
          accepted (zeros are written, the entry is closed). A relative pattern is refused. Needs O(accepted_by)
          and O(accepted_reason).
        type: list
        elements: str
      offline_window_allowed:
        description: Allow methods that need a namespace unused (V(device_write), V(ndctl)); only true
          or false (the string V(false) is read as false).
        type: bool
"""

    CAPABILITIES = r"""
options:
  capabilities:
    description:
    - What is known about each device (C(ansible_facts.pmem.capabilities)); devices or keys left out are
      read off sysfs.
    type: dict
    suboptions:
      kernel:
        description: Kernel release.
        type: str
      kernel_version:
        description: V([major, minor, patch]).
        type: list
        elements: int
      recovery_write:
        description: Kernel 5.19 or later.
        type: bool
      devices:
        description: Per device name, V(bus), V(bus_kind), V(provider), V(description) (strings) and V(write_clears),
          V(dax_write_clears), V(ndctl_clear) (true, false or null; strings are refused).
        type: dict
      write_clears:
        description: Per bus, whether a write clears poison.
        type: dict
      dax_write_clears:
        description: Per bus, whether a DAX write clears poison.
        type: dict
      bus_can_clear:
        description: Per bus, whether C(ndctl clear-errors) can work.
        type: dict
      scrub:
        description: Per bus, whether it can scrub.
        type: dict
      buses:
        description: Per bus hints.
        type: dict
      lists_may_be_truncated:
        description: Some list is at the kernel limit.
        type: bool
      truncated_lists:
        description: Devices whose list is at the limit.
        type: list
        elements: str
"""
