"""Importing a suite's driver code, as the suite's own.

A suite's drivers are real code: a file may import the modules beside it,
a file inside a package is imported as part of it (relative imports
work), and ``package.module`` is imported with the suite root first on
``sys.path``. One process may meet several suites (a Dask worker serving
two checkouts, a program calling run-testsuite twice), whose packages have
the same names (every e3-testsuite suite has a ``drivers`` package): a
package of a root is taken from that root, and imported under a name of
its own when another root's package of that name is loaded already.
No byte code is written into the suite.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Prefix of the names of modules imported apart: lone driver files, and
# packages whose name another root took first.
PRIVATE_PREFIX = "run_testsuite_driver_"
# Lone driver files' sibling modules: module name -> the directory it was
# loaded from, to refuse a second directory's module of the same name.
_siblings: dict[str, str] = {}


class ImportProblem(Exception):
    """The code could not be imported. ``missing`` when what the reference
    names does not exist (the spec's mistake), else the code failed
    (``details``: its traceback)."""

    def __init__(self, message: str, details: str = "", missing: bool = False):
        super().__init__(message)
        self.details = details
        self.missing = missing


def import_module_of(target: str, path: tuple[str, ...]):
    """The module ``target`` (dotted), with ``path`` first on sys.path, and
    a sentence saying how it was imported."""
    root = path[0] if path else None
    top = target.split(".")[0]
    if root is None or not _holds(root, top):
        for directory in reversed(path):
            _put_first_on_path(directory)
        where = f" with {', '.join(path)} first on sys.path" if path else ""
        tried = f"imported module '{target}'{where}"
        return _import(target, tried), tried
    loaded = sys.modules.get(top)
    if loaded is None or _comes_from(loaded, root):
        _put_first_on_path(root)
        tried = f"imported module '{target}' with {root} first on sys.path"
        module = _import(target, tried)
        if _comes_from(module, root):
            return module, tried
    # Another root's (or an installed) package of that name is loaded here.
    name = f"{_private_root(root)}.{target}"
    tried = f"imported module '{target}' of {root} as '{name}' (another '{top}' is loaded in this process)"
    return _import(name, tried, missing_name=target), tried


def import_file(file: str):
    """The module of a driver file, and a sentence saying how it was loaded.

    A file in a package is imported by its dotted name from the package's
    parent directory, so its relative imports work and its modules are the
    package's own. A lone file gets a module name of its own (two files
    named ``driver.py`` never meet), with its directory first on sys.path
    so that it can import the modules beside it.
    """
    directory, filename = os.path.split(file)
    parts = [] if filename == "__init__.py" else [filename[:-3]]
    top = directory
    while os.path.isfile(os.path.join(top, "__init__.py")):
        parts.insert(0, os.path.basename(top))
        top = os.path.dirname(top)
    if top != directory:
        return import_module_of(".".join(parts), (top,))
    _claim_siblings(directory, file)
    _put_first_on_path(directory)
    name = PRIVATE_PREFIX + _mangled(file)
    tried = f"loaded as a module of its own, with {directory} first on sys.path"
    module = sys.modules.get(name)
    if module is not None:
        return module, tried
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportProblem(f"cannot load {file}: not a Python source file", missing=True)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _no_byte_code():
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _problem(f"cannot load '{file}'", exc, tried, file) from None
    except BaseException:
        del sys.modules[name]
        raise
    return module, tried


def _import(name: str, tried: str, missing_name: str | None = None):
    """importlib.import_module, writing no byte code; ImportProblem,
    ``missing`` when the module named (or a package on its way) does not
    exist, as opposed to a module its code imports."""
    shown = missing_name or name
    try:
        with _no_byte_code():
            return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ImportProblem(f"no module '{shown}' ({tried})", missing=True) from None
        raise _problem(f"cannot load '{shown}': {tried}", exc) from None
    except Exception as exc:
        raise _problem(f"cannot load '{shown}': {tried}", exc) from None


@contextmanager
def _no_byte_code() -> Iterator[None]:
    """Import without writing __pycache__: the suite's files are its own."""
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.dont_write_bytecode = dont_write


def _claim_siblings(directory: str, file: str) -> None:
    """Refuse a lone driver file whose sibling modules another directory's
    driver has loaded under the same names: it would get those."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    names = [n[:-3] for n in entries if n.endswith(".py")]
    names += [n for n in entries if os.path.isfile(os.path.join(directory, n, "__init__.py"))]
    for name in names:
        other = _siblings.get(name)
        if other is not None and other != directory and name in sys.modules:
            raise ImportProblem(
                f"cannot load '{file}': the module '{name}' beside it is loaded already, from {other} "
                f"(beside another driver file); make {directory} a package (add __init__.py) "
                "so that its modules are its own"
            )
    for name in names:
        _siblings.setdefault(name, directory)


def _holds(root: str, top: str) -> bool:
    """Whether ``root`` holds the module or package ``top``."""
    return os.path.isdir(os.path.join(root, top)) or os.path.isfile(os.path.join(root, top + ".py"))


def _comes_from(module: object, root: str) -> bool:
    """Whether ``module`` was loaded from under ``root``."""
    where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or ()), None)
    if not where:
        return False
    real_root = os.path.realpath(root)
    return os.path.realpath(where).startswith(real_root.rstrip(os.sep) + os.sep)


def _private_root(root: str) -> str:
    """A package standing for ``root``, under which its packages are
    imported apart from those of the same names elsewhere."""
    prefix = PRIVATE_PREFIX + _mangled(root)
    if prefix not in sys.modules:
        holder = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(prefix, None, is_package=True))
        holder.__path__ = [root]
        sys.modules[prefix] = holder
    return prefix


def _mangled(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path)


def _put_first_on_path(directory: str) -> None:
    if not sys.path or sys.path[0] != directory:
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
        importlib.invalidate_caches()


def _problem(what: str, exc: BaseException, tried: str = "", file: str = "") -> ImportProblem:
    """Why a driver did not load: the exception, and where in the driver's
    own file it was raised (the deepest line of ``file`` in the traceback),
    then how it was loaded."""
    import traceback

    where = ""
    if file:
        lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == file]
        if isinstance(exc, SyntaxError) and exc.filename == file and exc.lineno:
            lines.append(exc.lineno)
        where = f" (line {lines[-1]})" if lines else ""
    return ImportProblem(
        f"{what}{where}: {type(exc).__name__}: {exc}" + (f"; {tried}" if tried else ""),
        "".join(traceback.format_exception(exc)),
    )
