"""Shared helpers for the run-testsuite tests.

Most tests are end to end: they lay out a small suite in a temporary
directory (``write_suite``), run the real command line in a subprocess
(``run_cli``), then read the report index and result files it wrote
(``load_result``). Every index and result file read here is validated
against the JSON Schemas shipped in ``schemas/``.

The helpers are plain functions (importable by module-scoped fixtures that
run one suite for many checks) and are also offered as session fixtures of
the same name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO / "schemas"
# The interpreter running the tests; testcases use it for portable commands
# (``python3`` may be a slow shim, or absent).
PYTHON = sys.executable
# No test run should take this long; it only stops a hung run hanging pytest.
CLI_TIMEOUT = 120


# -- schemas -------------------------------------------------------------------
def _schema(name: str) -> dict:
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as handle:
        schema = json.load(handle)
    Draft202012Validator.check_schema(schema)
    return schema


INDEX_SCHEMA = _schema("index")
RESULT_SCHEMA = _schema("result")
# index.schema.json refers to result.schema.json by its $id.
REGISTRY = Registry().with_resources(
    [(schema["$id"], Resource.from_contents(schema)) for schema in (INDEX_SCHEMA, RESULT_SCHEMA)]
)
INDEX_VALIDATOR = Draft202012Validator(INDEX_SCHEMA, registry=REGISTRY)
RESULT_VALIDATOR = Draft202012Validator(RESULT_SCHEMA, registry=REGISTRY)


def _check(validator, data: dict, what: str) -> dict:
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what} does not match its schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )
    return data


def validate_index(data: dict, what: str = "index") -> dict:
    return _check(INDEX_VALIDATOR, data, what)


def validate_result(data: dict, what: str = "result") -> dict:
    return _check(RESULT_VALIDATOR, data, what)


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# -- building suites -------------------------------------------------------------
def write_suite(root, files: dict) -> Path:
    """Create ``root`` and the files of ``files``: {"rel/path": text}.

    Text is dedented, so specs can be written as indented triple-quoted
    strings; ``bytes`` are written as they are; ``None`` makes a directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def tree_snapshot(root) -> dict:
    """Every path under ``root`` with its content (files) or link target."""
    root = Path(root)
    snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                snapshot[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                snapshot[rel] = ("dir",)
            else:
                snapshot[rel] = ("file", path.read_bytes())
    return snapshot


# -- running the command line ----------------------------------------------------
class CliRun(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    index: dict | None  # OUT/new/_index.json, validated; None if not written


def cli_argv(root, out, *args, names=()) -> list[str]:
    # Names go right after ROOT: argparse rejects them after an option (see
    # test_cli.test_names_after_options_are_accepted).
    return [PYTHON, "-m", "run_testsuite", str(root), *names, "-o", str(out), *map(str, args)]


def cli_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    # 'python -m' puts the current directory first on sys.path, where a
    # suite directory named 'suite' (or 'drivers') would shadow the package.
    env["PYTHONSAFEPATH"] = "1"
    env.update(extra or {})
    return env


def run_cli(root, out, *args, names=(), cwd=None, env=None, timeout=CLI_TIMEOUT) -> CliRun:
    """Run ``run-testsuite ROOT [NAMES] -o OUT ARGS`` and read what it wrote.

    The index and every result file it names are validated against the
    schemas.
    """
    proc = subprocess.run(
        cli_argv(root, out, *args, names=names),
        cwd=cwd or Path(out).parent,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    index_path = Path(out) / "new" / "_index.json"
    index = None
    if index_path.exists():
        index = validate_index(read_json(index_path), str(index_path))
        for entry in index["results"]:
            if "unwritten" not in entry:  # a file the run said it could not write
                load_result(out, entry["name"], index)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, index)


def _default_sigint() -> None:
    # A job started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
    # give the run the disposition a terminal user's run has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(root, out, *args, names=(), cwd=None, env=None) -> subprocess.Popen:
    """Start the command line without waiting for it."""
    return subprocess.Popen(
        cli_argv(root, out, *args, names=names),
        cwd=cwd or Path(out).parent,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def load_index(out) -> dict:
    path = Path(out) / "new" / "_index.json"
    return validate_index(read_json(path), str(path))


def load_result(out, name: str, index: dict | None = None) -> dict:
    """The result file of testcase ``name``, found through the index's ``result`` path."""
    if index is None:
        index = load_index(out)
    entries = [entry for entry in index["results"] if entry["name"] == name]
    names = [entry["name"] for entry in index["results"]]
    assert len(entries) == 1, f"expected one index entry for {name!r}, index has {names}"
    path = Path(out) / "new" / entries[0]["result"]
    result = validate_result(read_json(path), str(path))
    assert result["name"] == name
    assert result["status"] == entries[0]["status"]
    assert result["reason"] == entries[0]["reason"]
    return result


def statuses(index: dict) -> dict[str, tuple[str, str | None]]:
    """{name: (status, reason)} for every result of a run."""
    return {entry["name"]: (entry["status"], entry["reason"]) for entry in index["results"]}


def entry(index: dict, name: str) -> dict:
    found = [e for e in index["results"] if e["name"] == name]
    assert len(found) == 1, f"{name!r} appears {len(found)} times in the index"
    return found[0]


def wait_for(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def act_mid_run(proc: subprocess.Popen, out, started: int, action, timeout: float, start_timeout: float = 60) -> str:
    """Once ``started`` fragments have their work directories under
    OUT/new/work, ``action()``; then wait for the run to end and return its
    stderr. A run still going after ``timeout`` is killed."""
    try:
        work = Path(out) / "new" / "work"
        assert wait_for(lambda: work.is_dir() and len(list(work.iterdir())) >= started, start_timeout), proc.poll()
        action()
        return proc.communicate(timeout=timeout)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def children_of(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found.extend(int(p) for p in handle.read().split())
    return found


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as dead: in a
    container, PID 1 may never reap the orphans we check for)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


# -- fixtures --------------------------------------------------------------------
@pytest.fixture(scope="session", name="write_suite")
def _write_suite_fixture():
    return write_suite


@pytest.fixture(scope="session", name="run_cli")
def _run_cli_fixture():
    return run_cli


@pytest.fixture(scope="session", name="load_result")
def _load_result_fixture():
    return load_result


@pytest.fixture
def paths(tmp_path):
    """(suite root, output dir) in a fresh temporary directory."""
    return tmp_path / "suite", tmp_path / "out"


def report(*args, cwd=None) -> subprocess.CompletedProcess:
    """``run-testsuite report ARGS`` in a subprocess, like a user or CI job."""
    return subprocess.run(
        [sys.executable, "-m", "run_testsuite", "report", *map(str, args)],
        cwd=cwd or REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
