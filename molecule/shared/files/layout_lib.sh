#!/usr/bin/env bash
# The shared preamble of the lab layout scripts (molecule/*/files/*.sh). The task that runs a
# script prepends this file to it (`bash -c "$SCRIPT"` on the guest, as root; scripts/demo.sh pipes
# both), so every script starts the same way: strict mode, fd 3 for its one JSON result, and the
# same helpers. Devices are picked by bus and size, never by name: pmemN and namespaceX.Y numbers
# follow probe order, which moves between boots and module sets.
set -euo pipefail
# stdout (fd 3) carries only the script's JSON; everything else goes to stderr
exec 3>&1 1>&2

layout_die() { # MESSAGE: stop with the message
  echo "layout: $*" >&2
  exit 1
}

layout_done() { # STATE_FILE: a second run prints the recorded state and does nothing (idempotent)
  if [[ -s $1 ]]; then
    # on one line, as the first run prints it: callers take the last line of the output
    python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$1" >&3
    exit 0
  fi
}

layout_devices() { # PROVIDER MODE: the namespaces' block (or dax char) devices, largest first
  ndctl list -N -R -B | python3 -c '
import json, sys
d = json.load(sys.stdin)
found = []
for b in (d if isinstance(d, list) else d.get("buses", [d])):
    if b.get("provider") != sys.argv[1]:
        continue
    namespaces = b.get("namespaces", []) + [n for r in b.get("regions", []) for n in r.get("namespaces", [])]
    for n in namespaces:
        dev = n.get("blockdev") or n.get("chardev")
        if n.get("mode") == sys.argv[2] and dev:
            found.append((-int(n.get("size", 0)), dev))
print(" ".join(dev for _size, dev in sorted(set(found))))
' "$1" "$2"
}

layout_device() { # PROVIDER MODE [INDEX]: one device (0: the largest), empty when there is none
  local devs
  read -r -a devs <<<"$(layout_devices "$1" "$2")"
  echo "${devs[${3:-0}]:-}"
}

layout_mkxfs() { # DEV LABEL [META_OPTIONS]; small devices need the xfstests escape hatch
  TEST_DIR=/tmp TEST_DEV="$1" QA_CHECK_FS=xfs mkfs.xfs -q -f -m "${3:-reflink=1,rmapbt=1}" -L "$2" "$1"
}

layout_mount() { # DEV DIR [OPTIONS]: mount (options default: dax) unless it is mounted already
  mkdir -p "$2"
  mountpoint -q "$2" || mount -o "${3:-dax}" "$1" "$2"
}
