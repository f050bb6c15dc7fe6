# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX's path, executed: the scan, remediate and report job templates run through ansible-runner
the way AWX runs a job, and the test reads what AWX reads.

As AWX does: a private data dir with ``project/`` (this repository's playbooks), ``inventory/``,
``env/extravars`` (the survey's answers from examples/awx/configure_controller.yml plus the awx_*
job variables), ``env/envvars`` and ``env/settings``; the collection installed from its built
artifact into a collections path of its own (what the execution environment holds);
``ansible_runner.run`` with the job template's playbook and limit. Asserted: the job status, the
per-host events, and the ``playbook_on_stats`` event's ``artifact_data`` (set_stats), which AWX
stores as the job's artifacts and hands to later workflow nodes.

The hosts are local connections with their own ledgers (tests/awx/fleet.py). Not executed
here: the AWX services themselves (API, dispatcher, callback receiver), the container runtime.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ansible_runner = pytest.importorskip("ansible_runner")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import fleet  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.skipif(shutil.which("ansible-galaxy") is None, reason="ansible-galaxy not on PATH")


@pytest.fixture(scope="module")
def collections_path(tmp_path_factory):
    """The collection as the execution environment holds it: built, then installed from the tarball."""
    out = tmp_path_factory.mktemp("ee")
    subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out / "dist"), REPO],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tarball = glob.glob(str(out / "dist" / "pmem-poison-*.tar.gz"))[0]
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(out / "collections"), tarball],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return str(out / "collections")


def survey_answers(template_name, **answers):
    """The extra vars AWX builds from a job template's survey: each question's default unless answered."""
    with open(os.path.join(REPO, "examples", "awx", "configure_controller.yml")) as handle:
        play = yaml.safe_load(handle)[0]
    templates = dict((t["name"], t) for t in play["vars"]["pmem_poison_awx_templates"])
    survey = templates[template_name]["survey"]
    if isinstance(survey, str):  # "{{ pmem_poison_awx_remediate_survey }}"
        survey = play["vars"][survey.strip("{} ").split()[0]]
    out = {}
    for question in (survey or {}).get("spec", []):
        if question["variable"] in answers:
            out[question["variable"]] = answers.pop(question["variable"])
        elif question.get("default") not in (None, ""):
            out[question["variable"]] = question["default"]
    assert not answers, "not survey questions: %s" % sorted(answers)
    return out, templates[template_name]["playbook"]


def run_job(tmp_path, collections_path, template_name, job_id, limit=None, **answers):
    """One AWX job: private data dir, runner, the job's events."""
    private = tmp_path / ("job-%d" % job_id)
    (private / "env").mkdir(parents=True)
    (private / "inventory").mkdir()
    shutil.copytree(os.path.join(REPO, "playbooks"), str(private / "project" / "playbooks"))
    shutil.copy(str(tmp_path / "fleet" / "inventory.yml"), str(private / "inventory" / "hosts.yml"))
    extravars, playbook = survey_answers(template_name, **answers)
    extravars.update({  # what AWX adds to every job
        "awx_job_id": job_id, "tower_job_id": job_id, "awx_job_template_name": template_name,
        "awx_user_name": "operator1", "tower_user_name": "operator1", "awx_inventory_name": "pmem-hosts",
        "pmem_poison_report_dir": str(tmp_path / "reports"),
    })
    (private / "env" / "extravars").write_text(json.dumps(extravars))
    (private / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False"}))
    (private / "env" / "settings").write_text(json.dumps({"job_timeout": 600, "suppress_ansible_output": True}))
    runner = ansible_runner.run(private_data_dir=str(private), playbook=playbook, limit=limit, quiet=True)
    events = list(runner.events)
    return runner, events


def stats_event(events):
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1
    return stats[0]["event_data"]


def host_events(events, event, action=None):
    return sorted(e["event_data"]["host"] for e in events if e.get("event") == event
                  and (action is None or e["event_data"].get("task_action") == action))


def failed_last(hosts):
    """The failed host last: in the remediate rollout it is in the last batch, so every other host runs."""
    return sorted(hosts, key=lambda h: h[1] == "failed")


@pytest.fixture()
def fleet_dir(tmp_path):
    kinds = fleet.make_fleet(str(tmp_path / "fleet"), {"clean": 2, "decision": 1, "failed": 1}, order=failed_last)
    assert sorted(kinds.values()) == ["clean", "clean", "decision", "failed"]
    return kinds


def test_awx_jobs_scan_remediate_report(tmp_path, collections_path, fleet_dir):
    clean = sorted(h for h, k in fleet_dir.items() if k == "clean")
    # the ledger question must name each host's own ledger; the answer is templated per host
    ledger_answer = {"remediate_ledger_path": "{{ pmem_poison_ledger_path }}"}

    # scan: read-only; the host without Python fails its pmem_badblocks task
    runner, events = run_job(tmp_path, collections_path, "pmem-poison scan", 101)
    assert runner.status == "failed" and runner.rc != 0
    stats = stats_event(events)
    assert stats["failures"] == {"failed0000": 1}
    assert host_events(events, "runner_on_ok", "pmem.poison.pmem_badblocks") == clean + ["decision0000"]
    report = stats["artifact_data"]["pmem_poison_report"]
    assert report["hosts_needing_decision"] == ["decision0000"]
    assert report["hosts_clean"] == clean
    assert report["hosts_not_run"] == ["failed0000"]
    assert report["decisions"][0]["paths"] == ["/mnt/pmem0/db/decision0000.dat"]

    # remediate: the survey's answers; canary batch of one, then 25 % batches; the failed host fails
    runner, events = run_job(tmp_path, collections_path, "pmem-poison remediate", 102, **ledger_answer)
    assert runner.status == "failed"
    stats = stats_event(events)
    assert stats["failures"] == {"failed0000": 1}
    assert sorted(stats["ok"]) == sorted(fleet_dir)
    # one module run per host, clean or not: pmem_clear scans, and acts on the open entry (it stays
    # open: no source) in the same run
    assert host_events(events, "runner_on_ok", "pmem.poison.pmem_clear") == clean + ["decision0000"]
    assert host_events(events, "runner_on_ok", "pmem.poison.pmem_badblocks") == []
    assert host_events(events, "runner_on_ok", "pmem.poison.pmem_resolve") == []
    hosts = stats["artifact_data"]["pmem_poison_hosts"]
    assert dict((h, v["status"]) for h, v in hosts.items()) == {
        clean[0]: "clean", clean[1]: "clean", "decision0000": "needs_decision", "failed0000": "failed"}
    assert hosts["failed0000"]["failure"]["task"] == \
        "Scan, record, mark and contain every owner, clear what the policy allows and verify"
    report = stats["artifact_data"]["pmem_poison_report"]
    assert report["totals"]["hosts"] == 4 and report["totals"]["failed"] == 1
    assert report["totals"]["open_entries"] == 1
    # the report files of the last batch, and one history record for the whole job
    files = json.load(open(str(tmp_path / "reports" / "pmem-poison-report.json")))
    assert files["totals"] == report["totals"]
    assert sorted(os.listdir(str(tmp_path / "reports" / "history"))) == ["job-101.json", "job-102.json"]
    # the fleet report ran once per batch on the controller: no module, no connection
    # batches: [1, 25 %] of 4 hosts = 1 + 1 + 1 + 1; one report per batch, on the controller
    report_runs = [e for e in events if e.get("event") == "runner_on_ok"
                   and e["event_data"].get("task_action") == "pmem.poison.fleet_report"]
    assert len(report_runs) == 4
    ledger = json.load(open(str(tmp_path / "fleet" / "hosts" / "decision0000" / "ledger.json")))
    assert [e["state"] for e in ledger["entries"]] == ["open"]

    # report, limited to the hosts that can be read (AWX's limit field): a successful job
    runner, events = run_job(tmp_path, collections_path, "pmem-poison report", 103, limit="!failed0000")
    assert runner.status == "successful" and runner.rc == 0
    stats = stats_event(events)
    assert stats["failures"] == {}
    report = stats["artifact_data"]["pmem_poison_report"]
    assert report["totals"]["hosts"] == 3 and not report["all_clean"]
    assert report["hosts_needing_decision"] == ["decision0000"]
    assert sorted(stats["artifact_data"]["pmem_poison_hosts"]) == clean + ["decision0000"]
    # the job's artifacts directory holds the same data AWX saves as the job's artifacts
    artifacts = glob.glob(str(tmp_path / "job-103" / "artifacts" / "*" / "job_events" / "*.json"))
    assert artifacts
