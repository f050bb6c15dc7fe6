#!/usr/bin/env bash
# Poison by memory_failure() only (run as root on a stock lab guest; prepare.yml runs it as one task).
# XFS (rmapbt) -o dax on the larger e820 pmem device at /mnt/pmem-mf, two 64 KiB files:
#   db/table.dat  page 2 poisoned; a known-good copy in /srv/backup/mf-db/  -> restored
#   logs/app.log  page 1 poisoned; no copy                                  -> recorded, marked, open
# madvise(MADV_HWPOISON) on a DAX mapping of the page runs the kernel's memory_failure() for its pfn:
# the caller gets SIGBUS, the kernel logs "Memory failure: <pfn>: recovery action for dax page",
# HardwareCorrupted grows, and no badblocks list learns of it. Idempotent: a second run prints the
# recorded layout (/etc/pmem-mf/layout.json) and does nothing.
# Runs after molecule/shared/files/layout_lib.sh (prepended by the task): strict mode, fd 3, layout_*.
state=/etc/pmem-mf
layout_done "$state/layout.json"
dev=$(layout_device e820 fsdax)
[[ -n $dev ]] || layout_die "no e820 fsdax namespace (stock lab)"
mnt=/mnt/pmem-mf
mkdir -p "$mnt" "$state" /srv/backup/mf-db
mkfs.xfs -q -f -m reflink=1,rmapbt=1 "/dev/$dev"
mount -o dax "/dev/$dev" "$mnt"
mkdir -p "$mnt/db" "$mnt/logs"
head -c 65536 /dev/urandom >"$mnt/db/table.dat"
head -c 65536 /dev/urandom >"$mnt/logs/app.log"
cp "$mnt/db/table.dat" /srv/backup/mf-db/table.dat
sync
python3 - "$dev" "$mnt" "$state/layout.json" <<'PY'
import ctypes, hashlib, json, mmap, os, re, subprocess, sys
dev, mnt, out = sys.argv[1:]
libc = ctypes.CDLL(None, use_errno=True)
MADV_HWPOISON = 100
victims = {"%s/db/table.dat" % mnt: 2, "%s/logs/app.log" % mnt: 1}
layout = {"device": dev, "mountpoint": mnt, "files": {}}
for path, page in victims.items():
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    fd = os.open(path, os.O_RDWR)
    m = mmap.mmap(fd, 65536)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m)) + page * 4096
    pid = os.fork()
    if pid == 0:  # the kernel kills the process that maps the poisoned page
        os._exit(0 if libc.madvise(ctypes.c_void_p(addr), 4096, MADV_HWPOISON) == 0 else 3)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == 7):
        sys.exit("%s: madvise(MADV_HWPOISON) did not end in SIGBUS (status %d)" % (path, status))
    layout["files"][path] = {"page": page, "file_offset": page * 4096, "sha256": sha}
log = subprocess.run(["dmesg"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
layout["pfns"] = sorted(set(re.findall(r"Memory failure: (0x[0-9a-f]+): recovery action for dax page", log)))
if len(layout["pfns"]) != 2:
    sys.exit("expected two memory-failure lines for dax pages in the kernel log, got %r" % layout["pfns"])
with open("/proc/meminfo") as f:
    layout["hardware_corrupted_kb"] = int(re.search(r"HardwareCorrupted:\s+(\d+)", f.read()).group(1))
with open(out, "w") as f:
    json.dump(layout, f, indent=1, sort_keys=True)
PY
for list in /sys/block/*/badblocks /sys/bus/nd/devices/region*/badblocks; do
  if [[ -n $(tr -d '[:space:]' <"$list") ]]; then # sysfs sizes are always 4096: read the text
    echo "mf_layout: $list is not empty: this scenario needs poison that no list shows"
    exit 1
  fi
done
cat "$state/layout.json" >&3
