# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 10, item 4: after every pmem device was renamed, the ledger still has one entry per
physical range (same ids, markers unchanged), and accepting the loss of a raw range recorded under
the old names writes zeros to exactly that range of the device that holds it: every other byte of
every pmem block device (hashed from outside the guest, per 4 KiB block) is unchanged, including
the partition that now carries the range's old name. Check mode and a repeated run change nothing.
"""

import hashlib
import json
import os

BLOCK = 4096
VICTIMS = ("/mnt/pmem-xfs/victim", "/mnt/pmem-nvdimm/victim")
XATTR = "user.pmem_poison.lost_ranges"
OUT_DIR = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"), "rename")


# sha256 of 4 KiB blocks of a block device as the guest reads it (O_DIRECT: no page cache)
READ_BLOCKS = ("import hashlib,json,mmap,os,sys;fd=os.open(sys.argv[1],os.O_RDONLY|os.O_DIRECT);"
               "buf=mmap.mmap(-1,4096);out=[]\n"
               "for b in map(int,sys.argv[2:]):\n"
               " os.preadv(fd,[buf],b*4096);out.append(hashlib.sha256(buf).hexdigest())\n"
               "print(json.dumps(out))")


def load(host, path):
    return json.loads(host.check_output("cat %s" % path))


def step(host, name):
    return load(host, "/root/rename/%s.json" % name)


def prepared(host):
    return load(host, "/etc/pmem-lab/rename-state.json")


def hashes(step_name):
    with open(os.path.join(OUT_DIR, "%s-hashes.json" % step_name)) as f:
        return json.load(f)


def block_digests(step_name, identity):
    with open(os.path.join(OUT_DIR, "%s-%s.bin" % (step_name, identity.replace("/", "_"))),
              "rb") as f:
        data = f.read()
    return [data[i:i + 32] for i in range(0, len(data), 32)]


def raw_injection(host):
    found = [i for i in prepared(host)["injected"] if not i["file"]]
    assert len(found) == 1
    return found[0]


def nonempty(lists):
    return dict((k, v) for k, v in lists.items() if v.strip())


def test_every_device_name_moved(host):
    ren = step(host, "rename")
    before = dict((d["identity"], n) for n, d in ren["devices_before"].items())
    after = dict((d["identity"], n) for n, d in ren["devices_after"].items())
    assert len(before) == 3 and set(before) == set(after)
    assert all(before[i] != after[i] for i in before), (before, after)
    # the raw range's old partition name now belongs to the other e820 device (the decoy)
    raw = raw_injection(host)
    old_partition = raw["device"] + "p2"
    holder = [d["identity"] for d in ren["devices_after"].values()
              if old_partition in d["partitions"]]
    assert holder and holder[0] != raw["identity"]
    # the kernel dropped the software badblocks with the old disks (hence the re-injection)
    assert nonempty(ren["lists_after_rebind"]) == {}


def test_poison_listed_again_at_the_same_physical_places(host):
    ren = step(host, "rename")
    first = prepared(host)["injected"]
    again = ren["reinjected"]
    assert [(i["identity"], i["sector"], i["sectors"]) for i in first] == \
        [(i["identity"], i["sector"], i["sectors"]) for i in again]
    assert [i["device"] for i in first] != [i["device"] for i in again]


def test_same_entries_and_markers_after_the_rename(host):
    recorded, relisted = step(host, "recorded-ledger"), step(host, "relisted-ledger")
    ids = [e["id"] for e in recorded["entries"]]
    assert len(ids) == 3, ids  # one entry per poisoned range
    assert sorted(e["owner"]["kind"] for e in recorded["entries"]) == ["file", "file", "raw"]
    assert [e["id"] for e in relisted["entries"]] == ids  # no new entry for the same bytes
    assert all(e["state"] == "open" for e in relisted["entries"])
    ren = step(host, "rename")
    identity_of = dict((n, d["identity"]) for n, d in ren["devices_before"].items())
    name_now = dict((d["identity"], n) for n, d in ren["devices_after"].items())
    for a, b in zip(recorded["entries"], relisted["entries"]):
        assert a["range"]["id"] == b["range"]["id"]
        assert a["range"].get("identity") == b["range"].get("identity")
        # the record names the device that holds the bytes now; the history keeps the old name
        assert b["range"]["blockdev"] == name_now[identity_of[a["range"]["blockdev"]]], (a["range"], b["range"])
        renames = [h["details"]["renamed"] for h in b["history"] if "renamed" in (h.get("details") or {})]
        assert renames and renames[-1]["blockdev"]["old"] == a["range"]["blockdev"]
    before, after = step(host, "recorded-state"), step(host, "relisted-state")
    for path in VICTIMS:
        marker = before["files"][path]["xattrs"][XATTR]
        assert json.loads(marker)["ranges"]
        assert after["files"][path]["xattrs"][XATTR] == marker
    assert len(nonempty(after["lists"])) >= 3  # all three listed again (block devices)


def test_check_mode_changes_nothing(host):
    relisted, checked = step(host, "relisted-state"), step(host, "checked-state")
    assert checked["ledger_sha256"] == relisted["ledger_sha256"]
    assert checked["lists"] == relisted["lists"]
    assert checked["files"] == relisted["files"]
    assert hashes("checked") == hashes("before")


def test_accepted_loss_wrote_only_the_recorded_range_of_the_right_device(host):
    raw = raw_injection(host)
    before, after = hashes("before"), hashes("accepted")
    assert set(before) == set(after) and raw["identity"] in before
    for identity in before:
        if identity != raw["identity"]:
            assert after[identity]["sha256"] == before[identity]["sha256"], identity
    first = raw["sector"] * 512 // BLOCK
    last = ((raw["sector"] + raw["sectors"]) * 512 - 1) // BLOCK
    old, new = block_digests("before", raw["identity"]), block_digests("accepted", raw["identity"])
    changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    assert changed == list(range(first, last + 1))
    zeros = hashlib.sha256(b"\0" * BLOCK).digest()
    assert all(new[i] == zeros for i in changed)
    assert all(old[i] != zeros for i in changed)  # it held the random data before


def test_the_raw_entry_closed_the_others_stay_open(host):
    led = step(host, "accepted-ledger")
    raw = [e for e in led["entries"] if e["owner"]["kind"] == "raw"]
    assert len(raw) == 1 and raw[0]["state"] == "closed"
    assert raw[0]["closure"]["how"] == "accepted_lost"
    files = [e for e in led["entries"] if e["owner"]["kind"] == "file"]
    assert len(files) == 2 and all(e["state"] == "open" for e in files)
    lists = step(host, "accepted-state")["lists"]
    inj = raw_injection(host)
    now = step(host, "rename")["devices_after"]
    name = [n for n, d in now.items() if d["identity"] == inj["identity"]][0]
    assert "%d %d" % (inj["sector"], inj["sectors"]) not in lists["/sys/block/%s/badblocks" % name]
    for other in step(host, "rename")["reinjected"]:
        if other["file"]:
            assert "%d %d" % (other["sector"], other["sectors"]) in \
                lists["/sys/block/%s/badblocks" % other["device"]]


def test_the_hashes_are_of_the_block_devices(host):
    """The dumps read outside the guest are what the guest reads from each block device."""
    raw = raw_injection(host)
    target = raw["sector"] * 512 // BLOCK
    for name, dev in step(host, "rename")["devices_after"].items():
        blocks = list(range(16)) + ([target] if dev["identity"] == raw["identity"] else [])
        guest = json.loads(host.check_output(
            "python3 -c '%s' /dev/%s %s" % (READ_BLOCKS, name, " ".join(map(str, blocks)))))
        digests = block_digests("accepted", dev["identity"])
        assert guest == [digests[b].hex() for b in blocks], name


def test_repeated_converge_changes_nothing(host):
    accepted, again = step(host, "accepted-state"), step(host, "again-state")
    assert again["ledger_sha256"] == accepted["ledger_sha256"]
    assert again["lists"] == accepted["lists"] and again["files"] == accepted["files"]
