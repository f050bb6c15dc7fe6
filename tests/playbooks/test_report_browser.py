# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML report at 1000 hosts in a real headless browser (Debian's chromium): the page's own
script filters the hosts table from the link, worst hosts first; a screenshot is kept in
tests/output/ for a person to look at."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.pmem.poison.plugins.plugin_utils import report

CHROMIUM = shutil.which("chromium")
HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "..", "output")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")


def fleet_of_1000():
    hosts = {}
    for i in range(1000):
        name = "node%04d" % i
        if i % 50 == 7:
            hosts[name] = report.host_summary({"failure": {"task": "Gather pmem facts", "msg": "no python3"}}, name)
        elif i % 10 == 3:
            entry = {"id": "region0@0x%x+0x1000|/dev/pmem0|ino=%d|off=0" % (0x10000 * i, 100 + i), "state": "open",
                     "owner": {"kind": "file", "paths": ["/mnt/pmem0/db/t%d.dat" % i], "file_offset": 0,
                               "length": 4096 * (1 + i % 3)}}
            hosts[name] = report.host_summary({"facts": {"bad_ranges": [], "open_entries": [entry]}}, name)
        else:
            hosts[name] = report.host_summary({"facts": {"bad_ranges": [], "open_entries": []}}, name)
    return report.fleet_summary(hosts, generated_at="2026-12-01T22:00:00Z")


def chromium(tmp_path, *args):
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM] + FLAGS + ["--user-data-dir=%s" % profile] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120, check=True).stdout


def test_html_report_filters_1000_hosts_in_a_browser(tmp_path):
    fleet = fleet_of_1000()
    files = report.write_report(fleet, str(tmp_path / "r"), formats=["html"], keep_history=0)
    url = "file://%s#hosts=needs_decision" % files[0]
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", url)
    table = dom[dom.index('id="hosts"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr( style=\"display: none;\")?><td>(node\d+)</td>", table)
    shown = [name for hidden, name in rows if not hidden]
    assert len(rows) == 1000
    assert sorted(shown) == fleet["hosts_needing_decision"]
    assert re.search(r'id="hosts-shown">%d<' % len(shown), dom)
    # worst first: the failed hosts lead the table
    assert [name for _h, name in rows[:len(fleet["hosts_failed"])]] == fleet["hosts_failed"]
    os.makedirs(OUTPUT, exist_ok=True)
    shot = os.path.join(OUTPUT, "report-1000-hosts.png")
    chromium(tmp_path, "--window-size=1400,1800", "--virtual-time-budget=5000", "--screenshot=%s" % shot,
             "file://%s" % files[0])
    assert os.path.getsize(shot) > 10000
    print("screenshot: %s" % os.path.abspath(shot))
