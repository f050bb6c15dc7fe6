"""memory_failure on a DAX page, as a machine check would cause it (run as root on a lab guest).

usage: hwpoison.py FILE OFFSET          FILE on a filesystem mounted -o dax, OFFSET page-aligned

Maps the page of FILE at OFFSET (MAP_SHARED: with DAX the mapping is the pmem itself), touches it,
finds its physical frame (/proc/self/pagemap, root), then calls madvise(MADV_HWPOISON) on it: the
kernel runs memory_failure() on that pfn exactly as for a consumed machine check (action required,
from this process), so the caller gets SIGBUS (BUS_MCEERR_AR), XFS with rmapbt gets notify_failure,
and HardwareCorrupted grows. No badblocks list learns of it, and the media is not changed: the
file still reads back. Prints one JSON line: pfn, physical address, whether SIGBUS came, HardwareCorrupted
before and after, and whether the kernel logged the recovery line for this pfn.

lab/README.md, "Poison that arrives as in production", says what this exercises and what it cannot.
"""
import ctypes
import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import time

MADV_HWPOISON = 100
PAGE = 4096


def hardware_corrupted_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HardwareCorrupted:"):
                return int(line.split()[1])
    return None


def pfn_of(addr):
    with open("/proc/self/pagemap", "rb") as f:
        f.seek((addr // PAGE) * 8)
        entry = struct.unpack("<Q", f.read(8))[0]
    if not entry >> 63:
        raise SystemExit("hwpoison: page at 0x%x is not present after touching it" % addr)
    pfn = entry & ((1 << 55) - 1)
    if not pfn:
        raise SystemExit("hwpoison: pagemap shows no pfn (not root?)")
    return pfn


def kernel_log():
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    path, offset = argv[1], int(argv[2], 0)
    if offset % PAGE:
        raise SystemExit("hwpoison: OFFSET must be a multiple of %d" % PAGE)
    got = []
    # Python's C-level handler only sets a flag, so returning from a kernel-sent SIGBUS is safe. The
    # signal must stay unblocked: the kernel force-sends it and would reset a blocked one to default.
    signal.signal(signal.SIGBUS, lambda signum, frame: got.append(signum))
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
    finally:
        os.close(fd)
    buf = (ctypes.c_char * PAGE).from_buffer(mm)
    addr = ctypes.addressof(buf)
    first_byte = buf[0]  # fault the page in (its pfn is known only once it is mapped)
    pfn = pfn_of(addr)
    before = hardware_corrupted_kb()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    rc = libc.madvise(ctypes.c_void_p(addr), PAGE, MADV_HWPOISON)
    err = ctypes.get_errno()
    deadline = time.monotonic() + 1.0  # the handler runs at the next bytecode boundary
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    after = hardware_corrupted_kb()
    log = kernel_log()
    tag = "Memory failure: %#x:" % pfn
    lines = [ln.split("] ", 1)[-1] for ln in log.splitlines() if tag in ln]
    del buf
    try:
        mm.close()
    except (BufferError, ValueError):
        pass
    print(json.dumps({
        "file": path, "offset": offset, "pfn": pfn, "address": pfn * PAGE,
        "first_byte_before": ord(first_byte),
        "madvise_rc": rc, "madvise_errno": os.strerror(err) if rc else None,
        "sigbus": bool(got),
        "hardware_corrupted_kb_before": before, "hardware_corrupted_kb_after": after,
        "kernel_log": lines,
        "recovery_logged": any("recovery action for dax page" in ln for ln in lines),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
