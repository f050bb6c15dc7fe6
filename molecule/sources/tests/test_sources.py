"""Verifier (testinfra) of the sources scenario: poison that only the kernel log knows of.

After converge + idempotence on the lab guest (no badblocks list ever held these pages):
- the watcher the role installed recorded a memory failure that happened after the converge, and
  the guest reboot that followed (before any converge) lost nothing;
- after that reboot the kernel has forgotten every record, and the host is still not clean;
- the page of the file with a copy is restored byte for byte and its entry closed as restored;
  the kernel log still holds its record, and that does not make it a bad range again;
- the file without a copy is recorded (open, marked) with the record's key in its history;
- the report on the controller lists it for a decision;
- on Linux 7.x the same failure also reached the ledger through what XFS pushes to the watcher:
  the health monitor's media error (an ``xfs_health`` record key on the entry) and its data-lost
  event, and fanotify FAN_FS_ERROR naming the inode (ledger warnings).
"""

import json
import os

import pytest

LAYOUT = "/etc/pmem-mf/layout.json"
LEDGER = "/var/lib/pmem-poison/ledger.json"
RESTORED = "/mnt/pmem-mf/db/table.dat"
WATCHED = "/mnt/pmem-mf/db/index.dat"
LOST = "/mnt/pmem-mf/logs/app.log"


def _json(host, path):
    return json.loads(host.file(path).content_string)


def _entries_for(host, path):
    return [e for e in _json(host, LEDGER)["entries"] if path in (e["owner"].get("paths") or [])]


def test_the_kernel_saw_it_and_no_list_did(host):
    layout = _json(host, LAYOUT)
    assert layout["hardware_corrupted_kb"] >= 8
    assert len(layout["pfns"]) == 2
    for line in host.run("cat /sys/block/pmem*/badblocks").stdout.splitlines():
        assert not line.strip(), line


def test_after_the_reboot_the_kernel_forgot_but_the_host_is_not_clean(host):
    # verify runs after side_effect's reboot: the ring buffer (and the lab's volatile journal) no
    # longer hold the records, so no source shows a bad range; the ledger still knows
    out = host.ansible("pmem.poison.pmem_badblocks", "", become=True, check=False)
    pmem = out["ansible_facts"]["pmem"]
    assert "kmsg" in pmem["event_sources"]["read"]
    assert pmem["bad_ranges"] == [] and pmem["handled_records"] == []
    assert pmem["clean"] is False
    open_paths = sorted(p for e in pmem["open_entries"] for p in e["owner"].get("paths") or [])
    assert open_paths == sorted([LOST, WATCHED])
    assert pmem["watcher"]["running"] is True
    assert pmem["watcher"]["installed"] == pmem["watcher"]["current"]


def test_file_with_a_copy_is_restored_and_closed(host):
    layout = _json(host, LAYOUT)
    # read before side_effect's reboot (the e820 pmem filesystem does not survive it)
    assert host.file("/root/restored.sha256").content_string.strip() == layout["files"][RESTORED]["sha256"]
    entries = _entries_for(host, RESTORED)
    assert len(entries) == 1, [e["id"] for e in entries]
    e = entries[0]
    assert e["state"] == "closed" and e["closure"]["how"] == "restored"
    assert e["owner"]["file_offset"] == layout["files"][RESTORED]["file_offset"]
    detected = e["history"][0]
    assert detected["event"] == "detected" and detected["details"]["sources"] == ["memory_failure"]
    assert detected["details"]["events"][0].startswith("memory_failure:")
    # idempotence ran a second converge: the record read again did not reopen the entry
    assert [h["event"] for h in e["history"]].count("detected") == 1


def test_file_without_a_copy_is_recorded_open_and_marked(host):
    layout = _json(host, LAYOUT)
    entries = _entries_for(host, LOST)
    assert len(entries) == 1, [e["id"] for e in entries]
    e = entries[0]
    assert e["state"] == "open"
    assert e["owner"]["kind"] == "file" and e["owner"]["file_offset"] == layout["files"][LOST]["file_offset"]
    assert e["range"]["sources"] == ["memory_failure"]
    assert e["id"] in host.file("/root/lost.marker").content_string  # the xattr, read before the reboot


def test_report_lists_the_decision():
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    assert eph, "MOLECULE_EPHEMERAL_DIRECTORY is not set (run through molecule)"
    with open(os.path.join(eph, "report", "pmem-poison-report.json")) as f:
        report = json.load(f)
    assert report["totals"]["failed"] == 0
    assert sorted(p for e in report["decisions"] for p in e["paths"]) == [LOST]


def test_the_watcher_recorded_a_failure_no_converge_saw_and_the_reboot_kept_it(host):
    before = json.loads(host.file("/root/ledger-before-reboot.json").content_string)
    now = _json(host, LEDGER)
    watched = [e for e in before["entries"] if WATCHED in (e["owner"].get("paths") or [])]
    assert len(watched) == 1, [e["id"] for e in before["entries"]]
    e = watched[0]
    assert e["state"] == "open" and e["owner"]["kind"] == "file" and e["owner"]["file_offset"] == 3 * 4096
    assert e["owner"]["inode"] == int(host.file("/root/watch-victim.ino").content_string.strip())
    # the watcher records and nothing else: no quarantine, no clear (on 7.x a pushed event read
    # one pass after the kernel log's lines adds a second "detected")
    assert [h["event"] for h in e["history"]][:2] == ["detected", "resolved"]
    assert set(h["event"] for h in e["history"]) == {"detected", "resolved"}
    assert e["history"][0]["details"]["events"][0].startswith("memory_failure:")
    # after the reboot the record is still there, unchanged
    assert [x for x in now["entries"] if x["id"] == e["id"]] == [e]


def test_the_watcher_runs_again_after_the_reboot(host):
    svc = host.service("pmem-poison-watch")
    assert svc.is_enabled and svc.is_running
    state = _json(host, "/run/pmem-poison/watch.json")
    assert state["passes"] >= 1 and state["last_error"] is None
    assert host.file("/usr/local/lib/pmem-poison/watch/VERSION").content_string.strip() == state["version"]


def test_on_7x_xfs_pushed_the_failure_through_the_watcher(host):
    if int(host.run("uname -r").stdout.split(".")[0]) < 7:
        pytest.skip("the XFS health monitor and XFS FAN_FS_ERROR are Linux 7.0+")
    before = json.loads(host.file("/root/ledger-before-reboot.json").content_string)
    ino = int(host.file("/root/watch-victim.ino").content_string.strip())
    (e,) = [x for x in before["entries"] if WATCHED in (x["owner"].get("paths") or [])]
    keys = [k for h in e["history"] if h["event"] == "detected" for k in h["details"].get("events") or []]
    # the health monitor's media error, placed at the page's address like a list entry
    assert any(k.startswith("xfs_health:") for k in keys), keys
    assert any(k.startswith("memory_failure:") for k in keys), keys
    warnings = before.get("warnings") or []
    assert any(w["source"] == "xfs_health" and "datalost on inode %d" % ino in w["message"]
               and "file offset %d" % (3 * 4096) in w["message"] for w in warnings), warnings
    assert any(w["source"] == "fs_error" and "inode %d" % ino in w["message"] for w in warnings), warnings
    # and the ledger kept them across the reboot
    assert _json(host, LEDGER)["warnings"][:len(warnings)] == warnings


def _hc_warnings(scan):
    return [w for w in scan.get("warnings") or [] if "HardwareCorrupted" in w]


def test_hardware_corrupted_that_no_source_explains_is_a_warning(host):
    """side_effect, before the reboot: one RAM page poisoned besides the three pmem pages. While
    the kernel log has every record, nothing is unexplained; once the ring buffer and the journal
    forgot them, the ledger's records still explain the pmem pages and exactly the RAM page is
    left: one warning naming 4096 bytes, in the module's warnings and in the facts."""
    scans = _json(host, "/root/hc-scans.json")
    assert _hc_warnings(scans["logged"]) == [], scans["logged"].get("warnings")
    forgotten = _hc_warnings(scans["forgotten"])
    assert len(forgotten) == 1 and "4096 bytes" in forgotten[0], scans["forgotten"].get("warnings")
    assert forgotten == _hc_warnings(scans["forgotten"]["ansible_facts"]["pmem"])
