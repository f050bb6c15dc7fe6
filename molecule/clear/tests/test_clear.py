# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After converge: e820 victims byte-identical to their backups, lists empty, entries closed as
restored; the QEMU NVDIMM refused (clear error naming it) and its entry is open, file marked."""

import json

LEDGER = "/var/lib/pmem-poison/ledger.json"


def ledger(host):
    return json.loads(host.check_output("cat %s" % LEDGER))


def entries_for(host, path):
    return [e for e in ledger(host)["entries"] if path in (e["owner"].get("paths") or [])]


def test_e820_victims_restored(host):
    for fs in ("xfs", "ext4"):
        victim, backup = "/mnt/pmem-%s/victim" % fs, "/root/backup/%s-victim" % fs
        assert host.check_output("sha256sum < %s" % victim) == \
            host.check_output("sha256sum < %s" % backup)
        es = entries_for(host, victim)
        assert es and all(e["state"] == "closed" and e["closure"]["how"] == "restored" for e in es)


def test_e820_lists_empty(host):
    layout = json.loads(host.check_output("cat /etc/pmem-lab/layout.json"))
    disk = layout["mounts"]["pmem-xfs"]["disk"]
    assert host.file("/sys/block/%s/badblocks" % disk).content_string.strip() == ""


def test_nvdimm_refused_nothing_lost(host):
    if not host.file("/mnt/pmem-nvdimm/victim").exists:
        return
    result = json.loads(host.check_output("cat /root/pmem-clear-result.json"))
    assert result.get("failed") is True
    assert "cannot clear" in result["msg"]
    es = entries_for(host, "/mnt/pmem-nvdimm/victim")
    assert es and all(e["state"] == "open" for e in es)
    assert all("clear_planned" not in [h["event"] for h in e["history"]] for e in es)
    marker = host.check_output("getfattr --only-values -n user.pmem_poison.lost_ranges "
                               "/mnt/pmem-nvdimm/victim || python3 -c \"import os;"
                               "print(os.getxattr('/mnt/pmem-nvdimm/victim',"
                               "'user.pmem_poison.lost_ranges').decode())\"")
    assert json.loads(marker)["ranges"]
