#!/usr/bin/env bash
# Build the kernel's nfit_test modules (tools/testing/nvdimm) for the lab guest's exact kernel.
#
# Output: a tarball whose members are lib/modules/<KVER>/updates/... paths, to be extracted over
# the guest root file system, followed by `depmod <KVER>`. The last line on stdout is its path;
# progress goes to stderr, the tools' own output to a log file beside the tarball.
#
# Cached: the tarball lives under
#   ${PMEM_LAB_CACHE:-/var/cache/pmem-poison-lab}/nfit_test/<sha256 of build.sh + recipe.env + the
#   resolved package names and version>/
# and a second run with the same inputs only prints its path. The build chroot (debootstrap
# minbase + toolchain + the pinned headers and source) is cached too, keyed by suite and versions.
#
# Needs: root, debootstrap, mount, flock, sha256sum, awk; network access to the Debian archives.
# Environment (set by lab/build.sh from lab/resolve.py; the kernel packages are never pinned here):
#   SUITE LAB_APT_SUITES KERNEL_SERIES KERNEL_ABI KERNEL_VERSION KERNEL_HEADERS_PKG
#   KERNEL_HEADERS_COMMON_PKG KERNEL_KBUILD_PKG KERNEL_SOURCE_PKG, LAB_BACKPORTS (apt -t suite for
#   a backports kernel, or empty), and PMEM_LAB_CACHE,
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: the host's apt sources), PMEM_LAB_JOBS (make
#   -j, default nproc), PMEM_LAB_KEEP_BUILD=1 keeps the build tree.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="${here}/$(basename "${BASH_SOURCE[0]}")"
recipe="${here}/../recipe.env"

log() { printf '[nfit_test] %s\n' "$*" >&2; }
die() { printf '[nfit_test] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mount)"

# --- recipe ---------------------------------------------------------------------------------
if [[ -r "$recipe" ]]; then
  # shellcheck source=/dev/null
  source "$recipe"
fi
for var in SUITE KERNEL_SERIES KERNEL_ABI KERNEL_VERSION KERNEL_HEADERS_PKG KERNEL_HEADERS_COMMON_PKG \
  KERNEL_KBUILD_PKG KERNEL_SOURCE_PKG; do
  [[ -n ${!var:-} ]] || die "${var} is not set: run lab/build.sh nfit_test (it resolves the kernel packages)"
done
ARCH=${ARCH:-amd64}
LAB_APT_SUITES=${LAB_APT_SUITES:-${SUITE},${SUITE}-updates,${SUITE}-security}
KVER="${KERNEL_ABI}-${ARCH}"

# Mirrors: recipe.env normally sets them; otherwise ask the host's apt which sites serve the
# suite and its security suite (works for one-line and deb822 sources alike).
host_site_for() {
  apt-get indextargets 2>/dev/null | awk -v want="$1" '
    /^Site: /    { site = $2 }
    /^Release: / { rel = $2 }
    /^Target-Of: / { tof = $2 }
    /^$/ { if (rel == want && tof == "deb" && site != "") { print site; exit } site = rel = tof = "" }
    END { if (rel == want && tof == "deb" && site != "") print site }' | head -n1
}
if [[ -z "${DEBIAN_MIRROR:-}" ]]; then
  DEBIAN_MIRROR=$(host_site_for "$SUITE")
fi
[[ -n "${DEBIAN_MIRROR:-}" ]] || die "no Debian mirror for ${SUITE} in the host's apt sources; set DEBIAN_MIRROR"
if [[ -z "${DEBIAN_SECURITY_MIRROR:-}" ]]; then
  DEBIAN_SECURITY_MIRROR=$(host_site_for "${SUITE}-security")
fi
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-${DEBIAN_MIRROR%/debian}/debian-security}
DEBIAN_MIRROR=${DEBIAN_MIRROR%/}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR%/}

cache_root="${PMEM_LAB_CACHE:-/var/cache/pmem-poison-lab}/nfit_test"
key=$(
  {
    cat "$self"
    if [[ -r "$recipe" ]]; then cat "$recipe"; fi
    printf 'effective:%s %s %s %s %s %s %s %s %s %s\n' "$KERNEL_ABI" "$KERNEL_VERSION" "$SUITE" "$ARCH" \
      "$LAB_APT_SUITES" "${LAB_BACKPORTS:-}" "$KERNEL_HEADERS_PKG" "$KERNEL_HEADERS_COMMON_PKG" "$KERNEL_KBUILD_PKG" "$KERNEL_SOURCE_PKG"
  } | sha256sum | cut -c1-16
)
out_dir="${cache_root}/${key}"
tarball="${out_dir}/nfit_test-modules.tar.gz"

if [[ -s "$tarball" ]]; then
  log "cached: ${tarball}"
  printf '%s\n' "$tarball"
  exit 0
fi

for tool in debootstrap chroot mount umount mountpoint flock sha256sum tar gzip; do
  command -v "$tool" >/dev/null || die "missing host tool: ${tool} (apt-get install debootstrap util-linux)"
done

mkdir -p "$cache_root" "$out_dir"
exec 9>"${cache_root}/.lock"
log "waiting for the build lock ${cache_root}/.lock"
flock 9
if [[ -s "$tarball" ]]; then   # built by a concurrent run while we waited
  printf '%s\n' "$tarball"
  exit 0
fi

start=$SECONDS
buildlog="${out_dir}/build.log"
: >"$buildlog"
log "kernel ${KVER} at ${KERNEL_VERSION}; mirrors ${DEBIAN_MIRROR} + ${DEBIAN_SECURITY_MIRROR}; log ${buildlog}"

# Packages of the build chroot; the kernel packages at the resolved kernel's exact version.
packages=(
  gcc make libc6-dev bc flex bison libelf-dev libssl-dev xz-utils kmod
  "${KERNEL_HEADERS_PKG}=${KERNEL_VERSION}"
  "${KERNEL_HEADERS_COMMON_PKG}=${KERNEL_VERSION}"
  "${KERNEL_KBUILD_PKG}=${KERNEL_VERSION}"
  "${KERNEL_SOURCE_PKG}=${KERNEL_VERSION}"
)
chroot_key=$(printf '%s\n' "$SUITE" "$ARCH" "${packages[@]}" | sha256sum | cut -c1-12)
chroot_dir="${cache_root}/chroot-${SUITE}-${KERNEL_VERSION}-${chroot_key}"
build_dir="${chroot_dir}/build"

mounted=()
cleanup() {
  local rc=$? m i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    m=${mounted[i]}
    if mountpoint -q "$m"; then umount "$m" || umount -l "$m" || true; fi
  done
  if [[ "${PMEM_LAB_KEEP_BUILD:-0}" != 1 ]]; then
    rm -rf --one-file-system "$build_dir"
  fi
  if ((rc != 0)); then
    log "FAILED (exit ${rc}); last lines of ${buildlog}:"
    tail -n 40 "$buildlog" >&2 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { "$@" >>"$buildlog" 2>&1; }   # tool output goes to the log only
in_chroot() {
  run chroot "$chroot_dir" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive \
    SOURCE_DATE_EPOCH=0 KBUILD_BUILD_TIMESTAMP='1970-01-01' KBUILD_BUILD_USER=pmem KBUILD_BUILD_HOST=lab \
    "$@"
}
mount_chroot() {   # /proc only: debootstrap made the /dev nodes that apt and make need
  mkdir -p "${chroot_dir}/proc"
  if ! mountpoint -q "${chroot_dir}/proc"; then
    mount -t proc proc "${chroot_dir}/proc"
    mounted+=("${chroot_dir}/proc")
  fi
}
# Unmount anything a killed earlier run left under the chroot before deleting from it.
unmount_leftovers() {
  local m
  while read -r m; do
    umount "$m" || umount -l "$m" || true
  done < <(awk -v d="${chroot_dir}/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  if awk -v d="${chroot_dir}/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "mounts remain under ${chroot_dir}; unmount them first"
  fi
}

# --- 1. build chroot ------------------------------------------------------------------------
unmount_leftovers
if [[ -f "${chroot_dir}/.pmem-lab-complete" ]]; then
  log "reusing build chroot ${chroot_dir}"
else
  rm -rf --one-file-system "$chroot_dir"
  log "debootstrap --variant=minbase ${SUITE} (about a minute)"
  run debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$chroot_dir" "$DEBIAN_MIRROR"
  : >"${chroot_dir}/etc/apt/sources.list"
  for suite in ${LAB_APT_SUITES//,/ }; do
    case $suite in
      *-security) echo "deb ${DEBIAN_SECURITY_MIRROR} ${suite} main" ;;
      *) echo "deb ${DEBIAN_MIRROR} ${suite} main" ;;
    esac >>"${chroot_dir}/etc/apt/sources.list"
  done
  cp /etc/resolv.conf "${chroot_dir}/etc/resolv.conf" 2>/dev/null || true
  mount_chroot
  log "installing the toolchain, ${KERNEL_SOURCE_PKG} and linux-headers-${KVER} (=${KERNEL_VERSION})"
  in_chroot apt-get update
  # A backports kernel's headers may need backports versions of their dependencies (apt -t).
  target=()
  [[ -n ${LAB_BACKPORTS:-} ]] && target=(-t "$LAB_BACKPORTS")
  in_chroot apt-get install -y --no-install-recommends "${target[@]}" "${packages[@]}"
  in_chroot apt-get clean
  touch "${chroot_dir}/.pmem-lab-complete"
fi
mount_chroot

# Confirm the pins really hold (a mismatched source tree builds modules that will not load).
for pkg in "$KERNEL_HEADERS_PKG" "$KERNEL_SOURCE_PKG"; do
  # shellcheck disable=SC2016 # dpkg-query's own ${Version} format
  v=$(chroot "$chroot_dir" dpkg-query -W -f '${Version}' "$pkg")
  [[ "$v" == "$KERNEL_VERSION" ]] || die "${pkg} is ${v} in the chroot, want ${KERNEL_VERSION}"
done
# (/lib/modules/KVER/build is an absolute symlink: resolve it inside the chroot)
chroot "$chroot_dir" test -e "/lib/modules/${KVER}/build/Makefile" || die "no /lib/modules/${KVER}/build in the chroot"
hdr_config="${chroot_dir}/usr/src/linux-headers-${KVER}/.config"
# The vermagic the kernel accepts, from its own configuration: Debian's 6.1 and 6.12 kernels have
# CONFIG_MODVERSIONS=y ("... mod_unload modversions"), its 7.3 backport does not.
EXPECTED_VERMAGIC="${KVER} SMP preempt mod_unload"
if grep -q '^CONFIG_MODVERSIONS=y' "$hdr_config"; then EXPECTED_VERMAGIC+=" modversions"; fi

# --- 2. unpack the source (only the parts the nvdimm test build compiles) ---------------------
log "unpacking ${KERNEL_SOURCE_PKG} (tools/testing/nvdimm, drivers/{nvdimm,acpi/nfit,dax})"
rm -rf --one-file-system "$build_dir"
mkdir -p "$build_dir"
src_tar=$(cd "${chroot_dir}/usr/src" && ls "${KERNEL_SOURCE_PKG}".tar.*)
top=${KERNEL_SOURCE_PKG}
in_chroot tar -C /build -xf "/usr/src/${src_tar}" \
  "${top}/tools/testing/nvdimm" "${top}/drivers/nvdimm" "${top}/drivers/acpi/nfit" "${top}/drivers/dax"
src=/build/${top}
m_dir="${src}/tools/testing/nvdimm"

# $(srctree) is the headers tree under M= builds; the test Kbuild files must see the real source.
for kb in "${m_dir}/Kbuild" "${m_dir}/test/Kbuild"; do
  # shellcheck disable=SC2016 # a literal make variable
  grep -qF '$(srctree)' "${chroot_dir}${kb}" || die "${kb} has no \$(srctree) to repoint"
  sed -i "s|\$(srctree)|${src}|g" "${chroot_dir}${kb}"
done

# --- 3. build ---------------------------------------------------------------------------------
jobs=${PMEM_LAB_JOBS:-$(nproc)}
log "make -C /lib/modules/${KVER}/build M=${m_dir} -j${jobs}"
in_chroot make -C "/lib/modules/${KVER}/build" M="$m_dir" -j"$jobs" modules
log "modules_install into updates/ (stripped)"
mkdir -p "${build_dir}/stage"
in_chroot make -C "/lib/modules/${KVER}/build" M="$m_dir" \
  INSTALL_MOD_PATH=/build/stage INSTALL_MOD_DIR=updates INSTALL_MOD_STRIP=1 \
  CONFIG_MODULE_SIG_ALL= modules_install   # Debian's signing key is not shipped: leave unsigned

# --- 4. check -----------------------------------------------------------------------------------
mod_root="${build_dir}/stage/lib/modules/${KVER}/updates"
mapfile -t mods < <(cd "$mod_root" && find . -name '*.ko*' -type f | sed 's|^\./||' | LC_ALL=C sort)
((${#mods[@]} > 0)) || die "no modules were installed"
declare -A have=()
for m in "${mods[@]}"; do
  vm=$(chroot "$chroot_dir" modinfo -F vermagic "/build/stage/lib/modules/${KVER}/updates/${m}")
  vm=${vm%"${vm##*[![:space:]]}"}
  [[ "$vm" == "$EXPECTED_VERMAGIC" ]] || die "${m}: vermagic '${vm}', want '${EXPECTED_VERMAGIC}'"
  b=${m##*/}; have[${b%%.ko*}]=1
done
for need in nfit_test nfit_test_iomap libnvdimm nd_pmem nd_btt nfit; do
  [[ -n "${have[$need]:-}" ]] || die "expected module ${need}.ko was not built"
done
nfit_test_path=$(printf '%s\n' "${mods[@]}" | grep -E '(^|/)nfit_test\.ko' | head -n1)
deps=$(chroot "$chroot_dir" modinfo -F depends "/build/stage/lib/modules/${KVER}/updates/${nfit_test_path}")
for dep in ${deps//,/ }; do
  [[ -n "${have[$dep]:-}" ]] || log "note: nfit_test depends on ${dep}, which is a stock module"
done
log "built ${#mods[@]} modules, vermagic '${EXPECTED_VERMAGIC}'; nfit_test depends: ${deps}"
if grep -q '^CONFIG_MODULE_SIG_FORCE=y' "$hdr_config" 2>/dev/null; then
  log "WARNING: the kernel enforces module signatures; these unsigned modules will not load"
else
  log "note: modules are unsigned; the kernel (no MODULE_SIG_FORCE) loads them and taints (E)," \
    "unless Secure Boot lockdown is active"
fi

# --- 5. package ---------------------------------------------------------------------------------
tmp_tar="${out_dir}/.nfit_test-modules.tar.gz.$$"
tar -C "${build_dir}/stage" --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner \
  -cf - lib | gzip -9n >"$tmp_tar"
printf '%s\n' "${mods[@]}" >"${out_dir}/modules.txt"
mv -f "$tmp_tar" "$tarball"
log "done in $((SECONDS - start)) s: $(du -h "$tarball" | cut -f1) ${tarball}"
printf '%s\n' "$tarball"
