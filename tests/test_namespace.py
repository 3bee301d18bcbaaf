"""One import name, and drivers that are real code.

run-testsuite installs ``run_testsuite`` only: a suite laid out the
e3-testsuite way, with its own ``drivers/`` package (and, here, a ``suite``
package and a ``schemas.py``) on PYTHONPATH, must run green, whatever it
names its modules. A suite's driver may import the modules beside it, use
relative imports inside its package, or be given as ``package.module:Class``
without PYTHONPATH; a driver whose code cannot be imported is an ERROR of
the testcases that use it, naming what was tried.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO, load_result, run_cli, statuses, validate_index, read_json, write_suite

# A suite of the e3-testsuite layout, whose package names are the folders'
# of this project: if run-testsuite imported any of them, it would get the
# suite's (and `suite` and `schemas` refuse to be imported at all).
OWN_PACKAGES_SUITE = {
    "suite.yaml": """
        name: own-packages
        drivers:
          mine: drivers.mine:MineDriver          # the suite's drivers/ package
          lone: tools/lone.py:LoneDriver         # a file importing its sibling
          pkg: helpers_pkg/check.py:PkgDriver    # a file in a package: relative imports
          odd: odd-name/check.py:OddDriver       # a package Python cannot name
    """,
    "drivers/__init__.py": "# The suite's own drivers, as e3-testsuite suites have them.\n",
    "drivers/common.py": "WORD = 'hello'\n",
    "drivers/mine.py": """
        from run_testsuite.api import Driver, Outcome, Reason, Status

        from .common import WORD


        class MineDriver(Driver):
            def check(self, fragment, ctx):
                # Imported when the fragment is judged, in the worker.
                from drivers.common import WORD as again

                ok = WORD.encode() in ctx.output() and again == WORD
                return Outcome(Status.PASS) if ok else Outcome(Status.FAIL, Reason.DIFF, "no hello")
    """,
    "suite/__init__.py": "raise ImportError('this is the suite\\'s own package named suite')\n",
    "schemas.py": "raise ImportError('this is the suite\\'s own module named schemas')\n",
    "tools/lone.py": """
        import lonehelper
        from run_testsuite.api import Driver, Outcome, Reason, Status


        class LoneDriver(Driver):
            def check(self, fragment, ctx):
                import lonehelper as again  # a sibling, found in the worker too

                ok = again.expected() in ctx.output().decode() and lonehelper is again
                return Outcome(Status.PASS) if ok else Outcome(Status.FAIL, Reason.DIFF, "not expected")
    """,
    "tools/lonehelper.py": "def expected():\n    return 'lone'\n",
    "helpers_pkg/__init__.py": "",
    "helpers_pkg/util.py": "WORD = 'pkg'\n",
    "helpers_pkg/check.py": """
        from run_testsuite.api import Driver, Outcome, Reason, Status

        from . import util


        class PkgDriver(Driver):
            def check(self, fragment, ctx):
                ok = util.WORD.encode() in ctx.output()
                return Outcome(Status.PASS) if ok else Outcome(Status.FAIL, Reason.DIFF, "no pkg")
    """,
    "odd-name/__init__.py": "",
    "odd-name/util.py": "WORD = 'odd'\n",
    "odd-name/check.py": """
        from run_testsuite.api import Driver, Outcome, Reason, Status

        from .util import WORD


        class OddDriver(Driver):
            def check(self, fragment, ctx):
                ok = WORD.encode() in ctx.output()
                return Outcome(Status.PASS) if ok else Outcome(Status.FAIL, Reason.DIFF, "no odd")
    """,
    "t-mine/test.yaml": "driver: mine\ncmd: echo hello\n",
    "t-lone/test.yaml": "driver: lone\ncmd: echo lone\n",
    "t-pkg/test.yaml": "driver: pkg\ncmd: echo pkg\n",
    "t-odd/test.yaml": "driver: odd\ncmd: echo odd\n",
    "t-shell/test.yaml": "cmd: 'true'\n",
    "t-diff/test.yaml": "driver: diff\ncmd: echo same\n",
    "t-diff/test.out": "same\n",
}
OWN_PACKAGES_NAMES = {f"t-{n}" for n in ("mine", "lone", "pkg", "odd", "shell", "diff")}


def all_passed(index: dict) -> bool:
    return statuses(index) == {name: ("PASS", None) for name in OWN_PACKAGES_NAMES}


@pytest.mark.parametrize("mode", ["processes", "inline"])
@pytest.mark.parametrize("on_pythonpath", [True, False], ids=["on-pythonpath", "not-on-pythonpath"])
def test_a_suite_with_its_own_packages_runs_green(tmp_path, mode, on_pythonpath):
    root = write_suite(tmp_path / "suite", OWN_PACKAGES_SUITE)
    env = {"PYTHONPATH": str(root)} if on_pythonpath else {}
    args = ["--no-multiprocessing"] if mode == "inline" else ["-j", "3"]
    # From the suite root, as its users run it (`python -m` would put it first).
    run = run_cli(root, tmp_path / "out", *args, cwd=root, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert all_passed(run.index), run.stdout
    assert "Traceback" not in run.stderr
    # Driver files are the suite's: no byte code is left beside them.
    assert not list(root.rglob("__pycache__"))


BROKEN_IMPORT_SUITE = {
    "suite.yaml": """
        drivers:
          broken: tools/broken.py:Broken
          broken-module: brokenpkg.mod:Broken
    """,
    "tools/broken.py": """
        import os
        with open(os.path.join(os.path.dirname(__file__), 'imported.count'), 'a') as f:
            f.write('x')
        import no_such_module_here
    """,
    "brokenpkg/__init__.py": "",
    "brokenpkg/mod.py": "raise RuntimeError('the driver module refuses to load')\n",
    "a/test.yaml": "driver: broken\ncmd: 'true'\n",
    "b/test.yaml": "driver: broken\ncmd: 'true'\n",
    "c/test.yaml": "driver: broken-module\ncmd: 'true'\n",
    "ok/test.yaml": "cmd: 'true'\n",
}


def test_a_driver_that_cannot_be_imported_is_an_error_naming_what_was_tried(tmp_path):
    root = write_suite(tmp_path / "suite", BROKEN_IMPORT_SUITE)
    out = tmp_path / "out"
    run = run_cli(root, out)
    assert run.returncode == 1, run.stdout + run.stderr
    assert statuses(run.index) == {
        "a": ("ERROR", "DRIVER"),
        "b": ("ERROR", "DRIVER"),
        "c": ("ERROR", "DRIVER"),
        "ok": ("PASS", None),
    }
    assert "Traceback" not in run.stderr  # the run itself never crashes
    a = load_result(out, "a", run.index)
    assert a["message"].startswith(f"{root / 'a' / 'test.yaml'}:1:9: driver 'broken': ")
    assert f"cannot load '{root / 'tools' / 'broken.py'}' (line 4): " in a["message"], a["message"]  # the import that failed
    assert f"loaded as a module of its own, with {root / 'tools'} first on sys.path" in a["message"]
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in a["message"]
    assert "no_such_module_here" in a["traceback"]
    c = load_result(out, "c", run.index)
    assert "imported module 'brokenpkg.mod'" in c["message"] and f"{root} first on sys.path" in c["message"]
    assert "RuntimeError: the driver module refuses to load" in c["message"]
    # A broken driver is tried once per run, not once per testcase.
    assert (root / "tools" / "imported.count").read_text() == "x"


def test_installed_distribution_has_one_top_level_name(tmp_path):
    """A regular install (a wheel, as pip makes it) holds ``run_testsuite``
    only; with it, and no checkout or editable install in sight, the
    console script runs a suite with its own drivers/, suite/ and schemas."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    top = {entry.name for entry in target.iterdir()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"run_testsuite", "bin"}, top
    # The dependencies come from this environment's site-packages, named on
    # PYTHONPATH under -S: its .pth files (an editable install's finder)
    # are not read, so run_testsuite can only come from the install.
    site = sysconfig.get_paths()["purelib"]
    root = write_suite(tmp_path / "mysuite", OWN_PACKAGES_SUITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), site])}
    for name in ("suite", "drivers", "schemas"):
        probe = subprocess.run([sys.executable, "-S", "-c", f"import {name}"], env=env, cwd=tmp_path,
                               capture_output=True, text=True)
        assert probe.returncode == 1 and f"No module named '{name}'" in probe.stderr, (name, probe.stderr)
    where = subprocess.run([sys.executable, "-S", "-c", "import run_testsuite; print(run_testsuite.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(target / "run_testsuite" / "__init__.py")
    env["PYTHONPATH"] = os.pathsep.join([str(target), site, str(root)])
    script = (target / "bin" / "run-testsuite").read_text()
    assert "from run_testsuite.command import main" in script  # the command loads its modules in main (Ctrl-C)
    for how in (["-m", "run_testsuite"], [str(target / "bin" / "run-testsuite")]):
        out = tmp_path / f"out-{len(how)}"
        proc = subprocess.run([sys.executable, "-S", *how, str(root), "-o", str(out), "-j", "2"],
                              env=env, cwd=root, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        index = validate_index(read_json(Path(out) / "new" / "_index.json"))
        assert all_passed(index), proc.stdout


def readme_driver_example() -> str:
    """The Python block under the README's "Writing a driver"."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Writing a driver", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_driver_example_runs_as_written(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "drivers:\n  expect: my_drivers/expect.py:ExpectDriver\n",
            "my_drivers/expect.py": readme_driver_example(),
            "found/test.yaml": "driver: expect\nsteps:\n  - cmd: echo hello\n  - cmd: echo world\noptions:\n  expect: ['^hel+o$', 'wor']\n",
            "missing/test.yaml": "driver: expect\ncmd: echo hello\noptions:\n  expect: ['^goodbye$']\n",
            "bad-options/test.yaml": "driver: expect\ncmd: echo hello\noptions:\n  expect: 3\n",
        },
    )
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {
        "found": ("PASS", None),
        "missing": ("FAIL", "DIFF"),
        "bad-options": ("ERROR", "SPEC"),
    }, run.stdout + run.stderr
    assert "no line matches ['^goodbye$']" in load_result(tmp_path / "out", "missing", run.index)["message"]
