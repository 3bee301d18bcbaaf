"""The driver registry in one long-lived process that meets several suites
(a Dask worker serving two checkouts, a program calling run-testsuite
twice): each suite's driver code is its own, whatever its modules are
called. Run in a fresh interpreter each, so that sys.modules starts clean."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import write_suite

DRIVER = """
from run_testsuite.api import Driver

from .helpers import WHO


class Mine(Driver):
    who = WHO
"""


def in_fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def two_suites(tmp_path, layout: str) -> tuple:
    roots = []
    for who in ("a", "b"):
        files = {"drivers/__init__.py": "", "drivers/mine.py": DRIVER, "drivers/helpers.py": f"WHO = {who!r}\n"}
        if layout == "lone":
            files = {
                "tools/drv.py": f"import helpers\nfrom run_testsuite.api import Driver\n\nclass Mine(Driver):\n    who = helpers.WHO\n",
                "tools/helpers.py": f"WHO = {who!r}\n",
            }
        roots.append(write_suite(tmp_path / who, files))
    return tuple(roots)


def test_two_suites_with_a_drivers_package_each_keep_their_own(tmp_path):
    a, b = two_suites(tmp_path, "package")
    run = in_fresh_python(f"""
        from run_testsuite.drivers.registry import load_reference
        first = load_reference("drivers.mine:Mine", ({str(a)!r},))
        second = load_reference("drivers.mine:Mine", ({str(b)!r},))
        again = load_reference("drivers.mine:Mine", ({str(a)!r},))
        print(first.who, second.who, again is first)
    """)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["a", "b", "True"]


def test_package_files_of_two_roots_with_one_package_name_both_load(tmp_path):
    x = write_suite(tmp_path / "x", {"drivers/__init__.py": "", "drivers/dx.py": DRIVER.replace("Mine", "D"),
                                     "drivers/helpers.py": "WHO = 'x'\n"})
    y = write_suite(tmp_path / "y", {"drivers/__init__.py": "", "drivers/dy.py": DRIVER.replace("Mine", "D"),
                                     "drivers/helpers.py": "WHO = 'y'\n"})
    run = in_fresh_python(f"""
        from run_testsuite.drivers.registry import load_reference
        print(load_reference({str(x / 'drivers' / 'dx.py') + ':D'!r}).who,
              load_reference({str(y / 'drivers' / 'dy.py') + ':D'!r}).who)
    """)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["x", "y"]


def test_lone_driver_files_whose_siblings_share_a_name_are_refused_not_mixed(tmp_path):
    a, b = two_suites(tmp_path, "lone")
    run = in_fresh_python(f"""
        from run_testsuite.drivers.registry import DriverLoadError, load_reference
        print(load_reference({str(a / 'tools' / 'drv.py') + ':Mine'!r}).who)
        try:
            load_reference({str(b / 'tools' / 'drv.py') + ':Mine'!r})
        except DriverLoadError as exc:
            print("refused:", exc)
    """)
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.splitlines()
    assert first == "a"
    assert "the module 'helpers' beside it is loaded already" in second
    assert f"make {b / 'tools'} a package (add __init__.py)" in second


def test_a_misspelt_module_is_the_specs_mistake_and_a_failing_import_the_codes(tmp_path):
    root = write_suite(tmp_path / "s", {"drivers/__init__.py": "", "drivers/mine.py": "import no_such_module\n"})
    run = in_fresh_python(f"""
        from run_testsuite.drivers.registry import DriverLoadError, DriverNotFound, load_reference
        for ref in ("drivers.mien:Mine", "nopackage.mod:Mine", "drivers.mine:Mine"):
            try:
                load_reference(ref, ({str(root)!r},))
            except DriverNotFound as exc:
                print("SPEC", exc)
            except DriverLoadError as exc:
                print("DRIVER", exc)
    """)
    assert run.returncode == 0, run.stderr
    kinds = [line.split()[0] for line in run.stdout.splitlines()]
    assert kinds == ["SPEC", "SPEC", "DRIVER"], run.stdout
    assert "no module 'drivers.mien'" in run.stdout
    assert "No module named 'no_such_module'" in run.stdout


def test_no_byte_code_is_written_into_the_suite(tmp_path):
    a, _ = two_suites(tmp_path, "package")
    run = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom run_testsuite.drivers.registry import load_reference\n"
         f"load_reference('drivers.mine:Mine', ({str(a)!r},))"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": ""},
    )
    assert run.returncode == 0, run.stderr
    assert not list(a.rglob("__pycache__"))
