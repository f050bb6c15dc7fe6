#!/usr/bin/env bash
# Stop a lab instance (only its own QEMU PID) and remove lab/.run/NAME/.
# usage: lab/down.sh NAME
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
name=${1:-}
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || lab_die "usage: down.sh NAME"
run="$LAB_RUN_DIR/$name"
[[ -d $run ]] || {
  lab_log "instance $name: not present"
  exit 0
}
pid=
if [[ -s $run/qemu.pid ]]; then
  pid=$(cat "$run/qemu.pid")
elif [[ -f $run/instance.env ]]; then
  # shellcheck source=/dev/null
  pid=$(source "$run/instance.env" && echo "${PID:-}")
fi
# Only a QEMU started for this instance directory: its command line names the directory.
if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && grep -qa -- "$run/" "/proc/$pid/cmdline" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  lab_log "instance $name: stopped PID $pid"
fi
rm -rf "$run"
