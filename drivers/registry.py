"""Finding a driver class from its name in test.yaml, or its reference.

A driver is named in test.yaml (``driver: diff``). Names resolve, in order,
through the suite's ``drivers:`` mapping in suite.yaml, the built-ins, and
the ``run_testsuite.drivers`` entry point group of installed packages.
Fragments carry a *reference* ("package.module:Class" or
"/abs/file.py:Class") and the directories to put first on ``sys.path``
(``Fragment.driver_path``), so that a worker in any process, a Dask node
included, imports the class as the main process did.

A suite's driver is real code: ``file.py:Class`` may import the modules
beside it, a file inside a package (a directory with ``__init__.py``) is
imported as part of it so its relative imports work, and
``package.module:Class`` is imported with the suite root first on
``sys.path``. A reference that cannot be loaded raises ``DriverLoadError``
naming the reference, what was tried and the exception, which the loader
turns into an ERROR of the testcases that use the driver.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys

from run_testsuite.drivers.base import REFERENCE_ATTRIBUTE, Driver

BUILTIN = {
    "shell": "run_testsuite.drivers.shell:ShellDriver",
    "diff": "run_testsuite.drivers.diff:DiffDriver",
}

ENTRY_POINT_GROUP = "run_testsuite.drivers"

_classes: dict[str, type[Driver]] = {}
# Prefix of the modules made for driver files outside any package.
FILE_MODULE_PREFIX = "run_testsuite_driver_"


class DriverNotFound(Exception):
    """No driver by that name, or a reference that names nothing usable (a
    missing file, class or attribute, a class that is not a Driver): the
    spec's (or suite.yaml's) mistake."""


class DriverLoadError(Exception):
    """The driver's code could not be loaded (an import failing in it, a
    syntax error, a missing class): the message says what was tried, and
    ``details`` holds the traceback."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def resolve(name: str, suite_drivers: dict[str, str], suite_root: str) -> tuple[type[Driver], tuple[str, ...]]:
    """The driver class for a name used in test.yaml, and the directories
    its fragments put first on sys.path to load it again."""
    if name in suite_drivers:
        ref = suite_drivers[name]
        path = () if _is_file_reference(ref) else (suite_root,)
        try:
            return load_reference(ref, path, base_dir=suite_root), path
        except DriverNotFound as exc:
            raise DriverNotFound(f"driver '{name}': {exc}") from None
        except DriverLoadError as exc:
            raise DriverLoadError(f"driver '{name}': {exc}", exc.details) from None
    if name in BUILTIN:
        return load_reference(BUILTIN[name]), ()
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                cls = entry.load()
            except Exception as exc:
                raise _load_error(
                    f"driver '{name}': cannot load entry point {entry.value!r} "
                    f"(group {ENTRY_POINT_GROUP}, package {getattr(entry.dist, 'name', '?')})",
                    exc,
                ) from None
            return _checked(cls, entry.value), ()
    known = sorted(set(BUILTIN) | set(suite_drivers))
    raise DriverNotFound(f"unknown driver '{name}' (known: {', '.join(known)})")


def load_reference(ref: str, path: tuple[str, ...] = (), base_dir: str | None = None) -> type[Driver]:
    """Import the driver class a reference names; cached per process.

    ``path``: directories put first on sys.path for a module reference.
    ``base_dir``: what a relative ``file.py`` is relative to.
    """
    found = _classes.get(ref)
    if found is not None:
        return found
    asked = ref
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise DriverNotFound(f"'{ref}' is not of the form 'package.module:Class' or 'file.py:Class'")
    if _is_file_reference(ref):
        file = target if os.path.isabs(target) or base_dir is None else os.path.join(base_dir, target)
        file = os.path.abspath(file)
        if not os.path.isfile(file):
            raise DriverNotFound(f"driver file '{file}' does not exist (reference '{ref}')")
        module, tried = _import_file(file)
        ref = f"{file}:{attr}"
    else:
        for directory in reversed(path):
            _put_first_on_path(directory)
        where = f" with {', '.join(path)} first on sys.path" if path else ""
        tried = f"imported module '{target}'{where}"
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise _load_error(f"cannot load '{ref}': {tried}", exc) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise DriverNotFound(f"cannot load '{ref}': {tried}, which has no attribute '{attr}'")
    cls = _checked(cls, ref)
    _classes[ref] = _classes[asked] = cls
    return cls


def _is_file_reference(ref: str) -> bool:
    return ref.rpartition(":")[0].endswith(".py")


def _checked(cls: object, ref: str) -> type[Driver]:
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"'{ref}' is not a subclass of run_testsuite.api.Driver")
    if REFERENCE_ATTRIBUTE not in cls.__dict__:
        setattr(cls, REFERENCE_ATTRIBUTE, ref)
    return cls


def _import_file(file: str):
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
    in_package = top != directory
    # A suite's own files: no __pycache__ written beside them.
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        if in_package:
            return _import_package_file(file, top, parts)
        _put_first_on_path(directory)
        name = FILE_MODULE_PREFIX + "".join(c if c.isalnum() else "_" for c in file)
        tried = f"loaded {file} as module '{name}' with {directory} first on sys.path"
        module = sys.modules.get(name)
        if module is not None:
            return module, tried
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise DriverLoadError(f"cannot load {file}: not a Python source file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            if isinstance(exc, Exception):
                raise _load_error(f"cannot load '{file}': {tried}", exc) from None
            raise
        return module, tried
    finally:
        sys.dont_write_bytecode = dont_write


def _import_package_file(file: str, top: str, parts: list[str]):
    """Import ``file``, part of the package whose parent is ``top``, by its
    dotted name; under a prefix of its own where the name is not one
    Python can import, or is taken by another package of that name."""
    dotted = ".".join(parts)
    if all(part.isidentifier() for part in parts):
        _put_first_on_path(top)
        tried = f"imported module '{dotted}' (the package of {file}) with {top} first on sys.path"
        try:
            module = importlib.import_module(dotted)
        except Exception as exc:
            raise _load_error(f"cannot load '{file}': {tried}", exc) from None
        if _same_file(getattr(module, "__file__", None), file):
            return module, tried
    prefix = FILE_MODULE_PREFIX + "".join(c if c.isalnum() else "_" for c in top)
    if prefix not in sys.modules:
        holder = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(prefix, None, is_package=True))
        holder.__path__ = [top]
        sys.modules[prefix] = holder
    name = f"{prefix}.{dotted}"
    tried = f"imported {file} as module '{name}' (its package, under a name of its own)"
    try:
        return importlib.import_module(name), tried
    except Exception as exc:
        raise _load_error(f"cannot load '{file}': {tried}", exc) from None


def _same_file(a: str | None, b: str) -> bool:
    try:
        return a is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _put_first_on_path(directory: str) -> None:
    if not sys.path or sys.path[0] != directory:
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
        importlib.invalidate_caches()


def _load_error(what: str, exc: BaseException) -> DriverLoadError:
    import traceback

    return DriverLoadError(f"{what}: {type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))
