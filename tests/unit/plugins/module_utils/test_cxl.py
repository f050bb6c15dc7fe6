# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CXL poison lists: the cxl_poison trace text of a real guest (cxl-7 lab flavour, kernel 7.3,
QEMU 10.0 cxl-type3), the tracefs/sysfs dance around it, and the ranges the records become."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import cxl
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "cxl")
HPA_BASE = 0x110000000
UUID = "fd05edd4-6ca5-4505-93f0-748c9f706897"


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# the guest injected 0x1000000, 0x1000040, 0x2000000, then 0x3000000 (Inject) and cleared
# 0x2000000 (Clear) while tracing, then listed: three records remain
TRACE = _fixture("trace-inject-clear-list.txt")


def test_parse_real_trace_keeps_every_record_and_its_coordinates():
    recs = cxl.parse_poison_trace(TRACE)
    assert [(r["trace_type"], r["dpa"]) for r in recs] == [
        ("Inject", 0x3000000), ("Clear", 0x2000000), ("List", 0x3000000), ("List", 0x1000040), ("List", 0x1000000)]
    assert recs[2] == {"memdev": "mem0", "host": "0000:0d:00.0", "serial": 1, "trace_type": "List",
                       "region": "region2", "region_uuid": UUID, "hpa": 0x113000000, "dpa": 0x3000000,
                       "length": 64, "source": "Injected", "flags": None}


def test_list_records_are_only_the_poison_list():
    listed = cxl.list_records(cxl.parse_poison_trace(TRACE))
    # the cleared DPA is gone, the Inject/Clear events are not list entries
    assert sorted(r["dpa"] for r in listed) == [0x1000000, 0x1000040, 0x3000000]
    # one trigger read twice (a retried write) lists each record once
    assert len(cxl.list_records(cxl.parse_poison_trace(TRACE + TRACE))) == 3


def test_parse_unmapped_dpa_has_no_hpa_and_no_region():
    line = ("  cxl-1 [000] ..... 1.0: cxl_poison: memdev=mem3 host=0000:0e:00.0 serial=7 trace_type=List "
            "region= region_uuid=00000000-0000-0000-0000-000000000000 hpa=0xffffffffffffffff "
            "hpa_alias0=0xffffffffffffffff dpa=0x40 dpa_length=0x80 source=Internal flags=More overflow_time=0\n")
    (rec,) = cxl.parse_poison_trace(line)
    assert (rec["region"], rec["hpa"], rec["dpa"], rec["length"], rec["source"], rec["flags"]) == (
        None, None, 0x40, 0x80, "Internal", "More")


def test_parse_skips_other_events_and_broken_lines():
    text = ("# comment\n  x-1 [000] 1.0: cxl_general_media: memdev=mem0 dpa=0x40\n"
            "  x-1 [000] 1.0: cxl_poison: memdev=mem0 dpa=zz dpa_length=0x40\n"
            "  x-1 [000] 1.0: cxl_poison: memdev=mem0 dpa=0x40 dpa_length=0x0\n")
    assert cxl.parse_poison_trace(text) == []
    assert cxl.parse_poison_trace(None) == []


def test_clear_units_cover_the_range_in_64_byte_steps():
    assert cxl.clear_dpa_units(0x1000000, 0x80) == [0x1000000, 0x1000040]
    # an unaligned start is rounded down to its unit; the last partial unit is included
    assert cxl.clear_dpa_units(0x1000010, 0x40) == [0x1000000, 0x1000040]


# -- gather: sysfs + tracefs -----------------------------------------------------------------

def _sysfs(tmp_path, memdevs=("mem0",), tracing=True, trigger_file=True):
    sysfs = tmp_path / "sys"
    devices = sysfs / "bus" / "cxl" / "devices"
    devices.mkdir(parents=True)
    for mem in memdevs:
        d = devices / mem
        (d / "pmem").mkdir(parents=True)
        (d / "ram").mkdir()
        (d / "serial").write_text("0x1\n")
        (d / "pmem" / "size").write_text("0x10000000\n")
        (d / "ram" / "size").write_text("0x0\n")
        if trigger_file:
            (d / "trigger_poison_list").write_text("")
    region = devices / "region2"
    region.mkdir()
    for name, value in (("mode", "pmem"), ("resource", "0x110000000"), ("size", "0x10000000"), ("uuid", UUID)):
        (region / name).write_text(value + "\n")
    if tracing:
        (sysfs / "kernel" / "tracing" / "instances").mkdir(parents=True)
    return str(sysfs)


class FakeTracefs(object):
    """What the kernel does: mkdir of an instance makes its events/ tree; a trigger writes the
    device's List records into every instance with the event enabled."""

    def __init__(self, sysfs, trace_text, fail=None):
        self.sysfs = sysfs
        self.text = trace_text
        self.fail = fail or {}
        self.triggered = []
        self.enabled_during = []

    def make_instance(self, name):
        inst = os.path.join(self.sysfs, "kernel", "tracing", "instances", name)
        os.makedirs(os.path.join(inst, "events", "cxl", "cxl_poison"))
        with open(os.path.join(inst, "events", "cxl", "cxl_poison", "enable"), "w") as f:
            f.write("0")
        with open(os.path.join(inst, "trace"), "w") as f:
            f.write("# tracer: nop\n")
        return inst

    def trigger(self, path):
        mem = os.path.basename(os.path.dirname(path))
        self.triggered.append(mem)
        if mem in self.fail:
            raise OSError(self.fail[mem], os.strerror(self.fail[mem]))
        inst_root = os.path.join(self.sysfs, "kernel", "tracing", "instances")
        for inst in os.listdir(inst_root):
            with open(os.path.join(inst_root, inst, "events", "cxl", "cxl_poison", "enable")) as f:
                enabled = f.read().strip() == "1"
            self.enabled_during.append(enabled)
            if enabled:
                with open(os.path.join(inst_root, inst, "trace"), "a") as f:
                    f.write("".join(line + "\n" for line in self.text.splitlines()
                                    if "memdev=%s " % mem in line and "trace_type=List" in line))


def test_gather_reads_the_list_through_a_private_instance_and_removes_it(tmp_path, monkeypatch):
    # rmdir of a tracefs instance removes it with its files (a plain directory would refuse)
    real_rmdir = os.rmdir

    def tracefs_rmdir(path):
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                real_rmdir(os.path.join(root, name))
        real_rmdir(path)
    monkeypatch.setattr(cxl.os, "rmdir", tracefs_rmdir)
    sysfs = _sysfs(tmp_path)
    fake = FakeTracefs(sysfs, TRACE)
    fake.make_instance("t1")
    got = cxl.gather(sysfs_root=sysfs, as_root=True, instance="t1", trigger=fake.trigger)
    assert got["errors"] == [] and got["warnings"] == []
    assert fake.triggered == ["mem0"] and fake.enabled_during == [True]
    assert sorted((r["dpa"], r["hpa"], r["hpa_offset"]) for r in got["records"]) == [
        (0x1000000, 0x111000000, 0x1000000), (0x1000040, 0x111000040, 0x1000040),
        (0x3000000, 0x113000000, 0x3000000)]
    assert got["memdevs"]["mem0"]["pmem_size"] == 256 << 20
    assert got["regions"]["region2"] == {"mode": "pmem", "resource": HPA_BASE, "size": 256 << 20, "uuid": UUID}
    # the host's tracing is left as it was
    assert os.listdir(os.path.join(sysfs, "kernel", "tracing", "instances")) == []


def test_gather_without_root_reads_nothing_and_says_so(tmp_path):
    sysfs = _sysfs(tmp_path)
    fake = FakeTracefs(sysfs, TRACE)
    got = cxl.gather(sysfs_root=sysfs, as_root=False, trigger=fake.trigger)
    assert fake.triggered == [] and got["records"] == []
    assert "not running as root" in got["warnings"][0] and "mem0" in got["warnings"][0]


def test_gather_a_failing_device_is_an_error_naming_it(tmp_path):
    # after a QEMU savevm/loadvm the guest's trigger_poison_list fails with EIO
    sysfs = _sysfs(tmp_path, memdevs=("mem0", "mem1"))
    fake = FakeTracefs(sysfs, TRACE, fail={"mem1": errno.EIO})
    fake.make_instance("t2")
    got = cxl.gather(sysfs_root=sysfs, as_root=True, instance="t2", trigger=fake.trigger)
    assert [(e["device"], os.path.basename(e["file"])) for e in got["errors"]] == [("mem1", "trigger_poison_list")]
    assert "Input/output error" in got["errors"][0]["message"]
    assert len(got["records"]) == 3  # mem0's list is still read


def test_gather_without_tracefs_is_an_error_with_the_next_step(tmp_path):
    sysfs = _sysfs(tmp_path, tracing=False)
    got = cxl.gather(sysfs_root=sysfs, as_root=True, trigger=FakeTracefs(sysfs, TRACE).trigger)
    assert got["records"] == [] and "mount -t tracefs" in got["errors"][0]["message"]


def test_gather_device_without_poison_list_is_a_warning(tmp_path):
    sysfs = _sysfs(tmp_path, trigger_file=False)
    got = cxl.gather(sysfs_root=sysfs, as_root=True)
    assert got["records"] == [] and "trigger_poison_list absent" in got["warnings"][0]


def test_gather_on_a_host_without_cxl_is_silent(tmp_path):
    got = cxl.gather(sysfs_root=str(tmp_path), as_root=True)
    assert got == {"memdevs": {}, "regions": {}, "records": [], "errors": [], "warnings": []}


# -- ranges: records placed in the nd region of the CXL pmem region -----------------------------

def _topology(records):
    """The cxl-7 guest's nd side: region2 (ndbus1, provider CXL) at the CXL region's HPA, a devdax
    namespace over it whose data starts 6 MiB in."""
    return {
        "regions": {"region2": {"name": "region2", "bus": "ndbus1", "resource": HPA_BASE, "size": 256 << 20,
                                "namespaces": ["namespace2.0"], "badblocks": []}},
        "namespaces": {"namespace2.0": {"name": "namespace2.0", "region": "region2", "mode": "devdax",
                                        "uuid": "bc73d8cf-8975-48e4-8fe7-31e903a89e58", "size": 262144000,
                                        "resource": HPA_BASE, "data_start": HPA_BASE + (6 << 20),
                                        "data_offset": 6 << 20, "data_size": 262144000 - (6 << 20),
                                        "dax_device": "dax2.0"}},
        "blockdevs": {}, "dax": {}, "mounts": [],
        "cxl": {"poison": cxl.place_records(records, {"region2": {"resource": HPA_BASE}})},
    }


def test_records_become_ranges_in_the_dax_device_with_every_coordinate():
    records = cxl.list_records(cxl.parse_poison_trace(TRACE))
    got = ranges.gather_bad_ranges(_topology(records))
    assert [(r["region"], r["region_offset"], r["length"]) for r in got] == [
        ("region2", 0x1000000, 0x80), ("region2", 0x3000000, 0x40)]   # the two adjacent units merged
    first = got[0]
    assert first["sources"] == ["cxl"] and first["software_only"] is False
    assert (first["namespace"], first["dax_device"], first["area"], first["absolute"]) == (
        "namespace2.0", "dax2.0", "data", 0x111000000)
    assert [(c["memdev"], c["dpa"], c["hpa"], c["hpa_offset"], c["source"]) for c in first["cxl"]] == [
        ("mem0", 0x1000000, 0x111000000, 0x1000000, "Injected"), ("mem0", 0x1000040, 0x111000040, 0x1000040, "Injected")]
    assert first["id"].startswith("ns-bc73d8cf-8975-48e4-8fe7-31e903a89e58@")


def test_unmapped_record_is_a_device_range():
    rec = {"memdev": "mem1", "host": None, "serial": 9, "trace_type": "List", "region": None, "region_uuid": None,
           "hpa": None, "dpa": 0x40, "length": 0x40, "source": "Internal", "flags": None}
    (got,) = ranges.gather_bad_ranges(_topology([rec]))
    assert (got["id"], got["region"], got["area"], got["sources"]) == ("mem1@0x40+0x40", None, "outside_namespace", ["cxl"])
    assert [(c["memdev"], c["dpa"], c["source"]) for c in got["cxl"]] == [("mem1", 0x40, "Internal")]
    assert got["identity"]["stable"] is False


@pytest.mark.parametrize("source", ranges.LIST_SOURCES)
def test_cxl_is_a_list_source(source):
    # a listed range is never taken for a kernel-log record that a closed entry handled
    assert source in ranges.SOURCE_ORDER
    assert "cxl" in ranges.LIST_SOURCES


# -- plan: which ranges get the CXL clear ------------------------------------------------------

def _plan(sources, policy):
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import plan as P
    rng = {"id": "ns-u@0x1000000+0x80", "region": "region2", "namespace": "namespace2.0", "blockdev": None,
           "dax_device": "dax2.0", "length": 0x80, "area": "data", "absolute": 0x111000000, "sources": sources,
           "filesystem": None}
    owner = {"kind": "devdax", "range_id": rng["id"], "device": "/dev/dax2.0"}
    res = [{"range_id": rng["id"], "owners": [owner], "error": None}]
    return P.plan_actions({"bad_ranges": [rng]}, res, L.empty_ledger("h"), policy, {"devices": {}})


def test_plan_auto_clears_a_cxl_listed_devdax_range_only_with_the_window_and_accepted_loss():
    accepted = {"accepted_loss": ["/dev/dax2.0"], "offline_window_allowed": True}
    acts = _plan(["cxl"], accepted)
    assert [a["action"] for a in acts][-2:] == ["accept_loss", "cxl_clear"]
    assert acts[-1]["method"] == "cxl" and acts[-1]["namespace"] == "namespace2.0"
    # no offline-window consent: nothing is cleared, the plan says what is missing
    acts = _plan(["cxl"], {"accepted_loss": ["/dev/dax2.0"]})
    assert acts[-1]["action"] == "offline_required" and acts[-1]["method"] == "cxl"
    # the data is not accepted as lost: recorded only
    assert _plan(["cxl"], {"offline_window_allowed": True})[-1]["action"] == "record"


def test_plan_method_cxl_on_a_range_no_cxl_list_holds_is_refused():
    acts = _plan(["region"], {"accepted_loss": ["/dev/dax2.0"], "offline_window_allowed": True,
                              "method": {"devdax": "cxl"}})
    assert acts[-1]["action"] == "refuse" and "CXL" in acts[-1]["reason"]


# -- the guard: the units it would clear, and its refusals ---------------------------------------

def _entry(absolute=0x111000000, length=0x80, kind="devdax"):
    return {"id": "e1", "range": {"id": "ns-u@0x1000000+0x80", "namespace": "namespace2.0", "dax_device": "dax2.0",
                                  "absolute": absolute, "length": length, "sources": ["cxl"]},
            "owner": {"kind": kind, "device": "/dev/dax2.0"}, "state": "closed",
            "closure": {"how": "accepted_lost", "by": "t", "at": "t"}, "history": []}


def _rec(hpa, length, dpa=None, memdev="mem0"):
    return {"memdev": memdev, "hpa": hpa, "dpa": hpa - HPA_BASE if dpa is None else dpa, "length": length,
            "region": "region2", "source": "Injected"}


def _debugfs(tmp_path, *memdevs):
    root = tmp_path / "debug"
    for mem in memdevs:
        (root / "cxl" / mem).mkdir(parents=True, exist_ok=True)
        (root / "cxl" / mem / "clear_poison").write_text("")
    return str(root)


def test_units_are_only_those_inside_the_recorded_range(tmp_path):
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import guard as G
    lo = 0x111000000
    poison = [_rec(lo - 0x40, 0x80),        # straddles the start: only its second unit is ours
              _rec(lo + 0x40, 0x40),        # inside
              _rec(lo + 0x80, 0x40),        # just after the range: not ours
              _rec(lo + 0x1000, 0x40, memdev="mem1")]
    units = G.cxl_units(_entry(), {"cxl": {"poison": poison}}, _debugfs(tmp_path, "mem0", "mem1"))
    assert units == [("mem0", 0x1000000), ("mem0", 0x1000040)]


def test_units_refusals_name_the_device_and_the_next_step(tmp_path):
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import guard as G
    topo = {"cxl": {"poison": [_rec(0x111000000, 0x40)]}}
    with pytest.raises(G.DeviceCannotClear, match="no host physical address") as e:
        G.cxl_units(_entry(absolute=None), topo, _debugfs(tmp_path, "mem0"))
    assert "root" in e.value.next_step
    with pytest.raises(G.DeviceCannotClear, match="mem0 has no .*clear_poison") as e:
        G.cxl_units(_entry(), topo, str(tmp_path / "nodebugfs"))
    assert "debugfs" in e.value.next_step
    with pytest.raises(G.AlreadyDone):
        G.cxl_units(_entry(), {"cxl": {"poison": [_rec(0x112000000, 0x40)]}}, _debugfs(tmp_path, "mem0"))
    # a recorded range that does not start on a unit: rounding it out would zero bytes the record
    # does not cover, so nothing is cleared
    with pytest.raises(G.GuardRefused, match="not in whole 64-byte"):
        G.cxl_units(_entry(absolute=0x111000000 + 0x20), {"cxl": {"poison": [_rec(0x111000000, 0x400)]}},
                    _debugfs(tmp_path, "mem0"))


class FakeCxlProvider(object):
    """The lists as the guest shows them: devdax namespace2.0 on region2, the device's poison list.
    A Clear Poison written to debugfs takes the unit off the list (``honours=False``: a device that
    accepts the command and keeps the poison)."""

    def __init__(self, debugfs, poison, honours=True):
        self.debugfs, self.poison, self.honours = debugfs, list(poison), honours
        self.cleared = []

    def topology(self):
        topo = _topology(self.poison)
        return topo

    def invalidate(self):
        path = os.path.join(self.debugfs, "cxl", "mem0", "clear_poison")
        text = open(path).read().strip()
        if text:
            dpa = int(text, 16)
            self.cleared.append(dpa)
            if self.honours:
                self.poison = [r for r in self.poison if r["dpa"] != dpa]
            open(path, "w").close()

    def notify_written(self, *a):
        self.invalidate()

    def listed_range(self, rng):
        from ansible_collections.pmem.poison.plugins.module_utils._pmem import listing
        self.invalidate()
        return [listing.summary(r) for r in ranges.gather_bad_ranges(self.topology())
                if listing.range_matches(rng, r)]


def _execute(tmp_path, provider, window=True):
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import clearing as C
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import guard as G
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
    entry = _entry(absolute=0x113000000, length=0x40)
    entry["range"]["id"] = "ns-u@0x3000000+0x40"
    entry["history"] = [{"event": "detected", "at": "t"}]
    path = str(tmp_path / "l" / "ledger.json")
    led = L.empty_ledger("h")
    led["entries"].append(entry)
    L.save(path, led)
    ctx = G.WriteContext(provider, consent={"offline_window": window}, debugfs_root=provider.debugfs)
    with L.LedgerStore(path) as store:
        res = C.execute(store, {"action": "cxl_clear", "entry_id": "e1", "range_id": entry["range"]["id"]}, ctx=ctx)
    return res, L.load(path)["entries"][0]


def test_execute_clears_by_dpa_verifies_in_the_poison_list_and_closes(tmp_path):
    records = cxl.list_records(cxl.parse_poison_trace(TRACE))
    provider = FakeCxlProvider(_debugfs(tmp_path, "mem0"), cxl.place_records(records, {"region2": {"resource": HPA_BASE}}))
    res, saved = _execute(tmp_path, provider)
    assert res["status"] == "cleared", res
    assert provider.cleared == [0x3000000]          # only the unit of this range
    assert sorted(r["dpa"] for r in provider.poison) == [0x1000000, 0x1000040]
    assert res["details"]["units"] == [{"memdev": "mem0", "dpa": 0x3000000, "length": 64}]
    assert [h["event"] for h in saved["history"]][-2:] == ["clear_planned", "cleared"]
    assert saved["history"][-2]["details"]["method"] == "cxl"   # planned (fsynced) before the write


def test_execute_a_device_that_keeps_the_poison_is_a_recorded_failure(tmp_path):
    records = cxl.list_records(cxl.parse_poison_trace(TRACE))
    provider = FakeCxlProvider(_debugfs(tmp_path, "mem0"), cxl.place_records(records, {"region2": {"resource": HPA_BASE}}),
                               honours=False)
    res, saved = _execute(tmp_path, provider)
    assert res["status"] == "failed" and "still listed after cxl" in res["error"] and "cxl list" in res["error"]
    # the loss stays accepted; the ledger says the clear failed (the next run tries again)
    assert [h["event"] for h in saved["history"]][-2:] == ["clear_planned", "clear_failed"]


def test_execute_without_the_offline_window_writes_nothing(tmp_path):
    records = cxl.list_records(cxl.parse_poison_trace(TRACE))
    provider = FakeCxlProvider(_debugfs(tmp_path, "mem0"), cxl.place_records(records, {"region2": {"resource": HPA_BASE}}))
    res, saved = _execute(tmp_path, provider, window=False)
    assert res["status"] == "failed" and "offline-window" in res["error"]
    assert provider.cleared == [] and len(provider.poison) == 3


def test_topology_carries_the_cxl_devices_and_says_why_a_list_was_not_read(tmp_path):
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts as F
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as T
    sysfs = _sysfs(tmp_path)
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mountinfo").write_text("")
    (tmp_path / "dev").mkdir()
    roots = {"sysfs_root": sysfs, "proc_root": str(tmp_path / "proc"), "dev_root": str(tmp_path / "dev")}
    topo = T.gather_topology(as_root=False, **roots)
    assert sorted(topo["cxl"]["memdevs"]) == ["mem0"] and topo["cxl"]["poison"] == []
    assert any("poison lists of CXL memory devices mem0 were not read" in w for w in topo["warnings"])
    facts = F.build_facts(topo, [], [])
    assert facts["cxl"]["regions"]["region2"]["resource"] == HPA_BASE and facts["cxl"]["poison_records"] == 0
