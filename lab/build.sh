#!/usr/bin/env bash
# Build (or reuse from the cache) a lab flavour: a Debian guest image with a saved snapshot.
#
# usage: lab/build.sh FLAVOUR      (stock, stock-6.12, stock-7, nfit_test, nfit_test-7; lib.sh)
#        prints the artefact directory on its last stdout line
#
# Steps (each cached under $PMEM_LAB_CACHE, keyed by a hash of the recipe files and of the package
# versions resolved from today's archive, see lib.sh and resolve.py):
#   resolve  the newest kernel version whose image, headers, kbuild and source all exist (resolve.py)
#   rootfs   debootstrap --variant=minbase + that kernel (shared by the flavours of one track)
#   image    mke2fs -t ext4 -d ROOTFS (no loop mount) -> base.qcow2; kernel/initrd copied out
#   boot     cold boot under TCG, first-boot setup over SSH (guest/firstboot.sh)
#   snapshot savevm into state.qcow2 (an overlay on base.qcow2), keep nvdimm.img with it
set -euo pipefail
LAB_T0=$SECONDS
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flavour=${1:-}
lab_check_flavour "$flavour"
lab_resolve "$flavour"
art=$(lab_artefact_dir "$flavour")
kver="${KERNEL_ABI}-amd64"

if [[ -f $art/ready ]]; then
  lab_log "$flavour: cached artefact $art (kernel $kver $KERNEL_VERSION)"
  lab_set_current "$flavour" "$art"
  echo "$art"
  exit 0
fi
lab_log "$flavour: building $art (kernel $kver $KERNEL_VERSION, suite $SUITE)"

for tool in debootstrap qemu-system-x86_64 qemu-img mke2fs python3 ssh ssh-keygen flock; do
  command -v "$tool" >/dev/null || lab_die "missing $tool (apt-get install debootstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client util-linux)"
done
[[ $(id -u) == 0 ]] || lab_die "building the lab needs root (debootstrap, chroot)"

mkdir -p "$PMEM_LAB_CACHE"
exec 9>"$PMEM_LAB_CACHE/.build.lock"
lab_log "$flavour: waiting for the build lock" && flock 9
if [[ -f $art/ready ]]; then # built by someone else meanwhile
  lab_set_current "$flavour" "$art"
  echo "$art"
  exit 0
fi
lab_ensure_ssh_key

# Mounts inside a chroot, undone on any exit.
CHROOT_MOUNTS=()
chroot_mount() {
  local root=$1 m
  for m in proc sys dev dev/pts; do
    mkdir -p "$root/$m"
  done
  mount -t proc proc "$root/proc" && CHROOT_MOUNTS+=("$root/proc")
  mount -t sysfs sysfs "$root/sys" && CHROOT_MOUNTS+=("$root/sys")
  mount --bind /dev "$root/dev" && CHROOT_MOUNTS+=("$root/dev")
  mount --bind /dev/pts "$root/dev/pts" && CHROOT_MOUNTS+=("$root/dev/pts")
}
chroot_umount() {
  local i
  for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${CHROOT_MOUNTS[i]}" 2>/dev/null || true
  done
  CHROOT_MOUNTS=()
}
QEMU_PIDFILE=
cleanup() {
  chroot_umount
  if [[ -n $QEMU_PIDFILE && -s $QEMU_PIDFILE ]]; then
    kill "$(cat "$QEMU_PIDFILE")" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- rootfs (shared by the flavours of a track)
build_rootfs() {
  local root tmp
  root="$PMEM_LAB_CACHE/rootfs-$(lab_rootfs_key)"
  if [[ -f $root/.complete ]]; then
    lab_log "rootfs: cached $root"
    ROOTFS=$root
    return
  fi
  tmp="$root.tmp"
  rm -rf "$tmp"
  mkdir -p "$PMEM_LAB_CACHE/debs"
  local include=systemd,systemd-sysv,udev,dbus,libpam-systemd,ndctl,daxctl,xfsprogs,e2fsprogs,python3
  include+=,openssh-server,attr,util-linux,fdisk,procps,kmod,iproute2,initramfs-tools,zstd,less
  lab_log "rootfs: debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR (about 2-3 minutes)"
  debootstrap --variant=minbase --arch="$ARCH" --include="$include" \
    --cache-dir="$PMEM_LAB_CACHE/debs" "$SUITE" "$tmp" "$DEBIAN_MIRROR" \
    | while IFS= read -r line; do
      case "$line" in I:\ Retrieving* | I:\ Validating* | I:\ Extracting* | I:\ Unpacking* | I:\ Configuring*) ;; *) lab_log "debootstrap: $line" ;; esac
    done
  [[ -x $tmp/bin/bash ]] || lab_die "debootstrap failed"
  lab_log "rootfs: kernel $KERNEL_IMAGE_PKG=$KERNEL_VERSION (from $LAB_KERNEL_SUITES), guest config"
  install -m 0755 "$LAB_DIR/guest/configure-rootfs.sh" "$tmp/tmp/configure-rootfs.sh"
  chroot_mount "$tmp"
  chroot "$tmp" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    KERNEL_IMAGE_PKG="$KERNEL_IMAGE_PKG" KERNEL_VERSION="$KERNEL_VERSION" LAB_APT_SUITES="$LAB_APT_SUITES" \
    LAB_BACKPORTS="$LAB_BACKPORTS" \
    DEBIAN_MIRROR="$DEBIAN_MIRROR" DEBIAN_SECURITY_MIRROR="$DEBIAN_SECURITY_MIRROR" \
    /tmp/configure-rootfs.sh >"$tmp.log" 2>&1 || {
    tail -n 30 "$tmp.log" >&2
    lab_die "rootfs configuration failed (log: $tmp.log)"
  }
  chroot_umount
  grep -E '^(Setting up linux-image|update-initramfs)' "$tmp.log" | while IFS= read -r line; do lab_log "chroot: $line"; done
  rm -f "$tmp/tmp/configure-rootfs.sh"
  [[ -f $tmp/boot/vmlinuz-$kver && -f $tmp/boot/initrd.img-$kver ]] || lab_die "kernel $kver not installed in rootfs"
  install -d -m 0700 "$tmp/root/.ssh"
  install -m 0600 "$(lab_ssh_key).pub" "$tmp/root/.ssh/authorized_keys"
  mv "$tmp.log" "$tmp/.build.log"
  touch "$tmp/.complete"
  rm -rf "$root"
  mv "$tmp" "$root"
  lab_log "rootfs: done ($(du -sh "$root" | cut -f1))"
  ROOTFS=$root
}

# ---------------------------------------------------------------- nfit_test modules over a rootfs copy
nfit_rootfs() {
  local base=$1 dest=$2 tarball out
  lab_log "nfit_test: building modules (lab/nfit_test/build.sh)"
  [[ -x $LAB_DIR/nfit_test/build.sh ]] || lab_die "lab/nfit_test/build.sh is missing"
  out=$(SUITE=$SUITE LAB_APT_SUITES=$LAB_APT_SUITES LAB_BACKPORTS=$LAB_BACKPORTS KERNEL_SERIES=$KERNEL_SERIES KERNEL_ABI=$KERNEL_ABI \
    KERNEL_VERSION=$KERNEL_VERSION KERNEL_HEADERS_PKG=$KERNEL_HEADERS_PKG \
    KERNEL_HEADERS_COMMON_PKG=$KERNEL_HEADERS_COMMON_PKG KERNEL_KBUILD_PKG=$KERNEL_KBUILD_PKG \
    KERNEL_SOURCE_PKG=$KERNEL_SOURCE_PKG DEBIAN_MIRROR=$DEBIAN_MIRROR \
    DEBIAN_SECURITY_MIRROR=$DEBIAN_SECURITY_MIRROR "$LAB_DIR/nfit_test/build.sh") ||
    lab_die "lab/nfit_test/build.sh failed"
  tarball=$(printf '%s\n' "$out" | tail -n1)
  [[ -f $tarball ]] || lab_die "lab/nfit_test/build.sh did not print a tarball path (last line: '$tarball')"
  lab_log "nfit_test: modules $tarball"
  rm -rf "$dest"
  cp -a --reflink=auto "$base" "$dest"
  # --keep-directory-symlink: /lib is a symlink to usr/lib (merged /usr); do not replace it.
  tar -x --keep-directory-symlink -C "$dest" -f "$tarball"
  printf '%s\n' nfit_test >"$dest/etc/modules-load.d/nfit_test.conf"
  chroot_mount "$dest"
  chroot "$dest" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin depmod -a "$kver"
  chroot "$dest" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin update-initramfs -u -k "$kver" >/dev/null
  chroot_umount
  lab_log "nfit_test: modules installed: $(tar -t -f "$tarball" | grep -c '\.ko')"
}

build_rootfs
work="$art.tmp"
rm -rf "$work"
mkdir -p "$work"
imgroot=$ROOTFS
if [[ $LAB_LAYOUT == nfit_test ]]; then
  imgroot="$work/rootfs"
  nfit_rootfs "$ROOTFS" "$imgroot"
fi

# ---------------------------------------------------------------- image
lab_log "$flavour: packing ext4 image (mke2fs -d) and converting to qcow2"
cp "$imgroot/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$imgroot/boot/initrd.img-$kver" "$work/initrd.img"
mke2fs -q -t ext4 -L pmem-lab -E root_owner=0:0 -d "$imgroot" "$work/base.raw" 4G
qemu-img convert -O qcow2 "$work/base.raw" "$work/base.qcow2"
rm -f "$work/base.raw"
[[ $LAB_LAYOUT == nfit_test ]] && rm -rf "$imgroot"
chmod 0444 "$work/base.qcow2"
# The overlay names its backing file relative to its own directory; up.sh rebases instance copies.
(cd "$work" && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 state.qcow2)
[[ $LAB_LAYOUT == stock ]] && truncate -s 1G "$work/nvdimm.img"

# ---------------------------------------------------------------- first boot and snapshot
port=$(lab_free_port)
QEMU_PIDFILE="$work/qemu.pid"
lab_qemu_argv "$flavour" "$work" "$work/state.qcow2" "$work/nvdimm.img" "$port" "$work/monitor.sock" "$work/build-serial.log" "$QEMU_PIDFILE"
lab_log "$flavour: cold boot under TCG (about 1 minute), SSH on 127.0.0.1:$port"
"${LAB_QEMU_ARGV[@]}"
lab_wait_ssh "$port" 600 "$QEMU_PIDFILE" || {
  tail -n 40 "$work/build-serial.log" >&2
  lab_die "$flavour: guest did not come up (serial log: $work/build-serial.log)"
}
lab_log "$flavour: guest up; first-boot setup"
lab_ssh_argv "$port"
"${LAB_SSH_ARGV[@]}" bash -s -- "$LAB_LAYOUT" <"$LAB_DIR/guest/firstboot.sh" | while IFS= read -r line; do lab_log "$line"; done
[[ ${PIPESTATUS[0]} == 0 ]] || lab_die "$flavour: first-boot setup failed"
lab_log "$flavour: savevm $LAB_SNAPSHOT"
pid=$(cat "$QEMU_PIDFILE")
python3 "$LAB_DIR/monitor.py" "$work/monitor.sock" "savevm $LAB_SNAPSHOT" quit | while IFS= read -r line; do lab_log "monitor: $line"; done
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
kill -0 "$pid" 2>/dev/null && lab_die "QEMU $pid did not quit after savevm"
QEMU_PIDFILE=
qemu-img snapshot -l "$work/state.qcow2" | grep -qw "$LAB_SNAPSHOT" || lab_die "snapshot $LAB_SNAPSHOT missing"
rm -f "$work/qemu.pid" "$work/monitor.sock"
{
  echo "FLAVOUR=$flavour"
  echo "KEY=$(lab_key "$flavour")"
  echo "KERNEL=$kver $KERNEL_VERSION"
  echo "SUITE=$SUITE"
  echo "LAYOUT=$LAB_LAYOUT"
  echo "ROOTFS=$ROOTFS"
  echo "BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '%s\n' "$LAB_RESOLVED" | sed 's/^/# /'
} >"$work/ready"
rm -rf "$art"
mv "$work" "$art"
lab_set_current "$flavour" "$art"
lab_log "$flavour: built $art ($(du -sh "$art" | cut -f1) on disk)"

# Drop superseded artefacts of this flavour, and rootfs trees no current artefact was built from,
# unless a QEMU uses them.
in_use() { grep -qsa -- "$1/" /proc/[0-9]*/cmdline; }
current_rootfs() {
  local p
  for p in "$PMEM_LAB_CACHE"/current/*; do
    [[ -s $p && -f $(cat "$p")/ready ]] && sed -n 's/^ROOTFS=//p' "$(cat "$p")/ready"
  done
}
for old in "$PMEM_LAB_CACHE"/*/ready; do
  old=${old%/ready}
  if [[ $old == "$art" ]] || ! grep -qx "FLAVOUR=$flavour" "$old/ready"; then continue; fi
  if ! in_use "$old"; then
    lab_log "pruning superseded $(basename "$old")"
    rm -rf "$old"
  fi
done
keep=$(current_rootfs)
for old in "$PMEM_LAB_CACHE"/rootfs-*; do
  [[ -d $old && $old != "$ROOTFS" && $old != *.tmp ]] || continue
  grep -qxF -- "$old" <<<"$keep" && continue
  if ! in_use "$old"; then
    lab_log "pruning superseded $(basename "$old")"
    rm -rf "$old"
  fi
done
echo "$art"
