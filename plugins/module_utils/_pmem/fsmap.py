# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""FS_IOC_GETFSMAP from Python: struct packing, paging, and owner decoding.

Layout (include/uapi/linux/fsmap.h)::

    struct fsmap      { u32 device, flags; u64 physical, owner, offset, length, reserved[3]; }  64 bytes
    struct fsmap_head { u32 iflags, oflags, count, entries; u64 reserved[6];
                        struct fsmap keys[2]; struct fsmap recs[]; }                        192 + 64*N

All physical offsets and lengths are bytes from the start of the filesystem's block device.
Stdlib only; runs on the target's Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import struct

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind

FSMAP_FMT = "=IIQQQQ24x"
FSMAP_SIZE = struct.calcsize(FSMAP_FMT)  # 64
HEAD_FMT = "=IIII48x"
HEAD_SIZE = struct.calcsize(HEAD_FMT) + 2 * FSMAP_SIZE  # 192

# _IOWR('X', 59, struct fsmap_head)
FS_IOC_GETFSMAP = (3 << 30) | (HEAD_SIZE << 16) | (ord("X") << 8) | 59
# _IOR('X', 126, struct xfs_fsop_geom) (v5 geometry, 256 bytes)
XFS_IOC_FSGEOMETRY = (2 << 30) | (256 << 16) | (ord("X") << 8) | 126
# _IOR('X', 127, struct xfs_bulkstat_req): v5 bulkstat (Linux 5.2+). Header struct xfs_bulk_ireq
# {u64 ino; u32 flags, icount, ocount, agno; u64 reserved[5]} (64 bytes), then struct xfs_bulkstat
# records of 192 bytes: bs_ino at 0, bs_gen at 64, bs_nlink at 112, bs_mode (u16) at 132.
BULK_IREQ_SIZE = 64
BULKSTAT_SIZE = 192
XFS_IOC_BULKSTAT = (2 << 30) | (BULK_IREQ_SIZE << 16) | (ord("X") << 8) | 127

FMR_OF_PREALLOC = 0x1
FMR_OF_ATTR_FORK = 0x2
FMR_OF_EXTENT_MAP = 0x4
FMR_OF_SHARED = 0x8
FMR_OF_SPECIAL_OWNER = 0x10
FMR_OF_LAST = 0x20

U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF

XFS_FSOP_GEOM_FLAGS_REFLINK = 0x100000
XFS_FSOP_GEOM_FLAGS_RMAPBT = 0x80000
XFS_FSOP_GEOM_FLAGS_PARENT = 0x2000000  # Linux parent pointers (mkfs.xfs -n parent=1, Linux 6.10+)


def fmr_owner(otype, code):
    """FMR_OWNER(type, code) from the uapi header."""
    return ((otype & U32_MAX) << 32) | (code & U32_MAX)


FMR_OWN_FREE = fmr_owner(0, 1)
FMR_OWN_UNKNOWN = fmr_owner(0, 2)
FMR_OWN_METADATA = fmr_owner(0, 3)

# special owner code -> (owner kind, metadata_kind). XFS and ext4 share some codes ('X' 1, 2, 5).
SPECIAL_OWNERS = {
    FMR_OWN_FREE: ("free", None),
    FMR_OWN_UNKNOWN: ("unknown", None),
    FMR_OWN_METADATA: ("metadata", "metadata"),
    fmr_owner(ord("X"), 1): ("metadata", "fs_headers"),     # XFS_FMR_OWN_FS: sb/agf/agi/agfl; ext4: sb
    fmr_owner(ord("X"), 2): ("metadata", "log"),            # XFS_FMR_OWN_LOG / EXT4_FMR_OWN_LOG
    fmr_owner(ord("X"), 3): ("metadata", "ag_btrees"),      # XFS_FMR_OWN_AG: bnobt/cntbt/rmapbt/agfl
    fmr_owner(ord("X"), 4): ("metadata", "inobt"),          # XFS_FMR_OWN_INOBT (inobt + finobt)
    fmr_owner(ord("X"), 5): ("metadata", "inodes"),         # XFS_FMR_OWN_INODES / EXT4 inode tables
    fmr_owner(ord("X"), 6): ("metadata", "refcountbt"),     # XFS_FMR_OWN_REFC
    fmr_owner(ord("X"), 7): ("metadata", "cow_staging"),    # XFS_FMR_OWN_COW
    fmr_owner(ord("X"), 8): ("metadata", "defective"),      # XFS_FMR_OWN_DEFECTIVE
    fmr_owner(ord("f"), 1): ("metadata", "gdt"),            # EXT4_FMR_OWN_GDT
    fmr_owner(ord("f"), 2): ("metadata", "reserved_gdt"),   # EXT4_FMR_OWN_RESV_GDT
    fmr_owner(ord("f"), 3): ("metadata", "block_bitmap"),   # EXT4_FMR_OWN_BLKBM
    fmr_owner(ord("f"), 4): ("metadata", "inode_bitmap"),   # EXT4_FMR_OWN_INOBM
}


class FsmapUnsupported(Exception):
    """GETFSMAP is not available here (errno says why: ENOTTY/EOPNOTSUPP/EPERM/EINVAL)."""

    def __init__(self, err, message):
        super(FsmapUnsupported, self).__init__(message)
        self.errno = err


def pack_key(device=0, flags=0, physical=0, owner=0, offset=0, length=0):
    return struct.pack(FSMAP_FMT, device, flags, physical, owner, offset, length)


def pack_head(count, low, high, iflags=0):
    """Build a request buffer for *count* records; *low*/*high* are packed keys."""
    buf = bytearray(HEAD_SIZE + count * FSMAP_SIZE)
    struct.pack_into(HEAD_FMT, buf, 0, iflags, 0, count, 0)
    off = struct.calcsize(HEAD_FMT)
    buf[off:off + FSMAP_SIZE] = low
    buf[off + FSMAP_SIZE:off + 2 * FSMAP_SIZE] = high
    return buf


def unpack_records(buf):
    """Return (oflags, [record dict]) from a filled request buffer."""
    _iflags, oflags, _count, entries = struct.unpack_from(HEAD_FMT, buf, 0)
    recs = []
    for i in range(entries):
        dev, flags, phys, owner, offset, length = struct.unpack_from(
            FSMAP_FMT, buf, HEAD_SIZE + i * FSMAP_SIZE)
        recs.append({"device": dev, "flags": flags, "physical": phys, "owner": owner,
                     "offset": offset, "length": length})
    return oflags, recs


def decode_record(rec, inode_type=None):
    """Classify one raw record.

    Returns a dict: kind (file|metadata|free|unknown), metadata_kind, inode, fork (data|attr|bmbt
    for inode owners, else None), file_offset (of the record start), shared, attr_fork, prealloc,
    physical, length.

    An inode's data-fork block is file data only when the inode is a regular file; GETFSMAP does
    not say, so *inode_type* (owner_kind vocabulary, from inode_modes()) decides, and without it
    the kind stays ``unknown`` until the caller learns the type (owners.py).
    """
    flags = rec["flags"]
    out = {
        "physical": rec["physical"],
        "length": rec["length"],
        "device": rec["device"],
        "inode": None,
        "fork": None,
        "file_offset": None,
        "shared": bool(flags & FMR_OF_SHARED),
        "attr_fork": bool(flags & FMR_OF_ATTR_FORK),
        "prealloc": bool(flags & FMR_OF_PREALLOC),
        "metadata_kind": None,
    }
    if flags & FMR_OF_SPECIAL_OWNER:
        kind, mkind = SPECIAL_OWNERS.get(rec["owner"], ("metadata", "special_%#x" % rec["owner"]))
        out["kind"] = kind
        out["metadata_kind"] = mkind
        return out
    out["inode"] = rec["owner"]
    extent_map = bool(flags & FMR_OF_EXTENT_MAP)
    out["fork"] = "bmbt" if extent_map else ("attr" if out["attr_fork"] else "data")
    out["kind"], out["metadata_kind"] = _kind.inode_owner_kind(
        inode_type, attr_fork=out["attr_fork"], extent_map=extent_map)
    if not extent_map:
        out["file_offset"] = rec["offset"]
    return out


def inode_types(fd, inodes, ioctl=None):
    """{inode: {type, mode, generation, nlink}} for the inodes of the XFS filesystem of *fd*, from
    one v5 bulkstat per inode (root; no path, no open, so a symlink or device node is never
    followed or opened). An inode bulkstat does not return (freed, or internal: quota, realtime
    bitmap) maps to None. Raises FsmapUnsupported when the ioctl is not there (not XFS, Linux
    before 5.2)."""
    do_ioctl = ioctl or _bulkstat_ioctl
    out = {}
    for ino in sorted(set(int(i) for i in inodes)):
        buf = bytearray(BULK_IREQ_SIZE + BULKSTAT_SIZE)
        struct.pack_into("=QIII", buf, 0, ino, 0, 1, 0)
        do_ioctl(fd, buf)
        ocount = struct.unpack_from("=I", buf, 16)[0]
        got = struct.unpack_from("=Q", buf, BULK_IREQ_SIZE)[0] if ocount else None
        if got != ino:  # bulkstat starts at the first allocated inode >= ino
            out[ino] = None
            continue
        mode = struct.unpack_from("=H", buf, BULK_IREQ_SIZE + 132)[0]
        out[ino] = {"type": _kind.type_from_mode(mode), "mode": mode,
                    "generation": struct.unpack_from("=I", buf, BULK_IREQ_SIZE + 64)[0],
                    "nlink": struct.unpack_from("=I", buf, BULK_IREQ_SIZE + 112)[0]}
    return out


# errnos that mean "this filesystem, kernel or caller cannot ask this", not a failure of the query
_UNSUPPORTED = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL)


def _call(fd, request, buf, what):
    try:
        fcntl.ioctl(fd, request, buf, True)
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            raise FsmapUnsupported(e.errno, "%s: %s" % (what, os.strerror(e.errno)))
        raise


def _bulkstat_ioctl(fd, buf):
    _call(fd, XFS_IOC_BULKSTAT, buf, "XFS bulkstat")


def _ioctl(fd, buf):
    _call(fd, FS_IOC_GETFSMAP, buf, "GETFSMAP")


def device_number(fd):
    """The fmr_device the kernel uses for this filesystem's data device (new_encode_dev(st_dev))."""
    dev = os.fstat(fd).st_dev
    major, minor = os.major(dev), os.minor(dev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def query(fd, start, end, device=None, batch=128, ioctl=None):
    """Yield raw records overlapping bytes [start, end) of the data device.

    Keys per the kernel docs: both keys carry the real device; the high key's physical is the last
    byte wanted and its length is 0; paging copies the last record into the low key until a record
    carries FMR_OF_LAST.
    """
    if end <= start:
        return
    do_ioctl = ioctl or _ioctl
    if device is None:
        device = device_number(fd)
    low = pack_key(device=device, physical=start)
    high = pack_key(device=device, flags=U32_MAX, physical=end - 1, owner=U64_MAX, offset=U64_MAX,
                    length=0)
    seen = set()
    while True:
        buf = pack_head(batch, low, high)
        do_ioctl(fd, buf)
        _oflags, recs = unpack_records(buf)
        if not recs:
            return
        for rec in recs:
            key = (rec["physical"], rec["owner"], rec["offset"], rec["flags"] & ~FMR_OF_LAST,
                   rec["length"])
            if key in seen:  # defensive: some kernels repeat the low-key record when paging
                continue
            seen.add(key)
            if rec["physical"] < end and rec["physical"] + rec["length"] > start:
                yield rec
        last = recs[-1]
        if last["flags"] & FMR_OF_LAST or last["physical"] >= end:
            return
        low = pack_key(device=last["device"], flags=last["flags"], physical=last["physical"],
                       owner=last["owner"], offset=last["offset"], length=last["length"])


def owners_of(fd, start, end, device=None, ioctl=None):
    """Decoded owners of bytes [start, end), each clipped to the overlap.

    Each item: decode_record() plus overlap_start/overlap_length (device bytes) and file_offset
    adjusted to the first bad byte for file and attr-fork owners.
    """
    out = []
    for rec in query(fd, start, end, device=device, ioctl=ioctl):
        d = decode_record(rec)
        lo = max(start, rec["physical"])
        hi = min(end, rec["physical"] + rec["length"])
        d["overlap_start"] = lo
        d["overlap_length"] = hi - lo
        if d["file_offset"] is not None:
            d["file_offset"] += lo - rec["physical"]
        out.append(d)
    return out


# How far a widened query reaches past the end of unaccounted bytes: more than one filesystem block
# (XFS blocks are at most 64 KiB). See owners_covering().
WIDEN_FORWARD = 1 << 20
# First step of the backward search (then x16 per step, down to the floor).
WIDEN_BACK = 1 << 20
SECTOR = 512


def _gaps(start, end, covered):
    """Sub-intervals of [start, end) that no (lo, hi) in *covered* touches."""
    pos = start
    out = []
    for lo, hi in sorted(covered):
        if lo > pos:
            out.append((pos, min(lo, end)))
        pos = max(pos, hi)
        if pos >= end:
            break
    if pos < end:
        out.append((pos, end))
    return [(a, b) for a, b in out if a < b]


def _clip_into(rec, pieces, out):
    """Append decode_record(rec) clipped to each of *pieces* [(lo, hi)] it overlaps."""
    for lo, hi in pieces:
        a = max(lo, rec["physical"])
        b = min(hi, rec["physical"] + rec["length"])
        if a >= b:
            continue
        d = decode_record(rec)
        d["overlap_start"] = a
        d["overlap_length"] = b - a
        if d["file_offset"] is not None:
            d["file_offset"] += a - rec["physical"]
        out.append(d)


def _any_record(fd, start, end, device, do_ioctl):
    """True when one GETFSMAP call with keys [start, end) reports anything overlapping them."""
    if end <= start:
        return False
    buf = pack_head(1, pack_key(device=device, physical=start),
                    pack_key(device=device, flags=U32_MAX, physical=end - 1, owner=U64_MAX,
                             offset=U64_MAX, length=0))
    do_ioctl(fd, buf)
    _o, recs = unpack_records(buf)
    return any(r["physical"] < end and r["physical"] + r["length"] > start for r in recs)


def _search_back(fd, lo, floor, device, do_ioctl):
    """The largest sector-aligned p in [floor, lo) such that a query with keys [p, lo) reports
    something (the start of whatever precedes *lo*), or None when [floor, lo) reports nothing.

    Exponential steps back (1 MiB, 16 MiB, ...) through space that reports nothing, then a binary
    search inside the first step that reports something: O(log) single-record calls, never a walk
    over every record of the allocation group."""
    empty_from = lo            # [empty_from, lo) is known to report nothing
    back = WIDEN_BACK
    while True:
        low = max(floor, ((lo - back) // SECTOR) * SECTOR)
        if _any_record(fd, low, empty_from, device, do_ioctl):
            break
        if low <= floor:
            return None
        empty_from = low
        back *= 16
    good, bad = low, empty_from  # [good, empty_from) reports something, [bad, empty_from) nothing
    while bad - good > SECTOR:
        mid = ((good + bad) // 2 // SECTOR) * SECTOR
        if mid <= good:
            break
        if _any_record(fd, mid, empty_from, device, do_ioctl):
            good = mid
        else:
            bad = mid
    return good


def unaccounted(start, end, owners):
    """Bytes [(lo, hi)] of [start, end) that none of *owners* (owners_of() items) covers."""
    return _gaps(start, end, [(o["overlap_start"], o["overlap_start"] + o["overlap_length"])
                              for o in owners])


def owners_covering(fd, start, end, device=None, ioctl=None, agsize=None, fs_size=None,
                    point=None):
    """owners_of() that does not take an empty answer for bytes inside the filesystem at face value.

    *point*: the owners_of() answer for [start, end) when the caller has it already.
    Returns (owners, unaccounted): owners as owners_of(), each clipped to [start, end) and never
    counting a byte twice unless the kernel reports it twice (reflink); unaccounted is
    [(lo, hi)] of bytes no query reported.

    1. The point query (keys [start, end)): the common case, one call.
    2. For bytes it left unaccounted (inside the filesystem, when *fs_size* is known): one widened
       query, keys [lo - 1 MiB, hi + 1 MiB). XFS with rmapbt synthesizes free space as the gaps
       between rmap records; kernels before 6.11 (fix ca6448aed4f1) end the trailing gap at the
       start of the fs block holding the high key, so a query whose keys lie inside one free extent
       reports nothing for its last block (a one-block query: nothing at all), and 6.11/6.12 drop the
       last sector. Moving the high key a block further makes the gap cover the wanted bytes.
    3. Still unaccounted: search backwards (from the bytes down to their allocation group's start
       when *agsize* is known, else the device start) for the start of the preceding record, and
       query from there (for kernels that report an extent only when its start lies in the keys).
    Records from 2 and 3 are clipped to the still-unaccounted bytes.
    """
    do_ioctl = ioctl or _ioctl
    if device is None:
        device = device_number(fd)
    if point is None:
        owners = owners_of(fd, start, end, device=device, ioctl=do_ioctl)
    else:
        owners = list(point)
    gaps = unaccounted(start, end, owners)
    if not gaps:
        return owners, []
    limit = fs_size if fs_size is not None else end
    inside = [(lo, min(hi, limit)) for lo, hi in gaps if lo < limit]
    beyond = [(max(lo, limit), hi) for lo, hi in gaps if hi > limit]
    # 2: one widened query over all the gaps of this range
    if inside:
        found = _query_into(fd, max(0, inside[0][0] - WIDEN_BACK), inside[-1][1] + WIDEN_FORWARD,
                            inside, device, do_ioctl)
        owners.extend(found)
        inside = _remaining(inside, found)
    # 3: search backwards, one gap piece (within one allocation group) at a time
    if inside and agsize:
        inside = [piece for lo, hi in inside for piece in _split(lo, hi, agsize)]
    todo, inside = inside, []
    for lo, hi in todo:
        floor = (lo // agsize) * agsize if agsize else 0
        p = _search_back(fd, lo, floor, device, do_ioctl)
        if p is None:
            inside.append((lo, hi))
            continue
        found = _query_into(fd, p, hi + WIDEN_FORWARD, [(lo, hi)], device, do_ioctl)
        owners.extend(found)
        inside.extend(_remaining([(lo, hi)], found))
    return owners, sorted(inside + beyond)


def _query_into(fd, qlo, qhi, pieces, device, do_ioctl):
    """The owners one query over bytes [qlo, qhi) names for *pieces*, clipped to them."""
    found = []
    for rec in query(fd, qlo, qhi, device=device, ioctl=do_ioctl):
        _clip_into(rec, pieces, found)
    return found


def _remaining(pieces, found):
    covered = [(o["overlap_start"], o["overlap_start"] + o["overlap_length"]) for o in found]
    return [g for lo, hi in pieces for g in _gaps(lo, hi, covered)]


def _split(lo, hi, step):
    out = []
    while lo < hi:
        nxt = min(hi, (lo // step + 1) * step)
        out.append((lo, nxt))
        lo = nxt
    return out


def xfs_geometry(fd):
    """XFS_IOC_FSGEOMETRY (v5): dict with blocksize, agblocks, agcount, sectsize, datablocks, rmapbt,
    reflink, parent (parent pointers: xfs_parents.py names paths without a walk); None when the
    ioctl is not supported (not XFS)."""
    buf = bytearray(256)
    try:
        fcntl.ioctl(fd, XFS_IOC_FSGEOMETRY, buf, True)
    except OSError:
        return None
    (blocksize, _rtextsize, agblocks, agcount, logblocks, sectsize, inodesize, _imaxpct,
     datablocks, _rtblocks, _rtextents, logstart) = struct.unpack_from("=8I4Q", buf, 0)
    flags = struct.unpack_from("=I", buf, 92)[0]
    return {
        "blocksize": blocksize, "agblocks": agblocks, "agcount": agcount, "sectsize": sectsize,
        "inodesize": inodesize, "datablocks": datablocks, "logblocks": logblocks,
        "logstart": logstart, "size": datablocks * blocksize,
        "rmapbt": bool(flags & XFS_FSOP_GEOM_FLAGS_RMAPBT),
        "reflink": bool(flags & XFS_FSOP_GEOM_FLAGS_REFLINK),
        "parent": bool(flags & XFS_FSOP_GEOM_FLAGS_PARENT),
    }


def refine_xfs_header(physical, geom):
    """For an XFS 'fs_headers' byte, name the header: sb, agf, agi or agfl (each one sector at the
    start of every AG). None when outside the four header sectors."""
    if not geom or not geom.get("agblocks") or not geom.get("sectsize"):
        return None
    agsize = geom["agblocks"] * geom["blocksize"]
    within = physical % agsize
    idx = within // geom["sectsize"]
    return {0: "sb", 1: "agf", 2: "agi", 3: "agfl"}.get(idx)
