# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.pmem.poison.plugins.modules import pmem_resolve as M
from ansible_collections.pmem.poison.tests.support.module_harness import run_inprocess


def run_module(args, monkeypatch):
    args = dict(args)
    return run_inprocess(M, args, monkeypatch, check=args.pop("_ansible_check_mode", False))


def test_direct_ranges_and_summary(monkeypatch, tmp_path):
    seen = {}

    def fake(todo, **kw):
        seen["todo"] = todo
        seen["kw"] = kw
        return [{"range_id": todo[0]["id"], "error": None, "warnings": [],
                 "owners": [{"kind": "file"}, {"kind": "metadata"}, {"kind": "file"}]}]

    monkeypatch.setattr(M._owners, "resolve_owners", fake)
    out = run_module({"ranges": [{"device": str(tmp_path), "offset": 4096, "length": 512}],
                      "_ansible_check_mode": True}, monkeypatch)
    assert out["changed"] is False
    assert seen["todo"][0]["id"] == "%s@0x1000+0x200" % tmp_path.name
    assert out["summary"] == {"ranges": 1, "errors": 0, "owners": {"file": 2, "metadata": 1}}
    assert seen["kw"]["walk_paths"] is True and seen["kw"]["max_walk_seconds"] is None


def test_bad_ranges_passed_through(monkeypatch):
    monkeypatch.setattr(M._owners, "resolve_owners",
                        lambda todo, **kw: [{"range_id": r["id"], "owners": [], "error": None}
                                            for r in todo])
    out = run_module({"bad_ranges": [{"id": "region1@0x0+0x1000", "area": "info_block"}],
                      "walk_paths": False, "max_walk_seconds": 3}, monkeypatch)
    assert out["results"][0]["range_id"] == "region1@0x0+0x1000"


def test_mutually_exclusive(monkeypatch):
    out = run_module({"bad_ranges": [], "ranges": []}, monkeypatch)
    assert out["failed"]


def test_docs_are_yaml():
    import yaml
    for doc in (M.DOCUMENTATION, M.EXAMPLES, M.RETURN):
        yaml.safe_load(doc)
    json.dumps(yaml.safe_load(M.RETURN))
