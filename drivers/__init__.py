"""Built-in drivers, and finding a driver class from its name or reference.

A driver is named in test.yaml (``driver: diff``). Names resolve, in order,
through the suite's ``drivers:`` mapping in suite.yaml, the built-ins, and
the ``run_testsuite.drivers`` entry point group of installed packages.
Fragments carry a *reference* ("module:Class" or "/abs/file.py:Class") so a
worker in any process can import the class without the suite's config.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from drivers.api import Command, Driver, Fragment, Testcase

__all__ = ["Command", "Driver", "Fragment", "Testcase", "BUILTIN", "resolve", "reference_of"]

BUILTIN = {
    "shell": "drivers.shell:ShellDriver",
    "diff": "drivers.diff:DiffDriver",
}

ENTRY_POINT_GROUP = "run_testsuite.drivers"

_classes: dict[str, type] = {}
_references: dict[type, str] = {}


class DriverNotFound(Exception):
    pass


def reference_of(cls: type) -> str:
    known = _references.get(cls)
    if known is not None:
        return known
    return f"{cls.__module__}:{cls.__qualname__}"


def load_reference(ref: str, base_dir: str | None = None) -> type:
    """Import the driver class a reference names; cached per process."""
    found = _classes.get(ref)
    if found is not None:
        return found
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise DriverNotFound(f"'{ref}' is not of the form 'module:Class' or 'file.py:Class'")
    if target.endswith(".py"):
        path = target if os.path.isabs(target) or base_dir is None else os.path.join(base_dir, target)
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise DriverNotFound(f"driver file '{path}' does not exist")
        module_name = "run_testsuite_driver_" + "".join(c if c.isalnum() else "_" for c in path)
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            # A suite's driver file is the suite's: no __pycache__ next to it.
            dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
            finally:
                sys.dont_write_bytecode = dont_write
        ref = f"{path}:{attr}"
    else:
        module = importlib.import_module(target)
    cls = getattr(module, attr, None)
    if cls is None:
        raise DriverNotFound(f"'{target}' has no attribute '{attr}'")
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"'{ref}' is not a subclass of drivers.Driver")
    _classes[ref] = cls
    _references.setdefault(cls, ref)
    return cls


def resolve(name: str, suite_drivers: dict[str, str], suite_root: str) -> type:
    """The driver class for a name used in test.yaml."""
    if name in suite_drivers:
        return load_reference(suite_drivers[name], suite_root)
    if name in BUILTIN:
        return load_reference(BUILTIN[name])
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            cls = entry.load()
            _references.setdefault(cls, entry.value)
            return cls
    known = sorted(set(BUILTIN) | set(suite_drivers))
    raise DriverNotFound(f"unknown driver '{name}' (known: {', '.join(known)})")
