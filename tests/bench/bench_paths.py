# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inode -> paths: XFS parent pointers against the single d_ino walk, same tree, same run (issue 12).

One XFS made with `mkfs.xfs -n parent=1` (scripts/xfsprogs-parent.sh finds or unpacks a mkfs.xfs
that can) on a loop device, BENCH_PATH_FILES files (default 1,000,000; empty: only inodes and
directory entries matter here) in 1,000-entry directories three levels deep, plus 100 hard links in
another directory. BENCH_PATH_INODES random inodes (default 512, as many as the resolver's bad
ranges) are named by both methods, best of BENCH_REPEAT (default 3) each, alternating, warm cache
(the machine is shared: caches are never dropped). Both answers are compared to each other and to
the paths the build recorded. Prints timings; never asserts them. Needs root and Linux 6.10+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import random
import subprocess
import sys
import tempfile
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import fsmap as F
from ansible_collections.pmem.poison.plugins.module_utils._pmem import inode_paths as P
from ansible_collections.pmem.poison.plugins.module_utils._pmem import xfs_parents as X

N_FILES = int(os.environ.get("BENCH_PATH_FILES", "1000000"))
N_INODES = int(os.environ.get("BENCH_PATH_INODES", "512"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
SEED = int(os.environ.get("BENCH_SEED", "12"))
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sh(*argv):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True).stdout


def build(workdir, mkfs):
    img = os.path.join(workdir, "pp.img")
    with open(img, "wb") as f:
        f.truncate(max(2 << 30, N_FILES * 2048))
    dev = sh("losetup", "--find", "--show", img).strip()
    mnt = os.path.join(workdir, "mnt")
    os.makedirs(mnt)
    state = {"dev": dev, "mnt": mnt, "img": img, "mounted": False}
    sh(mkfs, "-q", "-f", "-n", "parent=1", "-i", "maxpct=50", dev)
    sh("mount", dev, mnt)
    state["mounted"] = True
    t0 = time.monotonic()
    truth = {}
    per_dir = 1000
    for i in range(N_FILES):
        d = os.path.join(mnt, "t%02d" % (i // (per_dir * 100)), "d%03d" % ((i // per_dir) % 100))
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "f%07d" % i)
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
        truth[os.fstat(fd).st_ino] = [p]
        os.close(fd)
    os.mkdir(os.path.join(mnt, "links"))
    rnd = random.Random(SEED)
    linked = rnd.sample(sorted(truth), 100)
    for k, ino in enumerate(linked):
        p = os.path.join(mnt, "links", "l%03d" % k)
        os.link(truth[ino][0], p)
        truth[ino] = sorted(truth[ino] + [p])
    sh("sync")
    state["build_seconds"] = time.monotonic() - t0
    state["truth"] = truth
    state["linked"] = linked
    return state


def teardown(state):
    if state.get("mounted"):
        subprocess.run(["umount", state["mnt"]], check=False)
    subprocess.run(["losetup", "-d", state["dev"]], check=False)
    try:
        os.unlink(state["img"])
    except OSError:
        pass


def main():
    if os.geteuid() != 0:
        print("bench-paths: needs root (loop devices, mount, parent-pointer ioctls)")
        return 0
    p = subprocess.run([os.path.join(REPO, "scripts", "xfsprogs-parent.sh")], check=False,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        print("bench-paths: skipped, no mkfs.xfs with -n parent=1: %s" % p.stderr.strip())
        return 0
    mkfs = p.stdout.strip()
    workdir = tempfile.mkdtemp(prefix="pmem-bench-paths-", dir="/var/tmp")
    state = {}
    try:
        state = build(workdir, mkfs)
        truth = state["truth"]
        rnd = random.Random(SEED + 1)
        inodes = sorted(set(rnd.sample(sorted(truth), N_INODES - 16) + state["linked"][:16]))
        print("== XFS parent=1: %d files (+100 hard links), %d inodes to name; build %.1fs" % (
            N_FILES, len(inodes), state["build_seconds"]))
        fd = os.open(state["mnt"], os.O_RDONLY | os.O_DIRECTORY)
        geom = F.xfs_geometry(fd)
        assert X.has_parent_pointers(geom), "mkfs.xfs -n parent=1 made no parent pointers"
        want = dict((i, truth[i]) for i in inodes)
        times = {"parent pointers (GETPARENTS_BY_HANDLE, bulkstat for generations)": [],
                 "walk (d_ino os.scandir of the whole tree)": []}
        nlinks = dict((i, len(truth[i])) for i in inodes)
        for _r in range(REPEAT):
            t0 = time.monotonic()
            pp = X.find_paths(state["mnt"], inodes, fd=fd, geom=geom)
            times["parent pointers (GETPARENTS_BY_HANDLE, bulkstat for generations)"].append(
                time.monotonic() - t0)
            t0 = time.monotonic()
            walked = P.find_paths(state["mnt"], inodes, nlinks=nlinks)
            times["walk (d_ino os.scandir of the whole tree)"].append(time.monotonic() - t0)
        os.close(fd)
        ok_pp = pp["paths"] == want and pp["method"] == "parent_pointers"
        ok_walk = walked["paths"] == want
        best = {}
        for label, ts in times.items():
            best[label] = min(ts)
            print("   %-66s best of %d: %8.3fs  (runs: %s)" % (
                label, REPEAT, min(ts), " ".join("%.3f" % t for t in ts)))
        pp_t, walk_t = list(best.values())
        print("   ratio walk/parent pointers: %.0fx; answers equal to the build's paths: "
              "parent pointers %s, walk %s (walk visited %d directories)" % (
                  walk_t / pp_t if pp_t else float("inf"), ok_pp, ok_walk, walked["dirs_walked"]))
        return 0 if ok_pp and ok_walk else 1
    finally:
        if state:
            teardown(state)
        subprocess.run(["rm", "-rf", workdir], check=False)


if __name__ == "__main__":
    sys.exit(main())
