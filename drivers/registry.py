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

import os

from run_testsuite.drivers.base import REFERENCE_ATTRIBUTE, Driver
from run_testsuite.drivers.importer import ImportProblem, import_file, import_module_of

BUILTIN = {
    "shell": "run_testsuite.drivers.shell:ShellDriver",
    "diff": "run_testsuite.drivers.diff:DiffDriver",
    "gtest": "run_testsuite.drivers.gtest:GtestDriver",
    "tap": "run_testsuite.drivers.tap:TapDriver",
    "junit": "run_testsuite.drivers.junit:JunitDriver",
}

ENTRY_POINT_GROUP = "run_testsuite.drivers"

_classes: dict[tuple[str, tuple[str, ...], str | None], type[Driver]] = {}


class DriverNotFound(Exception):
    """No driver by that name, or a reference that names nothing usable (a
    missing file, class or attribute, a class that is not a Driver): the
    spec's (or suite.yaml's) mistake."""


class DriverLoadError(Exception):
    """The driver's code could not be loaded (an import failing in it, a
    syntax error): the message says what was tried, and ``details`` holds
    the traceback."""

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
                import traceback

                raise DriverLoadError(
                    f"driver '{name}': cannot load entry point {entry.value!r} "
                    f"(group {ENTRY_POINT_GROUP}, package {getattr(entry.dist, 'name', '?')}): "
                    f"{type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(exc)),
                ) from None
            return _checked(cls, entry.value), ()
    known = sorted(set(BUILTIN) | set(suite_drivers))
    raise DriverNotFound(f"unknown driver '{name}' (known: {', '.join(known)})")


def load_reference(ref: str, path: tuple[str, ...] = (), base_dir: str | None = None) -> type[Driver]:
    """Import the driver class a reference names; cached per process, by
    reference and path (two suites may both have ``drivers.mine:Mine``).

    ``path``: directories put first on sys.path for a module reference.
    ``base_dir``: what a relative ``file.py`` is relative to.
    """
    key = (ref, path, base_dir)
    found = _classes.get(key)
    if found is not None:
        return found
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise DriverNotFound(f"'{ref}' is not of the form 'package.module:Class' or 'file.py:Class'")
    try:
        if _is_file_reference(ref):
            file = target if os.path.isabs(target) or base_dir is None else os.path.join(base_dir, target)
            file = os.path.abspath(file)
            if not os.path.isfile(file):
                raise DriverNotFound(f"driver file '{file}' does not exist (reference '{ref}')")
            module, tried = import_file(file)
            canonical = f"{file}:{attr}"
        else:
            module, tried = import_module_of(target, path)
            canonical = ref
    except ImportProblem as exc:
        if exc.missing:
            raise DriverNotFound(f"cannot load '{ref}': {exc}") from None
        raise DriverLoadError(str(exc), exc.details) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise DriverNotFound(f"cannot load '{ref}': {tried}, which has no attribute '{attr}'")
    cls = _checked(cls, canonical)
    _classes[key] = cls
    return cls


def _is_file_reference(ref: str) -> bool:
    return ref.rpartition(":")[0].endswith(".py")


def _checked(cls: object, ref: str) -> type[Driver]:
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"'{ref}' is not a subclass of run_testsuite.api.Driver")
    if REFERENCE_ATTRIBUTE not in cls.__dict__:
        setattr(cls, REFERENCE_ATTRIBUTE, ref)
    return cls
