# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""reallocate on ext4 -o dax (e820): the file reads back good data but the poison stays listed (in
free space) and the ledger entry stays open saying so; device_write through the unmounted
partition clears it (every list empty, a free-space entry closed as cleared); the file entry is
then closed by a rewrite from the copy; the victim is byte-identical to its copy."""

import json

LEDGER = "/var/lib/pmem-poison/ledger.json"
VICTIM, BACKUP = "/mnt/pmem-ext4/victim", "/root/backup/ext4-victim"


def load(host, path):
    return json.loads(host.check_output("cat %s" % path))


def step(host, name):
    return load(host, "/root/clear-offline/%s.json" % name)


def entries(host):
    return load(host, LEDGER)["entries"]


def page_hashes(host, path):
    return host.check_output(
        "python3 -c \"import hashlib;d=open('%s','rb').read();print(' '.join(hashlib.sha256("
        "d[i:i+4096]).hexdigest() for i in range(0,len(d),4096)))\"" % path).split()


def nonempty(lists):
    return dict((k, v) for k, v in lists.items() if v.strip())


def test_reallocate_leaves_poison_in_free_space_entry_open(host):
    res = step(host, "reallocate")
    assert [a["action"] for a in res["plan"]][-1] == "reallocate"
    assert res["plan"][-1]["poison_may_remain"] is True
    state = step(host, "reallocate-state")
    # the file reads back the good data everywhere (page 2 included) ...
    assert state["files"][VICTIM]["pages"] == page_hashes(host, BACKUP)
    # ... but the range is still listed (the poison is in free space now)
    injected = load(host, "/etc/pmem-lab/clear-state.json")["injected"][0]
    listed = nonempty(state["lists"])
    assert list(listed) == ["/sys/block/%s/badblocks" % injected["device"]]
    assert "%d %d" % (injected["sector"], injected["sectors"]) in listed[
        "/sys/block/%s/badblocks" % injected["device"]]
    file_entry = [e for e in entries(host) if e["owner"].get("kind") == "file"]
    assert len(file_entry) == 1
    ev = [h for h in file_entry[0]["history"] if h["details"].get("method") == "reallocate"
          and h["event"] == "clear_failed"]
    assert ev, file_entry[0]["history"]
    d = ev[0]["details"]
    assert d["poison_remains_in_free_space"] is True and d["file_rewritten"] is True
    assert d["still_listed"] and d["source"] == BACKUP


def test_device_write_clears_unmounted_partition(host):
    res = step(host, "device_write")
    assert res["changed"] is True
    dw = [r for r in res["results"] if r["action"] == "device_write"]
    assert len(dw) == 1 and dw[0]["status"] == "cleared", res["results"]
    # through the ext4 device itself (a partition when the e820 disk is partitioned)
    ext4_dev = json.loads(host.check_output("cat /etc/pmem-lab/clear-state.json"))["ext4_device"]
    assert dw[0]["details"]["device"] == ext4_dev
    assert dw[0]["details"]["verified"] is True
    assert nonempty(step(host, "device_write-state")["lists"]) == {}
    free = [e for e in entries(host) if e["owner"].get("kind") == "free"]
    assert len(free) == 1 and free[0]["state"] == "closed"
    assert free[0]["closure"]["how"] == "not_file_data_cleared"


def test_file_entry_closed_after_restore_and_host_clean(host):
    res = step(host, "ext4-restore")
    assert [r["status"] for r in res["results"]] == ["cleared"]
    assert res["open_entries"] == []
    f = [e for e in entries(host) if e["owner"].get("kind") == "file"][0]
    assert f["state"] == "closed" and f["closure"]["how"] == "restored"
    assert f["closure"]["source"] == BACKUP
    events = [h["event"] for h in f["history"]]
    assert events.index("clear_failed") < events.index("restored")  # the history is kept
    assert page_hashes(host, VICTIM) == page_hashes(host, BACKUP)
    assert "dax" in " ".join(host.mount_point("/mnt/pmem-ext4").options)
    assert all(e["state"] == "closed" for e in entries(host))
