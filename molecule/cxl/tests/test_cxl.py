# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cxl-7: the injected units were reported from the CXL poison list with every coordinate, recorded,
cleared by the device's Clear Poison command only after the loss was accepted, and verified; check
mode changed nothing and the second converge found nothing to do."""

import json

HPA_UNIT = 64


def load(host, path):
    return json.loads(host.check_output("cat %s" % path))


def test_poison_list_reported_with_every_coordinate(host):
    facts = load(host, "/root/cxl/1/facts-before.json")
    inj = load(host, "/etc/pmem-lab/cxl-state.json")
    ranges = [r for r in facts["bad_ranges"] if "cxl" in r["sources"]]
    # two adjacent units merge into one range; the third is its own
    assert [r["length"] for r in ranges] == [2 * HPA_UNIT, HPA_UNIT]
    region = facts["cxl"]["regions"][inj["cxl_region"]]
    for rng in ranges:
        assert rng["sources"] == ["cxl"] and rng["software_only"] is False
        assert (rng["region"], rng["namespace"], rng["dax_device"], rng["area"]) == (
            inj["nd_region"], inj["namespace"], inj["dax_device"], "data")
        for rec in rng["cxl"]:
            assert rec["memdev"] == "mem0" and rec["source"] == "Injected" and rec["region"] == inj["cxl_region"]
            assert rec["hpa"] == region["resource"] + rec["dpa"]  # one-way interleave: HPA = base + DPA
            assert rec["hpa_offset"] == rec["dpa"]
    assert sorted(rec["dpa"] for r in ranges for rec in r["cxl"]) == inj["injected"]
    assert facts["clean"] is False and facts["errors"] == []


def test_check_mode_changed_nothing(host):
    check = load(host, "/root/cxl/1/check-mode.json")
    assert check["before"] == check["after"] and "media_errors" in check["before"]
    assert load(host, "/root/cxl/1/plan.json")["changed"] is True  # it would change something


def test_cleared_with_clear_poison_and_verified(host):
    result = load(host, "/root/cxl/1/result.json")
    cleared = [r for r in result["results"] if r["action"] == "cxl_clear"]
    assert len(cleared) == 2 and all(r["status"] == "cleared" and r["details"]["verified"] for r in cleared)
    units = sorted(u["dpa"] for r in cleared for u in r["details"]["units"])
    assert units == load(host, "/etc/pmem-lab/cxl-state.json")["injected"]
    after = load(host, "/root/cxl/1/facts-after.json")
    assert [r for r in after["bad_ranges"] if "cxl" in r["sources"]] == []
    # the device agrees: cxl-cli reads the same poison list
    assert "media_errors" not in host.check_output("cxl list -L -m mem0") or \
        json.loads(host.check_output("cxl list -L -m mem0"))[0].get("media_errors") in (None, [])


def test_entries_closed_accepted_with_who_and_why(host):
    led = load(host, "/var/lib/pmem-poison/ledger.json")
    assert len(led["entries"]) == 2
    for e in led["entries"]:
        assert e["owner"]["kind"] == "devdax" and e["state"] == "closed"
        assert e["closure"]["how"] == "accepted_lost" and e["closure"]["by"] == "molecule"
        assert [h["event"] for h in e["history"]][-3:] == ["accepted_lost", "clear_planned", "cleared"]
        assert e["range"]["sources"] == ["cxl"] and e["range"]["cxl"][0]["memdev"] == "mem0"


def test_second_converge_changed_nothing(host):
    assert load(host, "/root/cxl/2/result.json").get("changed", False) is False
    assert load(host, "/root/cxl/2/recorded.json")["changed"] is False
