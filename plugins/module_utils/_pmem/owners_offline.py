# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Owners on unmounted filesystems, read from the block device with the filesystems' own tools.

- XFS: ``xfs_db -r -c 'fsmap START END'`` (needs rmapbt); without rmapbt ``blockget -n`` then
  ``blockuse -n``. Paths: ``blockget -n`` then ``ncheck -i INO``.
- ext4: ``debugfs -R 'icheck BLK...'`` then ``stat <INO>`` (type, generation, extents: the file
  offset) and ``ncheck -c INO...`` (every path); blocks no inode owns are told apart with ``testb``.

``resolve`` is the backend ``owners.resolve_owners`` calls for an unmounted filesystem.
Every function takes a *run* callable ``run(argv, stdin=None) -> (rc, stdout, stderr)`` so unit tests
feed captured tool output. Stdlib only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import stat as _stat
import struct
import subprocess

from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_kind as _kind
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owner_record as _record
from ansible_collections.pmem.poison.plugins.module_utils._pmem.owner_record import new_owner

XFS_MAGIC = b"XFSB"
EXT4_MAGIC = 0xEF53
XFS_RO_COMPAT_RMAPBT = 1 << 1
XFS_RO_COMPAT_REFLINK = 1 << 2
EXT4_INCOMPAT_64BIT = 0x80
EXT4_FIRST_INO = 11  # inodes below this are the filesystem's own

# xfs_db rmap owner codes (XFS_RMAP_OWN_*)
XFS_RMAP_OWNERS = {
    -1: ("metadata", "null"), -2: ("unknown", None), -3: ("metadata", "fs_headers"),
    -4: ("metadata", "log"), -5: ("metadata", "ag_btrees"), -6: ("metadata", "inobt"),
    -7: ("metadata", "inodes"), -8: ("metadata", "refcountbt"), -9: ("metadata", "cow_staging"),
    -10: ("metadata", "defective"),
}
EXT4_SPECIAL_INODES = {1: "badblocks_inode", 2: "directory", 3: "quota", 4: "quota",
                       5: "boot_loader", 6: "undelete_dir", 7: "reserved_gdt", 8: "log",
                       9: "exclude", 10: "replica"}


class OfflineError(Exception):
    """A tool failed or its output could not be parsed."""


def default_run(argv, stdin=None):
    """(rc, stdout, stderr) as text. File names are bytes: decoded as the os module does
    (UTF-8, surrogateescape), so a name that is not UTF-8 neither fails the decode nor changes;
    no newline translation (a name may hold a carriage return)."""
    p = subprocess.run(argv, input=None if stdin is None else stdin.encode("utf-8", "surrogateescape"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return (p.returncode, p.stdout.decode("utf-8", "surrogateescape"),
            p.stderr.decode("utf-8", "surrogateescape"))


def _lines(text):
    """``text`` split at newlines only (str.splitlines also splits at \\r, \\x1c, \\x85...,
    which a file name may hold); the terminator of the last line gives no empty line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def probe_superblock(data):
    """Identify XFS or ext4 from the first 2 KiB of a device. Returns dict or None."""
    if len(data) >= 216 and data[:4] == XFS_MAGIC:
        blocksize, dblocks = struct.unpack_from(">IQ", data, 4)
        agblocks, agcount = struct.unpack_from(">II", data, 84)
        sectsize = struct.unpack_from(">H", data, 102)[0]
        agblklog = data[124]
        ro_compat = struct.unpack_from(">I", data, 212)[0]
        version = struct.unpack_from(">H", data, 100)[0] & 0xF
        return {"fstype": "xfs", "blocksize": blocksize, "size": dblocks * blocksize,
                "uuid": _uuid_text(data[32:48]),
                "agblocks": agblocks, "agcount": agcount, "sectsize": sectsize,
                "agblklog": agblklog,
                "rmapbt": version >= 5 and bool(ro_compat & XFS_RO_COMPAT_RMAPBT),
                "reflink": version >= 5 and bool(ro_compat & XFS_RO_COMPAT_REFLINK)}
    if len(data) >= 1024 + 0x158:
        sb = data[1024:]
        if struct.unpack_from("<H", sb, 56)[0] == EXT4_MAGIC:
            blocks_lo = struct.unpack_from("<I", sb, 4)[0]
            log_bs = struct.unpack_from("<I", sb, 24)[0]
            incompat = struct.unpack_from("<I", sb, 96)[0]
            blocks_hi = struct.unpack_from("<I", sb, 0x150)[0] if incompat & EXT4_INCOMPAT_64BIT else 0
            blocksize = 1024 << log_bs
            first_data = struct.unpack_from("<I", sb, 20)[0]
            return {"fstype": "ext4", "blocksize": blocksize, "uuid": _uuid_text(sb[0x68:0x78]),
                    "size": ((blocks_hi << 32) | blocks_lo) * blocksize,
                    "first_data_block": first_data}
    return None


def _uuid_text(raw):
    """The filesystem uuid (sb_uuid / s_uuid, 16 bytes) as blkid prints it; None when all zero."""
    if len(raw) != 16 or not any(bytearray(raw)):
        return None
    h = "".join("%02x" % b for b in bytearray(raw))
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def probe_device(path):
    with open(path, "rb") as f:
        return probe_superblock(f.read(4096))


# ---------------------------------------------------------------- XFS
_FSMAP_LINE = re.compile(
    r"^\s*\d+:\s+(\d+)/(\d+)\s+len\s+(\d+)\s+owner\s+(-?\d+)\s+offset\s+(\d+)\s+bmbt\s+(\d)"
    r"\s+attrfork\s+(\d)\s+extflag\s+(\d)")


def parse_xfs_db_fsmap(text, geom):
    """Parse ``xfs_db fsmap`` lines into raw records in device bytes (physical, length, inode or
    special owner, file offset bytes, flags)."""
    bs = geom["blocksize"]
    out = []
    seen = set()
    for line in text.splitlines():
        m = _FSMAP_LINE.match(line)
        if not m or m.groups() in seen:  # several fsmap commands may report the same record
            continue
        seen.add(m.groups())
        agno, agbno, length, owner, offset, bmbt, attrfork, extflag = (int(x) for x in m.groups())
        out.append({"physical": (agno * geom["agblocks"] + agbno) * bs, "length": length * bs,
                    "owner": owner, "offset": offset * bs, "bmbt": bool(bmbt),
                    "attr_fork": bool(attrfork), "unwritten": bool(extflag)})
    return out


def xfs_fsbno(byte, geom):
    """Device byte -> xfs_db fsblock number (AG-encoded: agno << agblklog | agbno)."""
    blk = byte // geom["blocksize"]
    agno, agbno = divmod(blk, geom["agblocks"])
    return (agno << geom["agblklog"]) | agbno


def xfs_fsmap_command(start, end, geom):
    """The ``xfs_db fsmap`` command covering device bytes [start, end).

    xfs_db checks its arguments against sb_dblocks although they are AG-encoded block numbers
    (agno << agblklog | agbno): when agblocks is not a power of two, blocks of the last AGs
    encode to numbers >= dblocks and the query is refused ("Bad fsmap start_fsb") with no
    record, which read as free space. Such a range is asked from the start of the highest AG
    xfs_db accepts, with no end (to the last AG); the records are clipped to the range after."""
    dblocks = geom["size"] // geom["blocksize"]
    lo, hi = xfs_fsbno(start, geom), xfs_fsbno(end - 1, geom)
    if lo < dblocks and hi < dblocks:
        return "fsmap %d %d" % (lo, hi)
    if lo < dblocks:
        return "fsmap %d" % lo
    agno = (start // geom["blocksize"]) // geom["agblocks"]
    while agno > 0 and (agno << geom["agblklog"]) >= dblocks:
        agno -= 1
    return "fsmap %d" % (agno << geom["agblklog"])


def xfs_owners(device, intervals, geom, run=default_run):
    """Owners of device byte intervals [(start, end, tag)] on an unmounted XFS.

    Returns {tag: [piece]} where piece has kind, metadata_kind, inode, file_offset, physical,
    length, shared, attr_fork, unwritten. Bytes no rmap record covers are free space."""
    if not geom.get("rmapbt"):
        return xfs_owners_blockuse(device, intervals, geom, run=run)
    argv = ["xfs_db", "-r"]
    for start, end, _tag in intervals:
        argv += ["-c", xfs_fsmap_command(start, end, geom)]
    argv.append(device)
    rc, out, err = run(argv)
    if rc != 0:
        raise OfflineError("xfs_db fsmap failed: %s" % (err.strip() or out.strip()))
    refused = [line.strip() for line in (out + "\n" + err).splitlines() if line.startswith("Bad fsmap")]
    if refused:
        # a refused query returns no record: its bytes would all look free
        raise OfflineError("xfs_db refused an fsmap query (%s); mount the filesystem to resolve "
                           "the owners" % "; ".join(refused))
    recs = parse_xfs_db_fsmap(out, geom)
    wanted = set()
    for rec in recs:
        if rec["owner"] >= 0 and not rec["bmbt"] and not rec["attr_fork"] and any(
                rec["physical"] < e and s < rec["physical"] + rec["length"]
                for s, e, _t in intervals):
            wanted.add(rec["owner"])
    info = xfs_inode_info(device, sorted(wanted), run=run)
    types = dict((ino, i["type"]) for ino, i in info.items())
    return _assign(recs, intervals, lambda rec: _xfs_classify(rec, types))


def _xfs_classify(rec, types=None):
    if rec["owner"] < 0:
        kind, mkind = XFS_RMAP_OWNERS.get(rec["owner"], ("metadata", "special_%d" % rec["owner"]))
        return kind, mkind, None
    kind, mkind = _kind.inode_owner_kind((types or {}).get(rec["owner"]),
                                         attr_fork=rec["attr_fork"], extent_map=rec["bmbt"])
    return kind, mkind, rec["owner"]


_XFS_SB_INODES = ("rbmino", "rsumino", "uquotino", "gquotino", "pquotino")


def xfs_inode_info(device, inodes, run=default_run):
    """{inode: {type, mode, nlink, generation}} from ``xfs_db inode N`` + ``print core.mode ...``;
    the superblock's own inodes (realtime bitmap/summary, quota) are type ``internal``; a freed
    inode (mode 0) or one xfs_db cannot read has type None."""
    if not inodes:
        return {}
    argv = ["xfs_db", "-r", "-c", "sb 0", "-c", "print " + " ".join(_XFS_SB_INODES)]
    for ino in inodes:
        argv += ["-c", "inode %d" % ino, "-c", "print core.mode core.nlinkv2 core.gen"]
    argv.append(device)
    _rc, out, _err = run(argv)
    internal = set()
    for name in _XFS_SB_INODES:
        m = re.search(r"^%s = (\d+)" % name, out, re.M)
        if m and int(m.group(1)) not in (0, 0xFFFFFFFFFFFFFFFF):
            internal.add(int(m.group(1)))
    modes = [int(m.group(1), 8) for m in re.finditer(r"^core\.mode = (\d+)", out, re.M)]
    nlinks = [int(m.group(1)) for m in re.finditer(r"^core\.nlinkv2 = (\d+)", out, re.M)]
    gens = [int(m.group(1)) for m in re.finditer(r"^core\.gen = (\d+)", out, re.M)]
    result = {}
    if len(modes) != len(inodes):
        return dict((ino, {"type": _kind.INTERNAL if ino in internal else None, "mode": None,
                           "nlink": None, "generation": None}) for ino in inodes)
    for i, ino in enumerate(inodes):
        itype = _kind.INTERNAL if ino in internal else _kind.type_from_mode(modes[i])
        result[ino] = {"type": itype, "mode": modes[i],
                       "nlink": nlinks[i] if len(nlinks) == len(inodes) else None,
                       "generation": gens[i] if len(gens) == len(inodes) else None}
    return result


def _assign(recs, intervals, classify):
    result = {}
    for start, end, tag in intervals:
        pieces = []
        covered = []
        for rec in recs:
            lo = max(start, rec["physical"])
            hi = min(end, rec["physical"] + rec["length"])
            if lo >= hi:
                continue
            kind, mkind, ino = classify(rec)
            fo = None
            if kind == "file" or mkind == "attr_fork":
                fo = rec["offset"] + (lo - rec["physical"])
            pieces.append({"kind": kind, "metadata_kind": mkind, "inode": ino, "file_offset": fo,
                           "physical": lo, "length": hi - lo, "shared": rec.get("shared", False),
                           "attr_fork": rec.get("attr_fork", False),
                           "unwritten": rec.get("unwritten", False)})
            covered.append((lo, hi))
        # several inodes over the same bytes: reflinked (shared)
        for p in pieces:
            if p["kind"] == "file" and not p["shared"]:
                p["shared"] = any(q is not p and q["kind"] == "file" and q["inode"] != p["inode"]
                                  and q["physical"] < p["physical"] + p["length"]
                                  and p["physical"] < q["physical"] + q["length"] for q in pieces)
        for lo, hi in _gaps(start, end, covered):
            pieces.append({"kind": "free", "metadata_kind": None, "inode": None,
                           "file_offset": None, "physical": lo, "length": hi - lo,
                           "shared": False, "attr_fork": False, "unwritten": False})
        pieces.sort(key=lambda p: (p["physical"], p["inode"] or 0))
        result[tag] = pieces
    return result


def _gaps(start, end, covered):
    pos = start
    out = []
    for lo, hi in sorted(covered):
        if lo > pos:
            out.append((pos, lo))
        pos = max(pos, hi)
    if pos < end:
        out.append((pos, end))
    return out


_BLOCKUSE = re.compile(r"^block\s+(\d+)\s+\((\d+)/(\d+)\)\s+type\s+(\S+)(?:\s+inode\s+(\d+))?")
XFS_BLOCKUSE_TYPES = {
    "data": ("file", None), "rtdata": ("file", None), "rldata": ("file", "shared"), "attr": ("metadata", "attr_fork"),
    "btbmap": ("metadata", "bmbt"), "btbmapa": ("metadata", "bmbt"), "btbno": ("metadata", "ag_btrees"),
    "btcnt": ("metadata", "ag_btrees"), "btrmap": ("metadata", "ag_btrees"),
    "btrefc": ("metadata", "refcountbt"), "btino": ("metadata", "inobt"), "btfino": ("metadata", "inobt"),
    "inode": ("metadata", "inodes"), "log": ("metadata", "log"), "sb": ("metadata", "sb"),
    "agf": ("metadata", "agf"), "agi": ("metadata", "agi"), "agfl": ("metadata", "agfl"),
    "dir": ("metadata", "directory"), "free1": ("free", None), "free2": ("free", None),
    "free": ("free", None),
    "freelist": ("metadata", "agfl"), "symlink": ("metadata", "symlink"),
}


def xfs_owners_blockuse(device, intervals, geom, run=default_run):
    """XFS without rmapbt: ``blockget -n`` then ``fsblock N`` + ``blockuse -n -c COUNT`` (whole
    blocks; file offsets are found from the inode's bmap)."""
    bs = geom["blocksize"]
    argv = ["xfs_db", "-r", "-c", "blockget -n"]
    for start, end, _tag in intervals:
        first = start // bs
        count = (end - 1) // bs - first + 1
        argv += ["-c", "fsblock %d" % xfs_fsbno(start, geom), "-c", "blockuse -n -c %d" % count]
    argv.append(device)
    rc, out, err = run(argv)
    if rc != 0 and not out:
        raise OfflineError("xfs_db blockuse failed: %s" % err.strip())
    recs = []
    inodes = set()
    for line in out.splitlines():
        m = _BLOCKUSE.match(line.strip())
        if not m:
            continue
        agno, agbno = int(m.group(2)), int(m.group(3))
        kind, mkind = XFS_BLOCKUSE_TYPES.get(m.group(4), ("metadata", m.group(4)))
        ino = int(m.group(5)) if m.group(5) else None
        if ino is not None:
            inodes.add(ino)
        recs.append({"physical": (agno * geom["agblocks"] + agbno) * bs, "length": bs,
                     "owner": ino, "kind": kind, "mkind": None if mkind == "shared" else mkind,
                     "shared": mkind == "shared"})
    bmaps = xfs_bmaps(device, sorted(inodes), geom, run=run) if inodes else {}
    for rec in recs:
        rec["offset"] = 0
        if rec["kind"] == "file":
            rec["offset"] = _logical_for(bmaps.get(rec["owner"], []), rec["physical"], bs)
    return _assign(recs, intervals, lambda r: (r["kind"], r["mkind"], r["owner"]))


_BMAP = re.compile(r"data offset (\d+) startblock (\d+) \((\d+)/(\d+)\) count (\d+)")


def xfs_bmaps(device, inodes, geom, run=default_run):
    """{inode: [(logical_block, device_block, count)]} from ``xfs_db inode N`` + ``bmap``."""
    argv = ["xfs_db", "-r"]
    for ino in inodes:
        argv += ["-c", "inode %d" % ino, "-c", "print core.gen", "-c", "bmap"]
    argv.append(device)
    _rc, out, _err = run(argv)
    result = {}
    idx = -1
    for line in out.splitlines():
        if line.startswith("core.gen"):
            idx += 1
            continue
        m = _BMAP.search(line)
        if m and 0 <= idx < len(inodes):
            agno, agbno = int(m.group(3)), int(m.group(4))
            result.setdefault(inodes[idx], []).append(
                (int(m.group(1)), agno * geom["agblocks"] + agbno, int(m.group(5))))
    return result


def _logical_for(extents, physical, bs):
    blk = physical // bs
    for logical, start, count in extents:
        if start <= blk < start + count:
            return (logical + blk - start) * bs
    return None


def xfs_paths(device, inodes, run=default_run):
    """{inode: [path]} from ``blockget -n`` then ``ncheck -i``; paths are relative to the fs root
    (leading '/')."""
    if not inodes:
        return {}
    argv = ["xfs_db", "-r", "-c", "blockget -n"]
    for ino in inodes:
        argv += ["-c", "ncheck -i %d" % ino]
    argv.append(device)
    _rc, out, _err = run(argv)
    return _parse_ncheck(out, set(inodes))


def xfs_nlinks(device, inodes, run=default_run):
    """{inode: link count} (``xfs_db inode N`` + ``print core.nlinkv2``)."""
    if not inodes:
        return {}
    argv = ["xfs_db", "-r"]
    for ino in inodes:
        argv += ["-c", "inode %d" % ino, "-c", "print core.nlinkv2"]
    argv.append(device)
    _rc, out, _err = run(argv)
    vals = [int(m.group(1)) for m in re.finditer(r"core\.nlinkv2 = (\d+)", out)]
    return dict(zip(inodes, vals)) if len(vals) == len(inodes) else {}


# debugfs ncheck: "%u\t%s\n"; xfs_db ncheck: "%11llu %s\n". The name is everything after the
# one separator, trailing blanks included.
_NCHECK_RECORD = re.compile(r"^ *(\d+)[ \t](.*)$", re.S)


def _parse_ncheck(text, wanted):
    records = []
    for line in _lines(text):
        m = _NCHECK_RECORD.match(line)
        if m:
            records.append([int(m.group(1)), m.group(2)])
        elif records:
            # not a record: the previous name goes on (it holds a newline; an empty line is a
            # name ending in one)
            records[-1][1] += "\n" + line
    paths = {}
    for ino, name in records:
        if ino not in wanted:
            continue
        p = "/" + name.lstrip("/")
        if p.endswith("/.."):
            continue  # a subdirectory's link to its parent: the parent is named by its own entry
        if p.endswith("/."):
            p = p[:-2] or "/"  # xfs_db names a directory by its "." entry
        if p not in paths.setdefault(ino, []):
            paths[ino].append(p)
    for v in paths.values():
        v.sort()
    return paths


# ---------------------------------------------------------------- ext4
def _debugfs(device, commands, run):
    rc, out, err = run(["debugfs", "-f", "-", device], "\n".join(commands) + "\n")
    if rc != 0 and not out:
        raise OfflineError("debugfs failed: %s" % err.strip())
    sections = []
    for line in _lines(out):
        if line.startswith("debugfs: "):
            sections.append((line[len("debugfs: "):], []))
        elif sections:
            sections[-1][1].append(line)
    return sections


_STAT_EXT = re.compile(r"\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?")


def parse_debugfs_stat(lines):
    """type, generation, links and [(logical_blk, phys_blk, count)] from ``stat <ino>``."""
    info = {"type": None, "generation": None, "links": None, "extents": [], "xattr_block": None}
    in_ext = False
    for line in lines:
        m = re.search(r"File ACL:\s+(\d+)", line)
        if m and int(m.group(1)):
            info["xattr_block"] = int(m.group(1))
        m = re.search(r"Type:\s+(\S+)", line)
        if m and info["type"] is None:
            info["type"] = m.group(1)
        m = re.search(r"Generation:\s+(\d+)", line)
        if m:
            info["generation"] = int(m.group(1))
        m = re.search(r"Links:\s+(\d+)", line)
        if m:
            info["links"] = int(m.group(1))
        if line.startswith("EXTENTS:") or line.startswith("BLOCKS:"):
            in_ext = True
            continue
        if in_ext:
            for m in _STAT_EXT.finditer(line):
                l0, l1, p0 = int(m.group(1)), m.group(2), int(m.group(3))
                count = (int(l1) - l0 + 1) if l1 else 1
                info["extents"].append((l0, p0, count))
    return info


def ext4_owners(device, intervals, geom, run=default_run):
    """Owners of byte intervals on an unmounted ext4: icheck -> stat -> classification.

    Returns ({tag: [piece]}, {inode: info}) like xfs_owners plus per-inode stat info."""
    bs = geom["blocksize"]
    blocks = []
    for start, end, _tag in intervals:
        blocks.extend(range(start // bs, (end - 1) // bs + 1))
    blocks = sorted(set(blocks))
    owner_of = {}
    for chunk in _chunks(blocks, 256):
        for cmd, lines in _debugfs(device, ["icheck " + " ".join(str(b) for b in chunk)], run):
            for line in lines:
                parts = line.split("\t")
                if len(parts) == 2 and parts[0].strip().isdigit():
                    v = parts[1].strip()
                    owner_of[int(parts[0])] = int(v) if v.isdigit() else None
    inodes = sorted(set(i for i in owner_of.values() if i))
    unowned = [b for b in blocks if not owner_of.get(b)]
    infos = {}
    cmds = ["stat <%d>" % i for i in inodes] + ["testb %d" % b for b in unowned if b > 0]
    in_use = set([0]) if 0 in unowned else set()
    if cmds:
        for cmd, lines in _debugfs(device, cmds, run):
            if cmd.startswith("stat <"):
                infos[int(cmd[6:-1])] = parse_debugfs_stat(lines)
            elif cmd.startswith("testb "):
                for line in lines:
                    m = re.match(r"Block (\d+) marked in use", line)
                    if m:
                        in_use.add(int(m.group(1)))
    recs = []
    for b in blocks:
        ino = owner_of.get(b)
        rec = {"physical": b * bs, "length": bs, "owner": ino, "offset": None, "mkind": None}
        if ino:
            info = infos.get(ino, {})
            if ino < EXT4_FIRST_INO:
                rec["kind"], rec["mkind"] = "metadata", EXT4_SPECIAL_INODES.get(ino, "special_inode")
            else:
                off = _logical_for(info.get("extents", []), b * bs, bs)
                attr = info.get("xattr_block") == b
                # icheck names the inode for data, extent-index and xattr blocks alike: only a
                # block its extent list maps is in its data fork
                rec["kind"], rec["mkind"] = _kind.inode_owner_kind(
                    _kind.type_from_name(info.get("type")), attr_fork=attr,
                    extent_map=off is None and not attr)
                if rec["kind"] == "metadata" and rec["mkind"] == "bmbt":
                    rec["mkind"] = "extent_tree"
                if rec["kind"] == "file" or attr:
                    rec["offset"] = off if not attr else 0
                rec["attr_fork"] = attr
        elif b in in_use:
            rec["kind"], rec["mkind"] = "metadata", "fs_metadata"
        else:
            rec["kind"] = "free"
        recs.append(rec)
    pieces = _assign(recs, intervals, lambda r: (r["kind"], r["mkind"], r["owner"]))
    return pieces, infos


def ext4_paths(device, inodes, run=default_run):
    if not inodes:
        return {}
    paths = {}
    for chunk in _chunks(sorted(inodes), 256):
        for _cmd, lines in _debugfs(device, ["ncheck -c " + " ".join(str(i) for i in chunk)], run):
            paths.update(_parse_ncheck("".join(line + "\n" for line in lines), set(chunk)))
    return paths


# ---------------------------------------------------------------- ext4, mounted: candidates only
# debugfs on a mounted filesystem reads on-disk metadata that may lag the live filesystem (journal
# not checkpointed, delayed allocation): what these return are CANDIDATES that owners.py verifies
# with FIEMAP on the live files. ``-c`` (catastrophic mode) opens the device read-only and skips
# the bitmaps, which icheck/ncheck do not need.
DEBUGFS_ARG_MAX = 100000  # one -R request per call while it stays well under MAX_ARG_STRLEN


def _debugfs_request(device, verb, numbers, run, debugfs="debugfs"):
    """Run ``<verb> N N ...`` once: one ``-R`` argument when it fits, else chunked commands on
    stdin of the same debugfs process. Returns the output lines (command echo lines removed)."""
    request = verb + " " + " ".join(str(n) for n in numbers)
    if len(request) <= DEBUGFS_ARG_MAX:
        rc, out, err = run([debugfs, "-c", "-R", request, device])
    else:
        cmds = [verb + " " + " ".join(str(n) for n in chunk) for chunk in _chunks(numbers, 256)]
        rc, out, err = run([debugfs, "-c", "-f", "-", device], "\n".join(cmds) + "\n")
    if rc != 0:
        raise OfflineError("debugfs %s failed (rc %s): %s" % (verb.split()[0], rc, (
            err or "").strip()[-300:]))
    return [line for line in _lines(out) if not line.startswith("debugfs: ")]


def ext4_icheck(device, blocks, run=default_run, debugfs="debugfs"):
    """{block: inode or None} from one ``debugfs -c icheck`` over every block."""
    blocks = sorted(set(int(b) for b in blocks))
    if not blocks:
        return {}
    owner_of = {}
    for line in _debugfs_request(device, "icheck", blocks, run, debugfs):
        parts = line.split("\t")
        if len(parts) == 2 and parts[0].strip().isdigit():
            v = parts[1].strip()
            owner_of[int(parts[0])] = int(v) if v.isdigit() else None
    return owner_of


def ext4_ncheck(device, inodes, run=default_run, debugfs="debugfs"):
    """{inode: [path relative to the filesystem root, '/'-prefixed]} from one ``ncheck -c``."""
    inodes = sorted(set(int(i) for i in inodes))
    if not inodes:
        return {}
    return _parse_ncheck("".join(line + "\n" for line in
                                 _debugfs_request(device, "ncheck -c", inodes, run, debugfs)),
                         set(inodes))


def _chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def fs_block_device(fs, dev_root):
    """The block device node of a mounted filesystem (checked by st_rdev) or None."""
    for cand in (fs.get("device"), os.path.join(dev_root, "block", "%d:%d" % fs["dev"])):
        if not cand or not cand.startswith("/"):
            continue
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if _stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == fs["dev"]:
            return cand
    return None


def probe_filesystem(fs, dev_root):
    """The superblock (``probe_device``) of the filesystem of an owners target: known already for
    an unmounted one, else read from the block device of the mount; None when there is no such
    device or it cannot be read (not root)."""
    if fs.get("geom"):
        return fs["geom"]
    devpath = fs.get("device") if fs.get("offline") else fs_block_device(fs, dev_root)
    if devpath is None:
        return None
    try:
        return probe_device(devpath)
    except (IOError, OSError):
        return None


def resolve(group, fs, run):
    """Owners of every target of *group* (owners._Target: ranges on one unmounted filesystem,
    ``fs["geom"]`` its superblock) from the filesystem's own tools on the block device."""
    geom = fs["geom"]
    dev = fs["device"]
    intervals = []
    for t in group:
        if t.offset >= geom["size"]:
            t.add(new_owner(
                "unknown", t.rid, fs, length=t.length, fs_offset=t.offset,
                reason="beyond the end of the filesystem (%d bytes): not used by it" % geom["size"]))
            continue
        end = min(t.offset + t.length, geom["size"])
        intervals.append((t.offset, end, t))
        if end < t.offset + t.length:
            t.add(new_owner(
                "unknown", t.rid, fs, length=t.offset + t.length - end, fs_offset=end,
                reason="beyond the end of the filesystem"))
    if not intervals:
        return
    keyed = [(s, e, id(t)) for s, e, t in intervals]
    by = dict((id(t), t) for _s, _e, t in intervals)
    infos = {}
    if fs["fstype"] == "xfs":
        pieces = xfs_owners(dev, keyed, geom, run=run)
    else:
        pieces, infos = ext4_owners(dev, keyed, geom, run=run)
    inodes = set()
    for tag, plist in pieces.items():
        t = by[tag]
        for p in plist:
            t.found.append(_record.from_piece(t.rid, fs, p))
            if p.get("inode"):
                inodes.add(p["inode"])
    inodes = sorted(inodes)
    nlinks = {}
    if fs["fstype"] == "xfs":
        paths = xfs_paths(dev, inodes, run=run)
        nlinks = xfs_nlinks(dev, inodes, run=run)
    else:
        paths = ext4_paths(dev, inodes, run=run)
    for t in group:
        t.found = _record.sort_and_merge(t.found)
        for f in t.found:
            o = f.owner
            if o["inode"] is not None:
                o["paths"] = paths.get(o["inode"], [])
                n = nlinks.get(o["inode"])
                if n is not None and n > len(o["paths"]) and o["kind"] == "file":
                    o["reason"] = _record.join(o["reason"], (
                        "inode has %d links, xfs_db ncheck names %d: mount the filesystem to "
                        "list every hard link") % (n, len(o["paths"])))
                if o["inode"] in infos:
                    o["generation"] = infos[o["inode"]].get("generation")
        t.result["warnings"].append(
            "filesystem not mounted: owners read from %s; paths are relative to its root" % dev)
