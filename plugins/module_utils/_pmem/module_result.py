# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private API: the one way every pmem.poison module turns an error into its result.

A domain error (``PmemError``) fails the task with its message (device, range, next step) and
``error`` (its ``to_dict()``); an ``OSError`` that escaped the core is named with the path and
errno; anything else is reported as an internal error with the operation and the input to
report. Never a traceback in the result: the operator gets a sentence and a next step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.pmem.poison.plugins.module_utils._pmem import inputs
from ansible_collections.pmem.poison.plugins.module_utils._pmem.errors import PmemError


def new_module(module_class, load_params, module_name, argument_spec, **kwargs):
    """``(module, raw)``: the AnsibleModule for ``argument_spec`` and the caller's values as given.

    The strict type check (``inputs.strict_type_problems``) runs on the caller's values before
    Ansible converts them, so a string given for a list or a mapping fails with a message
    naming the option, instead of being split on commas or parsed as ``k=v``. ``module_class``
    and ``load_params`` are AnsibleModule and basic._load_params (module_utils here import
    nothing from ansible)."""
    raw = load_params()
    raw = raw if isinstance(raw, dict) else {}
    problems = inputs.strict_type_problems(argument_spec, raw)
    if problems:
        lenient = module_class(argument_spec=dict((k, {"type": "raw"}) for k in argument_spec),
                               supports_check_mode=True)
        try:
            inputs.raise_problems(problems)
        except PmemError as exc:
            fail(lenient, exc, module_name)
    return module_class(argument_spec=argument_spec, **kwargs), raw


def error_result(exc, module_name):
    """(msg, error dict) for any exception raised by a module's core."""
    if isinstance(exc, PmemError):
        return str(exc), exc.to_dict()
    if isinstance(exc, EnvironmentError):
        code = getattr(exc, "errno", None)
        where = getattr(exc, "filename", None)
        wrapped = PmemError(
            "%s failed%s: %s" % (module_name, " on %s" % where if where else "",
                                 os.strerror(code) if code else str(exc)),
            device=None, range=None,
            next_step="check %s (permissions, free space, read-only mount) and re-run"
                      % (where or "the paths in the task"),
            details={"errno": errno.errorcode.get(code) if code else None, "path": where})
        return str(wrapped), wrapped.to_dict()
    wrapped = PmemError(
        "%s stopped on an internal error (%s: %s); nothing after that point was done"
        % (module_name, type(exc).__name__, exc),
        next_step="re-run with -vvv and report the task's input; the ledger was not rewritten "
                  "by the failing step")
    return str(wrapped), dict(wrapped.to_dict(), error="InternalError")


def fail(module, exc, module_name, **partial):
    """fail_json for ``exc`` with the module's partial result (never a traceback)."""
    msg, err = error_result(exc, module_name)
    partial = dict(partial)
    partial.setdefault("changed", False)
    module.fail_json(msg=msg, error=err, **partial)


def run(module, module_name, body, partial):
    """Call ``body()`` and return its result; any exception fails the module through ``fail``.

    ``partial`` is what the result holds when nothing could be done (the module's documented
    return keys, empty)."""
    try:
        return body()
    except SystemExit:
        raise
    except Exception as exc:  # pylint: disable=broad-except  # one exit for every error
        fail(module, exc, module_name, **partial)
    return None  # not reached: fail_json exits
