#!/usr/bin/env bash
# Run Molecule scenarios over lab flavours (make molecule): each argument is FLAVOUR/SCENARIO, the
# flavour handed to the scenario as PMEM_LAB_FLAVOUR (molecule/shared/create.yml).
#
# usage: lab/molecule-matrix.sh [-j JOBS] [-x "FLAVOUR/SCENARIO ..."] FLAVOUR/SCENARIO...
#   -j JOBS   runs at a time (default 1). Each lab VM has one vCPU, so a dedicated 2-core machine
#             takes 2; a shared one should stay at 1. With JOBS > 1 each run's output goes to
#             its log file only, and a failed run's log is printed at the end.
#   -x LIST   runs expected to fail (a known defect of the collection, named in the Makefile). Such
#             a run failing is reported as expected; passing makes the matrix fail, so the list
#             cannot go stale.
# Prints one summary line per run (result, seconds) and exits non-zero when any run did not do what
# was expected. Logs: ${MOLECULE_MATRIX_LOGS:-lab/.run/molecule-matrix}/FLAVOUR--SCENARIO.log
set -uo pipefail
LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jobs=1
xfail=" "
while getopts 'j:x:' opt; do
  case $opt in
    j) jobs=$OPTARG ;;
    x) xfail=" $OPTARG " ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "molecule-matrix: -j wants a positive number" >&2; exit 2; }
logs=${MOLECULE_MATRIX_LOGS:-$LAB_DIR/.run/molecule-matrix}
mkdir -p "$logs"
cd "$LAB_DIR/.." || exit 2

run_one() { # FLAVOUR/SCENARIO -> writes $logs/<run>.result: "<rc> <seconds>"
  local run=$1 flavour=${1%%/*} scenario=${1#*/} log start rc
  log="$logs/${flavour}--${scenario}.log"
  start=$SECONDS
  if ((jobs == 1)); then
    PMEM_LAB_FLAVOUR=$flavour molecule test -s "$scenario" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    PMEM_LAB_FLAVOUR=$flavour molecule test -s "$scenario" >"$log" 2>&1
    rc=$?
  fi
  echo "$rc $((SECONDS - start))" >"$logs/${flavour}--${scenario}.result"
}

for run in "$@"; do
  [[ $run == */* ]] || { echo "molecule-matrix: '$run' is not FLAVOUR/SCENARIO" >&2; exit 2; }
  rm -f "$logs/${run%%/*}--${run#*/}.result"
done
# One scenario runs once at a time: its lab instance name (mol-<scenario>-<platform>) and Molecule's
# ephemeral directory are per scenario, not per flavour.
declare -A active=() # pid -> scenario
busy() { # SCENARIO: is a run of it still going? (forgets finished runs)
  local pid found=1
  for pid in "${!active[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then unset "active[$pid]"; continue; fi
    [[ ${active[$pid]} == "$1" ]] && found=0
  done
  return $found
}
for run in "$@"; do
  while busy "${run#*/}" || ((${#active[@]} >= jobs)); do wait -n; done
  echo "==> molecule test -s ${run#*/} on ${run%%/*}$([[ $xfail == *" $run "* ]] && echo ' (expected to fail)')"
  run_one "$run" &
  active[$!]=${run#*/}
done
wait

status=0
summary=()
for run in "$@"; do
  result="$logs/${run%%/*}--${run#*/}.result"
  read -r rc secs <"$result" 2>/dev/null || { rc=255 secs=0; }
  if [[ $xfail == *" $run "* ]]; then
    if ((rc == 0)); then r="PASSED, but it is listed as expected to fail"; status=1; else r="failed, as expected"; fi
  elif ((rc == 0)); then
    r=passed
  else
    r="FAILED (rc $rc, log ${result%.result}.log)"
    status=1
    ((jobs > 1)) && tail -n 60 "${result%.result}.log"
  fi
  summary+=("$(printf '%-32s %5d s  %s' "$run" "$secs" "$r")")
done
echo "==> molecule matrix ($# runs, $jobs at a time):"
printf '    %s\n' "${summary[@]}"
exit "$status"
