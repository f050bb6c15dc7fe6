# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the playbook-level tests (no lab): `python -m pytest tests/playbooks` after `source scripts/env.sh`."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not on PATH")


def test_report_playbook_on_canned_results(tmp_path):
    report_dir = tmp_path / "report"
    proc = subprocess.run(
        ["ansible-playbook", "-i", os.path.join(HERE, "fixtures", "hosts.ini"),
         os.path.join(HERE, "test_report.yml"), "-e", "pmem_poison_report_dir=%s" % report_dir],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    report = json.loads((report_dir / "pmem-poison-report.json").read_text())
    assert report["hosts_clean"] == ["clean01"]
    assert "rebooted01" not in report["hosts_clean"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_node_exporter_textfile_passes_promtool(tmp_path):
    dest = tmp_path / "pmem_poison.prom"
    proc = subprocess.run(
        ["ansible-playbook", os.path.join(HERE, "test_textfile.yml"), "-e", "textfile_dest=%s" % dest],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    text = dest.read_text()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout
    assert "pmem_poison_clean 0\n" in text
    assert 'pmem_poison_open_entries{kind="file"} 1\n' in text
    assert "pmem_poison_lost_bytes 4096\n" in text
    assert 'pmem_poison_dimm_bad_ranges{dimm="nmem0"} 1\n' in text
    assert "pmem_poison_last_scan_timestamp_seconds 1764626400\n" in text
