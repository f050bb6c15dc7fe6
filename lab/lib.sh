# shellcheck shell=bash
# shellcheck disable=SC2034,SC2054  # globals for the sourcing scripts; QEMU options contain commas
# Shared helpers of the pmem.poison lab scripts (sourced, not run).
# The QEMU command line lives here and only here: a snapshot loads only into the machine it was
# saved from, so this file is part of the cache key (see lab_key).

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=recipe.env
source "$LAB_DIR/recipe.env"
LAB_RUN_DIR="${LAB_RUN_DIR:-$LAB_DIR/.run}"
LAB_SNAPSHOT=lab
# mitigations=off: with the Intel vendor (lab_qemu_argv) the guest assumes Meltdown and friends and
# turns on page-table isolation, IBRS and buffer clearing; under TCG every kernel entry then flushes
# QEMU's soft TLB, which made a 6.1 cold boot miss its SSH deadline on a loaded machine. A lab VM
# has nothing to protect from itself.
LAB_KERNEL_APPEND="console=ttyS0 root=/dev/vda rw net.ifnames=0 memmap=320M!1G memmap=176M!1360M quiet loglevel=4 nokaslr tsc=reliable mitigations=off"
LAB_T0=${LAB_T0:-$SECONDS}

lab_log() { printf '[lab %4ds] %s\n' "$((SECONDS - LAB_T0))" "$*" >&2; }
lab_die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# The flavours: <layout>[-<kernel>]. The layout is the device set (stock: two e820 devices + a QEMU
# NVDIMM with fsdax and devdax namespaces; nfit_test: two e820 devices + the kernel's emulated NFIT
# bus); the suffix names the kernel track (none: bookworm 6.1; 6.12: trixie; 7: the newest kernel
# Debian ships, trixie-backports today; cxl: two e820 devices + a QEMU CXL type-3 persistent memory
# device behind a CXL host bridge, run by a newer QEMU than the host's, lab/cxl/). Names are matched
# whole, never by prefix.
LAB_FLAVOURS=(stock stock-6.12 stock-7 nfit_test nfit_test-7 cxl-7)

lab_check_flavour() {
  local f
  for f in "${LAB_FLAVOURS[@]}"; do
    [[ ${1:-} == "$f" ]] && return 0
  done
  lab_die "flavour must be one of ${LAB_FLAVOURS[*]}, got '${1:-}'"
}

# lab_flavour_track FLAVOUR: what a flavour is made of, as globals.
#   LAB_LAYOUT            stock (e820 + QEMU NVDIMM), nfit_test (e820 + the emulated NFIT bus) or
#                         cxl (e820 + a QEMU CXL type-3 device, QEMU from lab/cxl/qemu.sh)
#   SUITE                 the guest's userspace suite (debootstrap)
#   LAB_KERNEL_SUITES     suites the kernel packages may come from (comma-separated)
#   LAB_KERNEL_SERIES     6.1, 6.12, ... or newest
#   LAB_BACKPORTS         a -backports suite the kernel comes from (apt -t), or empty; the guest's
#                         xfsprogs/ndctl/daxctl come from it too when it has newer ones
lab_flavour_track() {
  lab_check_flavour "$1"
  LAB_LAYOUT=${1%%-*}
  LAB_BACKPORTS=
  case "$1" in
    stock | nfit_test)
      SUITE=bookworm
      LAB_KERNEL_SUITES=bookworm,bookworm-updates,bookworm-security
      LAB_KERNEL_SERIES=6.1
      ;;
    stock-6.12)
      SUITE=trixie
      LAB_KERNEL_SUITES=trixie,trixie-updates,trixie-security
      LAB_KERNEL_SERIES=6.12
      ;;
    stock-7 | nfit_test-7 | cxl-7)
      SUITE=trixie
      LAB_KERNEL_SUITES=trixie-backports
      LAB_KERNEL_SERIES=newest
      LAB_BACKPORTS=trixie-backports
      ;;
  esac
  LAB_APT_SUITES=$(printf '%s\n' "$SUITE" "$SUITE-updates" "$SUITE-security" "${LAB_KERNEL_SUITES//,/$'\n'}" | awk '!seen[$0]++' | paste -sd,)
}

# lab_resolve FLAVOUR: resolve the flavour's kernel packages from today's archive (lab/resolve.py)
# and set KERNEL_* and LAB_USERSPACE. Writes what it resolved to $PMEM_LAB_CACHE/resolved/FLAVOUR.env,
# which is part of the cache key: a changed archive means a new key and a rebuild.
lab_resolve() {
  local flavour=$1 out
  lab_flavour_track "$flavour"
  mkdir -p "$PMEM_LAB_CACHE/resolved"
  out=$(python3 "$LAB_DIR/resolve.py" --suites "$LAB_KERNEL_SUITES" --series "$LAB_KERNEL_SERIES" \
    --userspace-suites "$LAB_APT_SUITES" --want "${PMEM_LAB_WANT_KERNEL:-}" --arch "$ARCH" \
    --mirror "$DEBIAN_MIRROR" --security-mirror "$DEBIAN_SECURITY_MIRROR" \
    --cache "$PMEM_LAB_CACHE/index" 2> >(while IFS= read -r l; do lab_log "$flavour: $l"; done)) ||
    lab_die "$flavour: cannot resolve the kernel packages from the archive (see above)"
  eval "$out"
  # The cxl layout's QEMU is resolved from the archive too (the host's backports suite).
  if [[ $LAB_LAYOUT == cxl ]]; then
    "$LAB_DIR/cxl/qemu.sh" >/dev/null 2> >(while IFS= read -r l; do lab_log "$flavour: $l"; done) ||
      lab_die "$flavour: cannot get a QEMU with CXL poison emulation (lab/cxl/qemu.sh)"
  fi
  LAB_RESOLVED=$(printf 'suite=%s\nkernel_suites=%s\nbackports=%s\n%s\n' "$SUITE" "$LAB_KERNEL_SUITES" "$LAB_BACKPORTS" "$out")
  printf '%s\n' "$LAB_RESOLVED" >"$PMEM_LAB_CACHE/resolved/$flavour.env.tmp"
  mv "$PMEM_LAB_CACHE/resolved/$flavour.env.tmp" "$PMEM_LAB_CACHE/resolved/$flavour.env"
}

# Files whose content defines a flavour's artefact. Changing any of them changes the key.
lab_recipe_files() {
  local flavour=$1
  printf '%s\n' "$LAB_DIR/recipe.env" "$LAB_DIR/build.sh" "$LAB_DIR/monitor.py" \
    "$LAB_DIR/guest/configure-rootfs.sh" "$LAB_DIR/guest/firstboot.sh"
  lab_flavour_track "$flavour"
  if [[ $LAB_LAYOUT == nfit_test ]]; then
    # The nfit_test module build: its scripts and patches, not its outputs or hidden work dirs.
    find "$LAB_DIR/nfit_test" -path '*/.*' -prune -o -type f \
      \( -name '*.sh' -o -name '*.patch' -o -name '*.env' -o -name '*.mk' -o -name 'Makefile' -o -name '*.py' -o -name '*.conf' \) \
      -print | LC_ALL=C sort
  fi
}

# Cache key: sha256 over the flavour, what lab_resolve resolved, the QEMU command line the snapshot
# is saved from (rendered with placeholder paths: a snapshot loads only into the same machine) and
# the QEMU version, and the recipe files' paths (relative to lab/) and contents. lib.sh itself is not hashed: its helpers
# (SSH, ports, names) do not shape the artefact, and editing them must not rebuild every flavour.
lab_key() {
  local flavour=$1 f
  [[ -n ${LAB_RESOLVED:-} ]] || lab_die "lab_key before lab_resolve"
  lab_qemu_argv "$flavour" ART DISK NVDIMM PORT MONITOR SERIAL PIDFILE
  {
    printf 'flavour=%s\n%s\n' "$flavour" "$LAB_RESOLVED"
    printf 'qemu: %s\n' "${LAB_QEMU_ARGV[*]}"
    # TCG's `-cpu max` is whatever this QEMU implements: another QEMU may not load the snapshot.
    "$(lab_qemu_bin "$flavour")" --version 2>/dev/null | head -n1
    while IFS= read -r f; do
      printf '%s\n' "${f#"$LAB_DIR"/}"
      sha256sum <"$f"
    done < <(lab_recipe_files "$flavour")
  } | sha256sum | cut -c1-16
}

# The rootfs (shared by the flavours of one track) depends only on the resolved packages, the build
# script and the chroot configuration script.
lab_rootfs_key() {
  local f
  {
    printf '%s\n' "$LAB_RESOLVED"
    for f in "$LAB_DIR/recipe.env" "$LAB_DIR/build.sh" "$LAB_DIR/guest/configure-rootfs.sh"; do
      printf '%s\n' "${f#"$LAB_DIR"/}"
      sha256sum <"$f"
    done
  } | sha256sum | cut -c1-16
}

lab_artefact_dir() {
  local flavour=$1
  printf '%s/%s-%s\n' "$PMEM_LAB_CACHE" "$flavour" "$(lab_key "$flavour")"
}

# The artefact the last build of FLAVOUR made or confirmed (build.sh writes the pointer). up.sh
# starts that one without asking the archive again; `make test` runs build.sh first, so a test run
# always starts what today's archive resolves to.
lab_current_pointer() { printf '%s/current/%s\n' "$PMEM_LAB_CACHE" "$1"; }
lab_current_artefact() {
  local p art
  p=$(lab_current_pointer "$1")
  [[ -s $p ]] || return 1
  art=$(cat "$p")
  [[ -f $art/ready ]] || return 1
  printf '%s\n' "$art"
}
lab_set_current() {
  mkdir -p "$PMEM_LAB_CACHE/current"
  printf '%s\n' "$2" >"$(lab_current_pointer "$1").tmp"
  mv "$(lab_current_pointer "$1").tmp" "$(lab_current_pointer "$1")"
}

lab_ssh_key() { printf '%s/ssh/id_ed25519\n' "$PMEM_LAB_CACHE"; }

lab_ensure_ssh_key() {
  local key
  key=$(lab_ssh_key)
  if [[ ! -s $key ]]; then
    mkdir -p "$(dirname "$key")"
    chmod 0700 "$(dirname "$key")"
    ssh-keygen -q -t ed25519 -N '' -C pmem-poison-lab -f "$key"
  fi
}

# A free TCP port on 127.0.0.1 (QEMU binds it; a race is retried by the caller).
lab_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# lab_qemu_argv FLAVOUR ARTEFACT_DIR DISK NVDIMM PORT MONITOR SERIAL_LOG PIDFILE
# Fills the global array LAB_QEMU_ARGV. KERNEL/INITRD come from the flavour artefact dir.
# CPU: `max` with the Intel vendor. With it (and only with it) a machine check injected from the
# monitor (`mce -b ...`, lab/mce.sh) takes the kernel's recoverable path (software error recovery:
# SRAO/SRAR go to memory_failure, NVDIMM addresses to nfit's MCE notifier); with the AMD vendor
# `-cpu max` reports, the guest panics ("Uncorrected error without MCA Recovery"). A snapshot loads
# only into the CPU model it was saved with, so this is part of every flavour's cache key.
# Two vCPUs: with one, a cold boot under TCG on a loaded 2-core host missed a 600 s SSH deadline
# (one host thread gets half the CPU share of two). The price: a broadcast machine check on the 7.3
# guest leaves it unable to start new SSH sessions (lab/README.md, "Poison that arrives").
# stock layout: e820 pmem (memmap=) and a QEMU NVDIMM (ACPI.NFIT) in one boot.
# nfit_test layout: e820 pmem only. nfit_test hands out fake physical addresses from a pool at 4-8 GiB,
# which is exactly where QEMU maps the NVDIMM (device memory starts at 4 GiB with 2 GiB of RAM):
# both at once make the NVDIMM's namespaces fail to enable, so that flavour has no QEMU NVDIMM.
# cxl layout: q35 with CXL on, a CXL host bridge (pxb-cxl), one root port and a CXL type-3 device
# with 256 MiB of persistent memory and a label area, and a 4 GiB fixed memory window (CFMWS) that
# targets the host bridge: the kernel's cxl_acpi finds root decoder decoder0.0 there, a pmem region
# is created in the guest (molecule/cxl prepare). Its backends are RAM (saved in the snapshot).
# This needs QEMU >= 8.1 (poison list, Inject/Clear Poison mailbox commands): lab/cxl/qemu.sh
# unpacks one; its firmware directory goes first (-L). In the key the QEMU root is a placeholder.
lab_qemu_argv() {
  local flavour=$1 art=$2 disk=$3 nvdimm=$4 port=$5 monitor=$6 serial=$7 pidfile=$8 qroot
  lab_flavour_track "$flavour"
  local cpu=max,vendor=GenuineIntel
  # cxl: no hypervisor CPUID bit. Linux creates a CXL region only if it can invalidate CPU caches
  # by address range (cpu_cache_has_invalidate_memregion), which x86 denies under any hypervisor:
  # with the bit, `cxl create-region` fails ("Failed to synchronize CPU cache state", a WARNING and
  # "failed to commit decode: No such device or address").
  [[ $LAB_LAYOUT == cxl ]] && cpu+=,hypervisor=off
  LAB_QEMU_ARGV=(qemu-system-x86_64)
  if [[ $LAB_LAYOUT == cxl ]]; then
    # Its own loadable modules too: the host's (another build) are refused with a warning each.
    if [[ $art == ART ]]; then qroot=QEMU; else qroot=$(lab_cxl_qemu_root); fi
    LAB_QEMU_ARGV=(env "QEMU_MODULE_DIR=$qroot/usr/lib/x86_64-linux-gnu/qemu" "$qroot/usr/bin/qemu-system-x86_64"
      -L "$qroot/usr/share/qemu" -L "$qroot/usr/share/seabios")
  fi
  LAB_QEMU_ARGV+=(
    -name "pmem-lab-$flavour"
    -accel tcg,thread=multi
    -cpu "$cpu"
    -smp 2
  )
  if [[ $LAB_LAYOUT == stock ]]; then
    LAB_QEMU_ARGV+=(
      -machine pc,nvdimm=on
      -m 2G,slots=2,maxmem=6G
      -object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm,size=1G"
      -device nvdimm,id=nv1,memdev=mem1,label-size=128K
    )
  elif [[ $LAB_LAYOUT == cxl ]]; then
    LAB_QEMU_ARGV+=(-machine q35,cxl=on -m 2G)
  else
    LAB_QEMU_ARGV+=(-machine pc -m 2G)
  fi
  LAB_QEMU_ARGV+=(
    -kernel "$art/vmlinuz"
    -initrd "$art/initrd.img"
    -append "$LAB_KERNEL_APPEND"
  )
  if [[ $LAB_LAYOUT == cxl ]]; then
    # On the root bus by name: QEMU would put a bus-less PCI device on the CXL host bridge's bus,
    # which takes only the root port.
    LAB_QEMU_ARGV+=(
      -drive "file=$disk,if=none,id=vda,format=qcow2,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=vda,bus=pcie.0
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22"
      -device virtio-net-pci,netdev=n0,bus=pcie.0
    )
  else
    LAB_QEMU_ARGV+=(
      -drive "file=$disk,if=virtio,format=qcow2,cache=unsafe,discard=unmap"
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22"
      -device virtio-net-pci,netdev=n0
    )
  fi
  LAB_QEMU_ARGV+=(
    -display none
    -vga none
    -serial "file:$serial"
    -monitor "unix:$monitor,server,nowait"
    -pidfile "$pidfile"
    -daemonize
  )
  if [[ $LAB_LAYOUT == cxl ]]; then
    LAB_QEMU_ARGV+=(
      -object memory-backend-ram,id=cxl-mem0,share=on,size=256M
      -object memory-backend-ram,id=cxl-lsa0,share=on,size=1M
      -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
      -device cxl-rp,port=0,bus=cxl.1,id=cxl-rp0,chassis=0,slot=2
      -device cxl-type3,bus=cxl-rp0,persistent-memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-pmem0,sn=0x1
      -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G
    )
  fi
}

# lab_cxl_qemu_root: the directory lab/cxl/qemu.sh unpacked the cxl layout's QEMU into (the one
# the last build resolved; unpacked now if there is none yet).
lab_cxl_qemu_root() {
  local bin
  bin=$(cat "$PMEM_LAB_CACHE/qemu-cxl/current" 2>/dev/null || true)
  if [[ ! -x $bin ]]; then
    bin=$("$LAB_DIR/cxl/qemu.sh" | tail -n1) || lab_die "cannot get a QEMU with CXL poison emulation (lab/cxl/qemu.sh)"
  fi
  printf '%s\n' "${bin%/usr/bin/qemu-system-x86_64}"
}

# lab_qemu_bin FLAVOUR: the QEMU binary a flavour runs (its version is part of the cache key).
lab_qemu_bin() {
  lab_flavour_track "$1"
  if [[ $LAB_LAYOUT == cxl ]]; then
    printf '%s/usr/bin/qemu-system-x86_64\n' "$(lab_cxl_qemu_root)"
  else
    echo qemu-system-x86_64
  fi
}

# lab_ssh_argv PORT: fills LAB_SSH_ARGV (without the command).
# ConnectTimeout also bounds the SSH banner exchange. Keep it long: the trixie guests (6.12, 7.x)
# run OpenSSH 10, whose PerSourcePenalties count every connection closed before authentication
# (`noauth`) against its source, and every connection from the host arrives from QEMU's one user-net
# address. With 3 s, a guest slowed by a loaded host (load 20) missed the banner a dozen times and
# then refused every connection for minutes ("Not allowed at this time"): no SSH within 360 s.
lab_ssh_argv() {
  local port=$1
  LAB_SSH_ARGV=(
    ssh -q -i "$(lab_ssh_key)" -p "$port"
    -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR -o "ConnectTimeout=${PMEM_LAB_SSH_CONNECT_TIMEOUT:-60}"
    -o ServerAliveInterval=5 -o ServerAliveCountMax=6 -o IdentitiesOnly=yes
    root@127.0.0.1
  )
}

# lab_wait_ssh PORT TIMEOUT [PIDFILE]: wait until the guest runs a command over SSH.
# Each attempt sets the guest clock from the host (the clock is frozen in a snapshot).
lab_wait_ssh() {
  local port=$1 timeout=$2 pidfile=${3:-} start=$SECONDS
  lab_ssh_argv "$port"
  while ((SECONDS - start < timeout)); do
    if "${LAB_SSH_ARGV[@]}" "date -s @$(date +%s.%N) >/dev/null" </dev/null 2>/dev/null; then
      return 0
    fi
    if [[ -n $pidfile && -s $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      lab_log "QEMU exited while waiting for SSH"
      return 1
    fi
    sleep 0.3
  done
  return 1
}
