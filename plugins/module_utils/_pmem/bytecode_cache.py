# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bytecode cache on the managed host for this collection's module_utils.

AnsiballZ ships module_utils as sources inside a zip, and ``zipimport`` never caches bytecode, so
every module run compiles the collection's module_utils again (about 300 kB for pmem_badblocks).
On a slow host that is more than the module's own work: in the lab's software-emulated guests a
run spent 1-3 s compiling. This finder serves those modules' code objects from
``/var/cache/pmem-poison/bytecode`` instead, keyed by the SHA-256 of the exact source that was
shipped and by the interpreter's bytecode magic, so a cached entry can only ever be the
compilation of the very source the controller sent: no staleness, no version to track.

It is strictly an accelerator and never changes what runs:

* only modules under this package, and only when they are loaded from a zip (AnsiballZ); an
  import from a directory (tests, the controller, the watcher service) keeps Python's own caching;
* only for root (modules run with ``become``) and only in a directory owned by this user and not
  writable by group or others; a file there is used only if the same holds for it;
* any failure (read-only ``/var/cache``, a full disk, a corrupt entry, a different Python) falls
  back to compiling, silently, exactly as without the cache;
* ``PMEM_POISON_BYTECODE_CACHE=off`` in the module's environment (a task's ``environment:``)
  turns it off. It keeps at most ``KEEP`` entries per module (the newest), so the directory
  stays at a few MB however many collection versions have run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import marshal
import os
import stat
import sys
import zipimport
from importlib.util import MAGIC_NUMBER, spec_from_loader

PACKAGE = __name__.rpartition(".")[0]
DEFAULT_DIR = "/var/cache/pmem-poison/bytecode"
ENV_SWITCH = "PMEM_POISON_BYTECODE_CACHE"
KEEP = 4


def _is_zip_loader(loader):
    return isinstance(loader, zipimport.zipimporter)


def _safe_dir(path, create):
    """True when ``path`` is a directory owned by us, not writable by group or others."""
    try:
        if create:
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o755)
            if not os.path.lexists(path):
                os.mkdir(path, 0o700)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _safe_file(path):
    st = os.lstat(path)
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


class CachingLoader(object):
    """Wraps the zipimporter of one module: the code from the cache, everything else from it.

    A loader by protocol (``create_module``, ``exec_module``), not a subclass of
    ``importlib.abc.InspectLoader``: importing ``importlib.abc`` (and the ``importlib.resources``
    it pulls in) cost the lab's software-emulated guest about 20 ms on every module run.
    """

    def __init__(self, zip_loader, package, cache_dir, magic, filename=None):
        self._zip = zip_loader
        self._package = package
        self._dir = cache_dir
        self._magic = magic
        self._filename = filename

    # linecache (tracebacks) and inspect ask the loader for the source and the file name
    def get_source(self, fullname):
        return self._zip.get_source(fullname)

    def get_filename(self, fullname):
        # zipimporter.get_filename compiles the module to learn its name: the name is known
        return self._filename or self._zip.get_filename(fullname)

    def is_package(self, fullname):
        return self._zip.is_package(fullname)

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        # what InspectLoader.exec_module does: run get_code's code object in the module
        code = self.get_code(module.__name__)
        if code is None:
            raise ImportError("no code for %s" % module.__name__, name=module.__name__)
        exec(code, module.__dict__)  # pylint: disable=exec-used

    def get_code(self, fullname):
        source = self._zip.get_source(fullname)
        if source is None:
            return self._zip.get_code(fullname)
        data = source.encode("utf-8")
        digest = hashlib.sha256(self._magic + data).hexdigest()[:32]
        short = fullname[len(self._package) + 1:]
        entry = os.path.join(self._dir, "%s-%s.pyc" % (short, digest))
        code = self._read(entry)
        if code is None:
            # A stable file name (not this run's temporary zip path) for the code objects.
            code = compile(data, "<%s>/%s.py" % (self._package.replace(".", "/"), short), "exec", dont_inherit=True)
            self._write(entry, short, code)
        return code

    def _read(self, entry):
        try:
            if not _safe_file(entry):
                return None
            with open(entry, "rb") as handle:
                blob = handle.read()
            if blob[:len(self._magic)] != self._magic:
                return None
            return marshal.loads(blob[len(self._magic):])
        except (OSError, IOError, ValueError, EOFError, TypeError):
            return None

    def _write(self, entry, short, code):
        tmp = "%s.%d.tmp" % (entry, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._magic + marshal.dumps(code))
            os.rename(tmp, entry)
        except (OSError, IOError, ValueError):
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        self._prune(short)

    def _prune(self, short):
        """Keep the newest ``KEEP`` entries of one module (other collection versions)."""
        prefix = short + "-"
        try:
            names = [n for n in os.listdir(self._dir) if n.startswith(prefix) and n.endswith(".pyc")
                     and "-" not in n[len(prefix):]]
            if len(names) <= KEEP:
                return
            aged = sorted(names, key=lambda n: os.lstat(os.path.join(self._dir, n)).st_mtime, reverse=True)
            for name in aged[KEEP:]:
                os.unlink(os.path.join(self._dir, name))
        except OSError:
            pass


class BytecodeCacheFinder(object):
    """A meta path finder for this package's modules that AnsiballZ loads from its zip."""

    def __init__(self, cache_dir, package=PACKAGE):
        self.cache_dir = cache_dir
        self.package = package
        self._usable = None

    def _ready(self):
        if self._usable is None:
            self._usable = os.geteuid() == 0 and _safe_dir(self.cache_dir, create=True)
        return self._usable

    def find_spec(self, fullname, path=None, target=None):
        # Found without asking zipimporter.find_spec: it builds its spec with get_filename, which
        # compiles the module (CPython 3.11-3.13), so a cache hit still compiled once. The zip's
        # importer only says whether it holds the name (is_package, no compile). Nothing else is
        # asked (no other meta path finder could call back into this one); anything that is not
        # a plain module in a zip gets None, and the import system carries on as without us.
        if not fullname.startswith(self.package + ".") or path is None:
            return None
        try:
            for entry in path:
                importer = sys.path_importer_cache.get(entry)
                if importer is None and ".zip" in entry:
                    importer = zipimport.zipimporter(entry)
                if not _is_zip_loader(importer):
                    return None  # a directory (or anything else) on the package's path
                try:
                    if importer.is_package(fullname):
                        return None
                except zipimport.ZipImportError:
                    continue  # not in this entry
                if not self._ready():
                    return None
                short = fullname.rpartition(".")[2]
                filename = os.path.join(importer.archive, importer.prefix, short + ".py")
                loader = CachingLoader(importer, self.package, self.cache_dir, MAGIC_NUMBER, filename)
                spec = spec_from_loader(fullname, loader, origin=filename, is_package=False)
                spec.has_location = True  # __file__, as the zip's own spec would set it
                return spec
            return None
        except Exception:  # an accelerator must never be why an import fails
            return None


def install(cache_dir=DEFAULT_DIR, package_loader=None):
    """Put the finder first on ``sys.meta_path`` once per process, when this package itself was
    loaded from a zip (an AnsiballZ run; ``package_loader`` defaults to the package's loader).
    Anywhere else (tests, ansible-test, the controller, the watcher) nothing changes."""
    if os.environ.get(ENV_SWITCH, "").lower() in ("0", "off", "no", "false"):
        return None
    if package_loader is None:
        package_loader = getattr(sys.modules.get(PACKAGE), "__loader__", None)
    if not _is_zip_loader(package_loader):
        return None
    for finder in sys.meta_path:
        if isinstance(finder, BytecodeCacheFinder):
            return finder
    finder = BytecodeCacheFinder(cache_dir)
    sys.meta_path.insert(0, finder)
    return finder
