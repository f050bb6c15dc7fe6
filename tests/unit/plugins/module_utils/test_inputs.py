# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the input rules (hypothesis) and of the shared argument-spec pieces."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as I
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_record as REC
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError
from ansible_collections.pmem.poison.plugins.modules import pmem_clear as C
from ansible_collections.pmem.poison.plugins.modules import pmem_quarantine as Q
from ansible_collections.pmem.poison.tests.support.module_harness import (
    run_inprocess,
    snapshot,
)

SCALARS = st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False),
                    st.booleans())
BLANKS = st.text(alphabet=" \t\n\r\x0b\x0c", max_size=8)
FIXTURE_OK = settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(value=st.one_of(SCALARS, st.dictionaries(st.text(max_size=5), SCALARS, max_size=3)))
def test_a_list_option_never_takes_a_scalar_or_a_mapping(value):
    problems = I.strict_type_problems(C.ARGUMENT_SPEC, {"entry_ids": value})
    assert len(problems) == 1 and problems[0].startswith("entry_ids must be a list")


@given(value=st.lists(st.text(max_size=10), max_size=4))
def test_a_list_of_strings_passes(value):
    assert I.strict_type_problems(C.ARGUMENT_SPEC, {"entry_ids": value}) == []


@given(value=st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
def test_a_mapping_option_never_takes_a_string_or_a_list(value):
    problems = I.strict_type_problems(C.ARGUMENT_SPEC, {"policy": {"method": value}})
    assert problems and problems[0].startswith("policy.method must be a mapping")


@FIXTURE_OK
@given(by=BLANKS, why=st.text(min_size=1, max_size=10).filter(str.strip))
def test_blank_name_is_never_consent(world, monkeypatch, by, why):
    before = snapshot(world.root)
    out = run_inprocess(Q, {"state": "accepted_lost", "entry_ids": [world.eid], "by": by,
                            "why": why, "ledger_path": world.ledger}, monkeypatch)
    assert out["failed"] and "by is blank" in out["msg"]
    assert snapshot(world.root) == before


@FIXTURE_OK
@given(reason=BLANKS)
def test_blank_reason_never_accepts_a_loss_in_pmem_clear(world, monkeypatch, reason):
    before = snapshot(world.root)
    out = run_inprocess(C, {"policy": {"accepted_loss": [world.file]}, "accepted_by": "alice",
                            "accepted_reason": reason, "ledger_path": world.ledger,
                            "capabilities": world.caps}, monkeypatch)
    assert out["failed"] and "accepted_reason is blank" in out["msg"]
    assert snapshot(world.root) == before


@FIXTURE_OK
@given(ids=st.lists(st.text(max_size=12), max_size=3))
def test_accepted_lost_closes_nothing_unless_every_id_exists(world, monkeypatch, ids):
    before = snapshot(world.root)
    out = run_inprocess(Q, {"state": "accepted_lost", "entry_ids": ids, "by": "alice",
                            "why": "scratch", "ledger_path": world.ledger}, monkeypatch)
    assert out["failed"]  # [] names nothing; invented ids are unknown; blanks are refused
    assert snapshot(world.root) == before


@FIXTURE_OK
@given(offset=st.integers(-(1 << 62), 1 << 62), length=st.integers(-(1 << 20), 1 << 62))
def test_direct_range_errs_exactly_outside_the_device(tmp_path, offset, length):
    kind, size = I.device_bytes(str(tmp_path))
    item = {"device": str(tmp_path), "offset": offset, "length": length}
    inside = offset >= 0 and length > 0 and (size is None or offset + length <= size)
    try:
        I.check_direct_range(item)
    except PmemError as e:
        assert not inside and e.device == str(tmp_path) and e.next_step
    else:
        assert inside and kind == "mount"


def test_owner_spec_covers_every_field_the_resolver_emits():
    """A field added to new_owner() must be added to inputs.OWNER, or the modules refuse the
    resolver's own output."""
    assert set(REC.new_owner("file", "r")) <= set(I.OWNER)


def test_bad_range_spec_covers_every_field_of_the_facts():
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))
    from loader import fixture_roots  # pylint: disable=import-outside-toplevel
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts
    seen, fs_seen, caps_seen = set(), set(), set()
    for name in ("stock-poison", "stock-layout-poison", "nfit-layout-poison"):
        roots = dict((k, v) for k, v in fixture_roots(name).items()
                     if k in ("sysfs_root", "proc_root", "dev_root"))
        got = facts.gather_facts(ledger_path=None, **roots)
        for rng in got["bad_ranges"]:
            seen |= set(rng)
            fs_seen |= set(rng.get("filesystem") or {})
        caps_seen |= set(got["capabilities"])
        for info in got["capabilities"]["devices"].values():
            assert I.capabilities_problems({"devices": {"x": info}}) == []
    assert seen and seen <= set(I.BAD_RANGE)
    assert fs_seen <= set(I.FILESYSTEM) and caps_seen <= set(I.CAPABILITIES)


@pytest.mark.parametrize("value,problem", [
    (None, "is required"), ("", "is blank"), ("  ", "is blank"), ("\t", "is blank"),
    ("alice", None),
])
def test_text_problem(value, problem):
    got = I.text_problem("by", value, "say who")
    assert (got is None) if problem is None else (problem in got)
