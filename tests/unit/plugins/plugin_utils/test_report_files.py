# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report files: atomic writes, the kept history, worst-first pages, DIMM counts, the filters."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pmem.poison.plugins.filter.entry_sources import FilterModule as EntrySources
from ansible_collections.pmem.poison.plugins.filter.host_summary import FilterModule as HostSummary
from ansible_collections.pmem.poison.plugins.plugin_utils import report
from ansible_collections.pmem.poison.plugins.plugin_utils.report_render import render_html, render_markdown

EID = "region1@0x10000+0x1000|/dev/pmem1|ino=131|off=8192"


def dirty(host, nentries=1):
    entries = [{"id": EID.replace("131", str(131 + i)), "state": "open",
                "owner": {"kind": "file", "paths": ["/mnt/p/<f%d>" % i], "file_offset": 0, "length": 4096}}
               for i in range(nentries)]
    return report.host_summary({"facts": {"bad_ranges": [], "open_entries": entries}}, host)


def clean(host):
    return report.host_summary({"facts": {"bad_ranges": [], "open_entries": []}}, host)


def test_write_report_writes_every_format_atomically_and_keeps_history(tmp_path):
    dest = str(tmp_path / "r")
    for run in range(4):
        fleet = report.fleet_summary({"a": clean("a"), "b": dirty("b", run)},
                                     generated_at="2026-12-01T00:00:0%dZ" % run)
        files = report.write_report(fleet, dest, keep_history=3, run_id="run%d" % run)
    assert sorted(os.listdir(dest)) == ["history", "pmem-poison-report.html", "pmem-poison-report.json",
                                        "pmem-poison-report.md"]
    assert sorted(os.listdir(os.path.join(dest, "history"))) == ["run1.json", "run2.json", "run3.json"]
    assert files[-1].endswith("history/run3.json")
    data = json.load(open(os.path.join(dest, "pmem-poison-report.json")))
    assert [r["totals"]["open_entries"] for r in data["history"]] == [1, 2, 3]
    assert 'id="trend"' in open(os.path.join(dest, "pmem-poison-report.html")).read()
    assert not [n for n in os.listdir(dest) if n.endswith(".tmp")]


def test_a_second_batch_of_the_same_run_replaces_its_history_record(tmp_path):
    dest = str(tmp_path)
    report.write_report(report.fleet_summary({"a": clean("a"), "b": {}}), dest, run_id="job-7")
    report.write_report(report.fleet_summary({"a": clean("a"), "b": clean("b")}), dest, run_id="job-7")
    assert os.listdir(os.path.join(dest, "history")) == ["job-7.json"]
    record = json.load(open(os.path.join(dest, "history", "job-7.json")))
    assert sorted(record["hosts"]) == ["a", "b"]


def test_failed_write_leaves_the_old_report(tmp_path, monkeypatch):
    path = str(tmp_path / "x.json")
    report.write_atomic(path, "old")

    def boom(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        report.write_atomic(path, "new")
    assert open(path).read() == "old"
    assert os.listdir(str(tmp_path)) == ["x.json"]


def test_unknown_format_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(report.ReportInputError, match="pdf"):
        report.write_report(report.fleet_summary({}), str(tmp_path / "r"), formats=["json", "pdf"])
    assert not os.path.exists(str(tmp_path / "r" / "pmem-poison-report.json"))


def test_pages_list_the_worst_hosts_first_and_escape_paths():
    fleet = report.fleet_summary({"ok": clean("ok"), "one": dirty("one", 1), "three": dirty("three", 3),
                                  "gone": {}, "broke": report.host_summary(
                                      {"failure": {"task": "t", "msg": "<boom>"}}, "broke")})
    html = render_html(fleet)
    positions = [html.index("<tr><td>%s</td>" % h) for h in ("broke", "gone", "three", "one", "ok")]
    assert positions == sorted(positions)
    assert "&lt;boom&gt;" in html and "<boom>" not in html
    assert "/mnt/p/&lt;f0&gt;" in html
    md = render_markdown(fleet)
    assert md.index("| broke | failed") < md.index("| three |") < md.index("| one |") < md.index("| ok | clean")


def test_dimms_holding_bad_ranges_are_counted_and_named():
    ranges = [{"id": "r1", "length": 4096, "dimms": ["nmem0"]}, {"id": "r2", "length": 512, "dimms": ["nmem0", "nmem1"]}]
    s = report.host_summary({"facts": {"bad_ranges": ranges}}, "h")
    assert s["dimms"] == {"nmem0": {"ranges": 2, "bytes": 4608}, "nmem1": {"ranges": 1, "bytes": 512}}
    fleet = report.fleet_summary({"h": s, "g": clean("g")})
    assert [(d["host"], d["dimm"]) for d in fleet["dimms"]] == [("h", "nmem0"), ("h", "nmem1")]
    assert "nmem0" in render_markdown(fleet)


def test_published_report_drops_per_host_detail():
    fleet = report.fleet_summary({"a": dirty("a")})
    out = report.published(dict(fleet, history=[report.run_record(fleet)]))
    assert "hosts" not in out and "hosts" not in out["history"][0]
    assert out["hosts_needing_decision"] == ["a"]
    assert report.host_digest(fleet["hosts"][0])["open_entries"] == [EID]


def test_filters_are_registered_and_turn_bad_input_into_filter_errors():
    host_summary = HostSummary().filters()["host_summary"]
    assert host_summary({"facts": {}}, "h")["status"] == "clean"
    with pytest.raises(AnsibleFilterError, match="expects a dict"):
        host_summary(["nope"], "h")
    assert EntrySources().filters()["entry_sources"]([], {"x": "/y"}) == {"sources": {}, "missing": ["x"]}


def test_scan_warnings_reach_every_report_format():
    """A host the lists call clean whose kernel counts poisoned memory no source explains: the
    fleet report says so per host (Markdown, HTML, AWX digest), so the warning is not lost in a
    task log."""
    text = ("the kernel counts 4096 bytes of poisoned memory (HardwareCorrupted) that no source "
            "explains; check the kernel log and rasdaemon")
    host_summary, fleet_summary, host_digest = report.host_summary, report.fleet_summary, report.host_digest
    quiet = host_summary({"facts": {"bad_ranges": [], "open_entries": [], "clean": True}}, "quiet")
    odd = host_summary({"facts": {"bad_ranges": [], "open_entries": [], "clean": True,
                                  "warnings": [text]}}, "odd")
    assert odd["status"] == "clean" and odd["warnings"] == [text]
    fleet = fleet_summary({"quiet": quiet, "odd": odd})
    assert fleet["warnings"] == [{"host": "odd", "message": text}]
    md = render_markdown(fleet)
    assert "## Warnings" in md and "| odd | %s |" % text in md
    assert "HardwareCorrupted" in render_html(fleet)
    assert host_digest(odd)["warnings"] == [text]
    assert "## Warnings" not in render_markdown(fleet_summary({"quiet": quiet}))
