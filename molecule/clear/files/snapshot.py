"""State a user cares about, as JSON (stdout, and argv[1] when given): the ledger (bytes hash,
file list of its directory), every victim file (per 4 KiB page: sha256 or the read error; its
pmem_poison xattr) and every badblocks list (block devices and regions).
Run before and after a check-mode pmem_clear: the two must be identical."""
import glob
import hashlib
import json
import os
import sys

LEDGER_DIR = "/var/lib/pmem-poison"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def pages(path):
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        for off in range(0, size, 4096):
            try:
                out.append(sha(os.pread(fd, 4096, off)))
            except OSError as e:
                out.append("error:%s" % e.strerror)
    finally:
        os.close(fd)
    return out


def xattrs(path):
    try:
        return dict((n, os.getxattr(path, n, follow_symlinks=False).decode())
                    for n in os.listxattr(path, follow_symlinks=False) if "pmem_poison" in n)
    except OSError as e:
        return {"error": e.strerror}


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


state = {"ledger_dir": sorted(os.listdir(LEDGER_DIR)) if os.path.isdir(LEDGER_DIR) else None,
         "files": {}, "lists": {}}
led = read(os.path.join(LEDGER_DIR, "ledger.json"))
state["ledger_sha256"] = sha(led) if led is not None else None
for path in sorted(glob.glob("/mnt/*/victim") + glob.glob("/mnt/*/.pmem-quarantine/*")):
    state["files"][path] = {"pages": pages(path), "xattrs": xattrs(path),
                            "mode": oct(os.lstat(path).st_mode)}
for path in sorted(glob.glob("/sys/block/pmem*/badblocks") +
                   glob.glob("/sys/bus/nd/devices/region*/badblocks")):
    state["lists"][path] = (read(path) or b"").decode()
text = json.dumps(state, indent=1, sort_keys=True)
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as f:
        f.write(text + "\n")
print(text)
