#!/usr/bin/env bash
# QEMU for the cxl layout, without touching the host's QEMU.
#
# usage: lab/cxl/qemu.sh        prints the path of qemu-system-x86_64 on its last stdout line
#
# QEMU emulates a CXL type-3 device with a poison list (Get/Inject/Clear Poison mailbox commands)
# from 8.1; bookworm's QEMU is 7.2. Replacing the host's QEMU would change every flavour's cache key
# (the key includes `qemu --version` and a snapshot loads only into the QEMU that saved it), so this
# script unpacks qemu-system-x86 from <host suite>-backports (dpkg-deb -x, no install) into
# $PMEM_LAB_CACHE/qemu-<version>/ with any library the host lacks or has too old. The version is
# whatever the archive serves today (a private apt configuration, the host's mirror); a new upload
# unpacks beside the old one and changes the cxl flavour's key.
set -euo pipefail
LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../recipe.env
source "$LAB_DIR/recipe.env"
log() { printf '[cxl-qemu] %s\n' "$*" >&2; }
die() {
  printf '[cxl-qemu] ERROR: %s\n' "$*" >&2
  exit 1
}
for tool in apt-get dpkg-deb ldd flock; do
  command -v "$tool" >/dev/null || die "missing $tool"
done
# shellcheck source=/dev/null
host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $host_suite ]] || die "cannot tell the host's Debian suite from /etc/os-release"
bpo="$host_suite-backports"

top="$PMEM_LAB_CACHE/qemu-cxl"
mkdir -p "$top"
exec 8>"$top/.lock"
flock 8

# A private apt: its own sources (the host's mirror, the backports suite), lists and archives.
apt_dir="$top/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc/preferences.d" "$apt_dir/etc/sources.list.d"
cat >"$apt_dir/etc/sources.list" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR $host_suite main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR $host_suite-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_SECURITY_MIRROR $host_suite-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR $bpo main
EOS
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
  -o "Dir::Etc::Preferences=$apt_dir/etc/preferences"
  -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::State::status=/var/lib/dpkg/status"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::Archives=$apt_dir/archives"
  -o "APT::Default-Release=$bpo"
)
mkdir -p "$apt_dir/cache"
log "apt-get update ($host_suite + $bpo from $DEBIAN_MIRROR, private lists)"
apt-get -q "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 || {
  tail -n 20 "$apt_dir/update.log" >&2
  die "apt-get update failed (log: $apt_dir/update.log)"
}
version=$(apt-cache "${apt_opts[@]}" policy qemu-system-x86 | sed -n 's/^ *Candidate: *//p')
[[ -n $version && $version != "(none)" ]] || die "no qemu-system-x86 candidate in $bpo"
major=${version#*:}
major=${major%%.*}
((major >= 9)) || die "qemu-system-x86 $version from $bpo is older than the 8.1 that emulates CXL poison"
# No ":" in the path (LD_LIBRARY_PATH and -L lists split on it).
dest="$top/${version//:/_}"
bin="$dest/usr/bin/qemu-system-x86_64"
if [[ -x $bin && -f $dest/.complete ]]; then
  log "cached: $bin ($version)"
  printf '%s\n' "$bin" >"$top/current.tmp" && mv "$top/current.tmp" "$top/current"
  echo "$bin"
  exit 0
fi
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
# What apt would install beside the host's packages: qemu-system-x86 and everything it pulls in
# that the host does not have at a satisfying version (a simulation against the host's dpkg status).
pkgs=$(apt-get "${apt_opts[@]}" -s --no-install-recommends install "qemu-system-x86=$version" 2>/dev/null |
  sed -n 's/^Inst \([^ ]*\) .*/\1/p')
[[ -n $pkgs ]] || die "apt-get -s install qemu-system-x86=$version listed nothing"
log "qemu-system-x86 $version: unpacking $(echo "$pkgs" | wc -w) packages: $(echo "$pkgs" | paste -sd' ')"
dl="$dest.tmp.debs"
rm -rf "$dl"
mkdir -p "$dl"
# shellcheck disable=SC2086 # a list of package names
(cd "$dl" && apt-get -q "${apt_opts[@]}" download $pkgs >"$apt_dir/download.log" 2>&1) || {
  tail -n 20 "$apt_dir/download.log" >&2
  die "apt-get download failed (log: $apt_dir/download.log)"
}
n=0
for deb in "$dl"/*.deb; do
  [[ -f $deb ]] || continue
  dpkg-deb -x "$deb" "$dest.tmp"
  n=$((n + 1))
done
(( n == $(echo "$pkgs" | wc -w) )) || die "downloaded $n of the $(echo "$pkgs" | wc -w) packages (log: $apt_dir/download.log)"
rm -rf "$dl"
# The host's libraries must do (the backports build is for this suite); its firmware (SeaBIOS,
# option ROMs) comes from its own tree (lab_qemu_argv passes -L).
missing=$(ldd "$dest.tmp/usr/bin/qemu-system-x86_64" | grep 'not found' || true)
[[ -z $missing ]] || die "qemu-system-x86_64 $version lacks libraries: $missing"
"$dest.tmp/usr/bin/qemu-system-x86_64" --version >/dev/null || die "the unpacked qemu-system-x86_64 $version does not run"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
touch "$dest/.complete"
# up.sh starts the QEMU the last build resolved, without asking the archive (lab_cxl_qemu_root in lib.sh).
printf '%s\n' "$bin" >"$top/current.tmp" && mv "$top/current.tmp" "$top/current"
log "unpacked $dest"
echo "$bin"
