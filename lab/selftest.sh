#!/usr/bin/env bash
# Lab self-test: for each flavour, boot from the snapshot, poison a page under a file on fsdax XFS,
# show EIO and the lists, clear it with a page-aligned write, show the lists empty.
# usage: lab/selftest.sh [stock] [nfit_test]      (default: both). One summary line per flavour.
set -euo pipefail
LAB_T0=$SECONDS
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flavours=("$@")
((${#flavours[@]})) || flavours=(stock nfit_test)
for flavour in "${flavours[@]}"; do lab_check_flavour "$flavour"; done

instances=()
# shellcheck disable=SC2317  # cleanup runs from the trap
cleanup() {
  local i
  for i in "${instances[@]}"; do "$LAB_DIR/down.sh" "$i" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

summary=()
rc=0
for flavour in "${flavours[@]}"; do
  name="selftest-$flavour-$$"
  t=$SECONDS
  instances+=("$name")
  result=
  if "$LAB_DIR/up.sh" "$flavour" "$name" >/dev/null; then
    log="$LAB_RUN_DIR/$name/selftest.log"
    "$LAB_DIR/ssh.sh" "$name" bash -s -- "$flavour" <"$LAB_DIR/guest/selftest-guest.sh" >"$log" 2>&1 || true
    sed -e '/^RESULT /d' -e "s/^/[$flavour] /" "$log" >&2
    result=$(sed -n 's/^RESULT //p' "$log" | tail -n1)
  else
    result="FAIL (lab/up.sh $flavour failed)"
  fi
  "$LAB_DIR/down.sh" "$name" >/dev/null 2>&1 || true
  [[ -n $result ]] || result="FAIL (no result from the guest)"
  [[ $result == PASS* ]] || rc=1
  summary+=("lab-selftest $flavour: $result [$((SECONDS - t))s]")
done
printf '%s\n' "${summary[@]}"
exit "$rc"
