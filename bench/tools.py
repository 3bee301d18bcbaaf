"""The tools being timed: run-testsuite, its peers, and the spawn floor.

Each tool knows how to find itself, lay a workload out (via workloads.py),
reset its state between repeats, build its command line, and check that a
run really passed every testcase: a fast run that failed or skipped tests
must never be reported as a time.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tempfile
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import workloads as wl
from workloads import Workload

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Proc = subprocess.CompletedProcess  # of str: every run uses text=True

# Far above any healthy run; only there so a hung tool cannot hang the bench.
RUN_TIMEOUT_S = 900


@dataclass
class Invocation:
    """One command to time."""

    argv: List[str]
    cwd: Optional[str] = None
    stdin: Optional[str] = None
    env: Optional[Dict[str, str]] = None


@dataclass
class Outcome:
    """One timed run: its wall time, and why it does not count (if so)."""

    seconds: float
    error: Optional[str] = None


def tail(text: str, lines: int = 20) -> str:
    """Last lines of a tool's output, for failure reports."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def timed(inv: Invocation) -> Tuple[float, Proc]:
    """Run ``inv`` and return its wall time and result.

    Output goes to pipes for every tool alike, so that no tool pays for a
    terminal and all pay the same for their verbosity.
    """
    start = time.perf_counter()
    proc = subprocess.run(
        inv.argv,
        cwd=inv.cwd,
        env=inv.env,
        input=inv.stdin,
        stdin=None if inv.stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    return time.perf_counter() - start, proc


def python_probe(python: str, code: str) -> Optional[str]:
    """Run ``code`` in ``python``; return its stdout, or None if it fails."""
    try:
        proc = subprocess.run(
            [python, "-c", code],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


class Tool(ABC):
    """A tool under benchmark. ``workdir`` is the tool's own directory for
    one workload, made empty by the caller before ``prepare``."""

    name: str = "?"
    version: str = ""

    @abstractmethod
    def unavailable(self) -> Optional[str]:
        """None when the tool can run here, else a note saying why not."""

    def prepare(self, w: Workload, workdir: str) -> None:
        """Write the workload's files (not timed)."""

    def reset(self, w: Workload, workdir: str) -> None:
        """Undo what the previous repeat left (not timed), so every repeat
        starts from the same state: a cold first run, with no recorded
        durations or old results to exploit."""

    @abstractmethod
    def invocation(self, w: Workload, workdir: str, jobs: int) -> Invocation:
        """The command to time."""

    @abstractmethod
    def verify(
        self, w: Workload, workdir: str, proc: Proc
    ) -> Optional[str]:
        """None when the run passed all ``w.count`` testcases, else why not."""

    def run(self, w: Workload, workdir: str, jobs: int) -> Outcome:
        """Reset, time one run, and verify it."""
        self.reset(w, workdir)
        inv = self.invocation(w, workdir, jobs)
        try:
            seconds, proc = timed(inv)
        except subprocess.TimeoutExpired:
            return Outcome(RUN_TIMEOUT_S, f"timed out after {RUN_TIMEOUT_S} s")
        except OSError as exc:
            return Outcome(0.0, f"cannot run {inv.argv[0]}: {exc}")
        return Outcome(seconds, self.verify(w, workdir, proc))


def _exit_error(proc: Proc) -> Optional[str]:
    if proc.returncode == 0:
        return None
    parts = [f"exit status {proc.returncode}"]
    for label, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        if text.strip():
            parts.append(f"--- {label} tail ---\n{tail(text)}")
    return "\n".join(parts)


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# run-testsuite ---------------------------------------------------------------


class RunTestsuite(Tool):
    """``run-testsuite ROOT -j N --output-dir OUT``: must exit 0."""

    name = "run-testsuite"

    def __init__(self, command: Optional[str] = None, rerun: bool = False) -> None:
        self.command = command
        # Re-runs: keep the output directory (its history) between runs.
        self.rerun = rerun
        self.argv: List[str] = []
        self.env: Optional[Dict[str, str]] = None

    def unavailable(self) -> Optional[str]:
        if self.command:
            self.argv = shlex.split(self.command)
            return None
        # The console script: on PATH, or next to this interpreter (a venv
        # whose bin/ is not on PATH still has it there).
        path = os.pathsep.join(
            [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
        )
        script = shutil.which("run-testsuite", path=path)
        if script:
            self.argv = [script]
            return None
        # No console script: the package, if this interpreter has it.
        probe = subprocess.run(
            [sys.executable, "-c", "import run_testsuite.cli"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        if probe.returncode == 0:
            self.argv = [sys.executable, "-m", "run_testsuite"]
            return None
        return "run-testsuite not installed (no console script; pip install . first)"

    def prepare(self, w: Workload, workdir: str) -> None:
        wl.write_run_testsuite(w, os.path.join(workdir, "suite"))

    def reset(self, w: Workload, workdir: str) -> None:
        if not self.rerun:
            _rmtree(os.path.join(workdir, "out"))

    def invocation(self, w: Workload, workdir: str, jobs: int) -> Invocation:
        return Invocation(
            self.argv
            + [
                os.path.join(workdir, "suite"),
                "-j",
                str(jobs),
                "--output-dir",
                os.path.join(workdir, "out"),
            ],
            cwd=workdir,
            env=self.env,
        )

    def verify(self, w: Workload, workdir: str, proc: Proc) -> Optional[str]:
        return _exit_error(proc)


# lit -------------------------------------------------------------------------

# lit 23 has no lit/__main__.py, so `python -m lit` does not work; this is
# what its console script does, and it works with any interpreter given.
_LIT_MAIN = "import sys; from lit.main import main; sys.argv[0] = 'lit'; sys.exit(main())"


class Lit(Tool):
    """``lit -q -j N DIR`` run by the peers' Python."""

    name = "lit"

    def __init__(self, python: str) -> None:
        self.python = python

    def unavailable(self) -> Optional[str]:
        out = python_probe(self.python, "import lit.main, lit; print(lit.__version__)")
        if out is None:
            return f"lit is not importable by {self.python}"
        self.version = out
        return None

    def prepare(self, w: Workload, workdir: str) -> None:
        wl.write_lit(w, workdir)

    def reset(self, w: Workload, workdir: str) -> None:
        # lit records test times here and orders the next run by them.
        try:
            os.remove(os.path.join(workdir, ".lit_test_times.txt"))
        except FileNotFoundError:
            pass
        _rmtree(os.path.join(workdir, "Output"))

    def invocation(self, w: Workload, workdir: str, jobs: int) -> Invocation:
        return Invocation(
            [self.python, "-c", _LIT_MAIN, "-q", "-j", str(jobs), workdir],
            cwd=workdir,
        )

    def verify(self, w: Workload, workdir: str, proc: Proc) -> Optional[str]:
        err = _exit_error(proc)
        if err:
            return err
        # lit exits 0 only when no test failed; also make sure it found them
        # all (lit 23 prints this line even with -q).
        marker = "Total Discovered Tests:"
        for line in (proc.stdout + proc.stderr).splitlines():
            if line.strip().startswith(marker):
                found = int(line.split(":", 1)[1].split()[0])
                if found != w.count:
                    return f"lit discovered {found} tests, expected {w.count}"
        return None


# e3-testsuite ----------------------------------------------------------------


class E3Testsuite(Tool):
    """``python testsuite.py -j N --output-dir OUT`` run by the peers' Python."""

    name = "e3-testsuite"

    def __init__(self, python: str) -> None:
        self.python = python

    def unavailable(self) -> Optional[str]:
        out = python_probe(
            self.python,
            "import e3.testsuite, importlib.metadata as m;"
            " print(m.version('e3-testsuite'))",
        )
        if out is None:
            return f"e3-testsuite is not importable by {self.python}"
        self.version = out
        return None

    def prepare(self, w: Workload, workdir: str) -> None:
        wl.write_e3(w, workdir)

    def reset(self, w: Workload, workdir: str) -> None:
        _rmtree(os.path.join(workdir, "out"))
        # e3 makes a random subdirectory of --temp-dir per run; keep those
        # inside the bench's temp dir rather than in $TMPDIR.
        _rmtree(os.path.join(workdir, "tmp"))
        os.mkdir(os.path.join(workdir, "tmp"))

    def invocation(self, w: Workload, workdir: str, jobs: int) -> Invocation:
        return Invocation(
            [
                self.python,
                os.path.join(workdir, "testsuite.py"),
                "-j",
                str(jobs),
                "--output-dir",
                os.path.join(workdir, "out"),
                "--temp-dir",
                os.path.join(workdir, "tmp"),
            ],
            cwd=workdir,
        )

    def verify(self, w: Workload, workdir: str, proc: Proc) -> Optional[str]:
        err = _exit_error(proc)
        if err:
            return err
        # e3 exits 0 when nothing FAILed or ERRORed, which a SKIP or a
        # missing test would not change: count PASSes in its report index.
        index = os.path.join(workdir, "out", "new", "_index.json")
        try:
            with open(index, encoding="utf-8") as f:
                entries = json.load(f)["entries"]
        except (OSError, ValueError, KeyError) as exc:
            return f"cannot read e3 report index {index}: {exc}"
        passed = sum(1 for e in entries if e.get("status") == "PASS")
        if passed != w.count:
            return f"e3-testsuite: {passed} PASS out of {len(entries)}, expected {w.count}"
        return None


# spawn floor -----------------------------------------------------------------


class Floor(Tool):
    """``xargs -n1 -P N sh -c CMD``: the same commands with no framework, the
    cost of spawning them at this parallelism."""

    name = "floor (xargs)"

    def unavailable(self) -> Optional[str]:
        return None if shutil.which("xargs") else "xargs not found"

    def invocation(self, w: Workload, workdir: str, jobs: int) -> Invocation:
        # Each input line becomes $1 of one `sh -c CMD floor LINE`; CMD
        # ignores it. Input is fed directly: no `seq`, no extra shell.
        return Invocation(
            ["xargs", "-n1", "-P", str(jobs), "sh", "-c", w.cmd, "floor"],
            stdin="".join(f"{n}\n" for n in w.names()),
        )

    def verify(self, w: Workload, workdir: str, proc: Proc) -> Optional[str]:
        err = _exit_error(proc)
        if err:
            return err
        if w.expected is not None and proc.stdout != w.expected * w.count:
            return "floor: output is not the expected output of every command"
        return None


def log(msg: str) -> None:
    """Progress goes to stderr; stdout is the table."""
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def scratch_dir(prefix: str, keep: bool):
    """A temporary directory for generated suites, removed unless ``keep``."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
    finally:
        if keep:
            log(f"\ngenerated suites kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
