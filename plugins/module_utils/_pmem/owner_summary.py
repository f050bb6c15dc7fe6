# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private API: the summary of a list of owner results (pmem_resolve, and pmem_badblocks with
resolve=true, return the same one)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def summarize(results):
    """{ranges, errors, owners: {kind: count}} of resolve_owners' results."""
    counts = {}
    errors = 0
    for r in results:
        if r.get("error"):
            errors += 1
        for o in r.get("owners") or []:
            counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    return {"ranges": len(results), "errors": errors, "owners": counts}
