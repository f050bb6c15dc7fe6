# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After an SRAO machine check at a page of /mnt/pmem-nvdimm/victim (QEMU NVDIMM, fsdax, XFS -o dax):
the kernel's NFIT handler listed the range in the region and block-device lists (real poison, not a
software entry), memory_failure() counted the page, a read of the page fails; pmem_badblocks
reports the range at the machine check's physical address from both sources, and pmem_resolve
names the victim file at the page's offset. Ground truth: files/target.sh's FIEMAP and sysfs."""

import json

import pytest


def _json(host, path):
    return json.loads(host.check_output("cat %s" % path))


@pytest.fixture(scope="module")
def target(host):
    return _json(host, "/etc/pmem-lab/mce-target.json")


@pytest.fixture(scope="module")
def result(host):
    return _json(host, "/root/arrival-result.json")


def _covers(text, sector):
    for line in text.splitlines():
        start, count = (int(x) for x in line.split())
        if start <= sector < start + count:
            return True
    return False


def test_lists_were_empty_before(target):
    assert target["blockdev_list_before"].strip() == "", target
    assert target["region_list_before"].strip() == "", target


def test_kernel_listed_the_machine_check_in_region_and_blockdev_lists(host, target):
    bb = host.file("/sys/block/%s/badblocks" % target["device"]).content_string
    assert _covers(bb, target["dev_byte"] // 512), (bb, target)
    rbb = host.file("/sys/bus/nd/devices/%s/badblocks" % target["region"]).content_string
    assert _covers(rbb, (target["address"] - target["region_start"]) // 512), (rbb, target)


def test_memory_failure_counted_the_page(host, target):
    meminfo = host.file("/proc/meminfo").content_string
    (hc,) = [int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("HardwareCorrupted:")]
    assert hc >= target["hardware_corrupted_kb_before"] + 4, (hc, target)
    log = host.file("/etc/pmem-lab/mce-kernel.log").content_string
    assert "Machine check events logged" in log or "Hardware Error" in log, log
    assert "Memory failure: %#x:" % (target["address"] // 4096) in log, log


def test_read_of_the_page_fails(host, target):
    cmd = host.run("xfs_io -r -c %s %s", "pread -q %d 4096" % target["file_offset"], target["file"])
    assert "Input/output error" in (cmd.stdout + cmd.stderr), (cmd.stdout, cmd.stderr)


def _the_range(result, target):
    hits = [r for r in result["bad_ranges"]
            if r["absolute"] is not None and r["absolute"] <= target["address"] < r["absolute"] + r["length"]]
    assert len(hits) == 1, (result["bad_ranges"], target)
    return hits[0]


def test_collection_reports_the_range_from_both_lists(result, target):
    rng = _the_range(result, target)
    assert {"region", "blockdev"} <= set(rng["sources"]), rng
    assert rng["software_only"] is False, rng
    assert rng["blockdev"] == target["device"] and rng["region"] == target["region"], rng
    assert rng["area"] == "data", rng
    assert rng["filesystem"]["mountpoint"] == "/mnt/pmem-nvdimm", rng


def test_collection_names_the_victim_file_at_the_page(host, result, target):
    rng = _the_range(result, target)
    (res,) = [r for r in result["resolve"]["results"] if r["range_id"] == rng["id"]]
    assert res["error"] is None, res
    files = [o for o in res["owners"] if o["kind"] == "file"]
    assert len(files) == 1, res
    owner = files[0]
    assert target["file"] in owner["paths"], owner
    ino = int(host.check_output("stat -c %%i %s", target["file"]))
    assert owner["inode"] == ino, owner
    # the machine check hit the page's first bytes: the range starts at the page's file offset
    assert (owner["file_offset"], owner["length"]) == (target["file_offset"], rng["length"]), owner
