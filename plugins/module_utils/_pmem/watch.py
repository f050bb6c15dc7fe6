# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher: write poison down the moment the kernel reports it.

Internal API of pmem.poison (module_utils/_pmem): may change without notice. Stdlib only.

A memory failure or machine check is in the kernel's ring buffer only until the next reboot; a
host that reboots before the next scheduled converge forgets which file ranges lost data. The
watcher (a systemd service that ``pmem.poison.pmem_watcher`` installs) follows ``/dev/kmsg`` and,
for every poison line, does what a converge does up to the record and nothing more: gather the
bad ranges (lists and kernel records), resolve their owners, and merge them into the ledger under
its lock with the same write-ahead, atomic, fsynced save. It never clears, never writes file data,
never marks or contains files: the next converge resolves, marks and handles the entries like any
other.

On Linux 7.x the filesystems push events too (fs_events.py): the watcher opens the XFS health
monitor of every mounted XFS and one fanotify FAN_FS_ERROR watch over every mounted XFS and ext4
(``PushSources``). A health-monitor media error names the bytes of the filesystem's device: it is
placed like a list entry (ranges.device_address) and recorded with source ``xfs_health``. What
names no range (file data lost, a filesystem error, a shutdown) and every lost-events marker (the
health monitor's LOST count, fanotify's queue overflow, /dev/kmsg's EPIPE) becomes a ledger warning
(ledger.add_warnings) and starts a full pass.

``record_now`` is the one step (injectable gatherer and resolver); ``follow`` the loop;
``main`` the service's entry point. The state file (``/run/pmem-poison/watch.json``) says what it
did last; ``pmem_badblocks`` reports it as ``watcher``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import pkgutil
import re
import select
import sys
import time

from ansible_collections.pmem.poison.plugins.module_utils._pmem import facts as _facts
from ansible_collections.pmem.poison.plugins.module_utils._pmem import fs_events as _fs_events
from ansible_collections.pmem.poison.plugins.module_utils._pmem import kernel_events as _kernel_events
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as _ledger
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ranges as _ranges
from ansible_collections.pmem.poison.plugins.module_utils._pmem import topology as _topology
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError

PACKAGE = "ansible_collections.pmem.poison.plugins.module_utils._pmem"
INSTALL_ROOT = "/usr/local/lib/pmem-poison/watch"
SCRIPT_PATH = "/usr/local/sbin/pmem-poison-watch"
UNIT_PATH = "/etc/systemd/system/pmem-poison-watch.service"
UNIT_NAME = "pmem-poison-watch.service"
STATE_PATH = "/run/pmem-poison/watch.json"
DEBOUNCE_SECONDS = 1.0
# A full pass now and then: events the kernel did not log (a scrub filling a region list) and
# any record a burst made us skip still reach the ledger.
RESCAN_SECONDS = 3600
# how often new mounts are looked for (their health monitor and fanotify mark)
REFRESH_SECONDS = 30
_TRIGGERS = ("Memory failure:", "Injecting memory failure", "Hardware Error", "badblocks")


def _owners():
    """The resolver (owners.py and its backends), loaded when the watcher needs it: pmem_badblocks
    imports this file for ``read_state`` and ``code_version`` only, and a clean host must not pay
    for compiling the resolver (AnsiballZ ships sources, compiled on every run)."""
    from ansible_collections.pmem.poison.plugins.module_utils._pmem import owners
    return owners


_IMPORT_RE = re.compile(
    r"^\s*from ansible_collections\.pmem\.poison\.plugins\.module_utils\._pmem(?:\.(\w+))? import ([\w, ()]+)",
    re.M)


def _closure(root="watch"):
    """``{module name: source bytes}``: the import closure of ``root`` and of the package's
    ``__init__.py`` (installed with it), read from the sources themselves (the same way Ansible
    decides what a module ships), so every process computes the same set. Each file is read once
    (through the loader: the files may live inside an AnsiballZ zip)."""
    found = {}
    todo = [root] + _imported(pkgutil.get_data(PACKAGE, "__init__.py") or b"")
    while todo:
        name = todo.pop()
        if name in found:
            continue
        data = pkgutil.get_data(PACKAGE, name + ".py")
        if data is None:
            continue
        found[name] = data
        todo.extend(_imported(data))
    return found


def watcher_modules(root="watch"):
    """Names of the module_utils files the watcher runs with (what ``pmem_watcher`` installs)."""
    return sorted(_closure(root))


def _imported(data):
    """The package's module names one source imports."""
    out = []
    for sub, names in _IMPORT_RE.findall(data.decode("utf-8")):
        if sub:
            out.append(sub)
        else:
            out.extend(n.split(" as ")[0].strip() for n in names.strip("()").split(",") if n.strip())
    return out


def sources():
    """``{file name: source bytes}`` of the watcher's module_utils and the package's ``__init__.py``."""
    out = {"__init__.py": pkgutil.get_data(PACKAGE, "__init__.py") or b""}
    for name, data in _closure().items():
        out[name + ".py"] = data
    return out


def code_version(files=None):
    """sha256 over the watcher's sources: a changed collection means a reinstall."""
    files = files if files is not None else sources()
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()[:16]


def place_pushed(pushed, topology):
    """Pushed device events (PushSources: ``dev``, ``offset``, ``length`` on the filesystem's
    device) -> (PoisonEvent-like dicts with a physical ``address``, warnings for the rest)."""
    placed, warnings = [], []
    for ev in pushed or []:
        addr = _ranges.device_address(topology, ev["dev"], ev["offset"])
        if addr is None:
            warnings.append({"source": ev["source"], "message": "%s: not placed in a pmem region "
                             "(device %s is not pmem, or its addresses are unreadable)" % (
                                 ev["message"], ev["dev"])})
            continue
        placed.append(dict(ev, address=addr, pfn=addr // _kernel_events.PAGE, outcome=None,
                           page_type=None, boot_id=ev.get("boot_id")))
    return placed, warnings


def record_now(ledger_path=_ledger.DEFAULT_PATH, lock_timeout=60.0, gather=None, resolve=None, now=None,
               pushed=None, warnings=None, topology=None):
    """Gather, resolve and record every bad range the ledger does not hold yet. Never clears.

    Returns ``{"ranges": n, "changes": [...], "warnings": [...]}``. ``gather`` returns the facts
    dict (default: this host, kernel records and ``pushed`` events included); ``resolve`` maps bad
    ranges to pmem_resolve results (default: owners.resolve_owners). ``pushed``: device events
    from the filesystems (PushSources.read); ``warnings`` ([{source, message}]): what the watcher
    heard that is no range, written to the ledger's warnings in the same save. ``topology`` (for
    tests) places the pushed events."""
    placed, ledger_warnings = [], list(warnings or [])
    if pushed:
        placed, unplaced = place_pushed(pushed, topology if topology is not None
                                        else _topology.gather_topology())
        ledger_warnings.extend(unplaced)
    if gather is None:
        def gather():
            events = _facts.gather_events()
            events["events"] = list(events.get("events") or []) + placed
            return _facts.gather_facts(ledger_path=None, events=events)
    resolve = resolve or (lambda ranges, facts: _owners().resolve_owners(ranges, facts=facts))
    facts = gather()
    ranges = facts.get("bad_ranges") or []
    out = {"ranges": len(ranges), "changes": [], "warnings": list(facts.get("warnings") or [])}
    out["warnings"].extend(w["message"] for w in ledger_warnings)
    if not ranges and not ledger_warnings:
        return out
    results = resolve(ranges, facts) if ranges else []
    with _ledger.LedgerStore(ledger_path, timeout=lock_timeout) as store:
        merged, changes = _ledger.merge_detections(store.data, results, ranges, at=now)
        if ledger_warnings:
            merged = _ledger.add_warnings(merged, ledger_warnings, at=now)
        if changes or ledger_warnings:
            store.data = merged
            store.commit()
    out["changes"] = changes
    return out


class PushSources:
    """The filesystems' own event channels (Linux 7.x), kept in step with the mounts.

    One XFS health monitor per mounted XFS (on its root directory) and one fanotify fd with a
    FAN_FS_ERROR mark per mounted XFS or ext4. A source the kernel does not have (ENOTTY, EINVAL)
    or someone else holds (EEXIST: xfs_healer) is noted once per filesystem and never retried
    until the watcher restarts. ``open_monitor``, ``fanotify`` ((init, mark) callables) and
    ``mounts`` are for tests."""

    def __init__(self, proc_root="/proc", open_monitor=None, fanotify=None, mounts=None, log=None):
        self.proc_root = proc_root
        self.open_monitor = open_monitor or _fs_events.open_health_monitor
        init, mark = fanotify or (_fs_events.open_fs_error_watch, _fs_events.watch_fs_errors)
        self.fan_init, self.fan_mark = init, mark
        self.mounts = mounts or (lambda: _owners().read_mountinfo(self.proc_root))
        self.log = log or (lambda msg: None)
        self.monitors = {}    # fd -> {"dev", "mountpoint"}
        self.fan_fd = None
        self.fan_marks = {}   # "major:minor" -> mountpoint
        self.fan_fsids = {}   # fsid (as fanotify prints it) -> mountpoint
        self.unavailable = {}  # (source, "major:minor" or "*") -> reason

    def status(self):
        return {"xfs_health": sorted(m["mountpoint"] for m in self.monitors.values()),
                "fs_error": sorted(self.fan_marks.values()),
                "unavailable": sorted(self.unavailable.values())}

    def _note(self, source, dev, mountpoint, exc):
        reason = "%s on %s: %s" % (source, mountpoint, exc.strerror or exc)
        if exc.errno in (errno.ENOTTY, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            reason += " (not on this kernel: the XFS health monitor is Linux 7.0+, FAN_FS_ERROR 5.16+)"
        elif exc.errno == errno.EEXIST:
            reason += " (another health monitor, such as xfs_healer, holds it)"
        self.unavailable[(source, dev)] = reason
        self.log("not following %s" % reason)

    def refresh(self):
        """Open what new mounts offer; forget monitors of filesystems that went away."""
        by_dev = _owners().mounts_by_dev(self.mounts())
        for dev_t, ms in sorted(by_dev.items()):
            m = ms[0]
            dev = "%d:%d" % dev_t
            if m["root"] != "/" or m["fstype"] not in ("xfs", "ext4", "ext3", "ext2"):
                continue
            mp = m["mountpoint"]
            if (m["fstype"] == "xfs" and dev not in [v["dev"] for v in self.monitors.values()]
                    and (_fs_events.SOURCE_XFS_HEALTH, dev) not in self.unavailable):
                try:
                    fd = self.open_monitor(mp)
                    self.monitors[fd] = {"dev": dev, "mountpoint": mp}
                    self.log("following the XFS health monitor of %s (%s)" % (mp, dev))
                except OSError as exc:
                    self._note(_fs_events.SOURCE_XFS_HEALTH, dev, mp, exc)
            if dev in self.fan_marks or (_fs_events.SOURCE_FS_ERROR, dev) in self.unavailable \
                    or (_fs_events.SOURCE_FS_ERROR, "*") in self.unavailable:
                continue
            try:
                if self.fan_fd is None:
                    self.fan_fd = self.fan_init()
                self.fan_mark(self.fan_fd, mp)
                self.fan_marks[dev] = mp
                self.fan_fsids[_fsid(mp)] = mp
                self.log("following FAN_FS_ERROR of %s (%s)" % (mp, dev))
            except OSError as exc:
                self._note(_fs_events.SOURCE_FS_ERROR, "*" if self.fan_fd is None else dev, mp, exc)

    def fds(self):
        return list(self.monitors) + ([self.fan_fd] if self.fan_fd is not None else [])

    def read(self, fd):
        """(pushed device events, ledger warnings, start a pass?) from what *fd* has now."""
        try:
            data = os.read(fd, 64 * 1024)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return [], [], False
            # a source that fails is dropped (the kernel log is still followed), never fatal
            where = self.monitors.get(fd, {}).get("mountpoint") if fd != self.fan_fd else "fanotify"
            msg = "stopped following %s: read failed (%s)" % (where, exc.strerror or exc)
            self.log(msg)
            self.monitors.pop(fd, None)
            if fd == self.fan_fd:
                self.fan_fd = None
                self.unavailable[(_fs_events.SOURCE_FS_ERROR, "*")] = msg
            try:
                os.close(fd)
            except OSError:
                pass
            return [], [{"source": "watcher", "message": msg}], True
        if fd == self.fan_fd:
            warnings = []
            for ev in _fs_events.parse_fanotify(data):
                mp = self.fan_fsids.get(ev["fsid"], "a watched filesystem")
                msg = _fs_events.describe_fs_error(ev, mp)
                self.log(msg)
                warnings.append({"source": _fs_events.SOURCE_FS_ERROR, "message": msg})
            return [], warnings, bool(warnings)
        mon = self.monitors.get(fd)
        if mon is None:
            return [], [], False
        if not data:  # the monitor ended (unmount): a remount gets a new one
            os.close(fd)
            del self.monitors[fd]
            return [], [], False
        pushed, warnings, trigger = [], [], False
        for ev in _fs_events.parse_health_events(data):
            msg = _fs_events.describe_health(ev, mon["mountpoint"])
            if ev["type"] == "running":
                continue
            if ev["type"] == "unmount":
                self.log(msg)
                continue
            self.log(msg)
            if ev["type"] == "media_error" and ev["device"] == "datadev":
                pushed.append({"source": _fs_events.SOURCE_XFS_HEALTH, "dev": mon["dev"],
                               "offset": ev["offset"], "length": ev["length"],
                               "at": ev["time_ns"] // 1000000000, "message": msg,
                               "key": "%s:%s:%d:%d:%d" % (_fs_events.SOURCE_XFS_HEALTH, mon["dev"],
                                                          ev["offset"], ev["length"], ev["time_ns"])})
                trigger = True
            elif ev["type"] in ("lost", "shutdown", "datalost", "media_error", "corrupt") or \
                    ev["domain"] == "filerange":
                warnings.append({"source": _fs_events.SOURCE_XFS_HEALTH, "message": msg})
                trigger = True
        return pushed, warnings, trigger


def _fsid(mountpoint):
    """The fsid fanotify reports for *mountpoint* (statfs f_fsid, its two 32-bit halves)."""
    try:
        f = os.statvfs(mountpoint).f_fsid
    except OSError:
        return None
    return "%08x%08x" % (f & 0xFFFFFFFF, (f >> 32) & 0xFFFFFFFF)


def write_state(state, path=STATE_PATH):
    """The watcher's state, written atomically (a reader never sees half a file)."""
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d, 0o755)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(state, f, sort_keys=True)
    os.rename(tmp, path)


def read_state(path=STATE_PATH, install_root=INSTALL_ROOT, proc_root="/proc", systemd_dir="/run/systemd/system"):
    """What ``pmem_badblocks`` reports as ``watcher``: installed version, running, last record."""
    # the watcher is a systemd service: a host without systemd (a container) cannot run it
    out = {"installed": None, "running": False, "state": None,
           "supported": os.path.isdir(systemd_dir)}
    try:
        with open(os.path.join(install_root, "VERSION")) as f:
            out["installed"] = f.read().strip() or None
    except (IOError, OSError):
        pass
    try:
        with open(path) as f:
            out["state"] = json.load(f)
    except (IOError, OSError, ValueError):
        return out
    pid = (out["state"] or {}).get("pid")
    if isinstance(pid, int) and pid > 0:
        try:
            with open(os.path.join(proc_root, str(pid), "cmdline"), "rb") as f:
                out["running"] = b"pmem-poison-watch" in f.read()
        except (IOError, OSError):
            out["running"] = False
    return out


def _poison_line(message):
    return any(t in message for t in _TRIGGERS)


def follow(kmsg_path="/dev/kmsg", on_poison=None, on_lost=None, should_stop=None, clock=time.monotonic,
           debounce=DEBOUNCE_SECONDS, rescan=RESCAN_SECONDS, push=None, refresh_seconds=REFRESH_SECONDS):
    """Read kernel log records as they arrive; call ``on_poison()`` once per burst of poison lines
    (after ``debounce`` seconds of quiet) and at least every ``rescan`` seconds; ``on_lost(n)``
    when the kernel overwrote records before we read them (EPIPE: the lost-events marker).

    ``push`` (PushSources, optional): its fds are followed too and re-opened for new mounts every
    ``refresh_seconds``; a burst that brought pushed events or warnings calls
    ``on_poison(pushed, warnings)`` instead."""
    fd = os.open(kmsg_path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            os.lseek(fd, 0, os.SEEK_END)  # the start-up pass already read what is there
        except OSError as exc:
            if exc.errno != errno.ESPIPE:
                raise
        pending_since = None
        pushed, warnings = [], []
        last_pass = clock()
        last_refresh = None
        while not (should_stop and should_stop()):
            if push is not None and (last_refresh is None or clock() - last_refresh >= refresh_seconds):
                push.refresh()
                last_refresh = clock()
            timeout = debounce if pending_since is not None else min(rescan, 5.0)
            ready, _w, _x = select.select([fd] + (push.fds() if push is not None else []), [], [], timeout)
            for rfd in ready:
                if rfd != fd:
                    got, warned, trigger = push.read(rfd)
                    pushed.extend(got)
                    warnings.extend(warned)
                    if trigger:
                        pending_since = pending_since or clock()
            if fd in ready:
                try:
                    rec = os.read(fd, 8192).decode("utf-8", "replace")
                except OSError as exc:
                    if exc.errno == errno.EPIPE:
                        if on_lost:
                            on_lost(1)
                        pending_since = pending_since or clock()
                        continue
                    if exc.errno == errno.EAGAIN:
                        continue
                    raise
                if not rec:  # end of file: not /dev/kmsg (a pipe in tests); do not spin
                    time.sleep(debounce)
                for _at, message in _kernel_events.parse_kmsg(rec):
                    if _poison_line(message):
                        pending_since = pending_since or clock()
            now = clock()
            if (pending_since is not None and now - pending_since >= debounce) or now - last_pass >= rescan:
                pending_since = None
                last_pass = now
                if on_poison:
                    if pushed or warnings:
                        on_poison(pushed, warnings)
                    else:
                        on_poison()
                pushed, warnings = [], []
    finally:
        os.close(fd)


def _log(msg):
    # systemd puts stdout in the journal: `journalctl -u pmem-poison-watch`
    sys.stdout.write("pmem-poison-watch: %s\n" % msg)
    sys.stdout.flush()


def main(argv=None):
    """Entry point of the service: record once, then follow the kernel log."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ledger_path = argv[0] if argv else _ledger.DEFAULT_PATH
    state = {"pid": os.getpid(), "version": None, "started": _ledger.utcnow(), "ledger": ledger_path,
             "passes": 0, "recorded": 0, "last_pass": None, "last_change": None, "last_error": None,
             "lost_records": 0, "warnings_recorded": 0, "push_sources": None}
    try:
        with open(os.path.join(INSTALL_ROOT, "VERSION")) as f:
            state["version"] = f.read().strip()
    except (IOError, OSError):
        pass

    def one_pass(pushed=None, warnings=None):
        state["passes"] += 1
        state["last_pass"] = _ledger.utcnow()
        state["push_sources"] = push.status()
        try:
            out = record_now(ledger_path, pushed=pushed, warnings=warnings)
        except (PmemError, IOError, OSError, ValueError) as exc:
            state["last_error"] = "%s" % exc
            _log("could not record: %s (the next converge will; check %s)" % (exc, ledger_path))
        else:
            state["last_error"] = None
            for change in out["changes"]:
                _log("recorded %s: %s (%s)" % (change["entry_id"], change["change"], change["reason"]))
            if out["changes"]:
                state["recorded"] += len(out["changes"])
                state["last_change"] = state["last_pass"]
            if warnings:
                state["warnings_recorded"] += len(warnings)
                _log("wrote %d warning(s) to the ledger" % len(warnings))
        write_state(state)

    def lost(n):
        state["lost_records"] += n
        _log("the kernel overwrote %d log record(s) before they were read: a full pass follows; "
             "records older than the ring buffer may be missing (the journal and rasdaemon keep them)" % n)

    def lost_kmsg(n):
        lost(n)
        pending_lost.append({"source": "kmsg", "message": "the kernel log overwrote %d record(s) "
                             "before the watcher read them" % n})

    pending_lost = []

    def burst(pushed=None, warnings=None):
        warnings = list(warnings or []) + pending_lost
        del pending_lost[:]
        one_pass(pushed, warnings)

    push = PushSources(log=_log)
    _log("started (ledger %s, version %s)" % (ledger_path, state["version"]))
    push.refresh()
    one_pass()
    follow(on_poison=burst, on_lost=lost_kmsg, push=push)
    return 0


# ---------------------------------------------------------------- installation (pmem_watcher)
_SCRIPT = """#!/usr/bin/python3
# pmem.poison watcher (installed by pmem.poison.pmem_watcher; do not edit: the next converge
# replaces it). Records memory failures and machine checks in the ledger the moment the kernel
# logs them; never clears, never writes file data.
import sys

sys.path.insert(0, %(root)r)
from ansible_collections.pmem.poison.plugins.module_utils._pmem import watch  # noqa: E402

sys.exit(watch.main(sys.argv[1:]))
"""

_UNIT = """[Unit]
Description=pmem.poison watcher: records memory failures and machine checks in the ledger at once
Documentation=https://github.com/pmem-poison/pmem.poison
After=local-fs.target systemd-journald.service

[Service]
Type=simple
ExecStart=/usr/bin/python3 %(script)s %(ledger)s
Restart=always
RestartSec=5
Nice=5

[Install]
WantedBy=multi-user.target
"""


def desired_files(ledger_path=_ledger.DEFAULT_PATH, root=INSTALL_ROOT, script=SCRIPT_PATH, unit=UNIT_PATH):
    """``[(path, bytes, mode)]`` the watcher needs on the host (pure, given the sources)."""
    files = sources()
    version = code_version(files)
    pkg_dir = os.path.join(root, *PACKAGE.split("."))
    out = []
    parts = PACKAGE.split(".")
    for i in range(1, len(parts)):
        out.append((os.path.join(root, *(parts[:i] + ["__init__.py"])), b"", 0o644))
    for name in sorted(files):
        out.append((os.path.join(pkg_dir, name), files[name], 0o644))
    out.append((os.path.join(root, "VERSION"), (version + "\n").encode(), 0o644))
    out.append((script, (_SCRIPT % {"root": root}).encode(), 0o755))
    out.append((unit, (_UNIT % {"script": script, "ledger": ledger_path}).encode(), 0o644))
    return version, out


def _current(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError):
        return None


def stale_files(wanted):
    """The ``(path, bytes, mode)`` of ``wanted`` whose content or mode on disk differs."""
    out = []
    for path, data, mode in wanted:
        if _current(path) != data:
            out.append((path, data, mode))
            continue
        try:
            if os.stat(path).st_mode & 0o7777 != mode:
                out.append((path, data, mode))
        except OSError:
            out.append((path, data, mode))
    return out


def install_file(path, data, mode):
    """Write one file atomically (temp, fsync, rename) with ``mode``; never follows a symlink."""
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d, 0o755)
    tmp = os.path.join(d, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def converge(state="present", ledger_path=_ledger.DEFAULT_PATH, check=False, systemctl=None,
             root=INSTALL_ROOT, script=SCRIPT_PATH, unit=UNIT_PATH):
    """Bring the watcher service to ``state``; returns ``{changed, updated, active, version}``.

    ``systemctl(*args) -> (rc, out, err)`` runs systemctl (the module passes its run_command).
    Raises PmemError naming the file or unit and the next step."""
    version, wanted = desired_files(ledger_path=ledger_path, root=root, script=script, unit=unit)
    result = {"changed": False, "updated": [], "active": "unknown"}

    def ctl(*args):
        rc, out, err = systemctl(*args)
        return rc, (out or "").strip(), (err or "").strip()

    if state == "absent":
        present = [path for path, _data, _mode in wanted if os.path.exists(path)]
        result.update(updated=present, changed=bool(present))
        if present and not check:
            ctl("disable", "--now", UNIT_NAME)
            for path in present:
                try:
                    os.unlink(path)
                except OSError as exc:
                    raise PmemError("cannot remove %s: %s" % (path, exc.strerror), device=path,
                                    next_step="remove it by hand, then systemctl daemon-reload")
            ctl("daemon-reload")
        result["active"] = ctl("is-active", UNIT_NAME)[1] or "inactive"
        return result
    stale = stale_files(wanted)
    active = ctl("is-active", UNIT_NAME)[1]
    enabled = ctl("is-enabled", UNIT_NAME)[1]
    result.update(version=version, updated=[p for p, _d, _m in stale],
                  changed=bool(stale) or active != "active" or enabled != "enabled", active=active)
    if check or not result["changed"]:
        return result
    for path, data, mode in stale:
        try:
            install_file(path, data, mode)
        except (IOError, OSError) as exc:
            raise PmemError("cannot write %s: %s" % (path, exc.strerror), device=path,
                            next_step="check that %s is writable by root and has space, then re-run"
                                      % os.path.dirname(path))
    if unit in result["updated"]:
        ctl("daemon-reload")
    # a running watcher is restarted only when its code changed; a stopped one is started
    run_verb = ("restart" if stale else None) if active == "active" else "start"
    for verb in [v for v in ("enable", run_verb) if v]:
        rc, _out, err = ctl(verb, UNIT_NAME)
        if rc != 0:
            raise PmemError("systemctl %s %s failed: %s" % (verb, UNIT_NAME, err), device=UNIT_NAME,
                            next_step="see journalctl -u %s and re-run" % UNIT_NAME)
    result["active"] = ctl("is-active", UNIT_NAME)[1]
    return result
