# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After madvise(MADV_HWPOISON) on a mapped page of /mnt/pmem-xfs/victim (XFS -o dax, e820 pmem):
the evidence a host has after memory_failure() on a DAX page is there (the caller got SIGBUS, the
kernel logged the recovery action for that pfn, HardwareCorrupted grew by the page) and the
physical address is the e820 region's; no badblocks list holds it, and the collection still sees
it: pmem_badblocks (saved in /root/arrival-result.json) reports the page from the kernel log as a
bad range at that physical address, and the host is not clean."""

import json

import pytest


@pytest.fixture(scope="module")
def event(host):
    return json.loads(host.check_output("cat /etc/pmem-lab/hwpoison.json"))


def test_caller_got_sigbus(event):
    assert event["madvise_rc"] == 0, event
    assert event["sigbus"] is True, event


def test_kernel_logged_the_dax_page_recovery(host, event):
    assert event["recovery_logged"], event
    log = host.check_output("dmesg")
    assert "Memory failure: %#x: recovery action for dax page" % event["pfn"] in log


def test_hardware_corrupted_grew_by_the_page(host, event):
    assert event["hardware_corrupted_kb_after"] >= event["hardware_corrupted_kb_before"] + 4, event
    meminfo = host.file("/proc/meminfo").content_string
    (hc,) = [int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("HardwareCorrupted:")]
    assert hc == event["hardware_corrupted_kb_after"], (hc, event)


def test_page_is_in_the_e820_region(host, event):
    region = host.check_output(
        "ndctl list -b e820 -R | python3 -c 'import json,sys; d=json.load(sys.stdin);"
        " print(\" \".join(r[\"dev\"] for r in (d if isinstance(d, list) else [d])))'").split()
    spans = []
    for r in region:
        start = int(host.check_output("cat /sys/bus/nd/devices/%s/resource" % r), 0)
        size = int(host.check_output("cat /sys/bus/nd/devices/%s/size" % r))
        spans.append((start, start + size))
    assert any(a <= event["address"] < b for a, b in spans), (event, spans)


def test_no_badblocks_list_holds_it(host):
    lists = host.check_output("cat /sys/block/pmem*/badblocks /sys/bus/nd/devices/region*/badblocks")
    assert lists.strip() == "", lists


def test_the_collection_sees_it_from_the_kernel_log(host, event):
    result = json.loads(host.check_output("cat /root/arrival-result.json"))
    assert result["clean"] is False, result
    hits = [r for r in result["bad_ranges"]
            if r.get("absolute") is not None and r["absolute"] <= event["address"] < r["absolute"] + r["length"]]
    assert len(hits) == 1, result["bad_ranges"]
    assert hits[0]["sources"] == ["memory_failure"], hits[0]
    assert hits[0]["filesystem"] and hits[0]["filesystem"]["fstype"] == "xfs", hits[0]
