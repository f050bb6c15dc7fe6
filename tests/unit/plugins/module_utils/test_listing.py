# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is a recorded range still listed? The answer every clear's pre-check and verification rests on:
a wrong "no" closes an entry over poison that is still there, a wrong "yes" on another device's
list keeps asking for a clear that is not needed."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pmem.poison.plugins.module_utils._pmem import listing as LI

UUID_A = "5c1f0a8e-0000-4000-8000-00000000000a"
UUID_B = "5c1f0a8e-0000-4000-8000-00000000000b"


def recorded(**kw):
    rng = {"id": "ns-%s@0x3000+0x1000" % UUID_A, "region": "region1", "region_offset": 0x3000,
           "blockdev": "pmem1", "blockdev_offset": 0x1000, "length": 4096, "absolute": None,
           "identity": {"kind": "namespace", "namespace_uuid": UUID_A, "namespace_offset": 0x3000,
                        "data_offset": 0x1000, "absolute": None, "length": 4096, "stable": True}}
    rng.update(kw)
    return rng


def listed(uuid, region, region_offset, blockdev, blockdev_offset, length=512):
    return {"id": "x", "region": region, "region_offset": region_offset, "blockdev": blockdev,
            "blockdev_offset": blockdev_offset, "length": length, "absolute": None,
            "identity": {"namespace_uuid": uuid, "namespace_offset": region_offset,
                         "data_offset": blockdev_offset, "length": length}}


def test_same_namespace_under_new_names_is_still_listed():
    """After a reboot region1/pmem1 came back as region0/pmem0: the uuid finds the range."""
    assert LI.range_matches(recorded(), listed(UUID_A, "region0", 0x3200, "pmem0", 0x1200))


def test_another_namespace_at_the_recorded_names_and_offset_is_not_a_match():
    """region1/pmem1 is now another namespace (recreated, or a rename moved another onto the
    name): its list at the same offsets says nothing about the recorded bytes."""
    assert not LI.range_matches(recorded(), listed(UUID_B, "region1", 0x3000, "pmem1", 0x1000))


def test_same_namespace_elsewhere_in_it_is_not_a_match():
    assert not LI.range_matches(recorded(), listed(UUID_A, "region1", 0x9000, "pmem1", 0x7000))


def test_physical_address_decides_without_uuids():
    rec = recorded(identity=None, absolute=0x40003000)
    other = dict(listed(None, "region1", 0x3000, "pmem1", 0x1000), identity=None, absolute=0x50003000)
    same = dict(other, absolute=0x40003e00, region="region7")
    assert not LI.range_matches(rec, other)
    assert LI.range_matches(rec, same)
