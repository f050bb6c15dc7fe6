#!/usr/bin/env bash
# Start a lab instance from the flavour's saved snapshot (builds the flavour first if not cached).
#
# usage: lab/up.sh FLAVOUR NAME     (FLAVOUR: stock, stock-6.12, stock-7, nfit_test, nfit_test-7, cxl-7)
# Creates lab/.run/NAME/ with: state.qcow2 + nvdimm.img (copies), serial.log, monitor.sock,
# qemu.pid, instance.env (PORT KEY PID FLAVOUR ...) and inventory.yml (an Ansible inventory).
set -euo pipefail
LAB_T0=$SECONDS
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flavour=${1:-}
name=${2:-}
lab_check_flavour "$flavour"
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || lab_die "usage: up.sh FLAVOUR NAME (NAME: letters, digits, . _ -)"
run="$LAB_RUN_DIR/$name"

if [[ -f $run/instance.env ]]; then
  # shellcheck source=/dev/null
  old_pid=$(source "$run/instance.env" && echo "$PID")
  if [[ -n $old_pid ]] && kill -0 "$old_pid" 2>/dev/null && grep -qa -- "$run/" "/proc/$old_pid/cmdline" 2>/dev/null; then
    lab_die "instance $name is already running (PID $old_pid); lab/down.sh $name first"
  fi
fi

if ! art=$(lab_current_artefact "$flavour"); then
  lab_log "$flavour is not built yet: building"
  art=$("$LAB_DIR/build.sh" "$flavour" | tail -n1)
fi
t_start=$SECONDS

rm -rf "$run"
mkdir -p "$run"
lab_flavour_track "$flavour"
# The cxl layout cold-boots: QEMU 10.0's cxl-type3 does not survive savevm/loadvm (after a loadvm,
# trigger_poison_list fails with EIO and an HDM decoder commit times out, so no region can be
# created), so its instances start from base.qcow2 with a fresh overlay, like the build's first boot.
loadvm=(-loadvm "$LAB_SNAPSHOT")
started_from=snapshot
if [[ $LAB_LAYOUT == cxl ]]; then
  loadvm=()
  started_from="cold boot"
  qemu-img create -q -f qcow2 -b "$art/base.qcow2" -F qcow2 "$run/state.qcow2"
else
  cp --sparse=always --reflink=auto "$art/state.qcow2" "$run/state.qcow2"
  if [[ -f $art/nvdimm.img ]]; then
    cp --sparse=always --reflink=auto "$art/nvdimm.img" "$run/nvdimm.img"
  fi
  qemu-img rebase -u -f qcow2 -b "$art/base.qcow2" -F qcow2 "$run/state.qcow2"
fi

started=
for _attempt in 1 2 3 4 5; do
  port=$(lab_free_port)
  rm -f "$run/qemu.pid"
  lab_qemu_argv "$flavour" "$art" "$run/state.qcow2" "$run/nvdimm.img" "$port" "$run/monitor.sock" "$run/serial.log" "$run/qemu.pid"
  if "${LAB_QEMU_ARGV[@]}" "${loadvm[@]}" 2>"$run/qemu.err"; then
    started=1
    break
  fi
  grep -q 'hostfwd\|Could not set up host forwarding' "$run/qemu.err" || break # not a port race
done
[[ -n $started ]] || {
  cat "$run/qemu.err" >&2
  lab_die "QEMU did not start"
}
pid=$(cat "$run/qemu.pid")
key=$(lab_ssh_key)

write_env() {
  local k
  for k in "$@"; do
    printf '%s=%q\n' "$k" "${!k}"
  done
}
NAME=$name FLAVOUR=$flavour PORT=$port KEY=$key PID=$pid RUN_DIR=$run MONITOR="$run/monitor.sock" \
  SERIAL_LOG="$run/serial.log" ARTEFACT=$art write_env NAME FLAVOUR PORT KEY PID RUN_DIR MONITOR SERIAL_LOG ARTEFACT >"$run/instance.env"
cat >"$run/inventory.yml" <<EOS
# lab instance $name ($flavour): ansible-inventory -i $run/inventory.yml --list
all:
  hosts:
    $name:
      ansible_host: 127.0.0.1
      ansible_port: $port
      ansible_user: root
      ansible_ssh_private_key_file: $key
      ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectTimeout=60
      ansible_ssh_pipelining: true
      ansible_python_interpreter: /usr/bin/python3
      pmem_lab_flavour: $flavour
EOS

# From a snapshot SSH answers in seconds on an idle host; on a 2-core host shared with other TCG
# guests it took over 120 s (measured at load 17), so the deadline is generous and adjustable.
# A cold boot (cxl) took 130 s to SSH at load 5.
ssh_deadline=${PMEM_LAB_SSH_TIMEOUT:-360}
[[ $LAB_LAYOUT == cxl ]] && ssh_deadline=${PMEM_LAB_SSH_TIMEOUT:-600}
[[ $ssh_deadline =~ ^[1-9][0-9]*$ ]] || lab_die "PMEM_LAB_SSH_TIMEOUT must be a number of seconds, not '$ssh_deadline'"
if ! lab_wait_ssh "$port" "$ssh_deadline" "$run/qemu.pid"; then
  tail -n 30 "$run/serial.log" >&2 || true
  lab_die "instance $name: no SSH on 127.0.0.1:$port within ${ssh_deadline}s (serial log: $run/serial.log; stop it with lab/down.sh $name)"
fi
lab_log "instance $name ($flavour) up: PID $pid, ssh 127.0.0.1:$port, $((SECONDS - t_start))s from $started_from"
echo "$run/instance.env"
