# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The managed-host bytecode cache: a module loaded from a zip (as AnsiballZ ships it) runs the
code of exactly the source in the zip, the second run without compiling it, and any doubt about
the cache (its owner, its mode, a corrupt entry, a switched-off environment) means compiling, never
a failed import and never other code."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import builtins
import os
import sys
import zipfile

import pytest

from ansible_collections.pmem.poison.plugins.module_utils._pmem import bytecode_cache as bc

PKG = "zz_pmem_bytecode_probe"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the cache is used by root only")


@pytest.fixture
def probe(tmp_path):
    """make(source) -> a fresh zip holding PKG.mod with that source, on sys.path; import_mod()."""
    added = []
    finders = []

    def make(source, name="payload.zip"):
        path = tmp_path / name
        with zipfile.ZipFile(str(path), "w") as zf:
            zf.writestr(PKG + "/__init__.py", "")
            zf.writestr(PKG + "/mod.py", source)
        for entry in added:
            sys.path.remove(entry)
        del added[:]
        sys.path.insert(0, str(path))
        added.append(str(path))
        sys.path_importer_cache.clear()
        return path

    def finder(cache_dir):
        f = bc.BytecodeCacheFinder(str(cache_dir), package=PKG)
        sys.meta_path.insert(0, f)
        finders.append(f)
        return f

    def import_mod():
        for name in (PKG + ".mod", PKG):
            sys.modules.pop(name, None)
        __import__(PKG + ".mod")
        return sys.modules[PKG + ".mod"]

    yield make, finder, import_mod
    for entry in added:
        sys.path.remove(entry)
    for f in finders:
        sys.meta_path.remove(f)
    for name in (PKG + ".mod", PKG):
        sys.modules.pop(name, None)
    sys.path_importer_cache.clear()


def _entries(cache_dir):
    return sorted(n for n in os.listdir(str(cache_dir)) if n.endswith(".pyc")) if cache_dir.exists() else []


@needs_root
def test_second_import_runs_cached_code_without_compiling(probe, tmp_path, monkeypatch):
    make, finder, import_mod = probe
    cache = tmp_path / "cache" / "bytecode"
    make("VALUE = 41 + 1\n")
    finder(cache)
    assert import_mod().VALUE == 42
    assert len(_entries(cache)) == 1
    assert oct(os.stat(str(cache)).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(str(cache / _entries(cache)[0])).st_mode & 0o777) == oct(0o600)

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled although the cache holds this source")

    monkeypatch.setattr(bc, "compile", no_compile, raising=False)
    mod = import_mod()
    assert mod.VALUE == 42
    assert isinstance(mod.__loader__, bc.CachingLoader)


@needs_root
def test_a_cache_hit_compiles_nothing_anywhere(probe, tmp_path, monkeypatch):
    """Not even zipimport: its find_spec compiles a module to learn its file name, which made
    every cached module compile once per run anyway."""
    make, finder, import_mod = probe
    zip_path = make("VALUE = 'from the zip'\n")
    finder(tmp_path / "cache")
    import_mod()
    compiled = []
    real_compile = builtins.compile

    def counting_compile(source, filename, *args, **kwargs):
        compiled.append(filename)
        return real_compile(source, filename, *args, **kwargs)

    monkeypatch.setattr(builtins, "compile", counting_compile)
    mod = import_mod()
    monkeypatch.undo()
    assert mod.VALUE == "from the zip"
    assert [f for f in compiled if "mod" in str(f)] == []
    assert mod.__file__ == os.path.join(str(zip_path), PKG, "mod.py")
    assert mod.__spec__.origin == mod.__file__ and mod.__loader__.get_filename(mod.__name__) == mod.__file__


@needs_root
def test_changed_source_never_runs_the_old_code(probe, tmp_path):
    make, finder, import_mod = probe
    cache = tmp_path / "cache"
    finder(cache)
    make("VALUE = 1\n", "v1.zip")
    assert import_mod().VALUE == 1
    make("VALUE = 2\n", "v2.zip")
    assert import_mod().VALUE == 2
    assert len(_entries(cache)) == 2


@needs_root
def test_corrupt_entry_is_compiled_again(probe, tmp_path):
    make, finder, import_mod = probe
    cache = tmp_path / "cache"
    make("VALUE = 7\n")
    finder(cache)
    import_mod()
    entry = cache / _entries(cache)[0]
    entry.write_bytes(entry.read_bytes()[:20])
    os.chmod(str(entry), 0o600)
    assert import_mod().VALUE == 7


@needs_root
@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_directory_others_can_write_is_not_used(probe, tmp_path, mode):
    make, finder, import_mod = probe
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(str(cache), mode)
    make("VALUE = 3\n")
    finder(cache)
    mod = import_mod()
    assert mod.VALUE == 3
    assert _entries(cache) == []
    assert not isinstance(mod.__loader__, bc.CachingLoader)


@needs_root
def test_an_entry_others_can_write_is_not_loaded(probe, tmp_path, monkeypatch):
    make, finder, import_mod = probe
    cache = tmp_path / "cache"
    make("VALUE = 5\n")
    finder(cache)
    import_mod()
    entry = cache / _entries(cache)[0]
    os.chmod(str(entry), 0o666)
    compiled = []
    real_compile = compile

    def counting_compile(*args, **kwargs):
        compiled.append(args[1])
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(bc, "compile", counting_compile, raising=False)
    assert import_mod().VALUE == 5
    assert len(compiled) == 1


def test_not_root_means_no_cache(probe, tmp_path, monkeypatch):
    make, finder, import_mod = probe
    cache = tmp_path / "cache"
    monkeypatch.setattr(bc.os, "geteuid", lambda: 4242)
    make("VALUE = 9\n")
    finder(cache)
    assert import_mod().VALUE == 9
    assert not cache.exists()


def test_a_cache_that_cannot_be_created_still_imports(probe, tmp_path):
    make, finder, import_mod = probe
    blocker = tmp_path / "file"
    blocker.write_text(u"not a directory")
    make("VALUE = 11\n")
    finder(blocker / "bytecode")
    assert import_mod().VALUE == 11


def test_modules_loaded_from_a_directory_are_left_to_python(probe, tmp_path):
    make, finder, import_mod = probe
    finder(tmp_path / "cache")
    pkgdir = tmp_path / "tree" / PKG
    pkgdir.mkdir(parents=True)
    (pkgdir / "__init__.py").write_text(u"")
    (pkgdir / "mod.py").write_text(u"VALUE = 13\n")
    sys.path.insert(0, str(tmp_path / "tree"))
    try:
        sys.path_importer_cache.clear()
        mod = import_mod()
        assert mod.VALUE == 13
        assert not isinstance(mod.__loader__, bc.CachingLoader)
        assert not (tmp_path / "cache").exists()
    finally:
        sys.path.remove(str(tmp_path / "tree"))


@needs_root
def test_keeps_the_newest_entries_per_module(probe, tmp_path, monkeypatch):
    make, finder, import_mod = probe
    cache = tmp_path / "cache"
    finder(cache)
    for n in range(bc.KEEP + 3):
        make("VALUE = %d\n" % n, "v%d.zip" % n)
        assert import_mod().VALUE == n
        assert len(_entries(cache)) == min(n + 1, bc.KEEP)

    def no_compile(*args, **kwargs):
        raise AssertionError("the newest entry was pruned")

    monkeypatch.setattr(bc, "compile", no_compile, raising=False)
    assert import_mod().VALUE == bc.KEEP + 2


@pytest.mark.parametrize("value", ["off", "0", "false", "no"])
def test_switched_off_by_the_environment(monkeypatch, value, tmp_path):
    monkeypatch.setenv(bc.ENV_SWITCH, value)
    before = list(sys.meta_path)
    assert bc.install("/nonexistent", package_loader=_zip_loader(tmp_path)) is None
    assert sys.meta_path == before


def _zip_loader(tmp_path):
    import zipimport
    path = tmp_path / "pkg.zip"
    with zipfile.ZipFile(str(path), "w") as zf:
        zf.writestr("x.py", "")
    return zipimport.zipimporter(str(path))


def test_nothing_changes_outside_a_zip():
    # this test process imported the package from the work tree, as ansible-test, the controller
    # and the watcher service do: no finder (ansible-test's import check forbids changing
    # sys.meta_path[0], and there is nothing to gain)
    assert not any(isinstance(f, bc.BytecodeCacheFinder) for f in sys.meta_path)
    assert bc.install() is None


def test_installed_once_per_process_in_a_zip(tmp_path):
    loader = _zip_loader(tmp_path)
    first = bc.install(str(tmp_path / "cache"), package_loader=loader)
    try:
        assert sys.meta_path[0] is first
        assert bc.install(str(tmp_path / "cache"), package_loader=loader) is first
        assert sum(isinstance(f, bc.BytecodeCacheFinder) for f in sys.meta_path) == 1
    finally:
        sys.meta_path.remove(first)
