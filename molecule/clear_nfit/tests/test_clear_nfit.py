# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nfit_test: the injected range was in the region, block-device and ndctl lists; after
pmem_clear method=ndctl every list is empty, the entry is closed as accepted_lost (who and why
recorded) and the clear verified; the second converge found nothing to do."""

import json


def load(host, path):
    return json.loads(host.check_output("cat %s" % path))


def test_range_was_in_all_three_lists(host):
    facts = load(host, "/root/clear-nfit/1/facts-before.json")
    inj = load(host, "/etc/pmem-lab/clear-nfit-state.json")
    ranges = [r for r in facts["bad_ranges"] if r["blockdev"] == inj["device"]]
    assert len(ranges) == 1
    assert set(ranges[0]["sources"]) == {"region", "blockdev", "ndctl"}
    assert ranges[0]["software_only"] is False


def test_ndctl_cleared_every_list(host):
    inj = load(host, "/etc/pmem-lab/clear-nfit-state.json")
    assert host.file("/sys/block/%s/badblocks" % inj["device"]).content_string.strip() == ""
    for region in host.check_output("ls -d /sys/bus/nd/devices/region*").split():
        assert host.file(region + "/badblocks").content_string.strip() == "", region
    assert "badblocks" not in host.check_output("ndctl list -RNM")
    result = load(host, "/root/clear-nfit/1/result.json")
    nd = [r for r in result["results"] if r["action"] == "ndctl_clear"]
    assert len(nd) == 1 and nd[0]["status"] == "cleared" and nd[0]["details"]["verified"]
    assert nd[0]["details"]["argv"] == ["ndctl", "clear-errors", inj["namespace"]]


def test_entry_closed_accepted_with_reason(host):
    led = load(host, "/var/lib/pmem-poison/ledger.json")
    (e,) = led["entries"]
    assert e["owner"]["kind"] == "raw" and e["state"] == "closed"
    assert e["closure"]["how"] == "accepted_lost"
    assert e["closure"]["by"] == "molecule"
    assert e["closure"]["why"] == "test namespace without data of value"
    events = [h["event"] for h in e["history"]]
    assert events[-3:] == ["accepted_lost", "clear_planned", "cleared"]


def test_second_run_changed_nothing(host):
    assert load(host, "/root/clear-nfit/2/result.json")["changed"] is False
