"""Print every pmem block device of the guest with the physical identity behind its name.

{"pmem1": {"identity": "ns-<uuid>" | "phys@0x40000000", "bus": "e820", "region": "region0",
           "namespace": "namespace0.0", "dev": "259:0", "bytes": N,
           "partitions": {"pmem1p2": {"start": sector, "sectors": N}},
           "data_start": <physical address of block-device byte 0>}}

The identity is what the test compares across the rename: the namespace uuid (labelled
namespaces), else the namespace's physical base address (root-only resource file). Names are what
moves."""
import json
import os
import sys

SYS_BLOCK = "/sys/block"


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def describe(name):
    real = os.path.realpath(os.path.join(SYS_BLOCK, name))
    parts = real.split(os.sep)
    region = next((p for p in parts if p.startswith("region")), None)
    namespace = next((p for p in parts if p.startswith("namespace")), None)
    bus = next((p for p in parts if p.startswith("ndbus")), None)
    base = real.split(os.sep + region + os.sep)[0] + os.sep + region if region else None
    ns_dir = None
    if base:
        # fsdax on a labelled namespace: the block device hangs off pfnX.Y; its namespace is the
        # pfn's "namespace" attribute
        holder = next((p for p in parts if p.startswith(("pfn", "namespace", "btt"))), None)
        if holder and holder.startswith(("pfn", "btt")):
            namespace = read(os.path.join(base, holder, "namespace"))
        ns_dir = os.path.join(base, namespace) if namespace else None
    holder_dir = os.path.dirname(os.path.dirname(real))  # .../pfnX.Y or .../namespaceX.Y
    # physical address of block-device byte 0 (the data start of an fsdax namespace)
    data_start = read(os.path.join(holder_dir, "resource"))
    uuid = read(os.path.join(ns_dir, "uuid")) if ns_dir else None
    resource = read(os.path.join(ns_dir, "resource")) if ns_dir else None
    if uuid and uuid != "00000000-0000-0000-0000-000000000000":
        identity = "ns-" + uuid
    elif resource:
        identity = "phys@%#x" % int(resource, 16)
    else:
        identity = None
    partitions = {}
    for entry in sorted(os.listdir(os.path.join(SYS_BLOCK, name))):
        start = read(os.path.join(SYS_BLOCK, name, entry, "start"))
        if entry.startswith(name) and start is not None:
            partitions[entry] = {"start": int(start),
                                 "sectors": int(read(os.path.join(SYS_BLOCK, name, entry, "size")))}
    disk = os.path.join(SYS_BLOCK, name)
    return {"identity": identity, "region": region, "namespace": namespace,
            "bus": read("/sys/bus/nd/devices/%s/provider" % bus) if bus else None,
            "dev": read(os.path.join(disk, "dev")), "partitions": partitions,
            "bytes": int(read(os.path.join(disk, "size"))) * 512,
            "data_start": int(data_start, 16) if data_start else None}


def main():
    out = dict((n, describe(n)) for n in sorted(os.listdir(SYS_BLOCK)) if n.startswith("pmem"))
    text = json.dumps(out, sort_keys=True)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(text + "\n")
    print(text)


main()
