"""Resolve the lab guest's kernel packages from the Debian archive of the day.

The archive moves: a security upload replaces the kernel and the old version leaves the pool (on
2026-12-01, linux-kbuild-6.1 6.1.192-2 was gone while linux-image 6.1.192-2 was still listed). So
the lab names a kernel *series* and the suites it comes from, and this script picks the newest
version at which every package the build needs exists, all at that same version:

  linux-image-<ABI>-amd64, linux-headers-<ABI>-amd64, linux-headers-<ABI>-common,
  linux-kbuild-<series> (bookworm) or linux-kbuild-<ABI> (trixie and later), linux-source-<series>

It prints shell assignments (KERNEL_ABI, KERNEL_VERSION, ...) on stdout, for `eval`, and what it
chose and why on stderr. A requested version (--want) that the archive no longer serves
consistently is reported and replaced by the newest consistent one, never a failure.

Package indices are fetched per suite: the small InRelease file first, whose SHA256 of
main/binary-<arch>/Packages.xz names the cached copy, so an unchanged suite costs one small request.

usage: resolve.py --suites bookworm,bookworm-updates,bookworm-security --series 6.1
                  [--want 6.1.192-2] [--userspace-suites bookworm,...] [--arch amd64]
                  [--mirror URL] [--security-mirror URL] [--cache DIR]
       resolve.py --self-test
"""

import argparse
import hashlib
import lzma
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request

# Guest userspace whose versions go into the cache key: a new xfsprogs or ndctl changes what the
# lab measures, so it rebuilds the image rather than reusing one made from an older archive.
USERSPACE_PACKAGES = ("xfsprogs", "ndctl", "daxctl", "e2fsprogs", "python3", "systemd",
                      "openssh-server", "util-linux")

ABI_RE = re.compile(r"^linux-image-(\d+\.\d+\.\d+(?:-\d+|\+[0-9a-z.~]+))-(?P<arch>[a-z0-9]+)$")


def log(msg):
    print("[resolve] %s" % msg, file=sys.stderr)


# ---------------------------------------------------------------- Debian version ordering
def _order(c):
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a, b):
    """dpkg's comparison of an upstream version or revision string."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v):
    epoch, _sep, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, _sep, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def version_cmp(a, b):
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


class Version(str):
    """A Debian version string that sorts the way dpkg does."""

    def __lt__(self, other):
        return version_cmp(self, other) < 0


# ---------------------------------------------------------------- archive indices
def parse_packages(text):
    """Packages index text -> {package: set(versions)}."""
    out = {}
    pkg = ver = None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if pkg and ver:
                out.setdefault(pkg, set()).add(ver)
            pkg = ver = None
        elif line.startswith("Package: "):
            pkg = line[9:].strip()
        elif line.startswith("Version: "):
            ver = line[9:].strip()
    return out


def _get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http mirrors by design)
        return r.read()


def suite_mirror(suite, mirror, security_mirror):
    return security_mirror if suite.endswith("-security") else mirror


def fetch_index(suite, arch, mirror, security_mirror, cache):
    """Return {package: versions} for main/binary-<arch> of *suite*, or None if the suite is absent."""
    base = "%s/dists/%s" % (suite_mirror(suite, mirror, security_mirror), suite)
    member = "main/binary-%s/Packages.xz" % arch
    try:
        release = _get(base + "/InRelease").decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            log("suite %s: not in the archive (%s/InRelease: 404)" % (suite, base))
            return None
        raise
    digest = None
    in_sha = False
    for line in release.splitlines():
        if line.startswith("SHA256:"):
            in_sha = True
            continue
        if in_sha and not line.startswith(" "):
            in_sha = False
        if in_sha:
            fields = line.split()
            if len(fields) == 3 and fields[2] == member:
                digest = fields[0]
    if digest is None:
        raise RuntimeError("%s/InRelease lists no %s" % (base, member))
    path = os.path.join(cache, "%s-%s-%s.xz" % (suite, arch, digest[:16]))
    if not os.path.exists(path):
        data = _get("%s/%s" % (base, member), timeout=300)
        if hashlib.sha256(data).hexdigest() != digest:
            raise RuntimeError("%s/%s: checksum differs from InRelease" % (base, member))
        os.makedirs(cache, exist_ok=True)
        for old in os.listdir(cache):  # one copy per suite is enough
            if old.startswith("%s-%s-" % (suite, arch)) and old.endswith(".xz"):
                os.unlink(os.path.join(cache, old))
        fd, tmp = tempfile.mkstemp(dir=cache)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
    with open(path, "rb") as f:
        return parse_packages(lzma.decompress(f.read()).decode("utf-8", "replace"))


def merge(indices):
    out = {}
    for idx in indices:
        for pkg, versions in idx.items():
            out.setdefault(pkg, set()).update(versions)
    return out


# ---------------------------------------------------------------- the choice (pure)
def kernel_sets(packages, series, arch="amd64"):
    """Every (version, abi, names) at which the whole kernel package set exists, newest first.

    *series* is "6.1", "6.12", ... or "newest" (the highest series any image in *packages* has)."""
    if series == "newest":
        found = set()
        for name in packages:
            m = ABI_RE.match(name)
            if m and m.group("arch") == arch:
                found.add(".".join(m.group(1).split(".")[:2]))
        if not found:
            return []
        series = max(found, key=lambda s: tuple(int(x) for x in s.split(".")))
    sets = []
    for name, versions in packages.items():
        m = ABI_RE.match(name)
        if not m or m.group("arch") != arch:
            continue
        abi = m.group(1)
        if not abi.startswith(series + "."):
            continue
        needed = {
            "image": name,
            "headers": "linux-headers-%s-%s" % (abi, arch),
            "headers_common": "linux-headers-%s-common" % abi,
            "source": "linux-source-%s" % series,
        }
        for version in versions:
            kbuild = None
            for candidate in ("linux-kbuild-%s" % abi, "linux-kbuild-%s" % series):
                if version in packages.get(candidate, ()):
                    kbuild = candidate
                    break
            if kbuild is None:
                continue
            if all(version in packages.get(p, ()) for p in needed.values()):
                sets.append((Version(version), abi, dict(needed, kbuild=kbuild, series=series)))
    sets.sort(key=lambda s: s[0], reverse=True)
    return sets


def newest(packages, name):
    versions = packages.get(name)
    return max((Version(v) for v in versions)) if versions else None


def choose(packages, series, want=None, arch="amd64"):
    """Return (version, abi, names, note). Raises LookupError when no consistent set exists."""
    sets = kernel_sets(packages, series, arch)
    if not sets:
        raise LookupError("no linux-image/headers/kbuild/source set for series %s at one version" % series)
    note = None
    if want:
        for s in sets:
            if s[0] == want:
                return s + ("requested version %s is served consistently" % want,)
        note = ("requested version %s is not served consistently any more (some of image, headers, "
                "kbuild, source left the archive); taking the newest consistent set" % want)
    return sets[0] + (note,)


# ---------------------------------------------------------------- CLI
def self_test():
    assert version_cmp("6.1.192-3", "6.1.192-2") > 0
    assert version_cmp("6.12.117-1~deb12u1", "6.12.117-1") < 0
    assert version_cmp("7.3.4-1~bpo13+1", "7.2.13-1") > 0
    assert version_cmp("1:1.0", "2.0") > 0
    assert version_cmp("6.1.10-1", "6.1.9-1") > 0
    pk = {
        "linux-image-6.1.0-56-amd64": {"6.1.192-2"},
        "linux-headers-6.1.0-56-amd64": {"6.1.192-2"},
        "linux-headers-6.1.0-56-common": {"6.1.192-2"},
        "linux-image-6.1.0-57-amd64": {"6.1.192-3"},
        "linux-headers-6.1.0-57-amd64": {"6.1.192-3"},
        "linux-headers-6.1.0-57-common": {"6.1.192-3"},
        "linux-kbuild-6.1": {"6.1.192-3"},
        "linux-source-6.1": {"6.1.192-2", "6.1.192-3"},
        "linux-image-6.12.117+deb13-amd64": {"6.12.117-1"},
    }
    v, abi, names, note = choose(pk, "6.1", want="6.1.192-2")
    assert (v, abi, names["kbuild"]) == ("6.1.192-3", "6.1.0-57", "linux-kbuild-6.1"), (v, abi)
    assert note and "not served" in note
    try:
        choose(pk, "6.12")
    except LookupError:
        pass
    else:
        raise AssertionError("6.12 has no headers: must not resolve")
    print("resolve.py self-test: ok")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--suites", help="comma-separated suites the kernel may come from")
    ap.add_argument("--series", help="kernel series (6.1, 6.12, ...) or 'newest'")
    ap.add_argument("--want", default="", help="preferred version; replaced if not served consistently")
    ap.add_argument("--userspace-suites", default="", help="suites of the guest userspace (key only)")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--security-mirror", default="http://deb.debian.org/debian-security")
    ap.add_argument("--cache", default=os.path.join(
        os.environ.get("PMEM_LAB_CACHE", "/var/cache/pmem-poison-lab"), "index"))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if not args.suites or not args.series:
        ap.error("--suites and --series are required")
    mirror, sec = args.mirror.rstrip("/"), args.security_mirror.rstrip("/")
    kernel_suites = [s for s in args.suites.split(",") if s]
    user_suites = [s for s in args.userspace_suites.split(",") if s] or kernel_suites
    loaded = {}
    try:
        for suite in dict.fromkeys(kernel_suites + user_suites):
            loaded[suite] = fetch_index(suite, args.arch, mirror, sec, args.cache) or {}
    except (OSError, RuntimeError, lzma.LZMAError) as e:
        log("ERROR: cannot read the archive's package index (%s); check the network and "
            "DEBIAN_MIRROR/DEBIAN_SECURITY_MIRROR" % e)
        return 2
    kernel_pk = merge(loaded[s] for s in kernel_suites)
    try:
        version, abi, names, note = choose(kernel_pk, args.series, args.want or None, args.arch)
    except LookupError as e:
        log("ERROR: %s in %s (mirrors %s, %s); the lab cannot be built from this archive today"
            % (e, ",".join(kernel_suites), mirror, sec))
        return 3
    if note:
        log(note)
    user_pk = merge(loaded[s] for s in user_suites)
    userspace = " ".join("%s=%s" % (p, newest(user_pk, p)) for p in USERSPACE_PACKAGES
                         if newest(user_pk, p))
    log("kernel %s: %s at %s (headers, %s, %s at the same version) from %s"
        % (names["series"], names["image"], version, names["kbuild"], names["source"],
           ",".join(kernel_suites)))
    log("userspace of %s: %s" % (",".join(user_suites), userspace))
    values = {
        "KERNEL_SERIES": names["series"],
        "KERNEL_ABI": abi,
        "KERNEL_VERSION": str(version),
        "KERNEL_IMAGE_PKG": names["image"],
        "KERNEL_HEADERS_PKG": names["headers"],
        "KERNEL_HEADERS_COMMON_PKG": names["headers_common"],
        "KERNEL_KBUILD_PKG": names["kbuild"],
        "KERNEL_SOURCE_PKG": names["source"],
        "LAB_USERSPACE": userspace,
    }
    for k, v in values.items():
        print("%s='%s'" % (k, v.replace("'", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
