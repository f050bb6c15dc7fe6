#!/usr/bin/env bash
# Lab self-test: for each flavour, boot from the snapshot, poison a page under a file on fsdax XFS,
# show EIO and the lists, clear it with a page-aligned write, show the lists empty.
# usage: lab/selftest.sh [FLAVOUR...]      (default: every flavour of lib.sh but the cxl layout's). One summary line each,
# with the kernel it ran on.
set -euo pipefail
LAB_T0=$SECONDS
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flavours=("$@")
if ((${#flavours[@]} == 0)); then
  # guest/selftest-guest.sh knows the stock and nfit_test layouts; the cxl layout has molecule/cxl
  for f in "${LAB_FLAVOURS[@]}"; do
    lab_flavour_track "$f"
    [[ $LAB_LAYOUT == cxl ]] || flavours+=("$f")
  done
fi
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
  kernel="?"
  if "$LAB_DIR/up.sh" "$flavour" "$name" >/dev/null; then
    log="$LAB_RUN_DIR/$name/selftest.log"
    lab_flavour_track "$flavour"
    # shellcheck disable=SC2016 # expanded on the guest
    "$LAB_DIR/ssh.sh" "$name" 'echo "[guest] kernel $(uname -r), $(mkfs.xfs -V), ndctl $(ndctl --version)"' >"$log" 2>&1 || true
    "$LAB_DIR/ssh.sh" "$name" bash -s -- "$LAB_LAYOUT" <"$LAB_DIR/guest/selftest-guest.sh" >>"$log" 2>&1 || true
    sed -e '/^RESULT /d' -e "s/^/[$flavour] /" "$log" >&2
    result=$(sed -n 's/^RESULT //p' "$log" | tail -n1)
    kernel=$(sed -n 's/^\[guest\] kernel \([^,]*\),.*/\1/p' "$log" | head -n1)
  else
    result="FAIL (lab/up.sh $flavour failed)"
  fi
  "$LAB_DIR/down.sh" "$name" >/dev/null 2>&1 || true
  [[ -n $result ]] || result="FAIL (no result from the guest)"
  [[ $result == PASS* ]] || rc=1
  summary+=("lab-selftest $flavour ($kernel): $result [$((SECONDS - t))s]")
done
printf '%s\n' "${summary[@]}"
exit "$rc"
