# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML report at 1000 hosts in a real headless browser (Debian's chromium): the page's own
script filters the hosts table from the link and sorts it on a header click, worst hosts first,
the per-host chart and each host's trend over the runs the report directory keeps; screenshots
are kept in tests/output/ for a person to look at."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
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


def fleet_of_1000(run=0):
    """1000 hosts: 20 failed, 100 with open entries (more of them on some hosts in later runs)."""
    hosts = {}
    for i in range(1000):
        name = "node%04d" % i
        if i % 50 == 7:
            hosts[name] = report.host_summary({"failure": {"task": "Gather pmem facts", "msg": "no python3"}}, name)
        elif i % 10 == 3:
            entries = [{"id": "region0@0x%x+0x1000|/dev/pmem0|ino=%d|off=%d" % (0x10000 * i, 100 + i, 4096 * k),
                        "state": "open", "owner": {"kind": "file", "paths": ["/mnt/pmem0/db/t%d.dat" % i],
                                                   "file_offset": 4096 * k, "length": 4096 * (1 + i % 3)}}
                       for k in range(1 + (run if i % 30 == 3 else 0))]
            hosts[name] = report.host_summary({"facts": {"bad_ranges": [], "open_entries": entries}}, name)
        else:
            hosts[name] = report.host_summary({"facts": {"bad_ranges": [], "open_entries": []}}, name)
    return report.fleet_summary(hosts, generated_at="2026-12-01T2%d:00:00Z" % run)


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


# Runs in the page's own browser context (an iframe of the report: file:// access allowed for the
# test's profile only): click a header twice, then read the table, the chart and a trend cell.
PROBE = """<!DOCTYPE html><html><body><pre id="out">waiting</pre><iframe id="f" src="%s" width="1200"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument;
  var th = Array.prototype.filter.call(d.querySelectorAll('#hosts th'),
                                       function (t) { return t.textContent === 'lost bytes'; })[0];
  th.click(); th.click();
  var rows = Array.prototype.map.call(d.querySelectorAll('#hosts tbody tr'),
                                      function (r) { return [r.cells[0].textContent, r.cells[4].textContent,
                                                             r.cells[6] ? r.cells[6].textContent : null]; });
  var chart = Array.prototype.map.call(d.querySelectorAll('#per-host g.host'),
                                       function (g) { return g.dataset.host; });
  document.getElementById('out').textContent = JSON.stringify({rows: rows, chart: chart});
});
</script></body></html>
"""


def test_html_report_sorts_charts_and_keeps_the_trend_at_1000_hosts(tmp_path):
    report_dir = str(tmp_path / "r")
    for run in range(3):
        fleet = fleet_of_1000(run)
        files = report.write_report(fleet, report_dir, formats=["html"], run_id="run-%d" % run)
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE % ("file://" + files[0]))
    dom = chromium(tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                   "file://%s" % probe)
    got = json.loads(re.search(r'<pre id="out">(.*?)</pre>', dom, re.S).group(1).replace("&amp;", "&"))
    hosts = dict((h["host"], h) for h in fleet["hosts"])
    # a click on "lost bytes" sorts ascending, a second descending, by value (not as text)
    lost = [int(lb) for _h, lb, _t in got["rows"]]
    assert len(lost) == 1000 and lost == sorted(lost, reverse=True) and lost[0] > lost[-1]
    assert [hosts[name]["lost_bytes"] for name, _lb, _t in got["rows"]] == lost
    # the chart: the worst hosts with anything open, in the report's worst-first order
    worst = [h["host"] for h in sorted(fleet["hosts"], key=report.worst_first)
             if h["open_entries"] or h["lost_bytes"]][:30]
    assert got["chart"] == worst
    # the trend of a host whose open entries grew over the three kept runs, one mark a run
    trend = dict((name, t) for name, _lb, t in got["rows"])
    assert [len(hosts[n]["open_entries"]) for n in ("node0003", "node0013")] == [3, 1]
    # 1, 2, 3 open entries: marks scaled to the host's own most (3: the full block)
    assert trend["node0003"] == "\u2583\u2585\u2588" and trend["node0013"] == "\u2588\u2588\u2588"
    os.makedirs(OUTPUT, exist_ok=True)
    shot = os.path.join(OUTPUT, "report-1000-hosts-history.png")
    chromium(tmp_path, "--window-size=1400,2400", "--virtual-time-budget=5000", "--screenshot=%s" % shot,
             "file://%s" % files[0])
    assert os.path.getsize(shot) > 10000
    print("screenshot: %s" % os.path.abspath(shot))
