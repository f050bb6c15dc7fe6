#!/usr/bin/env bash
# Inject a machine check into a running lab instance through its QEMU monitor (host side).
#
# usage: lab/mce.sh NAME ADDRESS [srao|srar]      ADDRESS: guest physical, e.g. 0x100a10000
#
#   srao (default)  uncorrected, software recoverable, action optional: a patrol-scrub error
#                   (MCi_STATUS 0xbd000000000000c0: VAL UC EN MISCV ADDRV S, MCACOD 0xc0;
#                   MCG_STATUS 0x5: RIPV MCIP). The guest logs it, runs memory_failure() on the
#                   page (HardwareCorrupted grows, mapping processes get SIGBUS BUS_MCEERR_AO) and,
#                   at an NVDIMM address, nfit's MCE notifier adds it to the region and block-device
#                   badblocks lists (64-byte granularity: MISC 0x86, physical address mode, LSB 6).
#   srar            action required, a data load (MCi_STATUS 0xbd80000000000134: ... S AR, MCACOD
#                   0x134; MCG_STATUS 0x6: EIPV MCIP). Real hardware raises it in the context that
#                   loaded the data; QEMU raises it wherever the vCPU happens to be, usually in the
#                   kernel, where the guest treats it as unrecoverable (see lab/README.md).
# Always broadcast (-b): without it the Intel-vendor guest waits for the other CPU and panics
# ("Timeout: Not all CPUs entered broadcast exception handler"). The CPU model lab/lib.sh gives QEMU
# (max, vendor GenuineIntel) is what makes the guest take the recovery path at all.
# Prints the monitor's reply (empty on success); check the guest's kernel log for the outcome.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
name=${1:-}
addr=${2:-}
kind=${3:-srao}
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ && $addr =~ ^(0x[0-9a-fA-F]+|[0-9]+)$ ]] ||
  lab_die "usage: mce.sh NAME ADDRESS [srao|srar]"
env_file="$LAB_RUN_DIR/$name/instance.env"
[[ -f $env_file ]] || lab_die "instance $name is not running (no $env_file)"
# shellcheck source=/dev/null
# shellcheck disable=SC2153 # MONITOR comes from instance.env
monitor=$(source "$env_file" && echo "$MONITOR")
case $kind in
  srao) status=0xbd000000000000c0 mcg=0x5 ;;
  srar) status=0xbd80000000000134 mcg=0x6 ;;
  *) lab_die "kind must be srao or srar, got '$kind'" ;;
esac
addr=$(printf '%#x' "$addr")
lab_log "instance $name: mce -b 0 9 $status $mcg $addr 0x86 ($kind)"
python3 "$LAB_DIR/monitor.py" "$monitor" "mce -b 0 9 $status $mcg $addr 0x86"
