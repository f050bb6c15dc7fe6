# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write guard's refusals: each names the device or path and the range, says the next step,
and nothing was written."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import clearing as C
from ansible_collections.pmem.poison.plugins.module_utils._pmem import guard as G
from ansible_collections.pmem.poison.tests.support.pmem_fakes import FileBadblocks

E820 = {"kernel": "6.1.0", "devices": {"pmem1": {"bus_kind": "e820", "write_clears": True}}}
DATA_START = 0x140000000
MODULE_UTILS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins",
                            "module_utils", "_pmem")


@pytest.fixture
def dev(tmp_path):
    """A fake /dev with pmem1 as a regular file (the guard must never write it) and a fake list
    naming pmem1 as the data area of namespace1.0 at physical DATA_START."""
    root = tmp_path / "dev"
    root.mkdir()
    node = root / "pmem1"
    node.write_bytes(b"\xff" * 65536)
    (tmp_path / "victim").write_bytes(b"\xee" * 8192)
    bb = tmp_path / "bb.json"
    bb.write_text(json.dumps({
        "devices": {"pmem1": [[16, 8]]},
        "topology": {
            "blockdevs": {"pmem1": {"namespace": "namespace1.0", "size": 1 << 20,
                                    "dev": "259:1", "partitions": {}},
                          "loop0": {"namespace": None, "size": 1 << 20, "dev": "7:0"}},
            "namespaces": {"namespace1.0": {"blockdev": "pmem1", "uuid": "u-1",
                                            "data_start": DATA_START, "data_size": 1 << 20}},
            "mounts": []}}))
    return tmp_path, node, FileBadblocks(str(bb))


def entry(**rng):
    r = {"id": "region1@0x2000+0x1000", "blockdev": "pmem1", "blockdev_offset": 8192,
         "length": 4096, "absolute": DATA_START + 8192, "namespace": "namespace1.0"}
    r.update(rng)
    return {"id": "e1", "state": "open", "owner": {"kind": "free"}, "closure": None,
            "history": [], "range": r}


def ctx_for(tmp_path, provider, window=True, caps=None):
    return G.WriteContext(provider, capabilities=E820 if caps is None else caps,
                          consent={"offline_window": window}, dev_root=str(tmp_path / "dev"),
                          proc_root=str(tmp_path / "proc"))


def refused(exc_type, e, ctx, node, *names):
    with pytest.raises(exc_type) as info:
        C.device_write(e, ctx)
    text = str(info.value)
    for name in names:
        assert name in text, text
    assert "Next step" in text, text
    assert node.read_bytes() == b"\xff" * 65536  # nothing written
    return text


def test_device_name_with_dotdot_refused(dev):
    tmp_path, node, p = dev
    e = entry(blockdev="../victim", absolute=None)
    refused(G.GuardRefused, e, ctx_for(tmp_path, p), node, "../victim", "not a plain device name")
    assert (tmp_path / "victim").read_bytes() == b"\xee" * 8192


def test_non_pmem_block_device_refused(dev):
    tmp_path, node, p = dev
    e = entry(blockdev="loop0", absolute=None)
    refused(G.GuardRefused, e, ctx_for(tmp_path, p), node, "loop0", "names only")


def test_device_write_for_a_record_of_names_only_refused(dev):
    """A record that has only names (a schema-1 entry migrated as unproven, or one seen without
    root) says pmem1; after a reboot pmem1 may be another device. The guard never picks the
    target by name: nothing is located, nothing is written."""
    tmp_path, node, p = dev
    e = entry(absolute=None, identity=None, identity_status="unproven")
    with pytest.raises(G.GuardRefused) as info:
        G.locate_device(e, p.topology(), str(tmp_path / "dev"))
    assert "pmem1" in str(info.value) and "names only" in str(info.value)
    refused(G.GuardRefused, e, ctx_for(tmp_path, p), node, "pmem1", "names only",
            "record the range again as root")


def test_name_alone_not_enough_when_the_address_is_known(dev):
    """The record names pmem1, but its physical address lies in no namespace now."""
    tmp_path, node, p = dev
    e = entry(absolute=0x900000000 + 8192)
    refused(G.GuardRefused, e, ctx_for(tmp_path, p), node, "pmem1", "0x900002000",
            "no pmem block device holds")


def test_address_at_another_offset_refused(dev):
    tmp_path, node, p = dev
    e = entry(absolute=DATA_START + 12288)
    refused(G.GuardRefused, e, ctx_for(tmp_path, p), node, "pmem1", "the record says 8192")


def test_device_located_by_address_after_a_rename(dev):
    """Recorded as pmem7 before a reboot; the same physical bytes are pmem1 now."""
    tmp_path, _node, p = dev
    path, name, devnum, shift, lo, hi = G.locate_device(entry(blockdev="pmem7"), p.topology(),
                                                        str(tmp_path / "dev"))
    assert name == "pmem1" and path.endswith("/dev/pmem1") and (lo, hi) == (8192, 12288)
    assert devnum == "259:1" and shift == 0


def test_outside_the_data_area_refused(dev):
    tmp_path, node, p = dev
    e = entry(blockdev_offset=(1 << 20) - 512, absolute=DATA_START + (1 << 20) - 512, length=4096)
    refused(G.RangeOutsideDevice, e, ctx_for(tmp_path, p), node, "pmem1", "outside the data area")


def test_offline_window_opt_in_required(dev):
    tmp_path, node, p = dev
    refused(G.GuardRefused, entry(), ctx_for(tmp_path, p, window=False), node, "pmem1",
            "offline-window opt-in is false", "offline_window_allowed")


@pytest.mark.parametrize("kind", ["unknown", "file"])
def test_device_write_over_unaccepted_data_refused(dev, kind):
    tmp_path, node, p = dev
    e = dict(entry(), owner={"kind": kind})
    refused(G.GuardRefused, e, ctx_for(tmp_path, p), node, "pmem1", "not accepted as lost")


def test_device_that_cannot_clear_refused(dev):
    tmp_path, node, p = dev
    caps = {"devices": {"pmem1": {"write_clears": False, "description": "pmem1 (QEMU NVDIMM)"}}}
    refused(G.DeviceCannotClear, entry(), ctx_for(tmp_path, p, caps=caps), node, "pmem1",
            "cannot clear poison by write")


def test_ndctl_without_clear_command_refused(dev):
    tmp_path, node, p = dev
    ran = []
    ctx = ctx_for(tmp_path, p)
    ctx.runner = ran.append
    with pytest.raises(G.DeviceCannotClear) as info:
        C.ndctl_clear(entry(), ctx)
    assert "no clear-error command" in str(info.value) and "Next step" in str(info.value)
    assert ran == []


def test_range_no_longer_listed_is_skipped_not_written(dev):
    tmp_path, node, p = dev
    e = entry(blockdev_offset=32768, absolute=DATA_START + 32768)
    with pytest.raises(G.AlreadyDone) as info:
        C.device_write(e, ctx_for(tmp_path, p))
    assert "no longer listed" in str(info.value)
    assert node.read_bytes() == b"\xff" * 65536


def test_regular_file_posing_as_device_refused(dev):
    tmp_path, node, p = dev
    refused(G.GuardRefused, entry(), ctx_for(tmp_path, p), node, "pmem1", "not a block device")


def test_symlinked_device_node_refused(dev):
    tmp_path, node, p = dev
    os.rename(str(node), str(tmp_path / "real"))
    os.symlink(str(tmp_path / "real"), str(node))
    with pytest.raises(G.GuardRefused) as info:
        C.device_write(entry(), ctx_for(tmp_path, p))
    assert "symlink" in str(info.value) and "Next step" in str(info.value)
    assert (tmp_path / "real").read_bytes() == b"\xff" * 65536


# ---- files --------------------------------------------------------------------------------

@pytest.fixture
def damaged(tmp_path):
    f = tmp_path / "fs" / "data.bin"
    f.parent.mkdir()
    f.write_bytes(b"\0" * 12288)
    src = tmp_path / "good.bin"
    src.write_bytes(b"\x11" * 12288)
    st = os.stat(str(f))
    owner = {"kind": "file", "device": "/dev/pmem1", "mountpoint": str(f.parent),
             "inode": st.st_ino, "generation": None, "paths": [str(f)], "file_offset": 4096,
             "length": 4096, "repair_offset": 4096, "repair_length": 4096}
    e = {"id": "e2", "state": "open", "owner": owner, "closure": None, "history": [],
         "range": {"id": "pmem1@0x1000+0x1000", "blockdev": "pmem1", "blockdev_offset": 4096,
                   "length": 4096}}
    return f, src, e


def _file_refused(e, src, f, *names):
    before = f.read_bytes()
    with pytest.raises(G.GuardRefused) as info:
        C.rewrite(e, src, G.WriteContext(None, capabilities=E820))
    text = str(info.value)
    for name in names:
        assert name in text, text
    assert "Next step" in text and f.read_bytes() == before
    return text


def test_file_through_a_symlinked_directory_refused(damaged, tmp_path):
    f, src, e = damaged
    (tmp_path / "link").symlink_to(f.parent)
    e["owner"]["paths"] = [str(tmp_path / "link" / "data.bin")]
    _file_refused(e, str(src), f, "link", "not followed", "pmem1@0x1000+0x1000")


def test_file_replaced_since_resolution_refused(damaged):
    f, src, e = damaged
    e["owner"]["inode"] += 10 ** 9
    _file_refused(e, str(src), f, str(f), "replaced since resolution")


def test_file_size_changed_refused(damaged):
    f, src, e = damaged
    e["owner"]["size"] = 4096
    _file_refused(e, str(src), f, str(f), "the record says 4096")


def test_zeros_without_accepted_loss_refused(damaged):
    f, _src, e = damaged
    _file_refused(e, "zeros", f, "pmem1", "accepted as lost")


def test_file_on_another_filesystem_than_recorded_refused(damaged):
    f, src, e = damaged
    e["owner"]["mountpoint"] = "/proc"
    _file_refused(e, str(src), f, "not on the filesystem mounted at /proc")


NFIT_TEST = {"kernel": "6.1.0", "devices": {"pmem1": {"bus_kind": "nfit_test", "write_clears": True,
                                                      "dax_write_clears": False,
                                                      "description": "pmem1 (nfit_test.0 on ndbus1)"}}}


@pytest.mark.parametrize("dax_now, words", [
    (True, ["is DAX-mapped", "nfit_test.0", "remount", "without dax"]),
    (None, ["cannot tell whether", "DAX-mapped", "remount"]),
])
def test_rewrite_of_a_dax_file_on_a_bus_without_recovery_write_refused(damaged, dax_now, words):
    """nfit_test (and pre-5.19 kernels) cannot clear by a DAX write: the write fails or shuts the
    filesystem down. The plan refuses it from the facts; the guard refuses it again from the file
    as opened now (here remounted with dax since the plan), and when the kernel cannot say."""
    f, src, e = damaged
    before = f.read_bytes()
    ctx = G.WriteContext(None, capabilities=NFIT_TEST, file_dax=lambda fd: dax_now)
    with pytest.raises(G.DeviceCannotClear) as info:
        C.rewrite(e, str(src), ctx)
    text = str(info.value)
    for word in words + [str(f), "pmem1@0x1000+0x1000", "Next step"]:
        assert word in text, text
    assert f.read_bytes() == before


def test_rewrite_of_a_file_not_dax_mapped_now_passes_the_dax_check(damaged):
    """The same bus with the filesystem mounted without dax: a buffered write clears there."""
    f, _src, e = damaged
    ctx = G.WriteContext(None, capabilities=NFIT_TEST, file_dax=lambda fd: False)
    caps = G.check_capabilities(e, "rewrite", ctx)
    with open(str(f), "rb") as fh:
        assert G.check_dax_rewrite(e, "rewrite", ctx, caps, fh.fileno(), str(f)) is None
        with pytest.raises(G.DeviceCannotClear):
            G.check_dax_rewrite(e, "rewrite", G.WriteContext(None, capabilities=NFIT_TEST,
                                                             file_dax=lambda fd: True),
                                caps, fh.fileno(), str(f))


def test_nothing_writes_around_the_guard():
    """Only guard.py writes to files/devices or runs commands in the acting code."""
    writers = re.compile(r"os\.pwrite\(|os\.write\(|_fallocate\(|fallocate\(|subprocess\.|"
                         r"os\.ftruncate\(|runner\(")
    offenders = []
    for name in ("clearing.py", "plan.py", "quarantine.py"):
        with open(os.path.join(MODULE_UTILS, name)) as f:
            for n, line in enumerate(f, 1):
                if writers.search(line) and not line.lstrip().startswith("#"):
                    offenders.append("%s:%d: %s" % (name, n, line.strip()))
    assert offenders == []
