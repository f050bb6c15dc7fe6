# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the unit tests."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pmem.poison.tests.support.module_harness import make_world


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A damaged file, its good copy and a ledger with one open entry (tests/support/module_harness)."""
    return make_world(tmp_path)
