#!/usr/bin/env bash
# SSH into a running lab instance: lab/ssh.sh NAME [command...]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
name=${1:-}
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || lab_die "usage: ssh.sh NAME [command...]"
shift
env_file="$LAB_RUN_DIR/$name/instance.env"
[[ -f $env_file ]] || lab_die "instance $name is not running (no $env_file); start it with lab/up.sh FLAVOUR $name"
# shellcheck source=/dev/null
PORT=$(source "$env_file" && echo "$PORT")
lab_ssh_argv "$PORT"
if (($# == 0)) && [[ -t 0 ]]; then
  exec "${LAB_SSH_ARGV[@]:0:1}" -t "${LAB_SSH_ARGV[@]:1}"
fi
exec "${LAB_SSH_ARGV[@]}" "$@"
