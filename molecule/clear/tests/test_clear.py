# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After converge (twice: idempotence): the e820 victims on XFS and ext4 (both -o dax) are
byte-identical to their known-good copies, every list is empty for them, their entries are closed
as restored with the checksum of what was written; the QEMU NVDIMM refused with a message naming
device, range and next step, its entry is open and its file marked, nothing was written there;
the check-mode run changed nothing (ledger, files, lists byte-identical)."""

import hashlib
import json

LEDGER = "/var/lib/pmem-poison/ledger.json"


def load(host, path):
    return json.loads(host.check_output("cat %s" % path))


def run(host, n, name):
    return load(host, "/root/clear-runs/%d/%s.json" % (n, name))


def entries_for(host, path):
    return [e for e in load(host, LEDGER)["entries"] if path in (e["owner"].get("paths") or [])]


def sha256_of(host, path):
    return host.check_output("sha256sum < %s" % path).split()[0]


def test_e820_victims_restored_byte_identical(host):
    for fs in ("xfs", "ext4"):
        victim, backup = "/mnt/pmem-%s/victim" % fs, "/root/backup/%s-victim" % fs
        opts = host.mount_point("/mnt/pmem-%s" % fs).options
        assert "dax" in opts or "dax=always" in opts, opts
        assert sha256_of(host, victim) == sha256_of(host, backup)
        es = entries_for(host, victim)
        assert es, "no ledger entry for %s" % victim
        for e in es:
            assert e["state"] == "closed" and e["closure"]["how"] == "restored"
            assert e["closure"]["source"] == backup
            # the checksum recorded is that of the page written (page 2 of the backup)
            page = host.check_output("dd if=%s bs=4096 skip=2 count=1 2>/dev/null | sha256sum"
                                     % backup).split()[0]
            assert e["closure"]["sha256"] == page
            cleared = [h for h in e["history"] if h["event"] == "cleared"]
            assert cleared and cleared[-1]["details"]["verified"] is True


def test_e820_lists_empty(host):
    state = load(host, "/etc/pmem-lab/clear-state.json")
    nv_list = "/sys/block/%s/badblocks" % state["nvdimm"]
    e820_disks = set(i["device"] for i in state["injected"] if i["bus"] == "e820")
    assert len(e820_disks) >= 1
    for disk in e820_disks:
        assert host.file("/sys/block/%s/badblocks" % disk).content_string.strip() == ""
    after = run(host, 1, "after-clear")
    for path, text in after["lists"].items():
        if path != nv_list:
            assert text.strip() == "", path  # every other list (regions too) is empty


def test_nvdimm_refused_nothing_lost(host):
    state = load(host, "/etc/pmem-lab/clear-state.json")
    nv = state["nvdimm"]
    victim = "/mnt/pmem-nvdimm/victim"
    result = run(host, 1, "result")  # registered with failed_when: false, so no "failed" key
    msg = result["msg"]
    assert [a for a in result["plan"] if a["action"] == "refuse"], result["plan"]
    es = entries_for(host, victim)
    assert es and all(e["state"] == "open" for e in es)
    range_id = es[0]["range"]["id"]
    assert nv in msg and range_id in msg, msg
    assert "cannot clear" in msg and "Next step:" in msg, msg
    # refused in the plan: no write was attempted (nothing planned, nothing failed)
    assert all(not set(h["event"] for h in e["history"]) & {"clear_planned", "clear_failed"}
               for e in es)
    # still listed, still unreadable there, the marker names the range
    assert host.file("/sys/block/%s/badblocks" % nv).content_string.strip() != ""
    pages = run(host, 2, "after-clear")["files"][victim]["pages"]
    assert pages[2].startswith("error:"), pages[:3]
    marker = json.loads(run(host, 2, "after-clear")["files"][victim]["xattrs"]
                        ["user.pmem_poison.lost_ranges"])
    assert range_id in json.dumps(marker)
    # the rest of the file is intact
    backup = host.check_output("python3 -c \"import hashlib,sys;d=open('/root/backup/"
                               "nvdimm-victim','rb').read();print(' '.join(hashlib.sha256("
                               "d[i:i+4096]).hexdigest() for i in range(0,len(d),4096)))\"")
    good = backup.split()
    assert [p for i, p in enumerate(pages) if i != 2] == [g for i, g in enumerate(good) if i != 2]


def test_check_mode_byte_identical(host):
    for n in (1, 2):
        before, after = run(host, n, "before-check"), run(host, n, "after-check")
        assert before == after
    first = run(host, 1, "before-check")
    assert first["ledger_sha256"] is None and first["ledger_dir"] is None  # created nothing
    assert any(p.startswith("error:") for f in first["files"].values() for p in f["pages"])
    plan = run(host, 1, "plan")
    actions = [a["action"] for a in plan["plan"]]
    assert actions.count("rewrite") == 2 and "refuse" in actions, actions


def test_second_run_changed_nothing(host):
    assert run(host, 2, "result")["changed"] is False
    assert run(host, 1, "after-clear")["ledger_sha256"] == run(host, 2, "after-clear")["ledger_sha256"]
    assert hashlib.sha256(host.file(LEDGER).content).hexdigest() == \
        run(host, 2, "after-clear")["ledger_sha256"]
