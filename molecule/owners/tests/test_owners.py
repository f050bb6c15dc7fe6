# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Owners the older scenarios never laid out (issue 10 items 1-3), on XFS reflink+rmapbt -o dax
(whole e820 device) and ext4 -o dax (e820 p1). Round 1 (prepare.yml, saved in
/root/owners-round1.json): check mode, then copies for x, y, sector, farm/a and farm/b, then the
same run again. Round 2 (converge.yml, twice through molecule's idempotence step): a copy for every
owner. Ground truth: the injection record (files/setup.sh), the guest's stat, the backup copies."""

import json

import pytest

LEDGER = "/var/lib/pmem-poison/ledger.json"
XFS = "/mnt/pmem-xfs"
EXT4 = "/mnt/pmem-ext4"
FARM = ["%s/farm/%s" % (XFS, n) for n in ("a", "b", "c")]


def _json(host, path):
    return json.loads(host.check_output("cat %s" % path))


@pytest.fixture(scope="module")
def state(host):
    return _json(host, "/etc/pmem-lab/owners-state.json")


@pytest.fixture(scope="module")
def round1(host):
    return _json(host, "/root/owners-round1.json")


@pytest.fixture(scope="module")
def ledger(host):
    return _json(host, LEDGER)["entries"]


def _sha(host, path):
    return host.check_output("sha256sum < %s" % path).split()[0]


def _on(entries, inj):
    """Entries whose range is the injected one (whole-device bytes)."""
    return [e for e in entries
            if (e["range"].get("blockdev") or "").rsplit("/", 1)[-1] == inj["device"]
            and e["range"].get("blockdev_offset") == inj["offset"]]


def _by_path(entries, path):
    return [e for e in entries if path in (e["owner"].get("paths") or [])]


def _events(entry, name):
    return [h for h in entry["history"] if h["event"] == name]


def _ino(host, path):
    return int(host.check_output("stat -c %%i %s" % path))


# --- check mode (round 1: before anything was recorded) -----------------------------------------

def test_check_mode_changed_nothing_and_said_what_it_would_do(round1):
    check = round1["check"]
    assert check["before"] == check["after"]
    assert "no ledger" in check["before"]
    rewrites = {a["path"] for a in check["plan"] if a["action"] == "rewrite"}
    assert {"%s/x" % EXT4, "%s/y" % EXT4, "%s/sector" % XFS} <= rewrites, check["plan"]
    # metadata is never planned as a file rewrite or zeros
    for a in check["plan"]:
        if a["action"] in ("rewrite", "device_write", "accept_loss"):
            assert not (a.get("path") or "").startswith(("%s/dir" % XFS, "%s/links" % XFS,
                                                         "%s/links" % EXT4)), a


# --- item 1: directory and symlink blocks are metadata --------------------------------------------

@pytest.mark.parametrize("name, what", [("dir", "directory"), ("xfs_symlink", "symlink"),
                                        ("ext4_symlink", "symlink")])
def test_metadata_block_is_metadata_with_an_offline_plan(round1, ledger, state, name, what):
    inj = state["injected"][name]
    (entry,) = _on(ledger, inj)
    owner = entry["owner"]
    assert owner["kind"] == "metadata" and owner["metadata_kind"] == what, owner
    assert owner["inode"] == state["inodes"][name], owner
    assert entry["state"] == "open", entry["id"]
    planned = [a for a in round1["first"]["clear"]["plan"] if a["entry_id"] == entry["id"]]
    assert [a["action"] for a in planned] == ["offline_required"], planned
    steps = " ".join(str(s) for s in planned[0].get("steps") or [])
    fsck = "xfs_repair" if name != "ext4_symlink" else "e2fsck"
    assert fsck in steps, planned
    # nothing wrote over it: the poison is still listed, the entry was never cleared
    assert not _events(entry, "cleared") and not _events(entry, "restored"), entry["history"]


def test_report_and_failure_say_metadata(round1, ledger, state):
    """The host fails (an offline window is needed) naming each metadata range as metadata."""
    ids = {e["id"] for n in ("dir", "xfs_symlink", "ext4_symlink") for e in _on(ledger, state["injected"][n])}
    result = round1["first"]["result"]
    assert ids <= {e["id"] for e in result["needs_offline_window"]}, result["needs_offline_window"]
    failure = round1["first"]["failure"]
    assert "filesystem metadata (directory" in failure and "filesystem metadata (symlink" in failure
    assert "xfs_repair /dev/pmem" in failure and "e2fsck" in failure, failure
    for path in ("%s/x" % EXT4, "%s/y" % EXT4, "%s/sector" % XFS, "%s/farm" % XFS):
        assert path not in failure, failure  # restored files, or files waiting for a copy


# --- item 2: one range across two files, one unaligned sector -------------------------------------

def test_straddle_both_files_restored_and_closed(host, round1, state):
    inj = state["injected"]["straddle"]
    entries = _on(round1["ledger"]["entries"], inj)
    assert sorted(e["owner"]["paths"][0] for e in entries) == ["%s/x" % EXT4, "%s/y" % EXT4]
    x, = _by_path(entries, "%s/x" % EXT4)
    y, = _by_path(entries, "%s/y" % EXT4)
    assert (x["owner"]["file_offset"], x["owner"]["length"]) == (12288, 4096), x["owner"]
    assert (y["owner"]["file_offset"], y["owner"]["length"]) == (0, 4096), y["owner"]
    for e in (x, y):
        assert e["owner"]["kind"] == "file"
        assert e["state"] == "closed" and e["closure"]["how"] == "restored", e["id"]
        assert not _events(e, "clear_failed"), e["history"]
    for n in ("x", "y"):
        assert _sha(host, "%s/%s" % (EXT4, n)) == _sha(host, "/root/backup/ext4/%s" % n)
        assert host.file("%s/%s" % (EXT4, n)).mode == 0o644
    text = json.dumps(round1["first"]["clear"])
    assert "did not clear" not in text


def test_unaligned_sector_is_one_file_range_restored(host, round1, state):
    inj = state["injected"]["sector"]
    (entry,) = _on(round1["ledger"]["entries"], inj)
    owner = entry["owner"]
    assert owner["kind"] == "file" and owner["paths"] == ["%s/sector" % XFS], owner
    assert (owner["file_offset"], owner["length"]) == (20992, 512), owner
    assert (owner["repair_offset"], owner["repair_length"]) == (20480, 4096), owner
    assert entry["state"] == "closed" and entry["closure"]["how"] == "restored"
    assert _sha(host, "%s/sector" % XFS) == _sha(host, "/root/backup/xfs/sector")


def test_restored_ranges_are_cleared(host, state):
    lists = host.check_output("cat /sys/block/pmem*/badblocks")
    rows = {tuple(int(v) for v in line.split()) for line in lists.splitlines() if line.strip()}
    for name in ("straddle", "sector"):
        inj = state["injected"][name]
        assert (inj["sector"], inj["sectors"]) not in rows, (name, rows)


# --- item 3: the reflink farm, some copies then all -----------------------------------------------

def test_farm_owners_three_inodes_one_with_two_paths(host, round1, state):
    entries = _on(round1["ledger"]["entries"], state["injected"]["farm"])
    files = [e for e in entries if e["owner"]["kind"] == "file"]
    assert sorted(e["owner"]["inode"] for e in files) == sorted(_ino(host, p) for p in FARM)
    (a,) = _by_path(files, FARM[0])
    assert sorted(a["owner"]["paths"]) == sorted([FARM[0], "%s/farm/a-link" % XFS])
    for e in files:
        assert e["owner"]["shared"] is True and e["owner"]["file_offset"] == 4096, e["owner"]


def test_round1_copies_restore_their_owners_the_rest_stay_open(round1, state):
    entries = _on(round1["ledger"]["entries"], state["injected"]["farm"])
    (a,) = _by_path(entries, FARM[0])
    assert a["state"] == "closed" and a["closure"]["how"] == "restored", a["id"]
    assert [h["details"]["method"] for h in _events(a, "clear_planned")] == ["unshare"], a["history"]
    for path in FARM[1:]:
        (e,) = _by_path(entries, path)
        assert e["state"] == "open" and not _events(e, "clear_failed"), e["history"]
        assert e.get("containment"), "no copy: %s stays contained" % path
        planned = [x["action"] for x in round1["first"]["clear"]["plan"] if x["entry_id"] == e["id"]]
        assert "rewrite" not in planned and "unshare" not in planned, planned
    assert not [e for e in entries if e["owner"]["kind"] == "free"], "b and c still own the block"
    assert "did not clear" not in json.dumps(round1["first"]["clear"])


def test_round1_second_run_changed_nothing(round1):
    second = round1["second"]
    assert second["quarantine_changed"] is False
    assert second["clear_changed"] is False


def test_round2_every_owner_restored_block_is_free_space(host, ledger, state):
    entries = _on(ledger, state["injected"]["farm"])
    for path in FARM:
        (e,) = _by_path(entries, path)
        assert e["state"] == "closed" and e["closure"]["how"] == "restored", e["id"]
        assert [h["details"]["method"] for h in _events(e, "clear_planned")] == ["unshare"], e["history"]
        assert not e.get("containment"), e["id"]
        name = path.rsplit("/", 1)[1]
        assert _sha(host, path) == _sha(host, "/root/backup/xfs/farm/%s" % name)
        assert host.file(path).mode == 0o644
    assert _sha(host, "%s/farm/a-link" % XFS) == _sha(host, "/root/backup/xfs/farm/a")
    (free,) = [e for e in entries if e["owner"]["kind"] == "free"]
    assert free["state"] == "open"
    inj = state["injected"]["farm"]
    text = host.check_output("cat /sys/block/%s/badblocks" % inj["device"])
    assert "%d %d" % (inj["sector"], inj["sectors"]) in text


def test_round2_free_space_plan_is_offline_not_a_failure(host, ledger, state):
    """The last converge (molecule's idempotence run) plans the free-space entry offline, without
    failing the host for it (the host fails for the metadata ranges only)."""
    r2 = _json(host, "/root/owners-round2.json")
    (free,) = [e for e in _on(ledger, state["injected"]["farm"]) if e["owner"]["kind"] == "free"]
    planned = [a for a in r2["clear"]["plan"] if a["entry_id"] == free["id"]]
    assert [a["action"] for a in planned] == ["offline_required"], planned
    assert not planned[0]["fail_host"], planned
    assert free["range"]["id"] not in r2["failure"], r2["failure"]
    assert "did not clear" not in json.dumps(r2)
    assert r2["clear"]["changed"] is False, "the second converge changed the ledger or a device"
