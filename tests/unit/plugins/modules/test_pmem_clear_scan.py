# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pmem_clear's ``scan`` (one module run for a host with poison) and ``restore_entries``."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import os
import sys

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import clearing as _clearing
from ansible_collections.pmem.poison.plugins.module_utils._pmem import kernel_events as _kernel_events
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import scan as _scan
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.modules import pmem_badblocks, pmem_clear
from ansible_collections.pmem.poison.tests.support.module_harness import run_inprocess, snapshot
from ansible_collections.pmem.poison.tests.support.pmem_fakes import FileBadblocks

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
sys.path.insert(0, FIXTURES)
from loader import fixture_root  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def host(monkeypatch):
    """Point the scan at a captured host tree (sysfs, proc, dev); no ndctl, no journal."""
    def use(name):
        base = fixture_root(name)
        monkeypatch.setattr(_scan, "HOST_ROOTS", {
            "sysfs_root": os.path.join(base, "sys"), "proc_root": os.path.join(base, "proc"),
            "dev_root": os.path.join(base, "dev")})
        monkeypatch.setattr(_topology, "find_ndctl", lambda: None)
        monkeypatch.setattr(_kernel_events, "start_journal",  # a host without journalctl
                            lambda *a, **k: _kernel_events.PendingJournal(argv=("/nonexistent/journalctl",)))
        return base
    return use


def _without_clock(result):
    facts = dict(result["ansible_facts"]["pmem"])
    facts.pop("collected_at", None)
    return facts


def test_scan_gives_exactly_the_facts_and_owners_of_pmem_badblocks(host, monkeypatch, tmp_path):
    host("stock-poison")
    ledger = str(tmp_path / "l" / "ledger.json")
    facts = run_inprocess(pmem_badblocks, {"ledger_path": ledger, "resolve": True}, monkeypatch)
    assert facts["ansible_facts"]["pmem"]["bad_ranges"], "the fixture has poison"
    out = run_inprocess(pmem_clear, {"ledger_path": ledger, "scan": {}, "quarantine": True},
                        monkeypatch, check=True)
    assert _without_clock(out) == _without_clock(facts)
    assert out["resolve"] == facts["resolve"]
    assert out["check_mode"] is True and out["plan"], out  # it planned from what it found
    assert not os.path.exists(os.path.dirname(ledger))  # check mode: nothing written


def test_scan_on_a_clean_host_leaves_everything_as_it_was(host, monkeypatch, tmp_path):
    host("stock-clean")
    state = tmp_path / "state"
    state.mkdir()
    before = snapshot(str(state))
    out = run_inprocess(pmem_clear, {"ledger_path": str(state / "ledger.json"), "scan": {"use_ndctl": "never"},
                                     "quarantine": True}, monkeypatch)
    assert not out.get("failed"), out
    assert out["changed"] is False and out["plan"] == [] and out["results"] == []
    assert out["ansible_facts"]["pmem"]["clean"] is True
    assert out["summary"] == "nothing to do"
    assert snapshot(str(state)) == before  # no ledger, not even its lock file


def test_scan_places_a_memory_failure_only_an_earlier_boots_journal_still_has(host, monkeypatch, tmp_path):
    """The ring buffer forgot it at the reboot; the journal query (started before the sysfs walk,
    read after it) still has it: the scan reports the range, with its boot and the journal as source."""
    host("stock-poison")  # e820 region1 at 0x40000000: ext4 -o dax on /dev/pmem1
    pfn = (0x40000000 + 264200 * 512) // 4096 + 2
    record = {"MESSAGE": "Memory failure: %#x: recovery action for dax page: Recovered" % pfn,
              "__REALTIME_TIMESTAMP": "1796000000000000", "_BOOT_ID": "ab" * 16}
    script = tmp_path / "journalctl"
    script.write_text("#!%s\nimport json\nprint(json.dumps(%r))\n" % (sys.executable, record))
    script.chmod(0o755)
    monkeypatch.setattr(_kernel_events, "start_journal",
                        lambda *a, **k: _kernel_events.PendingJournal(argv=(str(script),)))
    out = run_inprocess(pmem_clear, {"ledger_path": str(tmp_path / "l" / "ledger.json"), "scan": {},
                                     "quarantine": True}, monkeypatch, check=True)
    facts = out["ansible_facts"]["pmem"]
    assert "journal" in facts["event_sources"]["read"]
    placed = [r for r in facts["bad_ranges"] if "memory_failure" in r["sources"]]
    assert [(r["region"], r["blockdev"], r["absolute"]) for r in placed] == [("region1", "pmem1", pfn * 4096)]
    assert [e.get("boot_id") for e in placed[0]["events"]] == ["ab" * 16], placed[0]["events"]


def test_scan_of_a_device_not_on_this_host_says_so_beside_nothing_to_do(host, monkeypatch, tmp_path):
    """A renamed or misspelled device: the scan finds nothing there to do, and the result says
    it could not read that device (a warning naming it and the next step), not only "nothing"."""
    host("stock-clean")
    state = tmp_path / "state"
    state.mkdir()
    before = snapshot(str(state))
    warned = []
    monkeypatch.setattr(pmem_clear.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    out = run_inprocess(pmem_clear, {"ledger_path": str(state / "ledger.json"),
                                     "scan": {"devices": ["pmem7"], "use_ndctl": "never"}, "quarantine": True},
                        monkeypatch)
    assert not out.get("failed") and out["changed"] is False, out
    assert out["ansible_facts"]["pmem"]["clean"] is False
    named = [w for w in warned if w.startswith("scan: pmem7: no such pmem device")]
    assert named and "Next step" in named[0], warned
    assert snapshot(str(state)) == before


@pytest.mark.parametrize("given", ["bad_ranges", "results", "capabilities"])
def test_scan_with_what_it_gathers_given_is_refused(host, monkeypatch, tmp_path, given):
    host("stock-poison")
    value = {"bad_ranges": [], "results": [], "capabilities": {}}[given]
    out = run_inprocess(pmem_clear, {"ledger_path": str(tmp_path / "ledger.json"), "scan": {},
                                     given: value}, monkeypatch)
    assert out.get("failed") and "scan gathers" in out["msg"] and given in out["msg"], out
    assert not os.path.exists(str(tmp_path / "ledger.json"))


def test_scan_options_are_checked_like_pmem_badblocks(host, monkeypatch, tmp_path):
    host("stock-clean")
    out = run_inprocess(pmem_clear, {"ledger_path": str(tmp_path / "ledger.json"),
                                     "scan": {"scrub_timeout": -1, "devices": [" "]}}, monkeypatch)
    assert out.get("failed") and "scan.scrub_timeout" in out["msg"] and "scan.devices" in out["msg"], out


@pytest.fixture
def faked_lists(world, monkeypatch):
    """The clears see the world's fake badblocks lists."""
    monkeypatch.setattr(_clearing, "run_clear",
                        functools.partial(_clearing.run_clear, provider=FileBadblocks(world.badblocks)))
    return world


def _restore_args(world, restore):
    return {"ledger_path": world.ledger, "restore_entries": restore, "capabilities": world.caps,
            "results": [{"range_id": world.range["id"], "owners": [world.owner]}],
            "bad_ranges": [world.range]}


def test_restore_entries_rewrites_the_file_and_a_rerun_is_a_no_op(faked_lists, monkeypatch):
    world = faked_lists
    out = run_inprocess(pmem_clear, _restore_args(world, {world.eid: world.good}), monkeypatch)
    assert not out.get("failed") and out["changed"], out
    with open(world.file, "rb") as damaged, open(world.good, "rb") as good:
        assert damaged.read() == good.read()
    entry = L.find_entry(L.load(world.ledger), world.eid)
    assert entry["state"] == "closed" and entry["closure"]["how"] == "restored"
    again = run_inprocess(pmem_clear, _restore_args(world, {world.eid: world.good}), monkeypatch)
    assert not again.get("failed") and again["changed"] is False, again


@pytest.mark.parametrize("restore", [
    {"pmem9@0x0+0x1000|/dev/pmem9|ino=1|off=0": "/good"},  # no such entry
    {"EID": "relative/copy"},  # not an absolute copy
], ids=["unknown-id", "relative-copy"])
def test_restore_entries_that_cannot_be_done_fail_and_change_nothing(faked_lists, monkeypatch, restore):
    world = faked_lists
    restore = dict((world.eid if k == "EID" else k, v) for k, v in restore.items())
    before = snapshot(world.root)
    out = run_inprocess(pmem_clear, _restore_args(world, restore), monkeypatch)
    assert out.get("failed") and "restore_entries" in out["msg"] and "Next step" in out["msg"], out
    assert snapshot(world.root) == before


def test_restore_entries_refuses_an_entry_whose_loss_was_accepted(faked_lists, monkeypatch):
    world = faked_lists
    ledger = L.load(world.ledger)
    entry = L.find_entry(ledger, world.eid)
    L.save(world.ledger, L.replace_entry(ledger, L.close_entry(entry, "accepted_lost", by="alice", why="scratch")))
    before = snapshot(world.root)
    out = run_inprocess(pmem_clear, _restore_args(world, {world.eid: world.good}), monkeypatch)
    assert out.get("failed") and world.eid in out["msg"], out
    assert snapshot(world.root) == before
