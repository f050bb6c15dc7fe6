"""Verifier (testinfra) of the default scenario: after converge + idempotence on the lab guest,

- the file with a restore source holds its original bytes again (sha256 before the poison) and its
  range left the badblocks list;
- every other poisoned file is marked (xattr user.pmem_poison.lost_ranges naming its ledger entry),
  still reads EIO and its range is still listed;
- the ledger records one entry closed as restored and five open ones (four files, free space);
- the fleet report on the controller lists what needs a decision and an offline window.
"""

import json
import os

LAYOUT = "/etc/pmem-demo/layout.json"
LEDGER = "/var/lib/pmem-poison/ledger.json"
RESTORED = "/mnt/pmem-xfs/db/table.dat"
BACKUP = "/srv/backup/db/table.dat"
LOST = ["/mnt/pmem-xfs/logs/app.log", "/mnt/pmem-xfs/vm/base.img", "/mnt/pmem-xfs/vm/clone.img",
        "/mnt/pmem-ext4/scratch/results.bin"]
MARKER = "user.pmem_poison.lost_ranges"


def _json(host, path):
    return json.loads(host.file(path).content_string)


def _listed(host, device, sector):
    text = host.file("/sys/block/%s/badblocks" % device).content_string
    for line in text.splitlines():
        start, count = (int(x) for x in line.split())
        if start <= sector < start + count:
            return True
    return False


def _ledger(host):
    return _json(host, LEDGER)


def test_restored_file_is_byte_identical(host):
    layout = _json(host, LAYOUT)
    want = layout["sha256"][RESTORED]  # taken before the poison was injected
    assert host.file(RESTORED).sha256sum == want
    assert host.file(BACKUP).sha256sum == want


def test_restored_file_carries_no_lost_marker(host):
    # it was marked "lost" by the quarantine step of the same run; good data again, no marker
    cmd = host.run("getfattr --absolute-names -n %s %s", MARKER, RESTORED)
    assert cmd.rc != 0 and "No such attribute" in cmd.stderr, (cmd.stdout, cmd.stderr)


def test_restored_range_left_the_list(host):
    p = _json(host, LAYOUT)["poison"][RESTORED]
    assert not _listed(host, p["device"], p["sector"])


def test_lost_files_still_listed_and_unreadable(host):
    poison = _json(host, LAYOUT)["poison"]
    for path in LOST:
        p = poison.get(path) or poison["/mnt/pmem-xfs/vm/base.img"]  # clone.img shares base.img's block
        assert _listed(host, p["device"], p["sector"]), path
        cmd = host.run("cat %s >/dev/null", path)
        assert cmd.rc != 0 and "Input/output error" in cmd.stderr, (path, cmd.stderr)


def test_free_range_still_listed(host):
    p = _json(host, LAYOUT)["poison"]["free"]
    assert _listed(host, p["device"], p["sector"])


def test_markers_name_the_open_entries(host):
    open_ids = set(e["id"] for e in _ledger(host)["entries"] if e["state"] == "open")
    for path in LOST:
        cmd = host.run("getfattr --absolute-names --only-values -n %s %s", MARKER, path)
        assert cmd.rc == 0, (path, cmd.stderr)
        text = cmd.stdout
        assert any(eid in text for eid in open_ids), (path, text)


def test_ledger_record(host):
    f = host.file(LEDGER)
    assert f.user == "root" and f.mode == 0o600
    assert host.file(os.path.dirname(LEDGER)).mode == 0o700
    entries = _ledger(host)["entries"]
    closed = [e for e in entries if e["state"] == "closed"]
    opened = [e for e in entries if e["state"] == "open"]
    assert len(closed) == 1, [e["id"] for e in closed]
    c = closed[0]
    assert c["owner"]["paths"] == [RESTORED]
    assert c["closure"]["how"] == "restored"
    assert c["closure"]["source"] == BACKUP
    events = [h["event"] for h in c["history"]]
    assert events.index("clear_planned") < events.index("cleared")  # write-ahead
    kinds = sorted(e["owner"]["kind"] for e in opened)
    assert kinds == ["file", "file", "file", "file", "free"], kinds
    paths = sorted(p for e in opened for p in e["owner"].get("paths") or [])
    assert paths == sorted(LOST)
    shared = [e for e in opened if e["owner"].get("shared")]
    assert sorted(e["owner"]["paths"][0] for e in shared) == ["/mnt/pmem-xfs/vm/base.img",
                                                              "/mnt/pmem-xfs/vm/clone.img"]
    for e in opened:
        if e["owner"]["kind"] == "file":
            assert "quarantined" in [h["event"] for h in e["history"]], e["id"]


def test_fleet_report_on_controller():
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    assert eph, "MOLECULE_EPHEMERAL_DIRECTORY is not set (run through molecule)"
    with open(os.path.join(eph, "report", "pmem-poison-report.json")) as f:
        report = json.load(f)
    assert report["totals"]["failed"] == 0
    assert sorted(p for e in report["decisions"] for p in e["paths"]) == sorted(LOST)
    assert all(e["quarantined"] for e in report["decisions"])
    assert [e["kind"] for e in report["offline_window"]] == ["free"]
    assert report["totals"]["lost_bytes"] == 4 * 4096
