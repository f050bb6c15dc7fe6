# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
from types import SimpleNamespace

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import clearing as C
from ansible_collections.pmem.poison.plugins.module_utils._pmem import guard as G
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.tests.support.pmem_fakes import FileBadblocks, \
    write_error_hook

E820 = {"kernel": "6.1.0", "devices": {"pmem9": {"bus_kind": "e820", "write_clears": True,
                                                 "ndctl_clear": False}}}
QEMU = {"kernel": "6.1.0", "devices": {"pmem9": {"bus_kind": "acpi_nfit", "write_clears": False,
                                                 "description": "QEMU NFIT nvdimm"}}}
GOOD = bytes(range(256)) * 48  # 12 KiB


@pytest.fixture
def world(tmp_path):
    f = tmp_path / "fs" / "data.bin"
    f.parent.mkdir()
    f.write_bytes(GOOD[:4096] + b"\0" * 4096 + GOOD[8192:])  # page 1 "lost"
    src = tmp_path / "backup.bin"
    src.write_bytes(GOOD)
    bb = tmp_path / "bb.json"
    # file page 1 sits at device byte 1 MiB + 4096 (sectors 2056..2063)
    bb.write_text(json.dumps({"devices": {"pmem9": [[2056, 8]]}, "write_clears": True}))
    st = os.stat(str(f))
    owner = {"kind": "file", "range_id": "pmem9@0x101000+0x1000", "device": "/dev/pmem9",
             "mountpoint": str(f.parent), "fstype": "xfs", "inode": st.st_ino,
             "generation": None, "paths": [str(f)], "file_offset": 4096, "length": 4096,
             "repair_offset": 4096, "repair_length": 4096}
    rng = {"id": owner["range_id"], "blockdev": "pmem9", "blockdev_offset": 1048576 + 4096,
           "length": 4096, "area": "data",
           "filesystem": {"device": "/dev/pmem9", "mountpoint": str(f.parent), "fstype": "xfs",
                          "dax": True, "offset": 1048576 + 4096}}
    ledger_path = str(tmp_path / "state" / "ledger.json")
    return SimpleNamespace(f=f, src=src, bb=bb, owner=owner, rng=rng, ledger=ledger_path,
                           provider=FileBadblocks(str(bb)),
                           results=[{"range_id": rng["id"], "owners": [owner]}],
                           facts={"bad_ranges": [rng]})


def snapshot(w):
    def read(p):
        return open(p, "rb").read() if os.path.exists(p) else None
    return (read(str(w.f)), read(str(w.bb)), read(w.ledger))


def test_rewrite_from_source_closes_and_is_idempotent(world):
    w = world
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=E820, provider=w.provider)
    assert not out["failed"], out["msg"]
    assert out["changed"] and out["results"][0]["status"] == "cleared"
    assert w.f.read_bytes() == GOOD
    assert json.loads(w.bb.read_text())["devices"]["pmem9"] == []
    entry = L.load(w.ledger)["entries"][0]
    assert entry["state"] == "closed" and entry["closure"]["how"] == "restored"
    assert entry["closure"]["source"] == str(w.src) and len(entry["closure"]["sha256"]) == 64
    events = [h["event"] for h in entry["history"]]
    assert events == ["detected", "resolved", "clear_planned", "cleared", "restored"]
    before = snapshot(w)
    again = C.run_clear(w.ledger, "auto", source=str(w.src), capabilities=E820,
                        provider=w.provider)
    assert not again["changed"] and not again["failed"] and snapshot(w) == before


def test_check_mode_byte_identical(world):
    w = world
    C.run_clear(w.ledger, "auto", results=w.results, facts=w.facts, capabilities=E820,
                provider=w.provider)  # records, no source -> left open
    before = snapshot(w)
    out = C.run_clear(w.ledger, "auto", source=str(w.src), capabilities=E820,
                      provider=w.provider, check=True)
    assert out["changed"] and [a["action"] for a in out["plan"]][-1] == "rewrite"
    assert snapshot(w) == before


def test_no_source_left_open_zeros_refused(world):
    w = world
    out = C.run_clear(w.ledger, "rewrite", results=w.results, facts=w.facts,
                      capabilities=E820, provider=w.provider)
    assert out["failed"] and "zeros only" in out["msg"]
    assert L.read_open_entries(w.ledger)


def test_accepted_loss_then_zeros(world):
    w = world
    out = C.run_clear(w.ledger, "auto", results=w.results, facts=w.facts, capabilities=E820,
                      provider=w.provider, policy={"accepted_loss": [str(w.f)]},
                      accepted_by="ops")
    assert not out["failed"], out["msg"]
    entry = L.load(w.ledger)["entries"][0]
    assert entry["closure"]["how"] == "accepted_lost" and entry["closure"]["by"] == "ops"
    assert [h["event"] for h in entry["history"]][-2:] == ["clear_planned", "cleared"]
    assert w.f.read_bytes()[4096:8192] == b"\0" * 4096


def test_device_refuses_in_plan(world):
    w = world
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=QEMU, provider=w.provider)
    assert out["failed"] and "QEMU" in out["msg"] and "pmem9" in out["msg"]
    assert w.f.read_bytes()[4096:8192] == b"\0" * 4096  # untouched
    assert L.read_open_entries(w.ledger)  # recorded


def test_write_error_recorded_as_clear_failed(world):
    w = world
    caps = {"kernel": "6.1.0", "devices": {"pmem9": {"write_clears": None}}}
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=caps, provider=w.provider,
                      hooks=write_error_hook(w.provider, 5))
    assert out["failed"] and "Input/output error" in out["msg"] and "EIO" in out["msg"]
    entry = L.load(w.ledger)["entries"][0]
    assert entry["state"] == "open"
    assert entry["history"][-1]["event"] == "clear_failed"
    assert entry["history"][-1]["details"]["details"]["errno_name"] == "EIO"


def test_still_listed_after_write_is_failure(world):
    w = world
    data = json.loads(w.bb.read_text())
    data["write_clears"] = False
    w.bb.write_text(json.dumps(data))
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=E820, provider=w.provider)
    assert out["failed"] and "still listed" in out["msg"]
    assert L.load(w.ledger)["entries"][0]["state"] == "open"


def test_pending_plan_completed_without_second_write(world, monkeypatch):
    """A crash after the write but before the result: the rerun records, does not rewrite."""
    w = world
    C.run_clear(w.ledger, "auto", results=w.results, facts=w.facts, capabilities=E820,
                provider=w.provider)
    led = L.load(w.ledger)
    e = L.apply_event(led["entries"][0], "clear_planned", "t",
                      {"method": "rewrite", "source": str(w.src)})
    L.save(w.ledger, L.replace_entry(led, e))
    w.f.write_bytes(GOOD)  # the killed run had written
    w.bb.write_text(json.dumps({"devices": {"pmem9": []}}))
    calls = []
    monkeypatch.setattr(G._Target, "pwrite", lambda *a: calls.append(a))
    out = C.run_clear(w.ledger, "auto", source=str(w.src), capabilities=E820,
                      provider=w.provider)
    assert not out["failed"] and calls == []
    entry = L.load(w.ledger)["entries"][0]
    assert entry["history"][-2]["details"]["completed_by_previous_run"]
    assert entry["closure"]["how"] == "restored"


def test_source_size_mismatch(world):
    w = world
    w.src.write_bytes(GOOD[:5000])
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=E820, provider=w.provider)
    assert out["failed"] and "not a copy" in out["msg"]


class _Listed(object):
    """A provider that lists every range and knows one namespace (for the ndctl path)."""

    def __init__(self, listed=True):
        self.listed = listed

    def topology(self):
        return {"namespaces": {"namespace0.0": {"name": "namespace0.0", "blockdev": "pmem0"}},
                "blockdevs": {}, "mounts": []}

    def invalidate(self):
        pass

    def notify_written(self, *a):
        pass

    def listed_range(self, rng):
        return [dict(rng, sources=["region"])] if self.listed else []


def test_ndctl_argv_no_shell(world):
    calls = []

    def runner(argv):
        calls.append(argv)
        return SimpleNamespace(returncode=1, stdout="",
                               stderr="Unable to determine scrub state: Operation not supported")
    entry = {"id": "e", "range": {"id": "r", "namespace": "namespace0.0"},
             "owner": {"kind": "free"}}
    ctx = G.WriteContext(_Listed(), capabilities={"devices": {"namespace0.0": {
        "ndctl_clear": True}}}, consent={"offline_window": True}, runner=runner)
    with pytest.raises(C.DeviceCannotClear, match="scrub state"):
        C.ndctl_clear(entry, ctx)
    assert calls == [["ndctl", "clear-errors", "namespace0.0"]]


def _on_bus(w, provider, commands, kernel):
    """The fake's topology puts pmem9 on one bus of ``provider`` under ``kernel``."""
    data = json.loads(w.bb.read_text())
    data["topology"] = {"kernel": kernel,
                        "buses": {"ndbus0": {"provider": provider, "commands": commands}},
                        "regions": {"region0": {"bus": "ndbus0"}},
                        "namespaces": {"namespace0.0": {"name": "namespace0.0", "region": "region0",
                                                        "blockdev": "pmem9"}},
                        "blockdevs": {"pmem9": {"name": "pmem9", "namespace": "namespace0.0"}},
                        "mounts": []}
    w.bb.write_text(json.dumps(data))


@pytest.mark.parametrize("provider,commands,kernel", [
    ("nfit_test.0", ["clear_error"], "6.1.0"),   # the nfit_test build answers a DAX write with EIO
    ("e820", [], "5.15.0-91-generic"),           # no recovery-write path before 5.19
])
def test_dax_write_refused_without_given_capabilities(world, provider, commands, kernel):
    """pmem_clear without the role's capabilities decides them from the same topology as the facts:
    a DAX file on a device that cannot clear through DAX is refused, nothing written."""
    w = world
    _on_bus(w, provider, commands, kernel)
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      provider=w.provider)
    assert out["failed"] and "DAX write" in out["msg"] and "remount" in out["msg"]
    assert w.f.read_bytes()[4096:8192] == b"\0" * 4096
    assert json.loads(w.bb.read_text())["devices"]["pmem9"] == [[2056, 8]]
    assert L.read_open_entries(w.ledger)


def test_dax_write_clears_where_the_kernel_can(world):
    """The same run on e820 pmem under 6.1 (recovery write) restores the page."""
    w = world
    _on_bus(w, "e820", [], "6.1.0")
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      provider=w.provider)
    assert not out["failed"], out["msg"]
    assert w.f.read_bytes() == GOOD


def test_accepted_reason_recorded(world):
    w = world
    out = C.run_clear(w.ledger, "auto", results=w.results, facts=w.facts, capabilities=E820,
                      provider=w.provider, policy={"accepted_loss": [str(w.f)]},
                      accepted_by="ops", accepted_reason="scratch data, regenerated nightly")
    assert not out["failed"], out["msg"]
    entry = L.load(w.ledger)["entries"][0]
    assert entry["closure"]["how"] == "accepted_lost"
    assert entry["closure"]["by"] == "ops"
    assert entry["closure"]["why"] == "scratch data, regenerated nightly"
    ev = [h for h in entry["history"] if h["event"] == "accepted_lost"][0]
    assert ev["details"]["why"] == "scratch data, regenerated nightly"
    assert ev["details"]["accepted_via"] == "policy.accepted_loss"


# ---- verification through the facts core (region + blockdev + ndctl lists) ------------------

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")


@pytest.fixture
def synth_tree(tmp_path):
    import sys
    sys.path.insert(0, FIXTURES)
    import synth  # pylint: disable=import-error
    # pmem0's data area starts 10 MiB into region0: blockdev sector 2048 = region sector 22528
    return synth.build(str(tmp_path), region_bb="22528 8\n", pmem0_bb="2048 8\n")


def _pmem0_entry(provider):
    rng = [r for r in provider.ranges() if r["blockdev"] == "pmem0"][0]
    assert set(rng["sources"]) >= {"region", "blockdev"}
    return {"id": "%s|-|ino=free|off=-" % rng["id"], "state": "open",
            "range": dict((k, rng[k]) for k in L.RANGE_FIELDS if k in rng),
            "owner": {"kind": "free", "range_id": rng["id"]}, "history": [], "closure": None}


def test_topology_provider_counts_region_list(synth_tree):
    bb = os.path.join(synth_tree["sysfs_root"], "block", "pmem0", "badblocks")
    p = C.TopologyBadblocks(ndctl=None, as_root=True, **synth_tree)
    entry = _pmem0_entry(p)
    assert C.verify(entry, p)
    with open(bb, "w") as f:
        f.write("")  # the block-device entry went away ...
    p.notify_written("pmem0", 0, 0)
    still = C.verify(entry, p)
    assert still and still[0]["sources"] == ["region"]  # ... the region list still has it
    rfile = [os.path.join(d, "badblocks") for d, _s, files in os.walk(synth_tree["sysfs_root"])
             if d.endswith("/region0") and "badblocks" in files][0]
    with open(rfile, "w") as f:
        f.write("")
    p.invalidate()
    assert C.verify(entry, p) == []


def test_topology_provider_counts_ndctl_list(synth_tree):
    for d, _s, files in os.walk(synth_tree["sysfs_root"]):
        if "badblocks" in files:
            with open(os.path.join(d, "badblocks"), "w") as f:
                f.write("")
    nd = {"regions": [{"dev": "region0", "badblocks": [{"offset": 22528, "length": 8}]}]}
    p = C.TopologyBadblocks(ndctl=nd, as_root=True, **synth_tree)
    rng = p.ranges()[0]
    assert rng["sources"] == ["ndctl"]
    entry = {"id": "x", "range": {"region": "region0", "region_offset": rng["region_offset"],
                                  "length": 4096, "id": rng["id"]}}
    assert [r["id"] for r in C.verify(entry, p)] == [rng["id"]]
    off = {"region": "region0", "region_offset": rng["region_offset"] + 4096, "length": 4096}
    assert C.verify({"id": "y", "range": off}, p) == []


def test_clear_still_in_region_list_is_failure(synth_tree, tmp_path):
    """ndctl clear-errors 'succeeds' but the region list still reports the range: failed,
    recorded as clear_failed, entry open, message names device, range, lists and next step."""
    with open(os.path.join(synth_tree["proc_root"], "self", "mountinfo"), "w") as f:
        f.write("")  # the namespace is unmounted (the guard refuses ndctl on a mounted one)
    p = C.TopologyBadblocks(ndctl=None, as_root=True, **synth_tree)
    entry = _pmem0_entry(p)
    ledger_path = str(tmp_path / "l" / "ledger.json")
    led = L.empty_ledger("h")
    led["entries"].append(entry)
    L.save(ledger_path, led)
    bb = os.path.join(synth_tree["sysfs_root"], "block", "pmem0", "badblocks")

    def runner(argv):
        with open(bb, "w") as f:
            f.write("")  # only the block-device list is emptied
        return SimpleNamespace(returncode=0, stdout="", stderr="")
    action = {"action": "ndctl_clear", "entry_id": entry["id"], "range_id": entry["range"]["id"]}
    ctx = G.WriteContext(p, capabilities={"devices": {"pmem0": {"ndctl_clear": True}}},
                         consent={"offline_window": True}, runner=runner)
    with L.LedgerStore(ledger_path) as store:
        res = C.execute(store, action, ctx=ctx)
    assert res["status"] == "failed"
    assert "still listed" in res["error"] and "region list" in res["error"]
    assert "pmem0" in res["error"] and entry["range"]["id"] in res["error"]
    assert "Next step" in res["error"] or "next step" in res["error"].lower()
    saved = L.load(ledger_path)["entries"][0]
    assert saved["state"] == "open"
    assert [h["event"] for h in saved["history"]][-2:] == ["clear_planned", "clear_failed"]


def test_device_write_refuses_a_regular_file_posing_as_the_device(tmp_path):
    """The record says pmem9p2 and sysfs agrees it is a pmem partition, but /dev/pmem9p2 is a
    regular file: refused by name, nothing written (the guard opens only block devices whose
    device number is sysfs's)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "pmem9p2").write_bytes(b"\xff" * 65536)
    bb = tmp_path / "bb.json"
    part_start = 1 << 20
    partitions = {"pmem9p2": {"start": part_start, "size": 1 << 20, "dev": "259:11"}}
    topology = {"blockdevs": {"pmem9": {"namespace": "namespace9.0", "size": 1 << 30,
                                        "dev": "259:9", "partitions": partitions}},
                "namespaces": {"namespace9.0": {"data_size": 1 << 30, "data_start": 1 << 32}}}
    bb.write_text(json.dumps({"devices": {"pmem9": [[(part_start + 8192) // 512, 8]]},
                              "topology": topology}))
    entry = {"id": "e", "owner": {"kind": "free"}, "closure": None,
             "range": {"id": "r", "blockdev": "pmem9", "partition": "pmem9p2",
                       "blockdev_offset": part_start + 8192, "partition_offset": 8192,
                       "absolute": (1 << 32) + part_start + 8192, "length": 4096}}
    p = FileBadblocks(str(bb))
    ctx = G.WriteContext(p, capabilities=E820, consent={"offline_window": True},
                         dev_root=str(dev), proc_root=str(tmp_path / "proc"))
    with pytest.raises(G.GuardRefused) as e:
        C.device_write(entry, ctx)
    assert "not a block device" in str(e.value) and "pmem9p2" in str(e.value)
    assert "Next step" in str(e.value)
    assert (dev / "pmem9p2").read_bytes() == b"\xff" * 65536
    assert C.verify(entry, p)  # still listed: nothing was cleared


def test_a_device_without_a_badblocks_list_is_never_verified_cleared(world, tmp_path):
    """The file's range is on a device no badblocks list covers (here: none at all): the data is
    written and reads back good, but the entry stays open with clear_failed naming the device."""
    w = world
    sysfs = tmp_path / "emptysys"
    (sysfs / "block").mkdir(parents=True)
    (tmp_path / "noproc" / "self").mkdir(parents=True)
    (tmp_path / "noproc" / "self" / "mountinfo").write_text("")
    provider = C.TopologyBadblocks(sysfs_root=str(sysfs), proc_root=str(tmp_path / "noproc"),
                                   dev_root=str(tmp_path), ndctl=None, as_root=True)
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=E820, provider=provider, sysfs_root=str(sysfs))
    assert out["failed"] and "no badblocks list covers" in out["msg"] and "pmem9" in out["msg"]
    entry = L.load(w.ledger)["entries"][0]
    assert entry["state"] == "open" and entry["history"][-1]["event"] == "clear_failed"
    assert entry["history"][-1]["details"]["data_restored"] is True


def test_check_mode_plans_the_whole_run_and_says_so(world):
    """New poison under a file with a copy: check mode records nothing, writes nothing, and says
    it would record, mark and rewrite from that copy."""
    w = world
    before = snapshot(w)
    out = C.run_clear(w.ledger, "auto", results=w.results, facts=w.facts, capabilities=E820,
                      provider=w.provider, policy={"restore_sources": {str(w.f): str(w.src)}},
                      check=True)
    assert snapshot(w) == before and out["check_mode"] is True
    assert out["msg"].startswith("check mode: would: record 1; mark 1 file(s)")
    assert "rewrite %s from %s" % (w.f, w.src) in out["summary"]


def test_an_entry_restored_by_another_run_is_skipped_and_said(world):
    w = world
    C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                capabilities=E820, provider=w.provider)
    before = snapshot(w)
    # a second run planned from the same facts and results, gathered before the first acted
    out = C.run_clear(w.ledger, "auto", source=str(w.src), results=w.results, facts=w.facts,
                      capabilities=E820, provider=w.provider)
    assert not out["failed"] and not out["changed"], out
    assert snapshot(w) == before  # not reopened, not written twice
    assert [r["status"] for r in out["results"]] == ["skipped"]
    assert out["results"][0]["details"]["reason"].startswith("already restored")


@pytest.mark.parametrize("method", ["device_write", "ndctl", "cxl"])
def test_a_device_method_named_for_file_data_is_refused_not_silently_skipped(world, method):
    # method=device_write with the id of an open file entry: the plan keeps file data to the
    # file rules (recorded, left open) and the task reported success ("record 1"), no word that
    # the asked clear did not happen
    w = world
    C.run_clear(w.ledger, "auto", results=w.results, facts=w.facts, capabilities=E820,
                provider=w.provider)
    eid = L.read_open_entries(w.ledger)[0]["id"]
    before = snapshot(w)
    out = C.run_clear(w.ledger, method, entry_ids=[eid], facts=w.facts, capabilities=E820,
                      provider=w.provider, policy={"offline_window_allowed": True})
    assert out["failed"] and out["changed"] is False, out
    assert ("method=%s does not apply to entry %s" % (method, eid)) in out["msg"]
    assert str(w.f) in out["msg"] and "accepted_lost" in out["msg"]
    assert snapshot(w) == before
