# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher: what it installs, that it records (and only records), that it notices poison lines."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import threading
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as L
from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch

RANGE = {"id": "region0@0x1d000+0x1000", "region": "region0", "length": 4096, "sources": ["memory_failure"],
         "events": [{"key": "memory_failure:b:0x4001d", "source": "memory_failure", "address": 0x4001d000,
                     "length": 4096}]}
OWNER = {"kind": "file", "range_id": RANGE["id"], "device": "/dev/pmem0", "inode": 131, "file_offset": 20480,
         "length": 4096, "paths": ["/mnt/x/victim"]}


def test_the_watcher_ships_every_module_it_imports():
    mods = watch.watcher_modules()
    for needed in ("watch", "kernel_events", "facts", "ranges", "topology", "ledger", "owners", "errors",
                   "bytecode_cache"):
        assert needed in mods, mods
    # everything it names exists, so the installed copy imports
    assert all(watch.sources()[m + ".py"] for m in mods)


def test_the_installed_copy_imports_on_its_own(tmp_path):
    root = str(tmp_path / "lib")
    _version, wanted = watch.desired_files(ledger_path="/var/lib/x/ledger.json", root=root,
                                           script=str(tmp_path / "sbin/w"), unit=str(tmp_path / "unit"))
    for path, data, mode in watch.stale_files(wanted):
        watch.install_file(path, data, mode)
    code = ("import sys; sys.path.insert(0, %r); "
            "from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch; "
            "print(watch.__file__); watch._owners()" % root)
    env = dict((k, v) for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH"))
    out = subprocess.run([sys.executable, "-I", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, cwd=str(tmp_path), check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(root)


def test_a_clean_hosts_scan_does_not_load_the_resolver():
    # pmem_badblocks reads the watcher's state through watch.py; the resolver (owners and its
    # backends) is compiled from source on every module run and is loaded only to resolve
    code = ("import sys; import ansible_collections.pmem.poison.plugins.modules.pmem_badblocks; "
            "print(sorted(m.rsplit('.', 1)[-1] for m in sys.modules if '._pmem.owners' in m))")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True,
                         check=True, env=os.environ).stdout
    assert out.strip() == "[]"
    # and the watcher itself still resolves (its passes load it)
    assert watch._owners().resolve_owners


def test_install_is_idempotent_and_notices_a_changed_file(tmp_path):
    root, script, unit = str(tmp_path / "lib"), str(tmp_path / "sbin/pmem-poison-watch"), str(tmp_path / "unit")
    version, wanted = watch.desired_files(ledger_path="/var/lib/x/ledger.json", root=root, script=script, unit=unit)
    assert len(version) == 16
    stale = watch.stale_files(wanted)
    assert len(stale) == len(wanted)
    for path, data, mode in stale:
        watch.install_file(path, data, mode)
    assert watch.stale_files(wanted) == []
    assert open(os.path.join(root, "VERSION")).read().strip() == version
    assert os.stat(script).st_mode & 0o777 == 0o755
    with open(unit) as f:
        text = f.read()
    assert "ExecStart=/usr/bin/python3 %s /var/lib/x/ledger.json" % script in text
    with open(os.path.join(root, "ansible_collections/pmem/poison/plugins/module_utils/_pmem/ledger.py"), "a") as f:
        f.write("# edited by hand\n")
    assert [p for p, _d, _m in watch.stale_files(wanted)] == [
        os.path.join(root, "ansible_collections/pmem/poison/plugins/module_utils/_pmem/ledger.py")]


def test_record_now_records_once_and_never_clears(tmp_path):
    ledger_path = str(tmp_path / "ledger.json")
    facts = {"bad_ranges": [RANGE], "warnings": []}
    calls = []

    def resolve(ranges, got_facts):
        calls.append(ranges)
        return [{"range_id": RANGE["id"], "owners": [OWNER], "error": None}]
    first = watch.record_now(ledger_path, gather=lambda: facts, resolve=resolve)
    assert [c["change"] for c in first["changes"]] == ["new"]
    data = L.load(ledger_path)
    (entry,) = data["entries"]
    assert entry["state"] == "open" and entry["owner"]["paths"] == ["/mnt/x/victim"]
    assert [h["event"] for h in entry["history"]] == ["detected", "resolved"]  # recorded, nothing else
    assert entry["history"][0]["details"]["events"] == ["memory_failure:b:0x4001d"]
    before = open(ledger_path, "rb").read()
    again = watch.record_now(ledger_path, gather=lambda: facts, resolve=resolve)
    assert again["changes"] == [] and open(ledger_path, "rb").read() == before


def test_record_now_on_a_clean_host_touches_nothing(tmp_path):
    ledger_path = str(tmp_path / "ledger.json")
    out = watch.record_now(ledger_path, gather=lambda: {"bad_ranges": []},
                           resolve=lambda r, f: 1 / 0)  # never asked
    assert out == {"ranges": 0, "changes": [], "warnings": []}
    assert not os.path.exists(ledger_path)


def test_read_state_running_and_versions(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    (root / "VERSION").write_text("abc\n")
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cmdline").write_bytes(b"/usr/bin/python3\0/usr/local/sbin/pmem-poison-watch\0")
    state = tmp_path / "watch.json"
    watch.write_state({"pid": 4242, "passes": 3}, path=str(state))
    (tmp_path / "systemd").mkdir()
    got = watch.read_state(path=str(state), install_root=str(root), proc_root=str(proc),
                           systemd_dir=str(tmp_path / "systemd"))
    assert got == {"installed": "abc", "running": True, "state": {"pid": 4242, "passes": 3}, "supported": True}
    watch.write_state({"pid": 4243}, path=str(state))  # that pid is not the watcher
    assert watch.read_state(path=str(state), install_root=str(root), proc_root=str(proc))["running"] is False
    absent = watch.read_state(path=str(tmp_path / "none.json"), install_root=str(tmp_path / "no"),
                              proc_root=str(proc), systemd_dir=str(tmp_path / "none"))
    assert absent == {"installed": None, "running": False, "state": None, "supported": False}


def test_follow_runs_one_pass_per_burst_of_poison_lines(tmp_path):
    fifo = str(tmp_path / "kmsg")
    os.mkfifo(fifo)
    passes = []
    done = threading.Event()

    def on_poison():
        passes.append(time.monotonic())
        done.set()

    t = threading.Thread(target=watch.follow, kwargs=dict(
        kmsg_path=fifo, on_poison=on_poison, should_stop=done.is_set, debounce=0.2, rescan=3600))
    t.start()
    w = os.open(fifo, os.O_WRONLY)
    try:
        os.write(w, b"6,1,1,-;unrelated\n")
        os.write(w, b"3,2,2,-;Memory failure: 0x4001d: recovery action for dax page: Recovered\n")
        os.write(w, b"3,3,3,-;Memory failure: 0x4001e: recovery action for dax page: Recovered\n")
        assert done.wait(10), "no pass after poison lines"
    finally:
        os.close(w)
        t.join(10)
    assert len(passes) == 1  # two lines, one burst, one pass


class FakeSystemd:
    def __init__(self, fail=None):
        self.calls, self.active, self.enabled, self.fail = [], "inactive", "disabled", fail

    def __call__(self, *args):
        self.calls.append(args)
        verb = args[0]
        if verb == self.fail:
            return 1, "", "Job for pmem-poison-watch.service failed"
        if verb == "is-active":
            return (0 if self.active == "active" else 3), self.active + "\n", ""
        if verb == "is-enabled":
            return 0, self.enabled + "\n", ""
        if verb in ("start", "restart"):
            self.active = "active"
        if verb == "enable":
            self.enabled = "enabled"
        if verb == "disable":
            self.enabled, self.active = "disabled", "inactive"
        return 0, "", ""


def _paths(tmp_path):
    return dict(root=str(tmp_path / "lib"), script=str(tmp_path / "sbin/watch"), unit=str(tmp_path / "unit"))


def test_converge_installs_starts_and_then_changes_nothing(tmp_path):
    systemd = FakeSystemd()
    check = watch.converge(check=True, systemctl=systemd, **_paths(tmp_path))
    assert check["changed"] is True and not os.path.exists(_paths(tmp_path)["unit"])  # check mode writes nothing
    first = watch.converge(systemctl=systemd, **_paths(tmp_path))
    assert first["changed"] is True and first["active"] == "active"
    assert ("daemon-reload",) in systemd.calls and ("enable", watch.UNIT_NAME) in systemd.calls
    systemd.calls = []
    second = watch.converge(systemctl=systemd, **_paths(tmp_path))
    assert second["changed"] is False and second["updated"] == []
    assert [c[0] for c in systemd.calls] == ["is-active", "is-enabled"]
    gone = watch.converge(state="absent", systemctl=systemd, **_paths(tmp_path))
    assert gone["changed"] is True and not os.path.exists(_paths(tmp_path)["unit"])


def test_converge_reports_a_failed_start_with_the_next_step(tmp_path):
    import pytest
    from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError
    with pytest.raises(PmemError) as exc:
        watch.converge(systemctl=FakeSystemd(fail="start"), **_paths(tmp_path))
    assert "systemctl start pmem-poison-watch.service failed" in str(exc.value)
    assert "journalctl -u pmem-poison-watch.service" in str(exc.value)
