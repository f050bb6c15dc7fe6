"""sha256 of every pmem block device of a lab guest, read from outside the guest.

    physhash.py MONITOR_SOCKET OUT_DIR STEP < devices.json      (devices.py's output)

Each device's bytes are dumped by QEMU (``pmemsave`` of guest physical memory from the device's
data start, as long as the device) and hashed here: the whole device and each 4 KiB block. Nothing
in the guest (device names, drivers, page cache) stands between the bytes and the hash, and the
dumps are the block devices' content (checked by the test against reads in the guest). Writes
OUT_DIR/STEP-<identity>.bin (32-byte digests, one per block) and OUT_DIR/STEP-hashes.json
{identity: {blockdev, sha256, blocks}}; devices are named by identity, never by pmemN."""
import hashlib
import json
import os
import subprocess
import sys

BLOCK = 4096
MONITOR_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "lab",
                          "monitor.py")


def main():
    monitor, out_dir, step = sys.argv[1:4]
    devices = json.loads(sys.stdin.read())
    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    for name, dev in sorted(devices.items()):
        key = dev["identity"].replace("/", "_")
        dump = os.path.join(out_dir, "%s-%s.dump" % (step, key))
        reply = subprocess.run(
            [sys.executable, MONITOR_PY, monitor,
             'pmemsave %#x %#x "%s"' % (dev["data_start"], dev["bytes"], dump)],
            check=True, capture_output=True, text=True).stdout
        try:
            if os.path.getsize(dump) != dev["bytes"]:
                raise SystemExit("pmemsave of %s: %r" % (name, reply))
            whole, digests = hashlib.sha256(), []
            with open(dump, "rb") as f:
                for block in iter(lambda: f.read(BLOCK), b""):
                    whole.update(block)
                    digests.append(hashlib.sha256(block).digest())
        finally:
            if os.path.exists(dump):
                os.unlink(dump)
        with open(os.path.join(out_dir, "%s-%s.bin" % (step, key)), "wb") as f:
            f.write(b"".join(digests))
        summary[dev["identity"]] = {"blockdev": name, "sha256": whole.hexdigest(),
                                    "blocks": len(digests)}
    text = json.dumps(summary, sort_keys=True)
    with open(os.path.join(out_dir, "%s-hashes.json" % step), "w") as f:
        f.write(text + "\n")
    print(text)


main()
