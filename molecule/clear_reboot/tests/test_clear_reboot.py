# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Across a cold reboot of the guest: the software badblock under the NVDIMM victim is gone, the
ledger is byte-identical and the file's xattr marker is unchanged; pmem_badblocks reports the host
not clean (the open entry) until the restore; after it the victim equals its copy and the host is
clean."""

import json

VICTIM, BACKUP = "/mnt/pmem-nvdimm/victim", "/root/backup/nvdimm-victim"
XATTR = "user.pmem_poison.lost_ranges"


def step(host, name):
    return json.loads(host.check_output("cat /root/clear-reboot/%s.json" % name))


def nonempty(lists):
    return dict((k, v) for k, v in lists.items() if v.strip())


def test_it_really_rebooted(host):
    before = host.check_output("cat /root/clear-reboot/boot_id").strip()
    now = host.check_output("cat /proc/sys/kernel/random/boot_id").strip()
    assert before and before != now


def test_record_and_marker_survive_badblocks_do_not(host):
    before, after = step(host, "before-reboot-state"), step(host, "after-reboot-state")
    assert nonempty(before["lists"]), "poison was not listed before the reboot"
    assert nonempty(after["lists"]) == {}  # software badblocks vanish with the reboot
    assert before["ledger_sha256"] and before["ledger_sha256"] == after["ledger_sha256"]
    marker = before["files"][VICTIM]["xattrs"][XATTR]
    assert json.loads(marker)["ranges"]
    assert after["files"][VICTIM]["xattrs"][XATTR] == marker
    # the kernel no longer knows the page is bad: it reads (whatever is there) without an error
    assert not any(p.startswith("error:") for p in after["files"][VICTIM]["pages"])


def test_not_clean_until_the_affirmative_step(host):
    facts = step(host, "facts-after-reboot")
    assert facts["bad_ranges"] == []
    assert facts["clean"] is False
    assert [e["owner"]["paths"] for e in facts["open_entries"]] == [[VICTIM]]
    restore = step(host, "nvdimm-restore")
    assert [r["status"] for r in restore["results"]] == ["cleared"]
    assert restore["open_entries"] == []
    after = step(host, "facts-after-restore")
    assert after["clean"] is True and after["open_entries"] == []
    assert host.check_output("sha256sum < %s" % VICTIM) == \
        host.check_output("sha256sum < %s" % BACKUP)
    led = json.loads(host.check_output("cat /var/lib/pmem-poison/ledger.json"))
    e = [x for x in led["entries"] if VICTIM in x["owner"]["paths"]][0]
    assert e["state"] == "closed" and e["closure"]["how"] == "restored"
    assert e["closure"]["source"] == BACKUP
