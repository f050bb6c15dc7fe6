#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pmem_badblocks
short_description: Gather persistent-memory devices and every known bad range, in every coordinate
version_added: 0.1.0
description:
  - Reads the nvdimm topology (buses, regions, namespaces, block devices and their partitions, device-dax
    devices and the mounts on them) from sysfs and C(/proc/self/mountinfo), and the bad-block lists of every
    region and block device, plus C(ndctl list -M) where ndctl is present.
  - On a host with CXL memory devices (Linux 6.4+), as root, it also reads each device's poison list the way
    C(cxl list -L) does - writes V(1) to C(/sys/bus/cxl/devices/memX/trigger_poison_list) and collects the
    C(cxl_poison) trace events in a private tracefs instance, removed afterwards. That asks the device for its
    list and changes nothing on it (also in check mode). Without root, or without tracefs, it says so in
    RV(ansible_facts.pmem.warnings) or RV(ansible_facts.pmem.errors).
  - Reports from all lists are merged and de-duplicated; each bad range is expressed in every coordinate that
    applies (absolute, region, namespace, block device, partition, filesystem) and says whether it lies in the
    data area, in the info-block/memmap reserve, outside every partition or outside every namespace.
  - Returns the result as RV(ansible_facts.pmem). A host is RV(ansible_facts.pmem.clean) when it has no known
    bad range and the ledger (O(ledger_path)) has no open entry.
  - An empty list means C(no known poison), not C(no poison). The kernel learns of errors only after a scrub (O(scrub)) or when
    poison is consumed.
  - Without root the module still returns what it could read. The C(resource) files (physical addresses) are
    mode 0400, so absolute addresses are unknown and block-device lists cannot be matched to region lists;
    RV(ansible_facts.pmem.unreadable) lists every file that could not be read and why.
  - Problems with one device (a malformed line, a device that disappears while it is read, an unknown namespace
    mode, ndctl printing garbage) become entries in RV(ansible_facts.pmem.errors); the ranges that could be read
    are still returned.
author:
  - pmem.poison contributors (@pmem-poison)
extends_documentation_fragment:
  - pmem.poison.attributes
  - pmem.poison.attributes.facts
  - pmem.poison.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Gathering changes nothing. In check mode a requested O(scrub) is not started; the result says so.
  diff_mode:
    support: none
  facts:
    support: full
options:
  devices:
    description:
      - Restrict the result to these devices and everything below them. Names as the kernel gives them, for
        example V(ndbus0), V(region1), V(namespace1.0), V(pmem1), V(pmem1p1) or V(dax0.0).
      - Bad ranges are kept when they name one of the devices (or a device below one); the topology keeps the
        named devices with their ancestors. A name that matches nothing becomes an entry in
        RV(ansible_facts.pmem.errors) and makes the host not clean.
      - The default, an empty list, means every device (this module only reads). A string is
        refused, never split into names.
    type: list
    elements: str
    default: []
  scrub:
    description:
      - Start an address range scrub on every bus that can scrub (the bus of O(devices) when given) and wait
        for it to finish before reading the lists, at most O(scrub_timeout) seconds.
      - Uses C(ndctl start-scrub) and C(ndctl wait-scrub) when ndctl is used (see O(use_ndctl)), else writes
        V(1) to C(ndbusX/nfit/scrub) and polls it. Buses without a scrub (legacy e820 pmem, QEMU nvdimm) are
        reported and skipped. Needs root.
      - Skipped in check mode.
    type: bool
    default: false
  scrub_timeout:
    description:
      - Seconds to wait for the scrubs started by O(scrub). When they are still running the module returns
        what the lists hold so far and RV(scrub.timed_out) is V(true).
    type: int
    default: 300
  use_ndctl:
    description:
      - Whether to read C(ndctl list -B -R -N -M) for media errors with DIMM names.
      - V(auto) uses ndctl when it is installed and some kernel list has entries (ndctl's lists come from the
        same kernel lists; on a host with empty lists it could add nothing); V(never) reads sysfs only;
        V(always) runs ndctl every time and fails when it is not installed.
    type: str
    choices: [auto, always, never]
    default: auto
  ledger_path:
    description:
      - The pmem.poison ledger (an absolute path). Its open entries are returned in RV(ansible_facts.pmem.open_entries); a host with
        open entries is not clean.
      - A missing file means no entries. An unreadable or corrupt ledger is an entry in
        RV(ansible_facts.pmem.errors) and makes the host not clean.
    type: path
    default: /var/lib/pmem-poison/ledger.json
  kernel_events:
    description:
      - Also read the poison records that no badblocks list holds, and merge them into
        RV(ansible_facts.pmem.bad_ranges) by physical address, with RV(ansible_facts.pmem.bad_ranges[].sources)
        naming them. They are V(memory_failure) and V(mce) lines of the kernel log (C(/dev/kmsg) for this boot, the
        journal's kernel transport for earlier boots it keeps), and V(rasdaemon) records
        (C(/var/lib/rasdaemon/ras-mc_event.db)) where the host runs rasdaemon.
      - C(HardwareCorrupted) in C(/proc/meminfo) is a cross-check. Bytes it counts that no record explains
        become a warning.
      - On e820 pmem, CXL memory, and for memory failures that are not machine checks on ACPI NFIT, these
        records are the only evidence of the lost data. Placing them needs root (region base addresses).
      - "Sources by kernel: V(region), V(blockdev), V(ndctl), V(memory_failure) and V(mce) on every kernel this
        collection supports; V(rasdaemon) where rasdaemon runs. V(xfs_health) (the XFS health monitor, Linux 7.0+)
        appears only on ranges the watcher recorded (see M(pmem.poison.pmem_watcher)): it is pushed while someone
        listens and is never read back later."
    type: bool
    default: true
  resolve:
    description:
      - Also resolve the owners of every bad range found (file, metadata, free space, raw or devdax
        namespace) in the same run, with the core of M(pmem.poison.pmem_resolve) and its defaults
        (paths walked, no time limit), and return them in RV(resolve). The module still only reads.
      - Saves a round trip on a host with poison (the role uses it). A host without bad ranges pays
        nothing for it. Use M(pmem.poison.pmem_resolve) for its options or for ranges of your own.
    type: bool
    default: false
notes:
  - The kernel's table holds at most 512 extents per device and the sysfs text stops at one page; a list at that
    limit sets RV(ansible_facts.pmem.capabilities.lists_may_be_truncated); treat it as a lower bound.
  - Entries written to C(/sys/block/pmemX/badblocks) by software never reach the region list; they are reported
    with RV(ansible_facts.pmem.bad_ranges[].software_only=true) and vanish when the namespace is re-enabled.
"""

EXAMPLES = r"""
- name: Gather persistent-memory facts
  pmem.poison.pmem_badblocks:

- name: Stop when the host is not clean
  ansible.builtin.assert:
    that: ansible_facts.pmem.clean
    fail_msg: "{{ ansible_facts.pmem.bad_ranges | map(attribute='id') | list }}"

- name: Scrub the buses of pmem1 first (waits up to 10 minutes), sysfs only
  pmem.poison.pmem_badblocks:
    devices: [pmem1]
    scrub: true
    scrub_timeout: 600
    use_ndctl: never

- name: Bad ranges that a filesystem holds, with their filesystem offsets
  ansible.builtin.debug:
    msg: "{{ item.filesystem.mountpoint }} offset {{ item.filesystem.offset }} length {{ item.length }}"
  loop: "{{ ansible_facts.pmem.bad_ranges | selectattr('filesystem') | list }}"
"""

RETURN = r"""
elapsed:
  description: Seconds the module spent in gathering (and scrubbing), measured inside the module; the
    Python start-up and the Ansible module wrapper are not included.
  returned: always
  type: float
  sample: 0.042
resolve:
  description:
    - The owners of RV(ansible_facts.pmem.bad_ranges), exactly as M(pmem.poison.pmem_resolve) returns
      them for these ranges (RV(resolve.results) in the same order, RV(resolve.summary)).
  returned: when O(resolve=true)
  type: dict
  contains:
    results:
      description: One entry per bad range, as M(pmem.poison.pmem_resolve) returns it.
      type: list
      elements: dict
    summary:
      description: Ranges, ranges with an error, owners by kind.
      type: dict
scrub:
  description: What O(scrub) did. Absent when no scrub was requested.
  returned: when O(scrub=true)
  type: dict
  contains:
    requested:
      description: Always V(true).
      type: bool
    skipped:
      description: V(true) in check mode (no scrub is started then).
      type: bool
    started:
      description: Buses on which a scrub was started.
      type: list
      elements: str
    timed_out:
      description: A scrub was still running after O(scrub_timeout) seconds.
      type: bool
    progress:
      description: Progress messages, in order.
      type: list
      elements: str
    buses:
      description: Per bus (keyed by bus name) V(provider), V(supported), V(started), V(completed),
        V(count_before), V(count_after), V(seconds), V(message).
      type: dict
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    pmem:
      description: Persistent-memory topology, bad ranges and ledger state.
      type: dict
      contains:
        schema_version:
          description: Version of this structure. Currently V(1).
          type: int
        gathered_as_root:
          description: Whether the module ran as root (root-only files were read).
          type: bool
        kernel:
          description: Kernel release (C(/proc/sys/kernel/osrelease)).
          type: str
        ndctl:
          description: Whether ndctl output was used (V(used)), which executable (V(executable)) and, when it was
            not run in O(use_ndctl=auto) mode, why (V(skipped)).
          type: dict
        clean:
          description: No known bad range, no open ledger entry, the ledger could be read and every
            requested device exists (a name in O(devices) that matches nothing makes it V(false)).
          type: bool
        buses:
          description: nvdimm buses keyed by name (V(ndbus0)). Each has V(name), V(provider) (V(e820),
            V(ACPI.NFIT), V(nfit_test.0), ...), V(commands), V(scrub_supported), V(scrub_count),
            V(scrub_running) and V(regions).
          type: dict
        regions:
          description: Regions keyed by name. Each has V(name), V(bus), V(devtype), V(size) (bytes),
            V(resource) (physical base address; null without root), V(align), V(persistence_domain), V(nstype),
            V(mappings), V(read_only), V(badblocks) (raw V([sector, count]) pairs, region relative),
            V(badblock_count), V(badblocks_truncated), V(ndctl_badblocks) (V(offset), V(length) in sectors and
            V(dimms)) and V(namespaces).
          type: dict
        namespaces:
          description: Namespaces with a size, keyed by name. Each has V(name), V(region), V(devtype),
            V(mode) (V(fsdax), V(devdax), V(raw), V(sector) or V(unknown)), V(kernel_mode) (the kernel's own word),
            V(size), V(uuid), V(resource) (null without root), V(holder) (pfn/dax/btt device), V(map)
            (V(mem) or V(dev)), V(align), V(data_start) (absolute start of the data area; null without root),
            V(data_offset) (bytes of info block and memmap reserve before the data area; null without root),
            V(data_size), V(blockdev), V(dax_device) and V(ndctl_badblocks).
          type: dict
        blockdevs:
          description: pmem block devices keyed by name. Each has V(name), V(device) (V(/dev/pmem0)), V(parent)
            (pfn, namespace or btt device), V(namespace), V(size) (bytes), V(dev) (major:minor), V(ro),
            V(badblocks) (raw V([sector, count]) pairs relative to sector 0 of the device),
            V(badblocks_truncated) and V(partitions) (keyed by name; each with V(name), V(number), V(start) and
            V(size) in bytes, V(dev), V(device)).
          type: dict
        dax:
          description: device-dax devices keyed by name. Each has V(name), V(nd_device), V(namespace), V(size),
            V(align), V(resource) (null without root), V(dev) and V(chardev) (V(/dev/dax0.0)).
          type: dict
        mounts:
          description: Mounts of pmem block devices and partitions. Each has V(device), V(blockdev),
            V(partition), V(mountpoint), V(root), V(fstype), V(source), V(dev), V(options), V(super_options),
            V(dax) (mounted with DAX) and V(ro).
          type: list
          elements: dict
        cxl:
          description: CXL memory devices and regions (empty on a host without CXL memory devices) - V(memdevs)
            keyed by name (V(mem0)), each with V(serial), V(host) (PCI address), V(pmem_size), V(ram_size) and
            V(can_list) (the kernel offers C(trigger_poison_list)); V(regions) keyed by CXL region name, each with
            V(mode), V(resource) (HPA base), V(size) and V(uuid); V(poison_records) (how many poison-list records
            were read; their ranges are in RV(ansible_facts.pmem.bad_ranges) with source V(cxl)).
          type: dict
        bad_ranges:
          description: Every known bad range, merged across sources and split at namespace, data-area and partition
            boundaries. Offsets and lengths are bytes.
          type: list
          elements: dict
          contains:
            id:
              description: Stable across reboots that rename devices, made of RV(ansible_facts.pmem.bad_ranges[].identity)
                - V(ns-<namespace uuid>@0x10000+0x1000) (offset from the namespace start),
                V(ns-<uuid>:data@0x0+0x1000) (offset in the data area, without root), V(phys@0x40010000+0x1000)
                (physical address, namespaces without a uuid); the name-based V(region1@0x10000+0x1000) or
                V(pmem1@0x0+0x1000) only when neither is known (no uuid and no root).
              type: str
            identity:
              description: What finds these bytes again after a reboot, device names aside - V(kind)
                (V(namespace_uuid), V(physical) or V(name)), V(namespace_uuid), V(namespace_offset), V(data_offset),
                V(absolute), V(length), and V(stable) (false when only device names are known).
              type: dict
            region:
              description: Region, or null when unknown.
              type: str
            namespace:
              description: Namespace, or null when the range is outside every namespace.
              type: str
            blockdev:
              description: Block device, or null for devdax, outside the data area, or when unknown.
              type: str
            partition:
              description: Partition that holds the range, or null.
              type: str
            dax_device:
              description: device-dax device (devdax namespaces only).
              type: str
            length:
              description: Bytes.
              type: int
            sources:
              description: What reported it. The badblocks lists V(region), V(blockdev), V(ndctl); V(cxl) (a CXL
                memory device's poison list, Linux 6.4+, read as root through C(trigger_poison_list) and the
                C(cxl_poison) trace event; details in RV(ansible_facts.pmem.bad_ranges[].cxl)); records no list
                holds V(mce) (a machine check with an address in the kernel log), V(memory_failure) (a
                C(Memory failure) line of the kernel log, one page), V(rasdaemon) (its database). See
                O(kernel_events).
              type: list
              elements: str
            cxl:
              description: The CXL poison records inside the range (empty for other ranges), each with V(memdev)
                (C(mem0)), V(serial) and V(host) (the device's serial number and PCI address), V(dpa) and V(length)
                (device physical address and bytes, 64-byte units), V(source) (the device's error source -
                V(Unknown), V(External), V(Internal), V(Injected) or V(Vendor)), V(region) and V(region_uuid)
                (the CXL region that maps it, or null), V(hpa) (host physical address, null when no region maps
                it) and V(hpa_offset) (offset in that CXL region). A record that no nd region holds gives a range
                with only these coordinates (V(area=outside_namespace), id V(mem0@<dpa>+<length>)).
              type: list
              elements: dict
            events:
              description: The kernel-log and rasdaemon records inside the range (empty for list-only ranges), each
                with V(source), V(key) (stable identity of the record), V(address), V(length), V(at), V(boot_id),
                V(outcome) (the kernel's recovery result), V(page_type) and V(message) (the kernel's line).
              type: list
              elements: dict
            software_only:
              description: Only the block-device list has it (written there by software; vanishes on reboot).
              type: bool
            dimms:
              description: DIMMs named by C(ndctl list -M).
              type: list
              elements: str
            area:
              description: V(data), V(info_block) (info block and memmap reserve of fsdax/devdax, not reachable
                through the block device), V(outside_partition), V(outside_namespace), or null when it cannot be
                told (without root).
              type: str
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
              description: Offset from sector 0 of the block device; null unless the range is in the data area
                of a block device.
              type: int
            partition_offset:
              description: Offset from the start of RV(ansible_facts.pmem.bad_ranges[].partition).
              type: int
            filesystem:
              description: The mounted filesystem that covers the range (null if none), with V(device),
                V(mountpoint), V(fstype), V(dax) and V(offset) (bytes from the start of the filesystem's device, the FIEMAP/GETFSMAP
                physical coordinate).
              type: dict
        capabilities:
          description: Hints for the modules that clear poison.
          type: dict
          contains:
            kernel:
              description: Kernel release.
              type: str
            devices:
              description: Per block device and dax device, keyed by name, the same hints with V(bus), V(bus_kind)
                (V(e820), V(acpi_nfit), V(nfit_test), V(virtio) or V(unknown)), V(provider), V(write_clears),
                V(dax_write_clears), V(ndctl_clear) and V(description). This is the shape pmem.poison.pmem_clear
                takes as its O(pmem.poison.pmem_clear#module:capabilities) option.
              type: dict
            kernel_version:
              description: V([major, minor, patch]).
              type: list
              elements: int
            recovery_write:
              description: Kernel 5.19 or later (the DAX recovery-write path exists).
              type: bool
            dax_write_clears:
              description: Per bus, whether a page-aligned whole-page write through DAX clears poison. V(true) on
                buses without a clear command (legacy e820 pmem, virtio-pmem) with kernel 5.19 or later; V(false) on
                the QEMU nvdimm (ACPI.NFIT without DSMs) and on nfit_test; null where it was never measured (a real
                ACPI.NFIT platform with a clear-error command) or the provider is unknown.
              type: dict
            write_clears:
              description: Per bus, whether a page-aligned whole-page non-DAX write (or a raw whole-sector
                block-device write) clears poison. Null where unknown (see RV(ansible_facts.pmem.capabilities.dax_write_clears)).
              type: dict
            bus_can_clear:
              description: Per bus, whether C(ndctl clear-errors) can work; V(n/a) on buses without a clear
                command, where writes clear.
              type: dict
            scrub:
              description: Per bus, whether it can scrub.
              type: dict
            buses:
              description: The same per bus, with V(provider) and V(clear_error_command).
              type: dict
            lists_may_be_truncated:
              description: Some list is at the kernel limit; treat the ranges as a lower bound.
              type: bool
            truncated_lists:
              description: Devices whose list is at the limit.
              type: list
              elements: str
        errors:
          description: Per-device problems; each has V(device), V(file) and V(message).
          type: list
          elements: dict
        warnings:
          description: Things to know (not root, truncated lists, ranges in an info block, ...).
          type: list
          elements: str
        unreadable:
          description: Files that could not be read for lack of permission; each has V(device), V(file) and
            V(reason).
          type: list
          elements: dict
        open_entries:
          description: Open entries of the ledger (see the ledger schema).
          type: list
          elements: dict
        open_entry_locations:
          description: For each open ledger entry id, where its bytes are now, found by its recorded identity -
            V(present), the current V(region), V(namespace), V(blockdev), V(partition), V(dax_device),
            V(blockdev_offset), V(partition_offset), V(area), V(moved); or V(present=false) with V(reason).
            The names an entry was seen under (its V(range.seen_as)) may differ after a reboot.
          type: dict
        ledger_warnings:
          description: What the watcher (M(pmem.poison.pmem_watcher)) heard that is no bad range, as the ledger
            keeps it (the newest 200) - above all the kernel's lost-event markers (the XFS health monitor's queue
            was full, fanotify overflowed, the kernel log overwrote records), which say that a media error may
            be known to no source. Each has V(at), V(source) and V(message). The ones recorded since this boot
            are also module warnings.
          type: list
          elements: dict
          sample:
            - at: "2026-12-02T06:01:07Z"
              source: xfs_health
              message: "XFS /mnt/pmem0: the health monitor dropped 3 event(s) (its queue was full): ..."
        handled_records:
          description: Ranges known only from kernel-log or rasdaemon records (see O(kernel_events)) whose every
            record closed ledger entries were detected by (the file was restored or its loss accepted). The kernel
            log keeps such a record until it rotates; these ranges do not make the host unclean and are not in
            RV(ansible_facts.pmem.bad_ranges). Same shape as RV(ansible_facts.pmem.bad_ranges).
          type: list
          elements: dict
        watcher:
          description: The C(pmem-poison-watch) service (see M(pmem.poison.pmem_watcher)). V(installed) is the
            version of the code on the host (null when not installed), V(current) the version this collection
            would install, V(running) whether its process runs, V(supported) whether the host runs systemd
            (the role installs the watcher only there), V(state) what it wrote last (C(pid),
            C(passes), C(recorded), C(last_pass), C(last_change), C(last_error), C(lost_records)).
          type: dict
        event_sources:
          description: What O(kernel_events) read; V(read) lists the sources (V(kmsg), V(journal),
            V(rasdaemon)), V(hardware_corrupted) the bytes C(/proc/meminfo) counts (null when unread),
            V(events) the number of records found.
          type: dict
"""

from ansible.module_utils.basic import AnsibleModule, _load_params

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as _inputs
from ansible_collections.pmem.poison.plugins.module_utils._pmem import module_result
from ansible_collections.pmem.poison.plugins.module_utils._pmem import scan as _scan


ARGUMENT_SPEC = dict(
    _scan.OPTIONS,
    ledger_path=dict(type="path", default="/var/lib/pmem-poison/ledger.json"),
    resolve=dict(type="bool", default=False),
)


def check_params(params, raw):
    problems = []
    problems.extend(_inputs.blank_items("devices", params["devices"]))
    problems.extend(_scan.option_problems(params))
    problems.append(_inputs.ledger_path_problem(params["ledger_path"]))
    _inputs.raise_problems(problems)


def main():
    module, raw = module_result.new_module(AnsibleModule, _load_params, "pmem_badblocks",
                                           ARGUMENT_SPEC, supports_check_mode=True)

    def body():
        check_params(module.params, raw)
        try:
            return _scan.run_scan(check=module.check_mode, **module.params)
        except _scan.NdctlMissing as exc:
            module.fail_json(msg=str(exc), error=exc.to_dict(), ansible_facts={"pmem": exc.facts})
        return None  # not reached: fail_json exits

    result = module_result.run(module, "pmem_badblocks", body, {"changed": False})
    for message in result["ansible_facts"]["pmem"]["warnings"]:
        module.warn(message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
