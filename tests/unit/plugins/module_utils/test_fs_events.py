# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filesystem push events (Linux 7.x): the XFS health monitor's records and fanotify FAN_FS_ERROR,
packed the way the 7.3 kernel writes them; the watcher's use of them (PushSources, record_now)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import struct

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fs_events as E
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as R
from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch


def _topo(root=True):
    """e820 region at 1 GiB, fsdax namespace 1 MiB in with its data 2 MiB later, pmem0p1 1 MiB
    into pmem0 and mounted XFS (the shape of test_ranges' topology)."""
    res = (lambda v: v) if root else (lambda v: None)
    return {
        "kernel": "7.3.0", "gathered_as_root": root,
        "buses": {"ndbus0": {"name": "ndbus0", "provider": "e820", "regions": ["region0"]}},
        "regions": {"region0": {"name": "region0", "bus": "ndbus0", "size": 1 << 29, "resource": res(1 << 30),
                                "namespaces": ["namespace0.0"], "badblocks": [], "ndctl_badblocks": []}},
        "namespaces": {"namespace0.0": {
            "name": "namespace0.0", "region": "region0", "mode": "fsdax", "size": 256 << 20,
            "resource": res((1 << 30) + (1 << 20)), "data_offset": (2 << 20) if root else None,
            "data_size": 254 << 20, "blockdev": "pmem0", "dax_device": None, "ndctl_badblocks": []}},
        "blockdevs": {"pmem0": {"name": "pmem0", "namespace": "namespace0.0", "badblocks": [], "dev": "259:0",
                                "partitions": {"pmem0p1": {"name": "pmem0p1", "start": 1 << 20,
                                                           "size": 100 << 20, "dev": "259:1"}}}},
        "dax": {},
        "mounts": [{"device": "/dev/pmem0p1", "blockdev": "pmem0", "partition": "pmem0p1",
                    "mountpoint": "/mnt", "fstype": "xfs", "dax": True}],
    }


def health(domain, typ, union=b"", time_ns=1764633600 * 10 ** 9):
    rec = struct.pack("=IIQ", domain, typ, time_ns) + union.ljust(32, b"\0") + b"\0" * 16
    assert len(rec) == E.HEALTH_EVENT_SIZE
    return rec


MEDIA = health(5, 7, struct.pack("=QQ", 2056, 8))       # datadev media error: daddr 2056, 8 sectors
LOST = health(0, 1, struct.pack("=Q", 17))              # the queue dropped 17 events
DATALOST = health(8, 12, struct.pack("=QQQII", 20480, 4096, 131, 7, 5))
SHUTDOWN = health(0, 6, struct.pack("=I", 16 | 1))
RUNNING = health(0, 0)


def test_ioctl_number_is_the_7_3_abi():
    # _IOW('X', 68, struct xfs_health_monitor): direction write, 32 bytes
    assert E.XFS_IOC_HEALTH_MONITOR == 0x40205844


def test_health_records_decode_by_type():
    evs = E.parse_health_events(RUNNING + MEDIA + LOST + DATALOST + SHUTDOWN + b"\0" * 10)
    assert [e["type"] for e in evs] == ["running", "media_error", "lost", "datalost", "shutdown"]
    media = evs[1]
    assert (media["device"], media["offset"], media["length"]) == ("datadev", 2056 * 512, 4096)
    assert evs[2]["lost"] == 17
    assert (evs[3]["inode"], evs[3]["generation"], evs[3]["pos"], evs[3]["length"], evs[3]["error"]) == (
        131, 7, 20480, 4096, 5)
    assert evs[4]["reasons"] == ["metadata I/O error", "on-disk corruption"]
    assert "dropped 17 event(s)" in E.describe_health(evs[2], "/mnt/x")


def fan_event(mask, error=None, count=1, fsid=(0x1234, 0x5678), htype=0x81, handle=None):
    infos = b""
    if error is not None:
        infos += struct.pack("=BBHiI", E.FAN_EVENT_INFO_TYPE_ERROR, 0, 12, error, count)
    handle = handle if handle is not None else struct.pack("=QI", 1179777, 3)
    fid = struct.pack("=II", *fsid) + struct.pack("=Ii", len(handle), htype) + handle
    infos += struct.pack("=BBH", E.FAN_EVENT_INFO_TYPE_FID, 0, 4 + len(fid)) + fid
    return struct.pack(E.FAN_METADATA_FMT, E.FAN_METADATA_LEN + len(infos), 3, 0, E.FAN_METADATA_LEN,
                       mask, -1, 0) + infos


def test_fanotify_fs_error_names_errno_count_and_inode():
    (ev,) = E.parse_fanotify(fan_event(E.FAN_FS_ERROR, error=errno.EIO, count=3))
    assert ev["fs_error"] and not ev["overflow"]
    assert (ev["error"], ev["error_count"], ev["inode"], ev["fsid"]) == (errno.EIO, 3, 1179777, "0000123400005678")
    assert "EIO" in E.describe_fs_error(ev, "/mnt/x") and "inode 1179777" in E.describe_fs_error(ev, "/mnt/x")


def test_fanotify_truncated_event_is_not_read_past_its_end():
    data = fan_event(E.FAN_FS_ERROR, error=errno.EIO)
    assert E.parse_fanotify(data[:-5]) == []


def test_device_address_through_the_partition():
    topo = _topo()
    # region at 1 GiB, namespace 1 MiB in, data 2 MiB later, partition 1 MiB into the device
    assert R.device_address(topo, "259:1", 4096) == (1 << 30) + (3 << 20) + (1 << 20) + 4096
    assert R.device_address(topo, "259:0", 0) == (1 << 30) + (3 << 20)
    assert R.device_address(topo, "8:0", 0) is None
    unprivileged = _topo(root=False)
    assert R.device_address(unprivileged, "259:0", 0) is None


class Kernel:
    """A health monitor and a fanotify fd backed by pipes (select/read like the real ones)."""

    def __init__(self, monitor_errno=None, fan_errno=None):
        self.monitor_errno, self.fan_errno = monitor_errno, fan_errno
        self.mon_r, self.mon_w = os.pipe()
        self.fan_r, self.fan_w = os.pipe()
        self.marked = []

    def open_monitor(self, mp):
        if self.monitor_errno:
            raise OSError(self.monitor_errno, os.strerror(self.monitor_errno))
        return self.mon_r

    def fan_init(self):
        if self.fan_errno:
            raise OSError(self.fan_errno, os.strerror(self.fan_errno))
        return self.fan_r

    def fan_mark(self, fd, mp):
        self.marked.append(mp)


MOUNTS = [{"dev": "259:1", "root": "/", "mountpoint": "/mnt", "fstype": "xfs"},
          {"dev": "259:1", "root": "/sub", "mountpoint": "/bind", "fstype": "xfs"},
          {"dev": "8:1", "root": "/", "mountpoint": "/", "fstype": "ext4"},
          {"dev": "0:22", "root": "/", "mountpoint": "/proc", "fstype": "proc"}]


def sources(kernel, logs=None):
    return watch.PushSources(open_monitor=kernel.open_monitor, fanotify=(kernel.fan_init, kernel.fan_mark),
                             mounts=lambda: MOUNTS, log=(logs.append if logs is not None else None))


def test_push_sources_follow_each_filesystem_once():
    k = Kernel()
    push = sources(k)
    push.refresh()
    push.refresh()
    assert push.status()["xfs_health"] == ["/mnt"]
    assert sorted(k.marked) == ["/", "/mnt"]  # each filesystem once, never the bind mount or /proc


def test_media_error_is_pushed_lost_and_datalost_are_warnings():
    k = Kernel()
    push = sources(k)
    push.refresh()
    os.write(k.mon_w, RUNNING + MEDIA + LOST + DATALOST)
    pushed, warnings, trigger = push.read(k.mon_r)
    assert trigger
    assert [(p["source"], p["dev"], p["offset"], p["length"]) for p in pushed] == [
        ("xfs_health", "259:1", 2056 * 512, 4096)]
    assert [w["source"] for w in warnings] == ["xfs_health", "xfs_health"]
    assert "dropped 17" in warnings[0]["message"] and "inode 131" in warnings[1]["message"]


def test_a_kernel_without_the_sources_is_noted_not_fatal():
    logs = []
    push = sources(Kernel(monitor_errno=errno.ENOTTY, fan_errno=errno.EINVAL), logs)
    push.refresh()
    push.refresh()  # not retried
    assert push.fds() == []
    assert sum("not on this kernel" in m for m in logs) == 2


def test_xfs_healer_holding_the_monitor_is_said():
    logs = []
    push = sources(Kernel(monitor_errno=errno.EEXIST), logs)
    push.refresh()
    assert any("xfs_healer" in m for m in logs)


def test_pushed_media_error_reaches_the_ledger_with_its_source(tmp_path):
    topo = _topo()
    k = Kernel()
    push = sources(k)
    push.refresh()
    os.write(k.mon_w, MEDIA + LOST)
    pushed, warnings, _t = push.read(k.mon_r)
    seen = {}

    def gather():
        placed, _w = watch.place_pushed(pushed, topo)
        seen["placed"] = placed
        return {"bad_ranges": R.gather_bad_ranges(topo, events=placed), "warnings": []}

    def resolve(ranges, facts):
        owner = {"kind": "file", "inode": 131, "file_offset": 0, "paths": ["/mnt/victim"],
                 "device": "/dev/pmem0p1"}
        return [{"range_id": r["id"], "owners": [dict(owner, range_id=r["id"], length=r["length"])],
                 "error": None} for r in ranges]
    ledger_path = str(tmp_path / "ledger.json")
    out = watch.record_now(ledger_path, gather=gather, resolve=resolve, pushed=pushed, warnings=warnings,
                           topology=topo)
    assert [c["change"] for c in out["changes"]] == ["new"]
    data = L.load(ledger_path)
    (entry,) = data["entries"]
    detected = entry["history"][0]
    assert detected["event"] == "detected" and detected["details"]["sources"] == ["xfs_health"]
    assert seen["placed"][0]["address"] == (1 << 30) + (3 << 20) + (1 << 20) + 2056 * 512
    assert [w["source"] for w in data["warnings"]] == ["xfs_health"]
    assert "dropped 17" in data["warnings"][0]["message"]
    # the same event again (a restart re-reads nothing, but a rescan may re-place it): no change
    before = open(ledger_path, "rb").read()
    again = watch.record_now(ledger_path, gather=gather, resolve=resolve, pushed=pushed, topology=topo)
    assert again["changes"] == [] and open(ledger_path, "rb").read() == before


def test_warnings_alone_are_written_and_not_repeated(tmp_path):
    ledger_path = str(tmp_path / "ledger.json")
    w = [{"source": "fs_error", "message": "filesystem error on /mnt: EIO"}]
    watch.record_now(ledger_path, gather=lambda: {"bad_ranges": []}, warnings=w)
    watch.record_now(ledger_path, gather=lambda: {"bad_ranges": []}, warnings=w)
    assert [x["message"] for x in L.load(ledger_path)["warnings"]] == [w[0]["message"]]


def test_a_source_that_fails_is_dropped_with_a_warning_not_fatal():
    k = Kernel()
    logs = []
    push = sources(k, logs)
    push.refresh()
    os.close(k.mon_r)  # the monitor's fd goes bad under the watcher: EBADF on read
    _p, warnings, trigger = push.read(k.mon_r)
    assert trigger and "stopped following /mnt" in warnings[0]["message"]
    assert k.mon_r not in push.fds() and push.fan_fd is not None
