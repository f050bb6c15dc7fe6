# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Poison that no list shows: kernel-log memory failures and machine checks, rasdaemon, HardwareCorrupted.

The kernel lines are the ones the lab guest printed (reference facts, section 8): madvise(MADV_HWPOISON)
on a DAX page of e820 pmem, and a QEMU monitor `mce -b` at an e820 and at an NVDIMM address.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sqlite3
import sys

from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts
from ansible_collections.pmem.poison.plugins.module_utils._pmem import kernel_events as ke
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
sys.path.insert(0, FIXTURES)
from loader import fixture_root  # noqa: E402  pylint: disable=wrong-import-position

BOOT = "0f2e6a1c9b8d4e7fa1b2c3d4e5f60718"

MADVISE_LINES = [
    ("1000", "Injecting memory failure for pfn 0x40028 at process virtual address 0x7f0000028000"),
    ("1001", "Memory failure: 0x40028: Sending SIGBUS to python3:411 due to hardware memory corruption"),
    ("1002", "Memory failure: 0x40028: recovery action for dax page: Recovered"),
]
MCE_E820_LINES = [
    ("2000", "mce: [Hardware Error]: Machine check events logged"),
    ("2001", "mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 9: bd000000000000c0"),
    ("2002", "mce: [Hardware Error]: RIP !INEXACT! 10:<ffffffff81000000> "),
    ("2003", "mce: [Hardware Error]: TSC 0 ADDR 40030000 MISC 86 "),
    ("2004", "Memory failure: 0x40030: recovery action for dax page: Failed"),
]


def test_madvise_hwpoison_is_one_page_with_its_outcome():
    events = ke.parse_kernel_lines(MADVISE_LINES, boot_id=BOOT)
    assert len(events) == 1
    ev = events[0]
    assert (ev["source"], ev["address"], ev["length"], ev["pfn"]) == ("memory_failure", 0x40028000, 4096, 0x40028)
    assert ev["outcome"] == "Recovered" and ev["page_type"] == "dax page"
    assert ev["key"] == "memory_failure:%s:0x40028" % BOOT
    assert "recovery action" in ev["message"]


def test_machine_check_gives_the_cache_line_not_the_whole_page():
    events = ke.finest(ke.parse_kernel_lines(MCE_E820_LINES, boot_id=BOOT))
    assert [(e["source"], e["address"], e["length"]) for e in events] == [("mce", 0x40030000, 512)]


def test_corrected_machine_check_is_not_poison():
    corrected = [("1", "mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 9: 9000000000000000"
                       " ADDR 40030000 MISC 86")]
    assert ke.parse_kernel_lines(corrected) == []


def test_mce_granule_from_misc():
    assert ke.mce_granule(0x86) == 512  # 64-byte granule: one sector, as the kernel's NFIT handler records
    assert ke.mce_granule(0x8C) == 4096
    assert ke.mce_granule(0x8A) == 1024
    assert ke.mce_granule(None) == 4096


def test_kmsg_records_and_continuations():
    data = ("6,1234,5000000,-;Memory failure: 0x40028: recovery action for dax page: Recovered\n"
            " SUBSYSTEM=memory\n"
            "4,1235,5000100,-;unrelated line\n")
    assert ke.parse_kmsg(data) == [("5000000", "Memory failure: 0x40028: recovery action for dax page: Recovered"),
                                   ("5000100", "unrelated line")]


def test_journal_keeps_each_records_boot():
    lines = "\n".join(json.dumps(r) for r in [
        {"MESSAGE": "Memory failure: 0x40028: recovery action for dax page: Recovered",
         "_BOOT_ID": "aaaa", "__REALTIME_TIMESTAMP": "1"},
        {"MESSAGE": list(b"Memory failure: 0x40029: recovery action for dax page: Failed"),
         "_BOOT_ID": "bbbb", "__REALTIME_TIMESTAMP": "2"},
        "not a dict",
    ]) + "\n{broken"
    events = ke.parse_kernel_lines(ke.parse_journal(lines))
    assert [(e["pfn"], e["boot_id"], e["outcome"]) for e in events] == [
        (0x40028, "aaaa", "Recovered"), (0x40029, "bbbb", "Failed")]


def test_hardware_corrupted_cross_check():
    assert ke.parse_meminfo_hwcorrupted("MemTotal: 1 kB\nHardwareCorrupted:     8 kB\n") == 8192
    assert ke.parse_meminfo_hwcorrupted("MemTotal: 1 kB\n") is None
    events = ke.parse_kernel_lines(MADVISE_LINES, boot_id=BOOT)
    assert ke.unexplained_bytes(4096, events, BOOT) == 0
    assert ke.unexplained_bytes(8192, events, BOOT) == 4096
    # an earlier boot's record does not explain this boot's counter
    old = ke.parse_kernel_lines(MADVISE_LINES, boot_id="earlier")
    assert ke.unexplained_bytes(4096, old, BOOT) == 4096


def test_rasdaemon_database(tmp_path):
    db = str(tmp_path / "ras-mc_event.db")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE memory_failure_event (id INTEGER PRIMARY KEY, timestamp TEXT, pfn TEXT, "
                 "page_type TEXT, action_result TEXT)")
    conn.execute("INSERT INTO memory_failure_event VALUES (1, '2026-12-01 10:00:00 +0000', '0x40028', "
                 "'dax page', 'Recovered')")
    conn.execute("CREATE TABLE mce_record (id INTEGER PRIMARY KEY, timestamp TEXT, addr INTEGER, misc INTEGER, "
                 "status INTEGER)")
    conn.execute("INSERT INTO mce_record VALUES (1, 't', %d, %d, %d)" % (0x40030000, 0x86, 0xbd000000000000c0 - (1 << 64)))
    conn.execute("INSERT INTO mce_record VALUES (2, 't', %d, %d, %d)" % (0x40031000, 0x86, 0x9000000000000000 - (1 << 64)))
    conn.commit()
    conn.close()
    rows = ke.read_rasdaemon(db)
    events = ke.rasdaemon_events(*rows)
    assert [(e["source"], e["address"], e["length"]) for e in events] == [
        ("rasdaemon", 0x40028000, 4096), ("rasdaemon", 0x40030000, 512)]


def _fixture_gather(name, events):
    root = fixture_root(name)
    return facts.gather_facts(sysfs_root=os.path.join(root, "sys"), proc_root=os.path.join(root, "proc"),
                              dev_root=os.path.join(root, "dev"), as_root=True, ledger_path=None,
                              events=events)


def _events(lines, boot=BOOT):
    return {"events": ke.finest(ke.parse_kernel_lines(lines, boot_id=boot)), "boot_id": boot,
            "hardware_corrupted": 4096, "sources_read": ["kmsg"], "warnings": []}


def test_memory_failure_without_list_entry_is_a_bad_range_in_every_coordinate():
    # stock-poison: e820 region1 at 0x40000000 holds ext4 -o dax on /dev/pmem1 (no partition).
    # A memory failure two pages past the listed page of /mnt/pmem1/victim: no list has it.
    pfn = (0x40000000 + 264200 * 512) // 4096 + 2
    lines = [("1", "Memory failure: %#x: recovery action for dax page: Recovered" % pfn)]
    got = _fixture_gather("stock-poison", _events(lines))
    assert got["clean"] is False
    mf = [r for r in got["bad_ranges"] if "memory_failure" in r["sources"]]
    assert len(mf) == 1
    rng = mf[0]
    assert rng["sources"] == ["memory_failure"] and rng["software_only"] is False
    assert (rng["region"], rng["blockdev"], rng["length"]) == ("region1", "pmem1", 4096)
    assert rng["absolute"] == pfn * 4096
    assert rng["blockdev_offset"] == pfn * 4096 - 0x40000000
    assert rng["filesystem"]["mountpoint"] == "/mnt/pmem1" and rng["filesystem"]["offset"] == pfn * 4096 - 0x40000000
    assert [e["outcome"] for e in rng["events"]] == ["Recovered"]
    assert got["event_sources"] == {"read": ["kmsg"], "hardware_corrupted": 4096, "events": 1}


def test_machine_check_inside_a_listed_page_merges_with_the_list_entry():
    addr = 0x40000000 + 264200 * 512 + 1024
    lines = [("1", "mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 9: bd000000000000c0"),
             ("2", "mce: [Hardware Error]: TSC 0 ADDR %x MISC 86 " % addr)]
    got = _fixture_gather("stock-poison", _events(lines))
    hit = [r for r in got["bad_ranges"] if r["region"] == "region1"]
    assert len(hit) == 1
    assert hit[0]["sources"] == ["blockdev", "mce"] and hit[0]["length"] == 4096
    assert hit[0]["software_only"] is False  # a machine check is evidence of real poison


def test_dram_event_is_not_a_pmem_range():
    lines = [("1", "Memory failure: 0x1234: recovery action for clean LRU page: Recovered")]
    got = _fixture_gather("stock-clean", _events(lines))
    assert got["bad_ranges"] == [] and got["clean"] is True


def test_event_without_root_is_a_warning_not_silence():
    pfn = 0x40028
    lines = [("1", "Memory failure: %#x: recovery action for dax page: Recovered" % pfn)]
    root = fixture_root("stock-clean")
    got = facts.gather_facts(sysfs_root=os.path.join(root, "sys"), proc_root=os.path.join(root, "proc"),
                             dev_root=os.path.join(root, "dev"), as_root=False, ledger_path=None,
                             events=_events(lines))
    assert any("could not be placed" in w and "root" in w for w in got["warnings"])


def test_gather_reads_kmsg_meminfo_and_warns_on_unexplained(tmp_path):
    proc = tmp_path / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "sys/kernel/random/boot_id").write_text("0f2e6a1c-9b8d-4e7f-a1b2-c3d4e5f60718\n")
    (proc / "meminfo").write_text("MemTotal: 2000000 kB\nHardwareCorrupted:    12 kB\n")
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "kmsg").write_text("3,10,100,-;Memory failure: 0x40028: recovery action for dax page: Recovered\n")
    got = ke.gather(proc_root=str(proc), dev_root=str(dev), journal=False, rasdaemon_db=None)
    assert got["boot_id"] == BOOT and got["sources_read"] == ["kmsg"]
    assert [e["pfn"] for e in got["events"]] == [0x40028]
    assert got["hardware_corrupted"] == 12288
    warning = ke.hardware_corrupted_warning(got)
    assert "8192 bytes" in warning and "HardwareCorrupted" in warning and "kmsg" in warning


def test_records_the_ledger_kept_from_this_boot_explain_hardware_corrupted():
    """The watcher wrote two memory failures of this boot into the ledger; the ring buffer has
    overwritten them since. They still explain the kernel's count: no false alarm. A record of an
    earlier boot explains nothing of this boot's counter."""
    gathered = {"events": [], "boot_id": BOOT, "hardware_corrupted": 8192, "sources_read": ["kmsg"]}
    this_boot = ["memory_failure:%s:0x40028" % BOOT, "mce:%s:0x40029200" % BOOT]
    assert ke.hardware_corrupted_warning(gathered, this_boot) is None
    assert "4096 bytes" in ke.hardware_corrupted_warning(gathered, this_boot[:1])
    assert "8192 bytes" in ke.hardware_corrupted_warning(gathered, ["memory_failure:earlier:0x40028"])


def test_gather_facts_counts_the_ledgers_records_against_hardware_corrupted(tmp_path):
    root = fixture_root("stock-clean")
    ledger_path = tmp_path / "ledger.json"
    entry = L.new_entry({"id": "phys@0x40028000+0x1000", "length": 4096,
                         "events": [{"key": "memory_failure:%s:0x40028" % BOOT}]},
                        {"kind": "file", "inode": 12, "file_offset": 0}, "2026-12-02T06:00:00Z")
    ledger_path.write_text(json.dumps(dict(L.empty_ledger("h"), entries=[entry])))
    gathered = {"events": [], "boot_id": BOOT, "hardware_corrupted": 8192, "sources_read": ["kmsg"], "warnings": []}

    def gather(path):
        return facts.gather_facts(sysfs_root=os.path.join(root, "sys"), proc_root=os.path.join(root, "proc"),
                                  dev_root=os.path.join(root, "dev"), as_root=True, ledger_path=path,
                                  events=dict(gathered))
    without = [w for w in gather(None)["warnings"] if "HardwareCorrupted" in w]
    with_ledger = [w for w in gather(str(ledger_path))["warnings"] if "HardwareCorrupted" in w]
    assert len(without) == 1 and "8192 bytes" in without[0]
    assert len(with_ledger) == 1 and "4096 bytes" in with_ledger[0]


def test_gather_reads_the_journal_too_and_counts_a_record_once(tmp_path):
    proc = tmp_path / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "sys/kernel/random/boot_id").write_text("0f2e6a1c-9b8d-4e7f-a1b2-c3d4e5f60718\n")
    dev = tmp_path / "dev"
    dev.mkdir()
    line = "Memory failure: 0x40028: recovery action for dax page: Recovered"
    (dev / "kmsg").write_text("3,10,100,-;%s\n" % line)
    journal = "\n".join(json.dumps({"MESSAGE": m, "_BOOT_ID": b, "__REALTIME_TIMESTAMP": "1"}) for m, b in [
        (line, BOOT),  # the same record, also in kmsg
        ("Memory failure: 0x40029: recovery action for dax page: Recovered", BOOT),  # kmsg overwrote it
        ("Memory failure: 0x40030: recovery action for dax page: Failed", "earlierboot")])
    got = ke.gather(proc_root=str(proc), dev_root=str(dev), journal=lambda: journal, rasdaemon_db=None)
    assert got["sources_read"] == ["kmsg", "journal"]
    assert [(e["pfn"], e["boot_id"]) for e in got["events"]] == [
        (0x40028, BOOT), (0x40029, BOOT), (0x40030, "earlierboot")]


def test_gather_without_kmsg_says_what_it_could_not_read(tmp_path):
    got = ke.gather(proc_root=str(tmp_path), dev_root=str(tmp_path), journal=lambda: None, rasdaemon_db=None)
    assert got["events"] == [] and got["sources_read"] == []
    assert any("kmsg" in w and "root" in w for w in got["warnings"])


def test_a_record_whose_entry_was_closed_no_longer_makes_the_host_unclean(tmp_path):
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
    pfn = (0x40000000 + 264200 * 512) // 4096 + 2
    lines = [("1", "Memory failure: %#x: recovery action for dax page: Recovered" % pfn)]
    events = _events(lines)
    first = _fixture_gather("stock-clean", events)
    rng = first["bad_ranges"][0]
    owner = {"kind": "file", "range_id": rng["id"], "device": "/dev/pmem1", "inode": 12, "file_offset": 0,
             "length": 4096}
    led, _changes = L.merge_detections(L.empty_ledger("h"), [{"range_id": rng["id"], "owners": [owner]}], [rng])
    ledger_path = str(tmp_path / "ledger.json")
    L.save(ledger_path, led)
    root = fixture_root("stock-clean")
    kw = dict(sysfs_root=os.path.join(root, "sys"), proc_root=os.path.join(root, "proc"),
              dev_root=os.path.join(root, "dev"), as_root=True, events=events, ledger_path=ledger_path)
    still_open = facts.gather_facts(**kw)
    assert still_open["clean"] is False and len(still_open["bad_ranges"]) == 1  # open entry, record present
    entry = L.close_entry(led["entries"][0], "accepted_lost", by="ops", why="scratch")
    L.save(ledger_path, L.replace_entry(led, entry))
    closed = facts.gather_facts(**kw)
    assert closed["bad_ranges"] == [] and closed["clean"] is True
    assert [r["id"] for r in closed["handled_records"]] == [rng["id"]]


def _journal_script(tmp_path, body):
    script = tmp_path / "journalctl"
    script.write_text("#!%s\nimport sys, time\n%s\n" % (sys.executable, body))
    script.chmod(0o755)
    return (str(script),)


def test_a_started_journal_query_gives_its_records_when_read(tmp_path):
    """The scan starts journalctl before it reads sysfs and reads the records after: what it
    reads is what journalctl printed, earlier boots included (they are placed like any other)."""
    record = {"MESSAGE": MADVISE_LINES[1][1], "__REALTIME_TIMESTAMP": "1700000000000000", "_BOOT_ID": "b" * 32}
    pending = ke.PendingJournal(argv=_journal_script(tmp_path, "print(%r)" % json.dumps(record)))
    text = pending()
    assert ke.parse_journal(text) == [("1700000000000000", MADVISE_LINES[1][1], "b" * 32)]
    assert pending() == text  # read once, kept


def test_a_journal_query_that_fails_or_hangs_reads_as_no_journal(tmp_path):
    # no journalctl, an error exit, a query past its timeout: no journal source, never a traceback
    assert ke.PendingJournal(argv=(str(tmp_path / "missing"),))() is None
    assert ke.PendingJournal(argv=_journal_script(tmp_path, "sys.exit(2)"))() is None
    hung = ke.PendingJournal(timeout=0.5, argv=_journal_script(tmp_path, "time.sleep(30)"))
    assert hung() is None
    assert hung._proc.returncode is not None  # killed and reaped, not left running


def test_a_cancelled_journal_query_leaves_no_process(tmp_path):
    pending = ke.PendingJournal(argv=_journal_script(tmp_path, "time.sleep(30)"))
    pending.cancel()
    assert pending._proc.returncode is not None
    assert pending() is None
