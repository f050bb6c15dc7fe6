# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's module_utils. Importing the package installs the managed-host bytecode cache
(bytecode_cache.py) before any of its modules load: it acts only on AnsiballZ's zip imports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pmem.poison.plugins.module_utils._pmem import bytecode_cache as _bytecode_cache

_bytecode_cache.install()
