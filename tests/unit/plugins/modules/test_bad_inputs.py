# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input at the module boundary: every case must fail (or error the range) with a message
that names the problem, carry no traceback, and leave the disk exactly as it was (files,
modes, owners, xattrs and the ledger, hashed before and after)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.pmem.poison.plugins.modules import pmem_badblocks as B
from ansible_collections.pmem.poison.plugins.modules import pmem_clear as C
from ansible_collections.pmem.poison.plugins.modules import pmem_quarantine as Q
from ansible_collections.pmem.poison.plugins.modules import pmem_resolve as R
from ansible_collections.pmem.poison.tests.support.module_harness import (
    RID,
    run_inprocess,
    snapshot,
)

# Ansible's own argument-spec messages name the option; ours also name the next step.
NEXT = "Next step"


def owner(w, **kw):
    return dict(w.owner, **kw)


def results(w, **kw):
    return [{"range_id": RID, "owners": [owner(w, **kw)]}]


def rng(w, **kw):
    return [dict(w.range, **kw)]


def accept(w, **kw):
    return dict({"state": "accepted_lost", "entry_ids": [w.eid], "by": "alice",
                 "why": "scratch", "ledger_path": w.ledger}, **kw)


# (case id, args builder, words the message must contain, whether our next step is expected)
QUARANTINE = [
    ("state-bogus", lambda w: {"state": "bogus", "ledger_path": w.ledger}, ["state"], False),
    ("containment-string", lambda w: {"containment": "chmod", "ledger_path": w.ledger},
     ["containment must be a list"], True),
    ("containment-unknown", lambda w: {"containment": ["chmod", "explode"],
                                       "ledger_path": w.ledger}, ["containment"], False),
    ("entry-ids-string", lambda w: {"entry_ids": w.eid, "ledger_path": w.ledger},
     ["entry_ids must be a list"], True),
    ("entry-ids-nested", lambda w: {"entry_ids": [[w.eid]], "ledger_path": w.ledger},
     ["entry_ids[0] must be a string"], True),
    ("results-string", lambda w: {"results": "x", "ledger_path": w.ledger},
     ["results must be a list"], True),
    ("results-no-range-id", lambda w: {"results": [{"owners": []}], "ledger_path": w.ledger},
     ["range_id"], False),
    ("results-unknown-key", lambda w: {"results": [{"range_id": RID, "colour": 1}],
                                       "ledger_path": w.ledger}, ["colour"], False),
    ("owner-kind-bogus", lambda w: {"results": results(w, kind="bogus"), "ledger_path": w.ledger},
     ["kind"], False),
    ("owner-inode-text", lambda w: {"results": results(w, inode="abc"), "ledger_path": w.ledger},
     ["inode"], False),
    ("owner-paths-string", lambda w: {"results": results(w, paths=w.file),
                                      "ledger_path": w.ledger},
     ["results[0].owners[0].paths must be a list"], True),
    ("owner-unknown-key", lambda w: {"results": results(w, colour="red"), "ledger_path": w.ledger},
     ["colour"], False),
    ("owner-processes-string", lambda w: {"results": results(w, processes="x"),
                                          "ledger_path": w.ledger}, ["processes must be a list"],
     True),
    ("owners-string", lambda w: {"results": [{"range_id": RID, "owners": "x"}],
                                 "ledger_path": w.ledger}, ["owners must be a list"], True),
    ("owner-shared-maybe", lambda w: {"results": results(w, shared="maybe"),
                                      "ledger_path": w.ledger}, ["shared"], False),
    ("warnings-string", lambda w: {"results": [{"range_id": RID, "owners": [], "warnings": "w"}],
                                   "ledger_path": w.ledger}, ["warnings must be a list"], True),
    ("bad-ranges-dict", lambda w: {"bad_ranges": w.range, "ledger_path": w.ledger},
     ["bad_ranges must be a list"], True),
    ("bad-range-no-id", lambda w: {"bad_ranges": [{"length": 1}], "ledger_path": w.ledger},
     ["id"], False),
    ("bad-range-length-text", lambda w: {"bad_ranges": rng(w, length="big"),
                                         "ledger_path": w.ledger}, ["length"], False),
    ("bad-range-filesystem-string", lambda w: {"bad_ranges": rng(w, filesystem="xfs"),
                                               "ledger_path": w.ledger},
     ["filesystem must be a mapping"], True),
    ("bad-range-area", lambda w: {"bad_ranges": rng(w, area="moon"), "ledger_path": w.ledger},
     ["area"], False),
    ("bad-range-unknown-key", lambda w: {"bad_ranges": rng(w, colour=1), "ledger_path": w.ledger},
     ["colour"], False),
    ("bad-range-sources-string", lambda w: {"bad_ranges": rng(w, sources="region"),
                                            "ledger_path": w.ledger}, ["sources must be a list"],
     True),
    ("bad-range-dax-maybe", lambda w: {"bad_ranges": rng(w, filesystem={"dax": "maybe"}),
                                       "ledger_path": w.ledger}, ["dax"], False),
    ("lock-timeout-text", lambda w: {"lock_timeout": "soon", "ledger_path": w.ledger},
     ["lock_timeout"], False),
    ("lock-timeout-negative", lambda w: {"lock_timeout": -1, "ledger_path": w.ledger},
     ["lock_timeout must be 0 or more"], True),
    ("lock-timeout-nan", lambda w: {"lock_timeout": "nan", "ledger_path": w.ledger},
     ["lock_timeout must be 0 or more seconds (a finite number), got nan"], True),
    ("lock-timeout-inf", lambda w: {"lock_timeout": "inf", "ledger_path": w.ledger},
     ["lock_timeout must be 0 or more seconds (a finite number), got inf"], True),
    ("ledger-path-blank", lambda w: {"ledger_path": ""}, ["ledger_path is blank"], True),
    ("ledger-path-spaces", lambda w: {"ledger_path": "   "}, ["ledger_path is blank"], True),
    ("ledger-path-dir", lambda w: {"ledger_path": w.root + "/l/"}, ["ends with /"], True),
    ("ledger-path-relative", lambda w: {"ledger_path": "pmem-poison/ledger.json"},
     ["is relative", "would be lost"], True),
    ("unknown-option", lambda w: {"entry_id": w.eid, "ledger_path": w.ledger}, ["entry_id"],
     False),
    ("accept-empty-ids", lambda w: accept(w, entry_ids=[]), ["empty list"], True),
    ("accept-no-ids", lambda w: dict((k, v) for k, v in accept(w).items() if k != "entry_ids"),
     ["entry_ids"], False),
    ("accept-blank-id", lambda w: accept(w, entry_ids=[" "]), ["entry_ids[0] is blank"], True),
    ("accept-unknown-id", lambda w: accept(w, entry_ids=["nope"]), ["no such ledger entries",
                                                                    "nope"], True),
    ("accept-by-blank", lambda w: accept(w, by="   "), ["by is blank"], True),
    ("accept-by-empty", lambda w: accept(w, by=""), ["by is blank"], True),
    ("accept-why-tabs", lambda w: accept(w, why="\t\n"), ["why is blank"], True),
    ("accept-no-by", lambda w: dict((k, v) for k, v in accept(w).items() if k != "by"), ["by"],
     False),
    ("accept-by-list", lambda w: accept(w, by=["alice"]), ["by must be a string"], True),
    ("accept-why-dict", lambda w: accept(w, why={"a": 1}), ["why must be a string"], True),
    ("released-empty-ids", lambda w: {"state": "released", "entry_ids": [],
                                      "ledger_path": w.ledger}, ["empty list"], True),
    ("present-empty-ids", lambda w: {"entry_ids": [], "ledger_path": w.ledger},
     ["empty list"], True),
]

CLEAR = [
    ("method-bogus", lambda w: {"method": "bogus"}, ["method"], False),
    ("ledger-path-relative", lambda w: {"ledger_path": "ledger.json"}, ["is relative"], True),
    ("device-write-no-ids", lambda w: {"method": "device_write",
                                       "policy": {"offline_window_allowed": True}},
     ["writes to a device", "entry_ids"], True),
    ("device-write-no-offline", lambda w: {"method": "device_write", "entry_ids": [w.eid]},
     ["offline_window_allowed"], True),
    ("device-write-offline-string-false", lambda w: {
        "method": "device_write", "entry_ids": [w.eid],
        "policy": {"offline_window_allowed": "false"}}, ["offline_window_allowed"], True),
    ("ndctl-no-ids", lambda w: {"method": "ndctl", "policy": {"offline_window_allowed": True}},
     ["writes to a device"], True),
    ("ndctl-no-offline", lambda w: {"method": "ndctl", "entry_ids": [w.eid]},
     ["offline_window_allowed"], True),
    ("source-without-ids", lambda w: {"source": w.good},
     ["source needs entry_ids"], True),
    ("source-blank", lambda w: {"source": "  ", "entry_ids": [w.eid]}, ["source is blank"], True),
    ("source-relative", lambda w: {"source": "backup/x.good", "entry_ids": [w.eid]},
     ["source must be the absolute path", "backup/x.good"], True),
    ("source-list", lambda w: {"source": [w.good], "entry_ids": [w.eid]},
     ["source must be a path"], True),
    ("source-with-device-write", lambda w: {"source": w.good, "entry_ids": [w.eid],
                                            "method": "device_write",
                                            "policy": {"offline_window_allowed": True}},
     ["source applies to file rewrites"], True),
    ("entry-ids-empty", lambda w: {"entry_ids": []}, ["empty list"], True),
    ("entry-ids-unknown", lambda w: {"entry_ids": ["nope"], "source": w.good},
     ["no such ledger entries", "nope"], True),
    ("entry-ids-unknown-no-source", lambda w: {"entry_ids": [w.eid, "nope"]},
     ["no such ledger entries", "nope"], True),
    ("entry-ids-blank", lambda w: {"entry_ids": [""]}, ["entry_ids[0] is blank"], True),
    ("entry-ids-string", lambda w: {"entry_ids": w.eid}, ["entry_ids must be a list"], True),
    ("policy-string", lambda w: {"policy": "rewrite"}, ["policy must be a mapping"], True),
    ("policy-method-string", lambda w: {"policy": {"method": "rewrite"}},
     ["policy.method must be a mapping"], True),
    ("policy-method-file-zeros", lambda w: {"policy": {"method": {"file": "zeros"}}}, ["file"],
     False),
    ("policy-method-metadata-write", lambda w: {"policy": {"method": {"metadata":
                                                                      "device_write"}}},
     ["metadata"], False),
    ("policy-method-typo", lambda w: {"policy": {"method": {"fiel": "auto"}}}, ["fiel"], False),
    ("policy-containment-string", lambda w: {"policy": {"containment": "chmod"}},
     ["policy.containment must be a list"], True),
    ("policy-containment-unknown", lambda w: {"policy": {"containment": ["explode"]}},
     ["containment"], False),
    ("policy-accepted-string", lambda w: {"policy": {"accepted_loss": w.root + "/fs/*"},
                                          "accepted_by": "a", "accepted_reason": "b"},
     ["policy.accepted_loss must be a list", "never split"], True),
    ("policy-accepted-star", lambda w: {"policy": {"accepted_loss": ["*"]},
                                        "accepted_by": "a", "accepted_reason": "b"},
     ["accepted_loss[0]", "relative pattern"], True),
    ("policy-accepted-blank-item", lambda w: {"policy": {"accepted_loss": [" "]},
                                              "accepted_by": "a", "accepted_reason": "b"},
     ["accepted_loss[0] is blank"], True),
    ("policy-accepted-no-by", lambda w: {"policy": {"accepted_loss": [w.file]},
                                         "accepted_reason": "b"}, ["accepted_by is required"],
     True),
    ("policy-accepted-by-blank", lambda w: {"policy": {"accepted_loss": [w.file]},
                                            "accepted_by": "  ", "accepted_reason": "b"},
     ["accepted_by is blank"], True),
    ("policy-accepted-reason-empty", lambda w: {"policy": {"accepted_loss": [w.file]},
                                                "accepted_by": "a", "accepted_reason": ""},
     ["accepted_reason is blank"], True),
    ("policy-accepted-no-reason", lambda w: {"policy": {"accepted_loss": [w.file]},
                                             "accepted_by": "a"},
     ["accepted_reason is required"], True),
    ("policy-restore-sources-string", lambda w: {"policy": {"restore_sources": "x"}},
     ["policy.restore_sources must be a mapping"], True),
    ("policy-restore-sources-relative-key", lambda w: {"policy": {"restore_sources": {
        "fs/*": w.root}}}, ["restore_sources key"], True),
    ("policy-restore-sources-blank-copy", lambda w: {"policy": {"restore_sources": {
        w.file: ""}}}, ["absolute path of the known-good copy"], True),
    ("policy-restore-sources-list-copy", lambda w: {"policy": {"restore_sources": {
        w.file: [w.good]}}}, ["absolute path of the known-good copy"], True),
    ("policy-restore-sources-relative-copy", lambda w: {"policy": {"restore_sources": {
        w.file: "good.bin"}}}, ["absolute path of the known-good copy"], True),
    ("policy-offline-maybe", lambda w: {"policy": {"offline_window_allowed": "maybe"}},
     ["offline_window_allowed"], False),
    ("policy-unknown-key", lambda w: {"policy": {"offline_window": True}}, ["offline_window"],
     False),
    ("capabilities-string", lambda w: {"capabilities": "e820"},
     ["capabilities must be a mapping"], True),
    ("capabilities-write-clears-string", lambda w: {"capabilities": {"devices": {"pmem9": {
        "write_clears": "false"}}}}, ["write_clears", "never read as false"], True),
    ("capabilities-unknown-device-key", lambda w: {"capabilities": {"devices": {"pmem9": {
        "flux": 1}}}}, ["flux"], True),
    ("capabilities-device-string", lambda w: {"capabilities": {"devices": {"pmem9": "e820"}}},
     ["capabilities.devices.pmem9 must be a mapping"], True),
    ("capabilities-kernel-version-string", lambda w: {"capabilities": {"kernel_version": "6.1"}},
     ["kernel_version must be a list"], True),
    ("capabilities-unknown-key", lambda w: {"capabilities": {"colour": 1}}, ["colour"], False),
    ("results-string", lambda w: {"results": "x"}, ["results must be a list"], True),
    ("owner-offset-text", lambda w: {"results": results(w, file_offset="x")}, ["file_offset"],
     False),
    ("owner-shared-maybe", lambda w: {"results": results(w, shared="maybe")}, ["shared"], False),
    ("bad-ranges-string", lambda w: {"bad_ranges": "pmem9"}, ["bad_ranges must be a list"], True),
    ("accepted-by-blank-alone", lambda w: {"accepted_by": " "}, ["accepted_by is blank"], True),
    ("accepted-reason-blank-alone", lambda w: {"accepted_reason": "\t"},
     ["accepted_reason is blank"], True),
    ("ledger-path-blank", lambda w: {"ledger_path": ""}, ["ledger_path is blank"], True),
    ("lock-timeout-negative", lambda w: {"lock_timeout": -5}, ["lock_timeout"], True),
    ("lock-timeout-nan", lambda w: {"lock_timeout": float("nan")}, ["a finite number), got nan"], True),
    ("lock-timeout-inf", lambda w: {"lock_timeout": "inf"}, ["a finite number), got inf"], True),
    ("unknown-option", lambda w: {"entry_id": w.eid}, ["entry_id"], False),
]

RESOLVE_FAIL = [
    ("ranges-string", {"ranges": "pmem0"}, ["ranges must be a list"], True),
    ("ranges-no-offset", {"ranges": [{"device": "/dev/pmem0", "length": 4096}]}, ["offset"], False),
    ("ranges-offset-text", {"ranges": [{"device": "/dev/pmem0", "offset": "x", "length": 1}]},
     ["offset"], False),
    ("ranges-length-boolean", {"ranges": [{"device": "/dev/pmem0", "offset": 0, "length": True}]},
     ["ranges[0].length must be an integer, got a boolean (True)"], True),
    ("ranges-offset-boolean", {"ranges": [{"device": "/dev/pmem0", "offset": False, "length": 512}]},
     ["ranges[0].offset must be an integer, got a boolean (False)"], True),
    ("ranges-unknown-key", {"ranges": [{"device": "/dev/pmem0", "offset": 0, "length": 1,
                                        "colour": 1}]}, ["colour"], False),
    ("both-inputs", {"ranges": [], "bad_ranges": []}, ["mutually exclusive"], False),
    ("walk-negative", {"ranges": [], "max_walk_seconds": -1}, ["max_walk_seconds"], True),
    ("walk-paths-maybe", {"ranges": [], "walk_paths": "maybe"}, ["walk_paths"], False),
    ("bad-ranges-string", {"bad_ranges": "x"}, ["bad_ranges must be a list"], True),
    ("bad-range-area", {"bad_ranges": [{"id": "r", "area": "moon"}]}, ["area"], False),
]

BADBLOCKS_FAIL = [
    ("devices-string", {"devices": "pmem0"}, ["devices must be a list"], True),
    ("devices-blank", {"devices": [" "]}, ["devices[0] is blank"], True),
    ("scrub-timeout-negative", {"scrub_timeout": -1}, ["scrub_timeout"], True),
    ("scrub-maybe", {"scrub": "maybe"}, ["scrub"], False),
    ("use-ndctl-bogus", {"use_ndctl": "sometimes"}, ["use_ndctl"], False),
    ("ledger-path-blank", {"ledger_path": ""}, ["ledger_path is blank"], True),
    ("unknown-option", {"device": ["pmem0"]}, ["device"], False),
]


def assert_refused(out, words, next_step):
    assert out.get("failed"), out
    for word in words:
        assert word in out["msg"], (word, out["msg"])
    if next_step:
        assert NEXT in out["msg"], out["msg"]
    assert "Traceback" not in json.dumps(out, default=str)


@pytest.mark.parametrize("build,words,next_step", [c[1:] for c in QUARANTINE],
                         ids=[c[0] for c in QUARANTINE])
def test_pmem_quarantine_refuses(world, monkeypatch, build, words, next_step):
    before = snapshot(world.root)
    out = run_inprocess(Q, build(world), monkeypatch)
    assert_refused(out, words, next_step)
    assert snapshot(world.root) == before


@pytest.mark.parametrize("build,words,next_step", [c[1:] for c in CLEAR],
                         ids=[c[0] for c in CLEAR])
def test_pmem_clear_refuses(world, monkeypatch, build, words, next_step):
    args = dict({"ledger_path": world.ledger, "results": results(world),
                 "bad_ranges": rng(world), "capabilities": world.caps}, **build(world))
    before = snapshot(world.root)
    out = run_inprocess(C, args, monkeypatch)
    assert_refused(out, words, next_step)
    assert snapshot(world.root) == before


@pytest.mark.parametrize("args,words,next_step", [c[1:] for c in RESOLVE_FAIL],
                         ids=[c[0] for c in RESOLVE_FAIL])
def test_pmem_resolve_refuses(monkeypatch, args, words, next_step):
    called = []
    monkeypatch.setattr(R._owners, "resolve_owners", lambda *a, **kw: called.append(1) or [])
    out = run_inprocess(R, args, monkeypatch)
    assert_refused(out, words, next_step)
    assert not called


@pytest.mark.parametrize("args,words,next_step", [c[1:] for c in BADBLOCKS_FAIL],
                         ids=[c[0] for c in BADBLOCKS_FAIL])
def test_pmem_badblocks_refuses(world, monkeypatch, args, words, next_step):
    before = snapshot(world.root)
    out = run_inprocess(B, dict({"ledger_path": world.ledger}, **args), monkeypatch)
    assert_refused(out, words, next_step)
    assert snapshot(world.root) == before


# per-range errors: the module succeeds, the bad range carries the error, the others resolve

RANGE_ERRORS = [
    ("negative-offset", lambda w: {"device": w.root, "offset": -1, "length": 4096},
     "RangeOutsideDevice", "negative"),
    ("zero-length", lambda w: {"device": w.root, "offset": 0, "length": 0}, "InputError",
     "length 0"),
    ("negative-length", lambda w: {"device": w.root, "offset": 0, "length": -4096}, "InputError",
     "length -4096"),
    ("missing-blockdev", lambda w: {"device": "/dev/pmem99", "offset": 0, "length": 4096},
     "GatherError", "no such device"),
    ("missing-devdax", lambda w: {"device": "/dev/dax99.0", "offset": 0, "length": 4096},
     "GatherError", "no such device"),
    ("regular-file", lambda w: {"device": w.file, "offset": 0, "length": 4096}, "InputError",
     "not a block device"),
    ("blank-device", lambda w: {"device": "  ", "offset": 0, "length": 4096}, "InputError",
     "device is blank"),
    ("past-the-end", lambda w: {"device": w.root, "offset": 1 << 60, "length": 4096},
     "RangeOutsideDevice", "beyond the end"),
]


@pytest.mark.parametrize("build,error,words", [c[1:] for c in RANGE_ERRORS],
                         ids=[c[0] for c in RANGE_ERRORS])
def test_pmem_resolve_bad_range_is_a_per_range_error(world, monkeypatch, build, error, words):
    seen = []

    def fake(todo, **_kw):
        seen.extend(todo)
        return [{"range_id": r["id"], "owners": [{"kind": "free"}], "error": None,
                 "warnings": []} for r in todo]

    monkeypatch.setattr(R._owners, "resolve_owners", fake)
    bad = build(world)
    good = {"device": world.root, "offset": 4096, "length": 4096, "id": "good"}
    out = run_inprocess(R, {"ranges": [bad, good]}, monkeypatch)
    assert not out.get("failed"), out
    first, second = out["results"]
    assert first["owners"] == [] and first["error"]["error"] == error, first
    assert words in first["error"]["msg"] and first["error"]["next_step"], first
    assert first["error"]["device"] == bad["device"] and first["range_id"], first
    assert second["range_id"] == "good" and second["error"] is None
    assert [r["id"] for r in seen] == ["good"]  # no owner is invented for the bad range
    assert out["summary"]["errors"] == 1


def test_pmem_badblocks_unknown_device_is_not_clean(world, monkeypatch):
    out = run_inprocess(B, {"devices": ["pmem99"], "ledger_path": world.ledger,
                            "use_ndctl": "never"}, monkeypatch)
    facts = out["ansible_facts"]["pmem"]
    assert facts["clean"] is False
    assert [e["device"] for e in facts["errors"]] == ["pmem99"]
    assert "no such pmem device" in facts["errors"][0]["message"]
