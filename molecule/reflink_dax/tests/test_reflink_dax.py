# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After converge (twice: idempotence): the three reflinked files on XFS -o dax are
byte-identical to their copies and no longer share the poisoned block, their entries are closed
as restored and their chmod containment released; the poison is still listed, now recorded as
free space (an open entry left for an offline window), not a failure."""

import json

LEDGER = "/var/lib/pmem-poison/ledger.json"
MNT = "/mnt/pmem-reflink"


def load(host, path):
    return json.loads(host.check_output("cat %s" % path))


def test_mounted_with_dax(host):
    opts = host.mount_point(MNT).options
    assert "dax" in opts or "dax=always" in opts, opts


def test_every_owner_restored_byte_identical_mode_back(host):
    for name in ("a", "b", "c"):
        path = "%s/%s" % (MNT, name)
        assert host.check_output("sha256sum < %s" % path).split()[0] == \
            host.check_output("sha256sum < /root/backup/reflink/%s" % name).split()[0]
        assert host.file(path).mode == 0o644, name


def test_entries_closed_restored_and_free_space_recorded(host):
    entries = load(host, LEDGER)["entries"]
    files = [e for e in entries if e["owner"]["kind"] == "file"]
    assert sorted(e["owner"]["paths"][0] for e in files) == ["%s/%s" % (MNT, n) for n in "abc"]
    for e in files:
        assert e["state"] == "closed" and e["closure"]["how"] == "restored", e["id"]
        assert not (e.get("containment") or {}), e["id"]
        planned = [h for h in e["history"] if h["event"] == "clear_planned"]
        assert [h["details"]["method"] for h in planned] == ["unshare"], e["id"]
    free = [e for e in entries if e["owner"]["kind"] == "free"]
    assert len(free) == 1 and free[0]["state"] == "open"


def test_poison_stays_listed_in_free_space(host):
    state = load(host, "/etc/pmem-lab/reflink-state.json")
    text = host.check_output("cat /sys/block/%s/badblocks" % state["device"])
    assert text.strip(), "the poison went away: it was never under a restored file any more"
