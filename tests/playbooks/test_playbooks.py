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
