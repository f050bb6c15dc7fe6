# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wrong variables for the remediate role, as an operator passes them (-e @vars.json): the play
fails before any module runs, the message names the variable, no traceback, nothing on disk
changes (a ledger is there, hashed before and after)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from module_harness import make_world, snapshot  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                reason="ansible-playbook not on PATH")

LOSS = ["/mnt/pmem-xfs/scratch/*"]

# (id, variables, words the failure message must contain)
CASES = [
    ("typo-restore-source", {"remediate_restore_source": {"/a": "/b"}},
     ["remediate_restore_source is not a variable", "did you mean remediate_restore_sources"]),
    ("typo-ledger-path", {"remediate_ledger_patth": "/tmp/x"},
     ["remediate_ledger_patth is not a variable", "did you mean remediate_ledger_path"]),
    ("accept-loss-string", {"remediate_accept_loss": LOSS[0], "remediate_accept_loss_reason": "x"},
     ["remediate_accept_loss must be a list", "never split"]),
    ("accept-loss-reason-blank", {"remediate_accept_loss": LOSS,
                                  "remediate_accept_loss_reason": "   "},
     ["remediate_accept_loss_reason is blank"]),
    ("accept-loss-no-reason", {"remediate_accept_loss": LOSS},
     ["remediate_accept_loss_reason is required"]),
    ("accept-loss-star", {"remediate_accept_loss": ["*"], "remediate_accept_loss_reason": "x"},
     ["remediate_accept_loss[0]", "neither a ledger entry id"]),
    ("accept-loss-blank-item", {"remediate_accept_loss": [" "],
                                "remediate_accept_loss_reason": "x"},
     ["remediate_accept_loss[0] is blank"]),
    ("accept-loss-by-blank", {"remediate_accept_loss": LOSS, "remediate_accept_loss_reason": "x",
                              "remediate_accept_loss_by": "  "},
     ["remediate_accept_loss_by is blank"]),
    ("containment-string", {"remediate_containment": "chmod"},
     ["remediate_containment must be a list"]),
    ("devices-string", {"remediate_devices": "pmem0"}, ["remediate_devices must be a list"]),
    ("report-formats-string", {"remediate_report_formats": "json"},
     ["remediate_report_formats must be a list"]),
    ("method-string", {"remediate_method": "rewrite"}, ["remediate_method"]),
    ("method-bad-choice", {"remediate_method": {"file": "zeros"}}, ["file", "zeros"]),
    ("method-typo", {"remediate_method": {"fiel": "auto"}}, ["fiel"]),
    ("restore-sources-string", {"remediate_restore_sources": "/backup"},
     ["remediate_restore_sources"]),
    ("restore-sources-relative", {"remediate_restore_sources": {"db/*": "/backup/db"}},
     ["remediate_restore_sources key 'db/*' must be an absolute path or pattern"]),
    ("restore-copy-blank", {"remediate_restore": {"some|entry": ""}},
     ["remediate_restore['some|entry'] must be the absolute path of the known-good copy"]),
    ("offline-window-perhaps", {"remediate_allow_offline_window": "perhaps"},
     ["remediate_allow_offline_window"]),
    ("lock-timeout-text", {"remediate_lock_timeout": "soon"}, ["remediate_lock_timeout"]),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case at once (a few processes in parallel): {case id: (proc, before, after)}."""
    pending, done = [], {}
    for name, variables, _words in CASES:
        tmp = tmp_path_factory.mktemp(name)
        world = make_world(tmp)
        case = dict(variables, remediate_ledger_path=world.ledger)
        varfile = tmp / "vars.json"
        varfile.write_text(json.dumps(case))
        pending.append((name, world, varfile))
    running = []
    while pending or running:
        while pending and len(running) < 4:
            name, world, varfile = pending.pop(0)
            before = snapshot(world.root)
            proc = subprocess.Popen(
                ["ansible-playbook", "-i", "localhost,", os.path.join(HERE, "role_inputs.yml"),
                 "-e", "@%s" % varfile, "-e", "ansible_python_interpreter=%s" % sys.executable],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            running.append((name, world, before, proc))
        for item in list(running):
            name, world, before, proc = item
            if proc.poll() is not None:
                out = proc.stdout.read()
                done[name] = (proc.returncode, out, before, snapshot(world.root))
                running.remove(item)
        time.sleep(0.1)
    return done


@pytest.mark.parametrize("name,words", [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_role_variable_fails_the_play_and_changes_nothing(runs, name, words):
    code, out, before, after = runs[name]
    assert code != 0, out[-3000:]
    for word in words:
        assert word in out, (word, out[-3000:])
    assert "Traceback" not in out
    assert "Gather pmem facts" not in out  # no module ran
    assert after == before
