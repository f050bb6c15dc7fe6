#!/usr/bin/env bash
# Runs inside the freshly debootstrapped rootfs (chroot) as root: installs the kernel resolved by
# lab/resolve.py and configures the guest (network, SSH, console, small initramfs).
# Arguments come from the environment: KERNEL_IMAGE_PKG KERNEL_VERSION LAB_APT_SUITES (comma-separated)
# DEBIAN_MIRROR DEBIAN_SECURITY_MIRROR, LAB_BACKPORTS (a -backports suite the kernel comes from, or
# empty)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

: >/etc/apt/sources.list
for suite in ${LAB_APT_SUITES//,/ }; do
  case $suite in
    *-security) echo "deb $DEBIAN_SECURITY_MIRROR $suite main" ;;
    *) echo "deb $DEBIAN_MIRROR $suite main" ;;
  esac >>/etc/apt/sources.list
done
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

# A small initramfs: only what mounts the virtio root disk. The nvdimm modules load from the root
# file system, so the nfit_test flavour's replacements (updates/) are the ones that load.
mkdir -p /etc/initramfs-tools/conf.d
echo 'MODULES=list' >/etc/initramfs-tools/conf.d/pmem-lab.conf
echo 'COMPRESS=zstd' >>/etc/initramfs-tools/conf.d/pmem-lab.conf
printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic >/etc/initramfs-tools/modules

apt-get -q update
# A backports kernel may need backports versions of its dependencies: let apt take them from there
# (-t), and take the pmem userspace from there too when it is newer (it follows the kernel).
target=()
[[ -n ${LAB_BACKPORTS:-} ]] && target=(-t "$LAB_BACKPORTS")
apt-get -q -y --no-install-recommends "${target[@]}" install \
  "${KERNEL_IMAGE_PKG}=${KERNEL_VERSION}"
if [[ -n ${LAB_BACKPORTS:-} ]]; then
  apt-get -q -y --no-install-recommends -t "$LAB_BACKPORTS" install xfsprogs ndctl daxctl
fi
# Everything else comes from the same suite; upgrade so the image matches the archive of the day.
apt-get -q -y --no-install-recommends dist-upgrade
apt-get clean
rm -rf /var/lib/apt/lists/*

echo pmem-lab >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpmem-lab\n' >/etc/hosts
printf '/dev/vda\t/\text4\tdefaults,noatime\t0\t1\n' >/etc/fstab
: >/etc/machine-id

# DHCP on QEMU user networking (the NIC is eth0: net.ifnames=0).
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/20-dhcp.network <<'EOS'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
EOS
systemctl enable systemd-networkd.service
systemctl disable systemd-networkd-wait-online.service 2>/dev/null || true

# SSH: root by key only; fast logins.
mkdir -p /etc/ssh/sshd_config.d /root/.ssh
chmod 0700 /root/.ssh
cat >/etc/ssh/sshd_config.d/pmem-lab.conf <<'EOS'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
GSSAPIAuthentication no
PrintMotd no
PrintLastLog no
EOS
# OpenSSH 9.8+ (trixie) penalises a source for each connection closed before authentication. Every
# connection from the host arrives from QEMU's one user-net address, and Ansible's reboot module
# probes a rebooting guest over and over: a guest slowed by a loaded host then refused every
# connection for minutes ("Not allowed at this time") and the reboot timed out (stock-7/clear_reboot
# in CI). A lab guest has one client, so it has nothing to gain from penalties.
if dpkg --compare-versions "$(dpkg-query -W -f='${Version}' openssh-server)" ge 1:9.8; then
  echo 'PerSourcePenalties no' >>/etc/ssh/sshd_config.d/pmem-lab.conf
fi
: >/etc/motd

# Keep the guest quiet and cheap under software emulation.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' >/etc/systemd/journald.conf.d/pmem-lab.conf
for unit in e2scrub_all.timer e2scrub_reap.service fstrim.timer apt-daily.timer apt-daily-upgrade.timer \
  man-db.timer systemd-timesyncd.service dpkg-db-backup.timer xfs_scrub_all.timer; do
  systemctl mask "$unit" >/dev/null 2>&1 || true
done
# Root on the serial console without a password (debugging through serial.log / the monitor).
mkdir -p /etc/systemd/system/serial-getty@ttyS0.service.d
cat >/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf <<'EOS'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
EOS

rm -f /usr/sbin/policy-rc.d
