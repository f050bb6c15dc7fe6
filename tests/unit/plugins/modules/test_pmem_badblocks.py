# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts as _facts
from ansible_collections.pmem.poison.plugins.module_utils._pmem import kernel_events as _kernel_events
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges
from ansible_collections.pmem.poison.plugins.module_utils._pmem import scan as _scan
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import GatherError
from ansible_collections.pmem.poison.plugins.modules import pmem_badblocks

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
sys.path.insert(0, FIXTURES)
from loader import fixture_root  # noqa: E402  pylint: disable=wrong-import-position


def run(capsys, monkeypatch, args, fixture="stock-poison", roots=None, ndctl_path=None):
    base = fixture_root(fixture)
    monkeypatch.setattr(_scan, "HOST_ROOTS", roots or {
        "sysfs_root": os.path.join(base, "sys"), "proc_root": os.path.join(base, "proc"),
        "dev_root": os.path.join(base, "dev")})
    monkeypatch.setattr(_topology, "find_ndctl", lambda: ndctl_path)
    # not this machine's journal: the query of a host without journalctl
    monkeypatch.setattr(_kernel_events, "start_journal",
                        lambda *a, **k: _kernel_events.PendingJournal(argv=("/nonexistent/journalctl",)))
    args = dict(args)
    args.setdefault("ledger_path", os.path.join(base, "no-ledger.json"))  # absent: no entries
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            pmem_badblocks.main()
    out = json.loads(capsys.readouterr().out)
    return exc.value.code, out


NS00 = "ns-674601de-8388-4eef-b0fb-7688bdb518b5"  # the stock fixture's labelled fsdax namespace


def test_gathers_facts(capsys, monkeypatch):
    code, out = run(capsys, monkeypatch, {})
    assert code == 0
    assert out["changed"] is False
    assert isinstance(out["elapsed"], float) and out["elapsed"] >= 0  # reported, never timed
    pmem = out["ansible_facts"]["pmem"]
    assert [r["id"] for r in pmem["bad_ranges"]] == [
        "%s@0xa0c800+0x200" % NS00, "%s@0xb1a000+0x1000" % NS00, "phys@0x48101000+0x1000"]
    assert pmem["clean"] is False
    assert "scrub" not in out


def test_clean_host(capsys, monkeypatch):
    code, out = run(capsys, monkeypatch, {"use_ndctl": "never"}, fixture="stock-clean")
    assert code == 0 and out["ansible_facts"]["pmem"]["clean"] is True


def test_devices_and_unknown(capsys, monkeypatch):
    code, out = run(capsys, monkeypatch, {"devices": ["pmem0p1", "bogus0"]})
    assert code == 0
    pmem = out["ansible_facts"]["pmem"]
    assert [r["id"] for r in pmem["bad_ranges"]] == ["%s@0xb1a000+0x1000" % NS00]
    assert pmem["errors"][0]["device"] == "bogus0"


def test_use_ndctl_always_without_ndctl_fails(capsys, monkeypatch):
    code, out = run(capsys, monkeypatch, {"use_ndctl": "always"})
    assert code == 1 and out["failed"] is True
    assert "ndctl is not installed" in out["msg"]
    assert out["ansible_facts"]["pmem"]["bad_ranges"]  # still returns what it read


def test_ndctl_garbage_is_an_error_entry(capsys, monkeypatch, tmp_path):
    fake = tmp_path / "ndctl"
    fake.write_text("#!/bin/sh\necho 'Segmentation fault?'\n")
    fake.chmod(0o755)
    code, out = run(capsys, monkeypatch, {"use_ndctl": "auto"}, ndctl_path=str(fake))
    assert code == 0
    pmem = out["ansible_facts"]["pmem"]
    assert pmem["errors"][0]["device"] == "ndctl" and "not JSON" in pmem["errors"][0]["message"]
    assert len(pmem["bad_ranges"]) == 3


def test_scrub_check_mode(capsys, monkeypatch):
    code, out = run(capsys, monkeypatch, {"scrub": True, "_ansible_check_mode": True})
    assert code == 0
    assert out["scrub"]["skipped"] is True and out["scrub"]["started"] == []
    assert out["scrub"]["progress"] == ["check mode: scrub not started"]
    assert out["changed"] is False


def test_scrub_unsupported_bus(capsys, monkeypatch):
    code, out = run(capsys, monkeypatch, {"scrub": True, "devices": ["pmem1"], "use_ndctl": "never"})
    assert code == 0
    assert out["scrub"]["started"] == [] and out["changed"] is False
    assert out["scrub"]["buses"]["ndbus1"]["supported"] is False
    assert "no address range scrub" in out["scrub"]["progress"][0]


def test_scrub_runs(capsys, monkeypatch, tmp_path):
    import synth  # pylint: disable=import-outside-toplevel
    roots = synth.build(str(tmp_path))
    scrub = os.path.join(roots["sysfs_root"], "bus", "nd", "devices", "ndbus1", "nfit", "scrub")

    def sleep(_seconds):
        with open(scrub, "w") as handle:
            handle.write("1\n")
    real = _topology.start_scrub
    monkeypatch.setattr(_topology, "start_scrub", lambda *a, **kw: real(*a, sleep=sleep, **kw))
    code, out = run(capsys, monkeypatch, {"scrub": True, "scrub_timeout": 5, "use_ndctl": "never"}, roots=roots)
    assert code == 0 and out["changed"] is True
    assert out["scrub"]["started"] == ["ndbus1"] and out["scrub"]["buses"]["ndbus1"]["completed"] is True


def test_pmem_error_becomes_fail_json(capsys, monkeypatch):
    def boom(**_kw):
        raise GatherError("sysfs vanished", device="region0", next_step="check dmesg")
    monkeypatch.setattr(_facts, "gather_facts", boom)
    code, out = run(capsys, monkeypatch, {})
    assert code == 1
    assert out["msg"] == "region0: sysfs vanished. Next step: check dmesg"
    assert out["error"]["error"] == "GatherError" and out["error"]["device"] == "region0"
    assert out["error"]["next_step"] == "check dmesg"


def test_unexpected_error_has_no_traceback_in_msg(capsys, monkeypatch):
    def boom(**_kw):
        raise KeyError("surprise")
    monkeypatch.setattr(_facts, "gather_facts", boom)
    code, out = run(capsys, monkeypatch, {})
    assert code == 1 and out["msg"].startswith("pmem_badblocks stopped on an internal error")
    assert "Next step" in out["msg"] and "Traceback" not in json.dumps(out)


def test_warnings_reach_ansible(capsys, monkeypatch):
    warned = []
    monkeypatch.setattr(pmem_badblocks.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, out = run(capsys, monkeypatch, {"use_ndctl": "never"})
    assert code == 0
    assert warned == out["ansible_facts"]["pmem"]["warnings"]
    assert warned[0].startswith("not running as root")
    assert out["ansible_facts"]["pmem"]["gathered_as_root"] is False


def test_argument_spec_matches_documentation():
    import yaml  # pylint: disable=import-outside-toplevel
    doc = yaml.safe_load(pmem_badblocks.DOCUMENTATION)
    yaml.safe_load(pmem_badblocks.EXAMPLES)
    ret = yaml.safe_load(pmem_badblocks.RETURN)
    assert set(doc["options"]) == {"devices", "scrub", "scrub_timeout", "use_ndctl", "ledger_path",
                                   "kernel_events", "resolve"}
    assert set(ret["resolve"]["contains"]) == set(_scan.resolve_bad_ranges([]))
    documented = set(ret["ansible_facts"]["contains"]["pmem"]["contains"])
    gathered = _facts.build_facts({}, [], [])
    assert documented == set(gathered)
    rng = set(ret["ansible_facts"]["contains"]["pmem"]["contains"]["bad_ranges"]["contains"])
    assert rng == {
        "id", "region", "namespace", "blockdev", "partition", "dax_device", "length", "sources", "software_only",
        "dimms", "area", "absolute", "region_offset", "namespace_offset", "blockdev_offset", "partition_offset",
        "filesystem", "identity", "events", "cxl"}
    assert rng == set(_ranges._blank_range(0)) | {"id", "identity"}
    caps = set(ret["ansible_facts"]["contains"]["pmem"]["contains"]["capabilities"]["contains"])
    assert caps == set(gathered["capabilities"])


def test_auto_skips_ndctl_on_empty_lists(capsys, monkeypatch, tmp_path):
    marker = tmp_path / "ran"
    fake = tmp_path / "ndctl"
    fake.write_text("#!/bin/sh\ntouch %s\necho '[]'\n" % marker)
    fake.chmod(0o755)
    code, out = run(capsys, monkeypatch, {"use_ndctl": "auto"}, fixture="stock-clean", ndctl_path=str(fake))
    assert code == 0 and not marker.exists()
    assert out["ansible_facts"]["pmem"]["ndctl"]["used"] is False
    assert "nothing for ndctl to add" in out["ansible_facts"]["pmem"]["ndctl"]["skipped"]
    code, out = run(capsys, monkeypatch, {"use_ndctl": "always"}, fixture="stock-clean", ndctl_path=str(fake))
    assert code == 0 and marker.exists()
    assert out["ansible_facts"]["pmem"]["ndctl"] == {"used": True, "executable": str(fake)}
    marker.unlink()
    code, out = run(capsys, monkeypatch, {"use_ndctl": "auto"}, fixture="stock-poison", ndctl_path=str(fake))
    assert marker.exists()  # lists have entries: ndctl runs


def test_resolve_folds_pmem_resolve_into_the_same_run(capsys, monkeypatch):
    """resolve=true: one result per bad range, in the facts' order, with pmem_resolve's summary;
    without it the result has no resolve key (the facts are the same either way)."""
    code, plain = run(capsys, monkeypatch, {"use_ndctl": "never"})
    assert code == 0 and "resolve" not in plain
    code, out = run(capsys, monkeypatch, {"use_ndctl": "never", "resolve": True})
    assert code == 0 and out["changed"] is False
    ranges = out["ansible_facts"]["pmem"]["bad_ranges"]
    assert ranges and ranges == plain["ansible_facts"]["pmem"]["bad_ranges"]
    assert [r["range_id"] for r in out["resolve"]["results"]] == [r["id"] for r in ranges]
    assert out["resolve"]["summary"]["ranges"] == len(ranges)
    assert all(r["owners"] or r["error"] for r in out["resolve"]["results"])


def test_resolve_on_a_clean_host_runs_no_resolver():
    def boom(*_a, **_k):
        raise AssertionError("the resolver ran for no bad range")
    assert _scan.resolve_bad_ranges([], resolve_owners=boom) == {
        "results": [], "summary": {"ranges": 0, "errors": 0, "owners": {}}}
