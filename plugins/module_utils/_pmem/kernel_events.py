# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Poison the badblocks lists never show: memory failures and machine checks the kernel logged.

Internal API of pmem.poison (module_utils/_pmem): may change without notice. Stdlib only.

On e820 pmem, on CXL memory and for every ``memory_failure()`` that is not a machine check on an
ACPI NFIT platform, no badblocks list ever learns of the error: the kernel logs it (and counts it in
``/proc/meminfo`` ``HardwareCorrupted``), kills the processes that mapped the page, and forgets it
at the next reboot. This file reads those records, decided in one place:

- the kernel log: ``/dev/kmsg`` (this boot; needs root or ``dmesg_restrict=0``), and the journal's
  kernel transport when ``journalctl`` is there (earlier boots too, where the journal persists);
- rasdaemon's database (``/var/lib/rasdaemon/ras-mc_event.db``), where the host runs rasdaemon;
- ``HardwareCorrupted``, as a cross-check: bytes the kernel counts that no record explains are a
  warning, never silence.

Each record becomes a :class:`PoisonEvent` with a physical address and length; ``ranges`` places it
in region/namespace/block-device/partition/filesystem coordinates like any list entry. The parsers
are pure (text in, events out); ``gather`` is the thin shell with injectable roots and runners.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
import subprocess

PAGE = 4096
SECTOR = 512

SOURCE_MEMORY_FAILURE = "memory_failure"
SOURCE_MCE = "mce"
SOURCE_RASDAEMON = "rasdaemon"
EVENT_SOURCES = (SOURCE_MCE, SOURCE_MEMORY_FAILURE, SOURCE_RASDAEMON)

RASDAEMON_DB = "/var/lib/rasdaemon/ras-mc_event.db"
JOURNAL_TIMEOUT = 20

# mm/memory-failure.c (pr_fmt "Memory failure: "): every line about one page names its pfn first.
_MF_RE = re.compile(r"Memory failure: (0x[0-9a-fA-F]+|\d+): (?P<what>.*)$")
# mm/madvise.c: MADV_HWPOISON / MADV_SOFT_OFFLINE
_INJECT_RE = re.compile(r"Injecting memory failure for pfn (0x[0-9a-fA-F]+)")
_RECOVERY_RE = re.compile(r"recovery action for (?P<page>.+?): (?P<result>\w+)")
# arch/x86/kernel/cpu/mce/core.c print_mce(): "... ADDR <hex> MISC <hex> ..." on the error's lines
_MCE_ADDR_RE = re.compile(r"\bADDR ([0-9a-fA-F]+)\b")
_MCE_MISC_RE = re.compile(r"\bMISC ([0-9a-fA-F]+)\b")
_MCE_STATUS_RE = re.compile(r"Bank (\d+): ([0-9a-fA-F]{16})")
# MCi_STATUS bits: VAL 63, UC 61, ADDRV 58, MISCV 59
_MCI_STATUS_UC = 1 << 61


class PoisonEvent(dict):
    """One record of poisoned memory: ``address`` (physical, bytes) and ``length``.

    Keys: ``source`` (mce | memory_failure | rasdaemon), ``address``, ``length``, ``pfn``,
    ``boot_id`` (None when unknown), ``at`` (log time as the source gives it), ``outcome`` (the
    kernel's recovery result: Recovered, Failed, Ignored, Delayed, or None), ``page_type``,
    ``message`` (the kernel's line), ``key`` (stable identity of the record, for deduplication).
    """


def _int(text):
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def mce_granule(misc):
    """Bytes of the recoverable address granule: MCi_MISC bits 5:0 hold its least significant bit.

    The kernel's own NFIT handler records at least one sector; so do we, so that list entries and
    machine checks for the same line describe the same range."""
    if misc is None:
        return PAGE
    lsb = misc & 0x3F
    if lsb < 9 or lsb > 12:
        return SECTOR if lsb < 9 else PAGE
    return 1 << lsb


def parse_kernel_lines(records, boot_id=None):
    """Kernel log records -> [PoisonEvent].

    ``records`` is an iterable of ``(at, message)`` pairs, or of ``(at, message, boot_id)``
    triples (the journal carries each record's boot). Memory-failure lines give the page; a
    machine-check line with ``ADDR`` gives a finer range inside it. One event per (source, boot,
    page or address); the recovery outcome is attached to the page's event."""
    events = {}
    order = []

    def put(key, ev):
        if key not in events:
            events[key] = ev
            order.append(key)
        return events[key]

    for rec in records:
        at, message = rec[0], rec[1]
        rec_boot = rec[2] if len(rec) > 2 else boot_id
        if not message:
            continue
        m = _MF_RE.search(message) or _INJECT_RE.search(message)
        if m:
            try:
                pfn = _int(m.group(1))
            except ValueError:
                continue
            key = (SOURCE_MEMORY_FAILURE, rec_boot, pfn)
            ev = put(key, PoisonEvent(
                source=SOURCE_MEMORY_FAILURE, address=pfn * PAGE, length=PAGE, pfn=pfn,
                boot_id=rec_boot, at=at, outcome=None, page_type=None, message=message.strip(),
                key="%s:%s:%#x" % (SOURCE_MEMORY_FAILURE, rec_boot or "?", pfn)))
            r = _RECOVERY_RE.search(message)
            if r:
                ev["outcome"] = r.group("result")
                ev["page_type"] = r.group("page")
                ev["message"] = message.strip()
            continue
        if "Hardware Error" in message or message.startswith("mce:"):
            a = _MCE_ADDR_RE.search(message)
            if not a:
                continue
            addr = int(a.group(1), 16)
            misc_m = _MCE_MISC_RE.search(message)
            misc = int(misc_m.group(1), 16) if misc_m else None
            status_m = _MCE_STATUS_RE.search(message)
            if status_m and not int(status_m.group(2), 16) & _MCI_STATUS_UC:
                continue  # a corrected error: no data was lost
            granule = mce_granule(misc)
            start = addr - addr % granule
            key = (SOURCE_MCE, rec_boot, start)
            put(key, PoisonEvent(
                source=SOURCE_MCE, address=start, length=granule, pfn=addr // PAGE,
                boot_id=rec_boot, at=at, outcome=None, page_type=None, message=message.strip(),
                key="%s:%s:%#x" % (SOURCE_MCE, rec_boot or "?", start)))
    return [events[k] for k in order]


def parse_kmsg(data):
    """``/dev/kmsg`` records (``prio,seq,usec,flags;message`` + continuation lines) -> [(usec, msg)]."""
    out = []
    for rec in data.split("\n"):
        if not rec or rec.startswith(" "):
            continue  # continuation lines carry key=value device info
        head, sep, message = rec.partition(";")
        if not sep:
            continue
        fields = head.split(",")
        usec = fields[2] if len(fields) > 2 else None
        out.append((usec, message))
    return out


def parse_journal(text):
    """``journalctl -o json`` lines -> [(realtime usec, message, boot id)]."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        message = rec.get("MESSAGE")
        if isinstance(message, list):  # non-UTF-8 messages come as byte arrays
            try:
                message = bytes(message).decode("utf-8", "replace")
            except (TypeError, ValueError):
                continue
        if not isinstance(message, str):
            continue
        out.append((rec.get("__REALTIME_TIMESTAMP"), message, rec.get("_BOOT_ID")))
    return out


def parse_meminfo_hwcorrupted(text):
    """``HardwareCorrupted:  4 kB`` -> bytes, or None when the line is absent."""
    for line in text.splitlines():
        if line.startswith("HardwareCorrupted:"):
            parts = line.split()
            try:
                value = int(parts[1])
            except (IndexError, ValueError):
                return None
            unit = parts[2].lower() if len(parts) > 2 else "kb"
            return value * 1024 if unit == "kb" else value
    return None


def rasdaemon_events(rows_mf, rows_mce):
    """rasdaemon rows -> [PoisonEvent].

    ``rows_mf``: ``(id, timestamp, pfn_text, page_type, action_result)`` from
    ``memory_failure_event``; ``rows_mce``: ``(id, timestamp, addr, misc, status)`` from
    ``mce_record`` (uncorrected errors with an address only)."""
    out = []
    for rid, ts, pfn_text, page_type, result in rows_mf:
        try:
            pfn = _int(str(pfn_text))
        except ValueError:
            continue
        out.append(PoisonEvent(
            source=SOURCE_RASDAEMON, address=pfn * PAGE, length=PAGE, pfn=pfn, boot_id=None, at=ts,
            outcome=result, page_type=page_type,
            message="rasdaemon memory_failure_event %s: pfn %#x %s: %s" % (rid, pfn, page_type, result),
            key="%s:mf:%s:%#x" % (SOURCE_RASDAEMON, ts, pfn)))
    for rid, ts, addr, misc, status in rows_mce:
        if addr is None or status is None or not int(status) & _MCI_STATUS_UC:
            continue
        granule = mce_granule(int(misc) if misc is not None else None)
        start = int(addr) - int(addr) % granule
        out.append(PoisonEvent(
            source=SOURCE_RASDAEMON, address=start, length=granule, pfn=int(addr) // PAGE,
            boot_id=None, at=ts, outcome=None, page_type=None,
            message="rasdaemon mce_record %s: uncorrected error at %#x" % (rid, int(addr)),
            key="%s:mce:%s:%#x" % (SOURCE_RASDAEMON, ts, start)))
    return out


def finest(events):
    """Drop page-sized events whose page holds a finer event: the kernel poisons the whole page,
    but the data lost is the machine check's granule (one bad cache line, one file range)."""
    fine = [e for e in events if e["length"] < PAGE]
    out = []
    for ev in events:
        if ev["length"] >= PAGE and any(
                f["address"] // PAGE == ev["address"] // PAGE for f in fine):
            continue
        out.append(ev)
    return out


def recorded_pages(keys, boot_id):
    """Pages that records with these event keys (``memory_failure:<boot>:<pfn>``,
    ``mce:<boot>:<address>``: PoisonEvent.key, as ledger entries keep them) put in HardwareCorrupted
    during boot ``boot_id``."""
    pages = set()
    for key in keys or ():
        parts = str(key).split(":")
        if len(parts) != 3 or not boot_id or parts[1] != boot_id:
            continue
        try:
            value = int(parts[2], 0)
        except ValueError:
            continue
        if parts[0] == SOURCE_MEMORY_FAILURE:
            pages.add(value)
        elif parts[0] == SOURCE_MCE:
            pages.add(value // PAGE)
    return pages


def unexplained_bytes(hw_corrupted, events, boot_id, recorded_keys=()):
    """Bytes of ``HardwareCorrupted`` that no event of this boot explains (0 when all are): the
    records read now, and the ones the ledger keeps from this boot (``recorded_keys``; the watcher
    wrote them down before the ring buffer overwrote them or the journal rotated)."""
    if hw_corrupted is None:
        return 0
    pages = recorded_pages(recorded_keys, boot_id)
    for ev in events:
        if ev["source"] == SOURCE_RASDAEMON or (boot_id and ev.get("boot_id") not in (None, boot_id)):
            continue
        pages.add(ev["address"] // PAGE)
    return max(0, hw_corrupted - len(pages) * PAGE)


def hardware_corrupted_warning(gathered, recorded_keys=()):
    """The cross-check's warning for what ``gather`` returned, or None when every poisoned byte
    the kernel counts is explained by a record read now or kept in the ledger."""
    unexplained = unexplained_bytes(gathered.get("hardware_corrupted"), gathered.get("events") or [],
                                    gathered.get("boot_id"), recorded_keys)
    if not unexplained:
        return None
    return ("the kernel counts %d bytes of poisoned memory (HardwareCorrupted in /proc/meminfo) that "
            "no source explains (read: %s; the ledger's records of this boot counted too): an error was "
            "consumed that this host's logs no longer show; check rasdaemon or the platform's error log, "
            "and scrub (pmem_badblocks scrub=true)" % (unexplained, ", ".join(gathered.get("sources_read") or []) or "none"))


# ---------------------------------------------------------------- the shell
def _read_text(path):
    with open(path, "r") as f:
        return f.read()


def read_kmsg(path="/dev/kmsg"):
    """Every record in the kernel's ring buffer now, without blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    chunks = []
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                if exc.errno == errno.EPIPE:  # overwritten while we read: go on with the next
                    continue
                raise
            if not rec:
                break
            chunks.append(rec.decode("utf-8", "replace"))
    finally:
        os.close(fd)
    return "".join(chunks)


# Kernel-transport records that mention poison, every boot the journal keeps. JSON gives the boot
# of each record; --output-fields keeps the output to what parse_journal reads (the cursor, the
# timestamps and _BOOT_ID come with every record in json mode).
JOURNAL_ARGV = ("journalctl", "--no-pager", "-q", "-o", "json", "--output-fields=MESSAGE", "_TRANSPORT=kernel",
                "--grep", "Memory failure|Injecting memory failure|Hardware Error")


class PendingJournal(object):
    """One journal query, started when made: calling it waits and gives what
    :func:`default_journal` gives. journalctl's own start-up is most of its cost on a clean host
    (about 0.1 s on a slow one), so the scan starts it first and reads sysfs meanwhile.
    ``cancel`` reaps it when the caller will not read it (an error in between)."""

    def __init__(self, timeout=JOURNAL_TIMEOUT, argv=JOURNAL_ARGV):
        self._timeout = timeout
        self._deadline = None
        self._done = False
        self._text = None
        try:
            self._proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, universal_newlines=True)
        except (OSError, ValueError):  # no journalctl
            self._proc = None
            self._done = True

    def __call__(self):
        if self._done:
            return self._text
        self._done = True
        try:
            out, _err = self._proc.communicate(timeout=self._timeout)
        except (OSError, subprocess.SubprocessError, ValueError):
            self.cancel()
            return None
        if self._proc.returncode in (0, 1):  # 1: no match
            self._text = out
        return self._text

    def cancel(self):
        self._done = True
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        try:
            proc.communicate()
        except (OSError, ValueError):
            pass


def start_journal(timeout=JOURNAL_TIMEOUT):
    """The journal query (:class:`PendingJournal`), running from now on."""
    return PendingJournal(timeout)


def default_journal(timeout=JOURNAL_TIMEOUT):
    """Kernel-transport journal records that mention poison, every boot the journal keeps
    (``journalctl -o json`` text), or None when there is no journal to read."""
    return start_journal(timeout)()


def read_rasdaemon(path=RASDAEMON_DB):
    try:
        import sqlite3  # optional in the stdlib: some minimal Pythons are built without it
    except ImportError:
        return None
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        cur = conn.cursor()
        rows_mf, rows_mce = [], []
        tables = set(r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        if "memory_failure_event" in tables:
            rows_mf = list(cur.execute(
                "SELECT id, timestamp, pfn, page_type, action_result FROM memory_failure_event"))
        if "mce_record" in tables:
            rows_mce = list(cur.execute("SELECT id, timestamp, addr, misc, status FROM mce_record"))
        return rows_mf, rows_mce
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def gather(proc_root="/proc", dev_root="/dev", journal=None, rasdaemon_db=RASDAEMON_DB):
    """Read every event source this host has. Returns a dict:

    ``events`` ([PoisonEvent], finest first per page), ``boot_id``, ``hardware_corrupted`` (bytes
    or None), ``sources_read`` ([names]), ``warnings`` ([str]). ``journal`` is a callable returning
    ``journalctl -o json`` text or None (default: :func:`default_journal`); False reads no journal."""
    if journal is None:
        journal = default_journal
    warnings = []
    read = []
    boot_id = None
    try:
        boot_id = _read_text(os.path.join(proc_root, "sys/kernel/random/boot_id")).strip().replace("-", "")
    except (IOError, OSError):
        pass
    records = []
    try:
        records.extend((at, msg, boot_id) for at, msg in parse_kmsg(read_kmsg(os.path.join(dev_root, "kmsg"))))
        read.append("kmsg")
    except (IOError, OSError) as exc:
        warnings.append("cannot read the kernel log %s (%s): memory failures and machine checks "
                        "of this boot are not seen; run as root" % (os.path.join(dev_root, "kmsg"),
                                                                    exc.strerror or exc))
    text = journal() if journal else None
    if text is not None:
        read.append("journal")
        # this boot's records are in both when kmsg is readable: events are keyed by (source,
        # boot, address), so a record read twice is one event; the journal still has what the
        # ring buffer has overwritten
        for at, msg, rec_boot in parse_journal(text):
            records.append((at, msg, (rec_boot or "").replace("-", "") or None))
    events = parse_kernel_lines(records)
    rows = read_rasdaemon(rasdaemon_db) if rasdaemon_db and os.path.exists(rasdaemon_db) else None
    if rows is not None:
        read.append("rasdaemon")
        events.extend(rasdaemon_events(*rows))
    hw = None
    try:
        hw = parse_meminfo_hwcorrupted(_read_text(os.path.join(proc_root, "meminfo")))
    except (IOError, OSError):
        pass
    # the HardwareCorrupted cross-check needs the ledger too: facts.gather_facts makes it
    return {"events": finest(events), "boot_id": boot_id, "hardware_corrupted": hw,
            "sources_read": read, "warnings": warnings}
