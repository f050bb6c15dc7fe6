# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import stat
import sys

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
sys.path.insert(0, FIXTURES)
import synth  # noqa: E402  pylint: disable=wrong-import-position

MiB = 1 << 20


@pytest.fixture
def tree(tmp_path):
    return synth.build(str(tmp_path), region_bb="20480 8\n", pmem0_bb="2048 8\n")


def test_synthetic_topology(tree):
    topo = topology.gather_topology(as_root=True, **tree)
    assert topo["kernel"] == "6.1.0-56-amd64"
    assert topo["errors"] == [] and topo["unreadable"] == []
    assert topo["buses"]["ndbus0"]["provider"] == "e820"
    assert topo["buses"]["ndbus0"]["scrub_supported"] is False
    assert topo["buses"]["ndbus1"]["scrub_supported"] is True
    assert topo["buses"]["ndbus1"]["scrub_count"] == 0
    assert topo["regions"]["region0"]["bus"] == "ndbus0"
    assert topo["regions"]["region1"]["bus"] == "ndbus1"
    assert topo["regions"]["region0"]["resource"] == 0x40000000
    assert topo["regions"]["region0"]["badblocks"] == [[20480, 8]]
    assert topo["regions"]["region0"]["persistence_domain"] is None
    assert topo["regions"]["region1"]["persistence_domain"] == "memory_controller"
    assert sorted(topo["namespaces"]) == ["namespace0.0", "namespace1.0", "namespace1.1"]  # seeds skipped
    ns = topo["namespaces"]["namespace0.0"]
    assert (ns["mode"], ns["kernel_mode"], ns["map"], ns["blockdev"]) == ("fsdax", "memory", "dev", "pmem0")
    assert (ns["data_offset"], ns["data_size"], ns["data_start"]) == (10 * MiB, 502 * MiB, 0x40a00000)
    dax = topo["namespaces"]["namespace1.1"]
    assert (dax["mode"], dax["dax_device"], dax["blockdev"]) == ("devdax", "dax1.1", None)
    assert topo["dax"]["dax1.1"] == {"name": "dax1.1", "nd_device": "dax1.1", "namespace": "namespace1.1",
                                     "size": 254 * MiB, "align": 2 * MiB, "resource": 0x160200000,
                                     "dev": "252:1", "chardev": "/dev/dax1.1"}
    pmem0 = topo["blockdevs"]["pmem0"]
    assert (pmem0["parent"], pmem0["namespace"], pmem0["size"], pmem0["dev"]) == (
        "pfn0.0", "namespace0.0", 502 * MiB, "259:0")
    assert pmem0["partitions"]["pmem0p1"] == {"name": "pmem0p1", "number": 1, "start": MiB, "size": 400 * MiB,
                                              "dev": "259:1", "device": "/dev/pmem0p1"}
    assert [(m["device"], m["mountpoint"], m["dax"], m["ro"]) for m in topo["mounts"]] == [
        ("/dev/pmem0p1", "/mnt/pmem0", True, False), ("/dev/pmem1", "/mnt/pmem 1", True, True)]


def test_unprivileged(tree):
    topo = topology.gather_topology(as_root=False, **tree)
    assert topo["regions"]["region0"]["resource"] is None
    assert topo["namespaces"]["namespace0.0"]["data_offset"] is None
    assert topo["namespaces"]["namespace0.0"]["data_size"] == 502 * MiB
    files = sorted(os.path.relpath(u["file"], tree["sysfs_root"]) for u in topo["unreadable"])
    assert "bus/nd/devices/region0/resource" in files and "bus/nd/devices/pfn0.0/resource" in files
    assert all(u["reason"] == "permission denied: mode 0400, root only" for u in topo["unreadable"])
    assert any("not running as root" in w for w in topo["warnings"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads 0400 files anyway")
def test_real_permission_denied(tree):
    path = os.path.join(tree["sysfs_root"], "bus", "nd", "devices", "region0", "badblocks")
    os.chmod(path, 0)
    topo = topology.gather_topology(as_root=True, **tree)
    assert any(u["file"] == path for u in topo["unreadable"])


def test_malformed_and_unknown_mode(tmp_path):
    tree = synth.build(str(tmp_path), region_bb="20480 8\nbogus line\n1 2 3\n", ns_mode="weird")
    os.unlink(os.path.join(tree["sysfs_root"], synth.E820_BUS, "region0", "namespace0.0", "holder"))
    with open(os.path.join(tree["sysfs_root"], synth.E820_BUS, "region0", "size"), "w") as handle:
        handle.write("lots\n")
    topo = topology.gather_topology(as_root=True, **tree)
    assert topo["regions"]["region0"]["badblocks"] == [[20480, 8]]
    assert topo["regions"]["region0"]["size"] is None
    msgs = [(e["device"], e["message"]) for e in topo["errors"]]
    assert ("region0", "line 2 ignored (sector and count must be decimal integers): 'bogus line'") in msgs
    assert any(d == "region0" and m.startswith("not an integer") for d, m in msgs)
    assert any(d == "namespace0.0" and "unknown namespace mode 'weird'" in m for d, m in msgs)
    assert topo["namespaces"]["namespace0.0"]["mode"] == "unknown"


def test_device_disappears(tree):
    # the listing still names pmem1, but its directory is gone (dangling symlink)
    shutil.rmtree(os.path.join(tree["sysfs_root"], synth.NFIT_BUS, "region1", "pfn1.0", "block"))
    topo = topology.gather_topology(as_root=True, **tree)
    assert "pmem1" not in topo["blockdevs"]
    assert {"device": "pmem1", "file": os.path.join(tree["sysfs_root"], "block", "pmem1"),
            "message": "device disappeared while reading"} in topo["errors"]
    assert topo["namespaces"]["namespace1.0"]["blockdev"] is None


def test_no_nvdimm(tmp_path):
    topo = topology.gather_topology(sysfs_root=str(tmp_path / "sys"), proc_root=str(tmp_path / "proc"),
                                    dev_root=str(tmp_path / "dev"), as_root=True)
    assert topo["regions"] == {} and topo["kernel"] is None
    assert any("no nvdimm bus" in w for w in topo["warnings"])


def test_ndctl_json_variants(tree):
    data = [{"provider": "e820", "dev": "ndbus0", "regions": [{
        "dev": "region0", "badblock_count": 2,
        "badblocks": [{"offset": 20480, "length": 8, "dimms": ["nmem0"]}, {"offset": "x"}, 7],
        "namespaces": [{"dev": "namespace0.0", "badblocks": [{"offset": 0, "length": 8}]}]}]}]
    topo = topology.gather_topology(as_root=True, ndctl=json.dumps(data), **tree)
    assert topo["regions"]["region0"]["ndctl_badblocks"] == [{"offset": 20480, "length": 8, "dimms": ["nmem0"]}]
    assert topo["namespaces"]["namespace0.0"]["ndctl_badblocks"] == [{"offset": 0, "length": 8, "dimms": []}]
    assert {"device": "region0", "file": "ndctl list", "message": "2 malformed badblocks entries ignored"} in topo["errors"]
    topo = topology.gather_topology(as_root=True, ndctl="[{garbage", **tree)
    assert topo["errors"][0]["device"] == "ndctl" and "not JSON" in topo["errors"][0]["message"]
    topo = topology.gather_topology(as_root=True, ndctl=data[0], **tree)  # a single object, not a list
    assert topo["regions"]["region0"]["ndctl_badblocks"][0]["dimms"] == ["nmem0"]


def test_ndctl_executable(tree, tmp_path):
    fake = tmp_path / "ndctl"
    fake.write_text("#!/bin/sh\necho '[{\"dev\":\"region0\",\"badblocks\":[{\"offset\":1,\"length\":1}]}]'\n")
    fake.chmod(stat.S_IRWXU)
    topo = topology.gather_topology(as_root=True, ndctl=str(fake), **tree)
    assert topo["ndctl"] == {"used": True, "executable": str(fake)}
    assert topo["regions"]["region0"]["ndctl_badblocks"] == [{"offset": 1, "length": 1, "dimms": []}]
    fake.write_text("#!/bin/sh\necho oops >&2\nexit 3\n")
    topo = topology.gather_topology(as_root=True, ndctl=str(fake), **tree)
    assert topo["errors"][0]["message"] == "exit status 3: oops"
    topo = topology.gather_topology(as_root=True, ndctl=str(tmp_path / "missing"), **tree)
    assert topo["errors"][0]["message"].startswith("cannot run")


def test_parse_scrub_and_mountinfo():
    assert topology.parse_scrub("3\n") == (3, False)
    assert topology.parse_scrub("4+\n") == (4, True)
    assert topology.parse_scrub("?") == (None, None)
    assert topology.parse_scrub(None) == (None, None)
    mounts = topology.parse_mountinfo("garbage\n1 2 3\n36 25 259:0 / /a\\040b rw - xfs /dev/pmem0 rw,dax=always\n")
    assert len(mounts) == 1 and mounts[0]["mountpoint"] == "/a b" and mounts[0]["dax"]


def test_start_scrub_sysfs(tree):
    topo = topology.gather_topology(as_root=True, **tree)
    scrub = os.path.join(tree["sysfs_root"], "bus", "nd", "devices", "ndbus1", "nfit", "scrub")
    ticks = iter(range(100))

    def sleep(_seconds):
        with open(scrub, "w") as handle:  # the "kernel" finishes the scrub
            handle.write("1\n")

    result = topology.start_scrub(topo, ndctl=None, timeout=30, sysfs_root=tree["sysfs_root"],
                                  clock=lambda: next(ticks), sleep=sleep)
    assert result["started"] == ["ndbus1"]
    assert result["buses"]["ndbus1"]["completed"] is True
    assert result["buses"]["ndbus1"]["count_after"] == 1
    assert result["buses"]["ndbus0"]["supported"] is False
    assert result["timed_out"] is False
    assert any("no address range scrub" in p for p in result["progress"])


def test_start_scrub_timeout(tree):
    topo = topology.gather_topology(as_root=True, **tree)
    ticks = iter(range(0, 1000, 10))
    scrub = os.path.join(tree["sysfs_root"], "bus", "nd", "devices", "ndbus1", "nfit", "scrub")

    def sleep(_seconds):
        with open(scrub, "w") as handle:  # still running
            handle.write("0+\n")

    result = topology.start_scrub(topo, bus_names=["ndbus1"], timeout=30, sysfs_root=tree["sysfs_root"],
                                  clock=lambda: next(ticks), sleep=sleep)
    assert result["timed_out"] is True and result["buses"]["ndbus1"]["completed"] is False
