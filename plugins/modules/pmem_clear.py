#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pmem_clear
short_description: Clear persistent-memory poison without losing the record of lost data
version_added: 0.1.0
description:
  - Plans and carries out clears of bad ranges recorded in the pmem.poison ledger, per owner,
    refusing every method the device, kernel or owner makes unsafe or ineffective (the clearing
    matrix of the project's reference page).
  - V(rewrite) writes good data page-aligned over the whole damaged pages of the owner file, in
    place (the DAX recovery write on kernel 5.19 and later). Good data comes from a known-good copy
    (O(source) or C(restore_sources) in O(policy)) at the same offsets; zeros only over ranges already
    accepted as lost. The checksum of what was written is recorded and the entry is closed as
    C(restored).
  - V(reallocate) punches the range out and writes the data into new blocks. The file is readable
    again, but the poison may stay in free space (always on ext4 with DAX); the entry stays open.
  - A reflinked (shared) owner is restored by unsharing it (plan method C(unshare)); its damaged
    pages are punched out of that file and the good pages written into fresh blocks, so the
    poisoned block is never read or copied (a DAX write to a shared page on kernel 6.1 copies
    it first and fails with EIO). The poison stays with the block's other owners, or becomes
    free space once every owner is restored away (an offline plan on the next run, not a failure).
  - V(device_write) writes zeros over whole sectors through the pmem block device; only with
    C(offline_window_allowed) true in O(policy), only when no filesystem on it is mounted (checked
    in mountinfo and by an C(O_EXCL) open) and only over ranges with no file owner or accepted as
    lost. The device is located by the range's physical address when the record has it.
  - V(ndctl) runs C(ndctl clear-errors) on an unmounted namespace of a bus that can clear, with
    the same opt-in.
  - V(cxl) clears a range that a CXL memory device's poison list holds with the device's Clear
    Poison command (C(/sys/kernel/debug/cxl/memX/clear_poison), one write per 64-byte unit, the
    device writes zeros), with the same opt-in and the same rules as V(device_write); only units of
    the records inside the recorded range (by host physical address) are cleared, and the clear is
    verified by reading the poison list again. V(auto) picks it for ranges in a CXL poison list.
    Needs root, debugfs and Linux 6.4+.
  - Every write goes through one guard that checks the target against the ledger entry
    (docs/design.md, "The write guard and write-ahead order"); a refusal names the device or
    path, the range and the next step, and nothing is written.
  - Each action is re-checked under the ledger lock right before it runs; an entry another run
    already restored or cleared, or a range no longer listed, is skipped and the result says so.
  - A restored file's own pages are verified (read back, checksum recorded) and its own part of
    the range re-read in the lists; a range spanning several files is judged per owner, and
    per range in RV(ranges). A closed entry's containment is released in the same run.
  - V(auto) picks per owner from O(policy) (see docs/design.md, "Policy"). Filesystem metadata is
    never cleared online; the result carries an offline repair plan and the host fails.
  - Write-ahead; each clear is recorded as C(clear_planned) and fsynced before it happens; the
    result (C(cleared) or C(clear_failed)) after. A run killed in between is finished by the next
    run without repeating a completed write.
  - Every clear is verified by re-reading every badblocks list (the region lists, the block-device
    lists and C(ndctl list -M), through the same code as M(pmem.poison.pmem_badblocks)); a range
    still listed in any of them is a failure carrying the device's error (EIO, EFAULT) or the
    lists that still report it.
  - V(device_write) writes through the partition when the range lies inside one, so the other
    partitions of the same disk may stay mounted.
author:
  - pmem.poison contributors (@pmem-poison)
extends_documentation_fragment:
  - pmem.poison.attributes
  - pmem.poison.attributes.facts
  - pmem.poison.attributes.platform
  - pmem.poison.inputs.policy
  - pmem.poison.inputs.results
  - pmem.poison.inputs.bad_ranges
  - pmem.poison.inputs.capabilities
options:
  method:
    description:
      - Clear method; V(auto) follows O(policy).
      - V(device_write), V(ndctl) and V(cxl) take a namespace out of use; they need O(entry_ids) and
        O(policy) C(offline_window_allowed=true).
    type: str
    choices: [auto, rewrite, reallocate, device_write, ndctl, cxl]
    default: auto
  entry_ids:
    description:
      - Only act on these ledger entries (default all entries the plan covers). Every id must be in
        the ledger or recorded from O(results) in the same call; an unknown id fails the task.
      - Required with O(source) and with O(method=device_write), O(method=ndctl) or O(method=cxl). An empty list
        names no entry and fails the task; it never means every entry.
    type: list
    elements: str
  source:
    description:
      - Known-good copy of the damaged file of O(entry_ids) (required with it). Same size as the
        damaged file; bytes are copied from the same offsets. Never applied to other entries.
    type: path
  accepted_by:
    description:
      - Who accepts the losses listed in O(policy) C(accepted_loss); recorded as the closure's
        C(by). Required (non-blank) when C(accepted_loss) lists anything.
    type: str
  accepted_reason:
    description:
      - Why those losses are accepted; recorded as the closure's C(why). Required (non-blank)
        when O(policy) C(accepted_loss) lists anything, so that the record says why the data may
        be given up.
    type: str
    version_added: 0.1.0
  quarantine:
    description:
      - First record, mark and contain every owner in O(results) exactly as
        M(pmem.poison.pmem_quarantine) with C(state=present) does (the same core, with
        O(results), O(bad_ranges), O(ledger_path), O(lock_timeout) and the containment in
        O(policy) C(containment)), then plan and clear. Its result is RV(quarantine).
      - The record is fsynced before any marker, containment or clear, as with two tasks. Saves a
        round trip on a host with poison (the role uses it).
    type: bool
    default: false
  scan:
    description:
      - Gather the host's facts, its bad ranges and their owners in this run, exactly as
        M(pmem.poison.pmem_badblocks) with O(pmem.poison.pmem_badblocks#module:resolve=true), these options and
        the same O(ledger_path) would return them, and act on them as if they had been given as O(bad_ranges),
        O(results) and O(capabilities) (which must then be left out).
      - The facts are returned in RV(ansible_facts.pmem) (what the scan found, before anything was done), the
        owners in RV(resolve). A host with poison costs one module run instead of two (the role uses it).
      - When the scan finds no bad range and the ledger has no open entry, and nothing else is asked
        (O(restore_entries), O(entry_ids), O(source), an accepted loss), the ledger is not touched, not even
        locked.
      - Leave it out (the default) to act on the options given, as in a run after
        M(pmem.poison.pmem_badblocks).
    type: dict
    suboptions:
      devices:
        description: As O(pmem.poison.pmem_badblocks#module:devices); an empty list means every device.
        type: list
        elements: str
        default: []
      scrub:
        description: As O(pmem.poison.pmem_badblocks#module:scrub) (skipped in check mode).
        type: bool
        default: false
      scrub_timeout:
        description: As O(pmem.poison.pmem_badblocks#module:scrub_timeout).
        type: int
        default: 300
      use_ndctl:
        description: As O(pmem.poison.pmem_badblocks#module:use_ndctl).
        type: str
        choices: [auto, always, never]
        default: auto
      kernel_events:
        description: As O(pmem.poison.pmem_badblocks#module:kernel_events).
        type: bool
        default: true
  restore_entries:
    description:
      - Restore by ledger entry, the affirmative step for one entry (C(playbooks/restore.yml)) - a mapping of entry
        id to the absolute path of the known-good copy of that entry's file. The file is rewritten from the copy
        as with its path in C(restore_sources) of O(policy), and the entry is closed as restored.
      - An id of an entry already closed as restored is a rerun of the same restore and does nothing. Any other
        id (unknown, not a file, its loss accepted) fails the task before anything is recorded or written.
    type: dict
  ledger_path:
    description:
      - The ledger file, an absolute path (a relative one is refused). Its directory must be owned by the
        user the module runs as and not writable by group or others; a symlinked ledger or lock file is refused.
    type: path
    default: /var/lib/pmem-poison/ledger.json
  lock_timeout:
    description: Seconds to wait for another run's ledger lock (0 or more).
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan in RV(plan); the ledger, the files and the lists stay byte-identical.
  diff_mode:
    support: full
    details:
      - Shows the ledger before and after.
  facts:
    support: full
    details:
      - With O(scan), the facts the scan gathered (as M(pmem.poison.pmem_badblocks) returns them).
notes:
  - Run as root.
seealso:
  - module: pmem.poison.pmem_quarantine
  - module: pmem.poison.pmem_resolve"""

EXAMPLES = r"""
- name: Restore a damaged file from its backup copy
  pmem.poison.pmem_clear:
    method: rewrite
    entry_ids: ["pmem1@0x2000+0x1000|/dev/pmem1|ino=131|off=8192"]
    source: /backup/db/table.dat
    results: "{{ owners.results }}"
    bad_ranges: "{{ ansible_facts.pmem.bad_ranges }}"

- name: Follow the host policy (plan only)
  pmem.poison.pmem_clear:
    policy:
      restore_sources:
        /mnt/pmem/db/*: /backup/db
  check_mode: true
  register: plan

- name: Accept the loss of scratch files (who and why go into the record), zero them
  pmem.poison.pmem_clear:
    policy:
      accepted_loss: [/mnt/pmem/scratch/*]
    accepted_by: jdoe
    accepted_reason: scratch data, regenerated nightly
    results: "{{ owners.results }}"
    bad_ranges: "{{ ansible_facts.pmem.bad_ranges }}"

- name: Scan, record, contain and clear in one run, restoring one entry from its copy
  pmem.poison.pmem_clear:
    scan: {}
    quarantine: true
    restore_entries:
      "pmem1@0x2000+0x1000|/dev/pmem1|ino=131|off=8192": /backup/db/table.dat
  register: converge

- name: Clear free-space poison on an unmounted namespace
  pmem.poison.pmem_clear:
    method: device_write
    entry_ids: ["pmem2@0x10000+0x1000|-|ino=free|off=-"]
    policy:
      offline_window_allowed: true
"""

RETURN = r"""
plan:
  description: Actions planned (docs/design.md, "Actions"); in check mode nothing else happened.
  returned: always
  type: list
  elements: dict
results:
  description: One result per clear carried out.
  returned: always
  type: list
  elements: dict
  contains:
    entry_id:
      description: Ledger entry.
      type: str
    status:
      description:
        - What happened; V(restored) is an owner whose data is good again while the range stays
          listed (a shared block still owned by others).
      type: str
      choices: [cleared, restored, failed, skipped, planned, closed]
    released:
      description: Containment steps undone because the entry closed (chmod, rename, immutable, marker).
      type: list
      elements: str
    error:
      description: The device's error for a failed clear.
      type: str
quarantine:
  description:
    - What the quarantine step did, as M(pmem.poison.pmem_quarantine) returns it (C(entries),
      C(recorded), C(changed)).
  returned: when O(quarantine=true)
  type: dict
open_entries:
  description: Ledger entries still open afterwards (the host is not clean while any remain).
  returned: always
  type: list
  elements: str
ledger_path:
  description: The ledger file.
  returned: always
  type: str
ranges:
  description:
    - One verdict per range touched by a write, once every owner of it was handled in this run.
  returned: when not in check mode
  type: list
  elements: dict
  contains:
    range_id:
      description: The range.
      type: str
    listed:
      description: Whether any list still reports the range.
      type: bool
    cause:
      description: Why it is still listed (other owners still open, every owner restored away).
      type: str
summary:
  description: One line saying what the run did, or in check mode what it would do.
  returned: always
  type: str
  sample: "would: record 1; mark 1 file(s); rewrite /mnt/pmem/db/a from /backup/db/a"
check_mode:
  description: Whether this was a check-mode run (nothing changed).
  returned: always
  type: bool
ansible_facts:
  description:
    - What O(scan) found, before anything was done, exactly as RV(pmem.poison.pmem_badblocks#module:ansible_facts)
      (also on a failure after the scan).
  returned: when O(scan) is given
  type: dict
  contains:
    pmem:
      description: As RV(pmem.poison.pmem_badblocks#module:ansible_facts.pmem).
      type: dict
resolve:
  description: The owners of the scan's bad ranges, as RV(pmem.poison.pmem_badblocks#module:resolve).
  returned: when O(scan) is given
  type: dict
scrub:
  description: The scan's scrub, as RV(pmem.poison.pmem_badblocks#module:scrub).
  returned: when O(scan.scrub=true)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, _load_params
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs as _inputs
from ansible_collections.pmem.poison.plugins.module_utils._pmem import ledger as _ledger
from ansible_collections.pmem.poison.plugins.module_utils._pmem import module_result
from ansible_collections.pmem.poison.plugins.module_utils._pmem import plan as _plan
from ansible_collections.pmem.poison.plugins.module_utils._pmem import scan as _scan
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import InputError, PmemError

ARGUMENT_SPEC = dict(
    method=dict(type="str", default="auto",
                choices=["auto", "rewrite", "reallocate", "device_write", "ndctl", "cxl"]),
    entry_ids=dict(type="list", elements="str"),
    source=dict(type="path"),
    policy=dict(type="dict", options=_inputs.POLICY),
    results=dict(type="list", elements="dict", options=_inputs.RESULT),
    bad_ranges=dict(type="list", elements="dict", options=_inputs.BAD_RANGE),
    capabilities=dict(type="dict", options=_inputs.CAPABILITIES),
    accepted_by=dict(type="str"),
    accepted_reason=dict(type="str"),
    ledger_path=dict(type="path", default="/var/lib/pmem-poison/ledger.json"),
    lock_timeout=dict(type="float", default=30.0),
    quarantine=dict(type="bool", default=False),
    scan=dict(type="dict", options=_scan.OPTIONS),
    restore_entries=dict(type="dict"),
)

# what a scan gives in place of the options of the same names
SCANNED = ("bad_ranges", "results", "capabilities")


def checked_params(params, raw):
    """The options as given, after the consent rules the argument spec cannot express."""
    problems = []
    p = _inputs.as_given(params, raw, ARGUMENT_SPEC)
    # the scan's options keep their defaults, as pmem_badblocks' own do
    p["scan"] = params["scan"]
    policy = p["policy"] or {}
    problems.append(_inputs.empty_ids_problem("entry_ids", p["entry_ids"]))
    problems.extend(_inputs.blank_items("entry_ids", p["entry_ids"]))
    if p["source"] is not None:
        if _inputs.blank(p["source"]):
            problems.append("source is blank: give the absolute path of the known-good copy")
        elif isinstance(p["source"], str) and not p["source"].startswith("/"):
            problems.append("source must be the absolute path of the known-good copy, got %r "
                            "(a relative path would depend on the directory the module runs in)"
                            % p["source"])
        if not p["entry_ids"]:
            problems.append("source needs entry_ids: a restore source applies only to the "
                            "entries it is given for (list the entry ids whose file it copies)")
        if p["method"] in ("device_write", "ndctl", "cxl"):
            problems.append("source applies to file rewrites, not to method=%s" % p["method"])
    if p["method"] in ("device_write", "ndctl", "cxl"):
        if not p["entry_ids"]:
            problems.append("method=%s writes to a device: list the entry ids to clear in "
                            "entry_ids" % p["method"])
        if policy.get("offline_window_allowed") is not True:
            problems.append("method=%s takes the namespace out of use: set "
                            "policy.offline_window_allowed: true to consent to the offline "
                            "window" % p["method"])
    if policy.get("accepted_loss"):
        problems.append(_inputs.text_problem("accepted_by", p["accepted_by"],
                                             "say who accepts the losses in policy.accepted_loss"))
        problems.append(_inputs.text_problem("accepted_reason", p["accepted_reason"],
                                             "say why the data in policy.accepted_loss may be given up"))
    else:
        for name in ("accepted_by", "accepted_reason"):
            if p[name] is not None and _inputs.blank(p[name]):
                problems.append("%s is blank (%r): leave it out or say something" % (name, p[name]))
    problems.extend(_inputs.policy_problems(policy))
    problems.extend(_inputs.capabilities_problems(p["capabilities"]))
    problems.append(_inputs.ledger_path_problem(p["ledger_path"]))
    problems.append(_inputs.lock_timeout_problem(p["lock_timeout"]))
    if p["scan"] is not None:
        given = [name for name in SCANNED if p[name] is not None]
        if given:
            problems.append("scan gathers %s itself: leave %s out, or leave scan out and pass "
                            "pmem_badblocks' results" % (", ".join(SCANNED), " and ".join(given)))
        problems.extend(_inputs.blank_items("scan.devices", p["scan"]["devices"]))
        problems.extend(_scan.option_problems(p["scan"], prefix="scan."))
    for eid, copy in sorted((p["restore_entries"] or {}).items(), key=lambda kv: str(kv[0])):
        if _inputs.blank(eid):
            problems.append("restore_entries has a blank entry id")
        problems.append(_inputs.copy_problem("restore_entries", eid, copy))
    _inputs.raise_problems(problems)
    return p


def check_entry_ids(p, ledger):
    """Every id of entry_ids names an entry of ``ledger`` or one recorded from results in this call."""
    if p["entry_ids"]:
        known = set(e["id"] for e in ledger["entries"])
        for result in p["results"] or []:
            for owner in result.get("owners") or [{"kind": "unknown"}]:
                known.add(_ledger.entry_id(result["range_id"], owner))
        missing = sorted(set(p["entry_ids"]) - known)
        if missing:
            raise InputError(
                "no such ledger entries: %s" % ", ".join(missing), device=None,
                next_step="list entries with pmem_badblocks (open_entries) or the ledger "
                          "%s; nothing was done" % p["ledger_path"])


def restore_sources(p, ledger):
    """policy.restore_sources with the files of restore_entries added; an id that is neither an
    open file entry nor an entry already restored in ``ledger`` fails the task before anything
    is written."""
    sources = dict((p["policy"] or {}).get("restore_sources") or {})
    if not p["restore_entries"]:
        return sources
    by_entry, _done, unknown = _ledger.restore_targets(ledger, p["restore_entries"])
    if unknown:
        raise InputError(
            "restore_entries names entries that are neither open file entries nor restored entries in "
            "%s: %s" % (p["ledger_path"], ", ".join(unknown)),
            next_step="take the ids from ansible_facts.pmem.open_entries (pmem_badblocks) or the report; "
                      "nothing was done")
    sources.update(by_entry)
    return sources


def scanned_options(scanned):
    """The scan's bad ranges, owners and capabilities exactly as pmem_clear would have them as
    options: converted by the same argument spec, pruned to what the scan gave (inputs.as_given)."""
    facts = scanned["ansible_facts"]["pmem"]
    given = {"bad_ranges": facts["bad_ranges"], "results": scanned["resolve"]["results"],
             "capabilities": facts.get("capabilities") or {}}
    spec = dict((name, ARGUMENT_SPEC[name]) for name in SCANNED)
    checked = ArgumentSpecValidator(spec).validate(given)
    if checked.error_messages:
        raise PmemError("the scan's results do not fit pmem_clear's options: %s" % "; ".join(checked.error_messages),
                        next_step="run pmem_badblocks with resolve=true and report its output; nothing was done")
    return _inputs.as_given(checked.validated_parameters, given, spec)


def nothing_to_do(p, scanned):
    """A scan found no bad range and the ledger no open entry, and nothing was asked: the
    ledger is not even locked (a clean host is left exactly as it was)."""
    facts = scanned["ansible_facts"]["pmem"]
    if facts["bad_ranges"] or facts["open_entries"]:
        return False
    return not (p["restore_entries"] or p["entry_ids"] or p["source"]
                or (p["policy"] or {}).get("accepted_loss"))


def main():
    module, raw = module_result.new_module(AnsibleModule, _load_params, "pmem_clear",
                                           ARGUMENT_SPEC, supports_check_mode=True)
    partial = {"changed": False, "plan": [], "results": [], "open_entries": [],
               "ledger_path": module.params["ledger_path"]}

    def body():
        p = checked_params(module.params, raw)
        if p["scan"] is not None:
            scanned = _scan.run_scan(ledger_path=p["ledger_path"], resolve=True, check=module.check_mode,
                                     **p["scan"])
            # kept on a failure below too: the facts and owners are still what the host has
            for key in ("ansible_facts", "resolve", "scrub"):
                if key in scanned:
                    partial[key] = scanned[key]
            for message in scanned["ansible_facts"]["pmem"]["warnings"]:
                module.warn(message)
            # what the scan could not read (a device name that is not on this host, an unreadable
            # list): "nothing to do" is only about what it read, so say what it did not
            for error in scanned["ansible_facts"]["pmem"]["errors"]:
                module.warn("scan: %s: %s" % (error.get("device") or error.get("file") or "host",
                                              error.get("message")))
            if nothing_to_do(p, scanned):
                summary = _plan.describe([], check=module.check_mode)
                return dict(partial, changed=scanned["changed"], ranges=[], summary=summary, failed=False,
                            msg=("check mode: " if module.check_mode else "") + summary,
                            check_mode=module.check_mode)
            p.update(scanned_options(scanned))
        # the ledger as it is before this run records anything: the ids asked for must be in it
        ledger = _ledger.load(p["ledger_path"]) if p["entry_ids"] or p["restore_entries"] else None
        check_entry_ids(p, ledger)
        policy = dict(p["policy"] or {}, restore_sources=restore_sources(p, ledger))
        # the clearing code is loaded only when there is something to clear
        from ansible_collections.pmem.poison.plugins.module_utils._pmem import clearing
        from ansible_collections.pmem.poison.plugins.module_utils._pmem import quarantine as _quarantine
        quarantined = None
        if p["quarantine"] and (p["scan"] is None or p["results"]):
            quarantined = _quarantine.run_quarantine(
                ledger_path=p["ledger_path"], state="present", results=p["results"],
                bad_ranges=p["bad_ranges"], containment=policy.get("containment") or [],
                check=module.check_mode, lock_timeout=p["lock_timeout"])
        out = clearing.run_clear(
            ledger_path=p["ledger_path"], method=p["method"], entry_ids=p["entry_ids"],
            source=p["source"], policy=policy, results=p["results"],
            facts={"bad_ranges": p["bad_ranges"]} if p["bad_ranges"] is not None else None,
            capabilities=p["capabilities"], check=module.check_mode,
            lock_timeout=p["lock_timeout"], accepted_by=p["accepted_by"],
            accepted_reason=p["accepted_reason"])
        if quarantined is not None:
            out["changed"] = out["changed"] or quarantined["changed"]
            diffs = [d for d in (quarantined.pop("diff", None), out.get("diff")) if d]
            out["diff"] = diffs[0] if len(diffs) == 1 else diffs
            out["quarantine"] = quarantined
        if p["scan"] is not None:
            out.update((key, partial[key]) for key in ("ansible_facts", "resolve", "scrub") if key in partial)
            out["changed"] = out["changed"] or scanned["changed"]
        return out

    out = module_result.run(module, "pmem_clear", body, partial)
    diff = out.pop("diff", None)
    if module._diff and diff:
        out["diff"] = diff
    failed = out.pop("failed")
    if failed:
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
