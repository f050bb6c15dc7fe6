# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The clearing matrix per bus and kernel, decided once (capabilities.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import capabilities as CAP

ARS = ["ars_cap", "ars_start", "ars_status", "clear_error", "cmd_call"]


@pytest.mark.parametrize("provider,commands,kernel,expect", [
    # (write_clears, dax_write_clears, bus_can_clear)
    ("e820", [], "6.1.0", (True, True, "n/a")),
    ("e820", [], "5.15.0-91-generic", (True, False, "n/a")),
    ("e820", [], "5.19.0", (True, True, "n/a")),
    ("ACPI.NFIT", ["cmd_call"], "6.1.0", (False, False, False)),      # QEMU nvdimm: no DSMs
    ("ACPI.NFIT", ARS, "6.1.0", (None, None, True)),                  # real platform: verify
    ("ACPI.NFIT", ["clear_error"], "5.10.0", (None, False, True)),
    ("nfit_test.0", ["clear_error"], "6.1.0", (True, False, True)),   # EIO through DAX
    ("virtio_pmem", [], "6.1.0", (True, True, "n/a")),
    ("of_pmem", [], "5.4.0", (True, False, "n/a")),
    ("mystery", [], "6.1.0", (None, None, None)),
])
def test_bus_rules(provider, commands, kernel, expect):
    caps = CAP.bus_capabilities({"provider": provider, "commands": commands}, CAP.kernel_version(kernel))
    assert (caps["write_clears"], caps["dax_write_clears"], caps["bus_can_clear"]) == expect


def test_kernel_version_and_at_least():
    assert CAP.kernel_version("6.1.0-56-amd64") == [6, 1, 0]
    assert CAP.kernel_version("5.19") == [5, 19, 0]
    assert CAP.kernel_version("garbage") is None
    assert CAP.kernel_at_least("6.1.0-18-amd64", CAP.RECOVERY_WRITE_KERNEL) is True
    assert CAP.kernel_at_least("5.18.19", CAP.RECOVERY_WRITE_KERNEL) is False
    assert CAP.kernel_at_least("5.19.0", (5, 19)) is True
    assert CAP.kernel_at_least(None, (5, 19)) is None
    assert CAP.from_topology({"kernel": None})["recovery_write"] is None


def _topology(provider, commands, kernel="6.1.0"):
    return {"kernel": kernel,
            "buses": {"ndbus0": {"provider": provider, "commands": commands, "scrub_supported": "ars_start" in commands}},
            "regions": {"region0": {"bus": "ndbus0"}},
            "namespaces": {"namespace0.0": {"region": "region0"}, "namespace0.1": {"region": "region0"}},
            "blockdevs": {"pmem0": {"namespace": "namespace0.0"}},
            "dax": {"dax0.1": {"namespace": "namespace0.1"}}}


@pytest.mark.parametrize("provider,commands,kind,ndctl", [
    ("e820", [], "e820", False),
    ("ACPI.NFIT", ["cmd_call"], "acpi_nfit", False),
    ("ACPI.NFIT", ARS, "acpi_nfit", True),
    ("nfit_test.0", ["clear_error"], "nfit_test", True),
    ("virtio_pmem", [], "virtio", False),
])
def test_devices_take_their_bus_rules(provider, commands, kind, ndctl):
    caps = CAP.from_topology(_topology(provider, commands))
    bus = caps["buses"]["ndbus0"]
    for name in ("pmem0", "dax0.1"):
        dev = caps["devices"][name]
        assert (dev["bus"], dev["bus_kind"], dev["ndctl_clear"]) == ("ndbus0", kind, ndctl)
        assert (dev["write_clears"], dev["dax_write_clears"]) == (bus["write_clears"], bus["dax_write_clears"])
    assert caps["scrub"] == {"ndbus0": "ars_start" in commands}


def test_device_without_a_known_bus_is_unknown_never_clearing():
    caps = CAP.from_topology({"blockdevs": {"loop3": {"namespace": "namespace9.0"}}})
    assert caps["devices"]["loop3"]["bus_kind"] == "unknown"
    assert caps["devices"]["loop3"]["write_clears"] is None
    assert caps["devices"]["loop3"]["ndctl_clear"] is False


def test_truncated_lists_named():
    topo = _topology("e820", [])
    topo["regions"]["region0"]["badblocks_truncated"] = True
    caps = CAP.from_topology(topo)
    assert caps["lists_may_be_truncated"] is True and caps["truncated_lists"] == ["region0"]


def test_merge_given_wins_decided_fills():
    decided = {"kernel": "6.1.0", "devices": {"pmem0": {"write_clears": True, "ndctl_clear": False},
                                              "pmem1": {"write_clears": False}}}
    given = {"devices": {"pmem0": {"write_clears": None, "dax_write_clears": False}}}
    merged = CAP.merge(decided, given)
    assert merged["kernel"] == "6.1.0"
    assert merged["devices"]["pmem0"] == {"write_clears": True, "ndctl_clear": False, "dax_write_clears": False}
    assert merged["devices"]["pmem1"]["write_clears"] is False
    assert CAP.merge(decided, {"kernel": "5.15.0"})["kernel"] == "5.15.0"
    assert CAP.merge(decided, None)["devices"] == decided["devices"]


def test_for_device_partition_and_order():
    caps = {"devices": {"pmem0": {"bus_kind": "e820"}, "namespace1.0": {"bus_kind": "acpi_nfit"}}}
    assert CAP.for_device(caps, "/dev/pmem0p2")["bus_kind"] == "e820"
    assert CAP.for_device(caps, None, "pmem7", "namespace1.0")["bus_kind"] == "acpi_nfit"
    assert CAP.for_device(caps, "pmem7") == {}
    assert CAP.for_device(None, "pmem0") == {}
