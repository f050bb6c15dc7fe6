# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark pmem_resolve's owner resolution against the shell baselines (issue 4).

XFS (rmapbt, reflink) and ext4 on loop devices, BENCH_FILES files (default 100000) plus 1000
reflinked copies (plain copies on ext4), 512 bad ranges (512 bytes each) on random allocated
blocks. Prints resolver time, baseline time (sampled and extrapolated when slow: said so), ratio,
recall/precision against ground truth (FIEMAP of every file, taken at build time) and peak memory.
Timed runs are repeated BENCH_REPEAT times (default 5; ext4 alternates resolver and baselines) and
the best of each is compared: these machines are shared and noisy. Never asserts timings. Needs
root. The XFS baseline is sampled (BENCH_BASELINE_SAMPLE ranges) and extrapolated: it says so.

BENCH_COMPARE_REV=<git revision> (e.g. main) also times that revision's ext4 FIEMAP pass (its
fiemap.py and inode_paths.py in this checkout's pipeline), alternated with this checkout's, and
prints the ratio. Load averages are printed before and after the timed runs.

BENCH_TREE_DIR=/var/tmp/x keeps the images (and their ground truth) there and reuses them on the
next run with the same BENCH_FILES/BENCH_CLONES/BENCH_SEED, so a 1M-file tree is built once;
`rm -rf` that directory when done.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import fcntl
import importlib.util
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fiemap as F
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as FS
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners as O
from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners_mounted as OM

N_FILES = int(os.environ.get("BENCH_FILES", "100000"))
N_CLONES = int(os.environ.get("BENCH_CLONES", "1000"))
N_RANGES = int(os.environ.get("BENCH_RANGES", "512"))
BASELINE_SAMPLE = int(os.environ.get("BENCH_BASELINE_SAMPLE", "16"))
SEED = int(os.environ.get("BENCH_SEED", "4"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
COMPARE_REV = os.environ.get("BENCH_COMPARE_REV")
FICLONE = 0x40049409
BS = 4096


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw).stdout


TREE_DIR = os.environ.get("BENCH_TREE_DIR")
# BENCH_MEMORY=0 skips the traced-memory runs (tracemalloc makes a 1M-file FIEMAP pass take minutes)
MEMORY = os.environ.get("BENCH_MEMORY", "1") != "0"


def build(fstype, workdir):
    if TREE_DIR:
        workdir = TREE_DIR
        os.makedirs(workdir, exist_ok=True)
    tag = "%s-%d-%d-%d" % (fstype, N_FILES, N_CLONES, SEED)
    img = os.path.join(workdir, tag + ".img")
    ready = img + ".ready"
    mnt = os.path.join(workdir, "mnt-" + tag)
    if TREE_DIR and os.path.exists(ready):
        dev = sh("losetup", "--find", "--show", img).strip()
        os.makedirs(mnt, exist_ok=True)
        sh("mount", dev, mnt)
        return {"dev": dev, "mnt": mnt, "img": img, "mounted": True, "keep": True,
                "build_seconds": 0.0, "reused": True}
    with open(img, "wb") as f:
        f.truncate(max(2 << 30, N_FILES * 12 * 1024))
    dev = sh("losetup", "--find", "--show", img).strip()
    os.makedirs(mnt, exist_ok=True)
    state = {"dev": dev, "mnt": mnt, "img": img, "mounted": False, "keep": bool(TREE_DIR)}
    try:
        if fstype == "xfs":
            sh("mkfs.xfs", "-q", "-f", "-m", "rmapbt=1,reflink=1", dev)
        else:
            sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-N", str(N_FILES + N_CLONES + 10000), dev)
        sh("mount", dev, mnt)
        state["mounted"] = True
        rnd = random.Random(SEED)
        payload = os.urandom(64 * 1024)
        t0 = time.monotonic()
        per_dir = 1000
        files = []
        for i in range(N_FILES):
            d = os.path.join(mnt, "d%04d" % (i // per_dir))
            if i % per_dir == 0:
                os.mkdir(d)
            p = os.path.join(d, "f%06d" % i)
            size = BS * (1 + (rnd.random() < 0.1) * rnd.randint(1, 15)) - rnd.choice((0, 0, 100))
            with open(p, "wb") as f:
                f.write(payload[:size])
            files.append(p)
        os.mkdir(os.path.join(mnt, "clones"))
        for i in range(N_CLONES):
            src = files[(i * 97) % len(files)]
            dst = os.path.join(mnt, "clones", "c%05d" % i)
            if fstype == "xfs":
                with open(src, "rb") as s, open(dst, "wb") as d:
                    fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
            else:
                shutil.copyfile(src, dst)
        os.mkdir(os.path.join(mnt, "links"))
        for i in range(100):
            os.link(files[(i * 131) % len(files)], os.path.join(mnt, "links", "l%03d" % i))
        sh("sync")
        state["build_seconds"] = time.monotonic() - t0
        if TREE_DIR:
            with open(ready, "w") as f:
                f.write("built\n")
    except Exception:
        state["keep"] = False
        teardown(state)
        raise
    return state


def teardown(state):
    if state.get("mounted"):
        subprocess.run(["umount", state["mnt"]], check=False)
    subprocess.run(["losetup", "-d", state["dev"]], check=False)
    if state.get("keep"):
        return
    try:
        os.unlink(state["img"])
    except OSError:
        pass


def ground_truth(mnt):
    """block -> [(inode, logical_block)], inode -> [paths]; from FIEMAP of every file."""
    blocks = {}
    paths = {}
    for dirpath, _dirs, names in os.walk(mnt):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            paths.setdefault(st.st_ino, []).append(p)
            if len(paths[st.st_ino]) > 1:
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                for logical, phys, length, _fl in F.extents(fd):
                    for k in range(length // BS):
                        blocks.setdefault(phys // BS + k, []).append((st.st_ino, logical // BS + k))
            finally:
                os.close(fd)
    for v in paths.values():
        v.sort()
    return blocks, paths


def pick_ranges(blocks):
    rnd = random.Random(SEED)
    chosen = rnd.sample(sorted(blocks), N_RANGES)
    out = []
    for b in chosen:
        sector = rnd.randrange(8)
        out.append((b * BS + sector * 512, 512))
    return out


def expected(blocks, paths, ranges):
    exp = set()
    for off, ln in ranges:
        for ino, lblk in blocks[off // BS]:
            exp.add((off, ino, lblk * BS + off % BS, tuple(paths[ino])))
    return exp


def load_rev_fiemap(rev, workdir):
    """fiemap.py as of git revision *rev*, walking with that revision's inode_paths.py; the rest of
    the package is this checkout's. Both are written to *workdir* and imported from there under
    their own names (nothing is imported twice under one name)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def module(rel):
        name = "bench_rev_" + os.path.basename(rel)[:-3]
        path = os.path.join(workdir, name + ".py")
        with open(path, "w") as f:
            f.write(sh("git", "-C", repo, "show", "%s:%s" % (rev, rel)))
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    walker = module("plugins/module_utils/_pmem/inode_paths.py")
    fiemap = module("plugins/module_utils/_pmem/fiemap.py")
    fiemap._inode_paths = walker  # scan looks its walker up when called
    return fiemap


def run_rev_fiemap_pass(fiemap, state, ranges):
    """The FIEMAP-only resolver with owners_mounted's FIEMAP pass scanning through *fiemap*."""
    saved = OM._fiemap
    OM._fiemap = fiemap
    try:
        return run_resolver(state, ranges, trace=False, ext4_debugfs=False)
    finally:
        OM._fiemap = saved


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def run_resolver(state, ranges, trace=True, **kw):
    rngs = [O.direct_range({"device": state["dev"], "offset": o, "length": n}) for o, n in ranges]
    t0 = time.monotonic()
    res = O.resolve_owners(rngs, **kw)
    dt = time.monotonic() - t0
    # memory in a second run: tracemalloc slows Python several-fold, so it never shares the timing
    peak = float("nan")
    if MEMORY and trace:
        tracemalloc.start()
        O.resolve_owners(rngs, **kw)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    got = set()
    for (off, _n), r in zip(ranges, res):
        for o in r["owners"]:
            if o["kind"] == "file":
                got.add((off, o["inode"], o["file_offset"], tuple(o["paths"])))
    return dt, peak, got, res


def score(exp, got):
    tp = len(exp & got)
    recall = tp / len(exp) if exp else 1.0
    precision = tp / len(got) if got else 1.0
    return recall, precision


# `xfs_io -c "fsmap -d START END"` (xfsprogs 6.1): START/END in 512-byte units, END inclusive (it
# is the high key's fmr_physical); no header line; an inode owner reads
#     "\t8: 7:1 [192..319]: inode 131 data 0..127 128"
# (special owners: "static fs metadata", "inodes", "free space", ...; note "inodes" != "inode N").
_XFS_IO_INODE = re.compile(r"\]: inode (\d+) ")


def parse_xfs_io_fsmap_inodes(out):
    return sorted(set(m.group(1) for m in _XFS_IO_INODE.finditer(out)), key=int)


def baseline_xfs(state, ranges):
    sample = ranges[:BASELINE_SAMPLE]
    owners = 0
    t0 = time.monotonic()
    for off, ln in sample:
        out = sh("xfs_io", "-c", "fsmap -d %d %d" % (off // 512, (off + ln - 1) // 512),
                 state["mnt"])
        inos = parse_xfs_io_fsmap_inodes(out)
        owners += len(inos)
        for ino in inos:
            sh("find", state["mnt"], "-xdev", "-inum", ino)
    dt = time.monotonic() - t0
    return dt * len(ranges) / len(sample), len(sample), owners


# "\t8: 7:1 [192..319]: inode 131 data 0..127 128": extent (sectors, inclusive), inode, file offset (sectors)
_XFS_IO_EXTENT = re.compile(r"\[(\d+)\.\.(\d+)\]: inode (\d+) data (\d+)\.\.")


def baseline_xfs_operator(state, ranges):
    """What a skilled operator runs: ONE xfs_io with one `-c 'fsmap -d S E'` per range, ONE
    `find -xdev -printf '%i %p\\n'`, joined on the inode (awk's job, done here in Python).
    Returns (seconds, {(range offset, inode, file offset, paths)})."""
    t0 = time.monotonic()
    cmd = ["xfs_io"]
    for off, ln in ranges:
        cmd += ["-c", "fsmap -d %d %d" % (off // 512, (off + ln - 1) // 512)]
    out = sh(*(cmd + [state["mnt"]]))
    listing = sh("find", state["mnt"], "-xdev", "-printf", "%i %p\\n")
    paths = {}
    for line in listing.splitlines():
        ino, _sp, path = line.partition(" ")
        paths.setdefault(int(ino), []).append(path)
    # the commands' outputs come without separators: a range's owners are the records covering it
    spans = sorted((int(a) * 512, (int(b) + 1) * 512, int(i), int(o) * 512)
                   for a, b, i, o in _XFS_IO_EXTENT.findall(out))
    starts = [span[0] for span in spans]
    got = set()
    for off, _ln in ranges:
        j = bisect.bisect_right(starts, off) - 1
        while j >= 0 and spans[j][0] <= off and off - spans[j][0] < (1 << 32):
            lo, hi, ino, foff = spans[j]
            if off < hi and ino in paths:
                got.add((off, ino, foff + off - lo, tuple(sorted(paths[ino]))))
            j -= 1
    return time.monotonic() - t0, got


def baseline_xfs_proxy(state, ranges):
    """The physical limit without parent pointers: 512 GETFSMAP point queries, then one os.scandir
    walk (d_ino, no stat) collecting the paths of just the wanted inodes. No metadata decoding, no
    free-space search, no generation check. Returns (seconds, {(range, inode, file offset, paths)})."""
    t0 = time.monotonic()
    fd = os.open(state["mnt"], os.O_RDONLY | os.O_DIRECTORY)
    found = []
    try:
        for off, ln in ranges:
            for owner in FS.owners_of(fd, off, off + ln):
                if owner["kind"] == "file":
                    found.append((off, owner["inode"], owner["file_offset"]))
    finally:
        os.close(fd)
    wanted = set(ino for _o, ino, _f in found)
    paths = {}
    root_dev = os.stat(state["mnt"]).st_dev
    stack = [state["mnt"]]
    while stack:
        top = stack.pop()
        with os.scandir(top) as it:
            for entry in it:
                if entry.inode() in wanted:
                    paths.setdefault(entry.inode(), []).append(entry.path)
                if entry.is_dir(follow_symlinks=False) and os.stat(entry.path).st_dev == root_dev:
                    stack.append(entry.path)
    got = set((off, ino, foff, tuple(sorted(paths.get(ino, [])))) for off, ino, foff in found)
    return time.monotonic() - t0, got


def baseline_ext4(state, ranges, catastrophic=False):
    t0 = time.monotonic()
    blocks = sorted(set(off // BS for off, _n in ranges))
    opt = ["-c"] if catastrophic else []
    out = sh("debugfs", *(opt + ["-R", "icheck " + " ".join(str(b) for b in blocks),
                                 state["dev"]]))
    inos = set()
    for line in out.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].strip().isdigit():
            inos.add(parts[1].strip())
    sh("debugfs", *(opt + ["-R", "ncheck -c " + " ".join(sorted(inos)), state["dev"]]))
    return time.monotonic() - t0


def report_resolver(label, dt, peak, exp, got):
    recall, precision = score(exp, got)
    print("   %s: %.3fs  owners expected %d found %d  recall %.4f precision %.4f  "
          "peak traced memory (separate run) %.1f MiB" % (label, dt, len(exp), len(got), recall,
                                                          precision, peak / 2.0 ** 20))


def bench(fstype, workdir):
    print("== %s: %d files + %d %s copies + 100 hard links, %d ranges" % (
        fstype, N_FILES, N_CLONES, "reflinked" if fstype == "xfs" else "plain", N_RANGES))
    sys.stdout.flush()
    state = build(fstype, workdir)
    try:
        reused = " (reused %s)" % state["img"] if state.get("reused") else ""
        print("   build %.1fs%s" % (state["build_seconds"], reused))
        t0 = time.monotonic()
        blocks, paths = ground_truth(state["mnt"])
        print("   ground truth (FIEMAP of every file) %.1fs, %d allocated data blocks" % (
            time.monotonic() - t0, len(blocks)))
        ranges = pick_ranges(blocks)
        exp = expected(blocks, paths, ranges)
        del blocks
        if fstype == "xfs":
            dts = []
            for _i in range(REPEAT):
                dt, peak, got, _res = run_resolver(state, ranges)
                dts.append(dt)
            dt = min(dts)
            report_resolver("resolver (GETFSMAP), best of %d" % len(dts), dt, peak, exp, got)
            # the strong baselines, alternated REPEAT times like the resolver, best of each
            ops, proxies = [], []
            for _i in range(REPEAT):
                ot, ogot = baseline_xfs_operator(state, ranges)
                pt, pgot = baseline_xfs_proxy(state, ranges)
                ops.append(ot)
                proxies.append(pt)
            orec, oprec = score(exp, ogot)
            prec_, pprec = score(exp, pgot)
            print("   all runs (s): resolver %s | xfs_io+find %s | scandir+GETFSMAP %s" % tuple(
                " ".join("%.3f" % x for x in v) for v in (dts, ops, proxies)))
            print("   baseline 1 (ONE xfs_io with %d fsmap -d commands + ONE find -xdev -printf, joined), "
                  "best of %d: %.3fs  recall %.4f precision %.4f  ratio baseline/resolver %.2fx"
                  % (len(ranges), len(ops), min(ops), orec, oprec, min(ops) / dt))
            print("   baseline 2 (d_ino os.scandir walk + %d GETFSMAP point queries), best of %d: %.3fs  "
                  "recall %.4f precision %.4f  ratio baseline/resolver %.2fx"
                  % (len(ranges), len(proxies), min(proxies), prec_, pprec, min(proxies) / dt))
            bt, n, nown = baseline_xfs(state, ranges)
            print("   weak baseline (xfs_io fsmap + find -inum per owner): %.1fs (measured on %d of %d "
                  "ranges with %d owners, extrapolated)" % (bt, n, len(ranges), nown))
        else:
            sh("sync")
            # alternate resolver and baselines REPEAT times, keep the best of each: all see warm
            # caches and the same background load
            dts, bts, btcs, fts, rts = [], [], [], [], []
            fpeak = float("nan")
            rev_fiemap = load_rev_fiemap(COMPARE_REV, workdir) if COMPARE_REV else None
            load_before = loadavg()
            for _i in range(REPEAT):
                dt, peak, got, _res = run_resolver(state, ranges)
                dts.append(dt)
                bts.append(baseline_ext4(state, ranges))
                btcs.append(baseline_ext4(state, ranges, catastrophic=True))
                # traced once: tracemalloc makes every FIEMAP pass several times slower
                ft, ftpeak, fgot, _res = run_resolver(state, ranges, trace=not fts, ext4_debugfs=False)
                if not fts:
                    fpeak = ftpeak
                fts.append(ft)
                if rev_fiemap is not None:
                    rt, _peak, rgot, _res = run_rev_fiemap_pass(rev_fiemap, state, ranges)
                    rts.append(rt)
            load_after = loadavg()
            dt = min(dts)
            report_resolver("resolver (debugfs candidates + FIEMAP verify), best of %d" % len(dts),
                            dt, peak, exp, got)
            report_resolver("resolver, FIEMAP pass only (non-root path), best of %d" % len(fts),
                            min(fts), fpeak, exp, fgot)
            bt = min(bts)
            print("   all runs (s): resolver %s | baseline %s | baseline -c %s | FIEMAP pass %s" % tuple(
                " ".join("%.3f" % x for x in v) for v in (dts, bts, btcs, fts)))
            print("   ratio FIEMAP pass / baseline (best of each): %.1f" % (min(fts) / min(bts)))
            if rts:
                rrec, rprec = score(exp, rgot)
                print("   FIEMAP pass of %s (its fiemap.py + inode_paths.py), best of %d: %.3fs  recall %.4f "
                      "precision %.4f  all runs %s  ratio this/%s (best of each): %.3f" % (
                          COMPARE_REV, len(rts), min(rts), rrec, rprec, " ".join("%.3f" % x for x in rts),
                          COMPARE_REV, min(fts) / min(rts)))
            print("   load averages (1 5 15 min) before the timed runs: %s, after: %s" % (load_before, load_after))
            print("   baseline (debugfs -R icheck + ncheck, one call each), best of %d: %.3fs" % (
                len(bts), bt))
            print("   baseline with debugfs -c (catastrophic, no bitmaps), best of %d: %.3fs" % (
                len(btcs), min(btcs)))
        print("   ratio baseline/resolver: %.1fx" % (bt / dt if dt else float("inf")))
        sys.stdout.flush()
    finally:
        teardown(state)


def main():
    if os.geteuid() != 0:
        print("bench: needs root (loop devices, mount, GETFSMAP)")
        return 2
    workdir = tempfile.mkdtemp(prefix="pmem-bench-")
    try:
        for fstype in os.environ.get("BENCH_FS", "xfs ext4").split():
            bench(fstype, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("max RSS of this process (includes tree building and ground truth): %.1f MiB" % (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
