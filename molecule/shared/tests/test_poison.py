"""Lab verifier (testinfra): every range that molecule/shared/tasks/inject_poison.yml injected
(recorded in /etc/pmem-lab/injected.jsonl on the guest) reads back EIO and is listed.

On nfit_test buses the range must also be in the region's badblocks and in `ndctl list -M`.
"""

import json

INJECTED = "/etc/pmem-lab/injected.jsonl"


def _injected(host):
    content = host.file(INJECTED).content_string
    records = [json.loads(line) for line in content.splitlines() if line.strip()]
    assert records, f"{INJECTED} is empty: the prepare step injected nothing"
    return records


def _covered(text, sector, sectors):
    for line in text.splitlines():
        start, count = (int(x) for x in line.split())
        if start <= sector and start + count >= sector + sectors:
            return True
    return False


def test_layout_mounted_with_dax(host):
    layout = json.loads(host.file("/etc/pmem-lab/layout.json").content_string)
    assert layout["mounts"], "no pmem filesystems mounted"
    for name, mount in layout["mounts"].items():
        assert mount["dax"], f"{name} ({mount['device']}) is not mounted with -o dax"
        assert host.mount_point(mount["mountpoint"]).exists


def test_poisoned_page_reads_eio(host):
    for rec in _injected(host):
        if not rec["file"]:
            continue
        page = rec["file_offset"] // 4096 * 4096
        cmd = host.run(
            "python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "os.pread(fd, 4096, int(sys.argv[2]))' %s %s",
            rec["file"],
            str(page),
        )
        assert cmd.rc != 0, f"read of the poisoned page {page} of {rec['file']} succeeded"
        assert "Input/output error" in cmd.stderr, cmd.stderr


def test_range_listed_in_blockdev_badblocks(host):
    for rec in _injected(host):
        bb = host.file(f"/sys/block/{rec['device']}/badblocks").content_string
        assert _covered(bb, rec["sector"], rec["sectors"]), (
            f"/sys/block/{rec['device']}/badblocks lacks {rec['sector']}+{rec['sectors']}: {bb!r}"
        )


def test_nfit_test_region_and_ndctl_lists(host):
    for rec in _injected(host):
        if not rec["bus"].startswith("nfit_test"):
            continue
        ndctl = json.loads(host.check_output("ndctl list -M -N -n %s", rec["namespace"]))
        ndctl = ndctl[0] if isinstance(ndctl, list) else ndctl
        assert ndctl.get("badblocks"), f"ndctl list -M shows no badblocks for {rec['namespace']}"
        region = host.check_output(
            "basename $(dirname $(readlink -f /sys/bus/nd/devices/%s))", rec["namespace"]
        )
        text = host.file(f"/sys/bus/nd/devices/{region}/badblocks").content_string
        assert text.strip(), f"{region}/badblocks is empty"
