"""Snapshot of what a run may change on the guest, as one JSON object on stdout (run as root):
the ledger (sha256 or absent; entries: id, state, paths, closure), every pmem badblocks list,
and per file: read error, mode, the pmem.poison xattr marker and the quarantine directory."""
import hashlib
import json
import os
import sys

LEDGER = "/var/lib/pmem-poison/ledger.json"
FILES = ["/mnt/pmem-xfs/data/a.dat", "/mnt/pmem-xfs/data/b.dat"]
MARKER = "user.pmem_poison.lost_ranges"


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


out = {"ledger": None, "entries": [], "badblocks": {}, "files": {}}
if os.path.exists(LEDGER):
    out["ledger"] = digest(LEDGER)
    with open(LEDGER) as f:
        for e in json.load(f).get("entries", []):
            out["entries"].append({"id": e["id"], "state": e["state"],
                                   "paths": (e.get("owner") or {}).get("paths"),
                                   "closure": e.get("closure"),
                                   "events": [h.get("event") for h in e.get("history", [])],
                                   "containment": e.get("containment")})
for dev in sorted(os.listdir("/sys/block")):
    if dev.startswith("pmem"):
        with open("/sys/block/%s/badblocks" % dev) as f:
            out["badblocks"][dev] = f.read().split("\n")
for path in FILES:
    info = {"exists": os.path.exists(path)}
    if info["exists"]:
        info["mode"] = "%04o" % (os.stat(path).st_mode & 0o7777)
        try:
            info["sha256"] = digest(path)
            info["read_error"] = None
        except OSError as e:
            info["sha256"] = None
            info["read_error"] = e.strerror
        try:
            info["marker"] = json.loads(os.getxattr(path, MARKER))
        except OSError:
            info["marker"] = None
    out["files"][path] = info
qdir = "/mnt/pmem-xfs/.pmem-quarantine"
out["quarantine_dir"] = sorted(os.listdir(qdir)) if os.path.isdir(qdir) else None
json.dump(out, sys.stdout, sort_keys=True)
