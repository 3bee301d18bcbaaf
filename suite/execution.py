"""Run one fragment: prepare its directory, run its commands, capture output.

This module runs wherever a fragment runs (a worker process, the main
process, a cluster node), so it imports nothing heavy. Commands are started
with ``subprocess`` rather than ``e3.os.process.Run``: measured here,
``Run`` costs 2.8 ms per ``echo`` against 0.8 ms, and the per-fragment cost
is what bounds a suite of many small testcases.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
import traceback

from drivers.api import Command, Fragment
from suite.discovery import SPEC_FILE
from suite.processes import become_subreaper, children, kill_orphans
from suite.results import CommandRecord, Outcome, Reason, Status

# Seconds between SIGTERM and SIGKILL when a command's time is up.
KILL_GRACE = 2.0
# How much of a fragment's output a result keeps: this much from the start
# and this much from the end. The full output stays in the log file.
OUTPUT_HEAD = 8 * 1024
OUTPUT_TAIL = 24 * 1024

# Commands running in this process, so a signal handler can stop them.
_active: set[subprocess.Popen] = set()
# Set by a process that runs fragments and adopts their orphans (see
# suite.processes): after each command, any descendant it left is killed,
# except the processes in _keep (say, the workers of the main process).
SWEEP_ORPHANS = False
_keep: frozenset[int] = frozenset()


def adopt_orphans(keep: frozenset[int] = frozenset()) -> None:
    """Make this process reap what its commands leave behind."""
    global SWEEP_ORPHANS, _keep
    SWEEP_ORPHANS = become_subreaper()
    _keep = keep


class RunContext:
    """What a driver's ``run`` uses to execute a fragment's commands."""

    def __init__(self, fragment: Fragment, slot: int):
        self.fragment = fragment
        self.slot = slot
        self.records: list[CommandRecord] = []
        self.env = {**_base_environment(), **fragment.env}
        self.env["SLOT"] = str(slot)
        self.work_dir = fragment.work_dir
        self.log_path = fragment.log_path

    def run(self, command: Command) -> CommandRecord:
        """Run ``command`` in the work directory, appending output to the log."""
        record = run_command(command, self.work_dir, self.env, self.log_path)
        self.records.append(record)
        return record


_base_env: dict[str, str] | None = None


def _base_environment() -> dict[str, str]:
    """This process's environment, copied once: ``dict(os.environ)`` decodes
    every variable and cost more than the rest of a fragment's set-up."""
    global _base_env
    if _base_env is None:
        _base_env = dict(os.environ)
    return _base_env


def run_command(command: Command, cwd: str, env: dict, log_path: str) -> CommandRecord:
    """Run one command with its timeout; stdout and stderr go to ``log_path``.

    The command leads a new session, so on timeout its whole process group
    is signalled: SIGTERM first, SIGKILL after ``KILL_GRACE``. Processes it
    left behind in its group are killed when it ends, so none outlives its
    fragment.
    """
    argv = ["/bin/sh", "-c", command.cmd] if isinstance(command.cmd, str) else command.cmd
    start = time.monotonic()
    # Children we already have (a driver's own helpers) are not the
    # command's orphans, and are left alone by the sweep below.
    before = frozenset(children()) if SWEEP_ORPHANS else frozenset()
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log.write(f"run-testsuite: cannot run {argv[0]!r}: {exc.strerror or exc}\n".encode())
            return CommandRecord(command.step, command.cmd, 127, time.monotonic() - start)
    _active.add(proc)
    try:
        timed_out = not wait_for_exit(proc, command.timeout)
        if timed_out:
            kill_group(proc)
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the background
        if SWEEP_ORPHANS:
            kill_orphans(adopted_since=before, exclude=_keep)
    except BaseException:  # Ctrl-C in this process: the command must not outlive us
        kill_group(proc)
        raise
    finally:
        _active.discard(proc)
    return CommandRecord(
        command.step, command.cmd, proc.returncode, time.monotonic() - start, timed_out
    )


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until ``proc`` exits or ``timeout`` passes; True if it exited.

    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which would add
    that much to every short command. A pidfd wakes us the moment it exits.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # pragma: no cover - old kernels
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return proc.poll() is not None
            if poller.poll(remaining * 1000):
                proc.wait()
                return True
    finally:
        os.close(fd)


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    _signal_group(proc.pid, signal.SIGTERM)
    if not wait_for_exit(proc, grace):
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    # The leader may have obeyed SIGTERM while children ignored it.
    _signal_group(proc.pid, signal.SIGKILL)


def kill_active(grace: float = KILL_GRACE) -> None:
    """Stop every command this process is running (on interrupt)."""
    for proc in list(_active):
        kill_group(proc, grace)
    if SWEEP_ORPHANS:
        kill_orphans(adopted_since=frozenset(), exclude=_keep)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def prepare_work_dir(source: str, target: str) -> None:
    """Make ``target`` a fresh copy of the testcase directory ``source``.

    Left out: nested testcase directories (they belong to other testcases),
    hidden entries (version control), and any directory holding the copy
    being made or a run's output (an output directory inside a testcase).
    Symbolic links are kept as links; a relative one that points outside
    the testcase is re-aimed at its target in the suite, so it still
    resolves from the copy.
    """
    try:
        os.mkdir(target)
    except FileExistsError:  # a retry, or a stale tree from an earlier run
        shutil.rmtree(target)
        os.mkdir(target)
    except FileNotFoundError:  # names with '/' or a work root not made yet
        os.makedirs(target)
    _copy_entries(source, target, source, os.path.realpath(target))


def _copy_entries(src: str, dst: str, top: str, real_target: str) -> None:
    for entry in os.scandir(src):
        if entry.name.startswith("."):
            continue
        dest = os.path.join(dst, entry.name)
        if entry.is_symlink():
            os.symlink(_link_target(entry.path, top), dest)
        elif entry.is_dir():
            real = os.path.realpath(entry.path)
            if (
                real_target == real
                or real_target.startswith(real + os.sep)
                or os.path.exists(os.path.join(entry.path, SPEC_FILE))
                or os.path.exists(os.path.join(entry.path, "new", "_index.json"))
            ):
                continue
            os.mkdir(dest)
            _copy_entries(entry.path, dest, top, real_target)
        else:
            shutil.copy(entry.path, dest)


def _link_target(link: str, top: str) -> str:
    target = os.readlink(link)
    if os.path.isabs(target):
        return target
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
    if resolved == top or resolved.startswith(top.rstrip(os.sep) + os.sep):
        return target  # stays inside the testcase: valid in the copy too
    return resolved


def read_head_tail(path: str, head: int = OUTPUT_HEAD, tail: int = OUTPUT_TAIL) -> str:
    """The start and end of a log, decoded with replacement characters.

    Reads at most ``head + tail`` bytes whatever the file's size.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= head + tail:
                data = handle.read()
                return data.decode("utf-8", "replace")
            first = handle.read(head)
            handle.seek(size - tail)
            last = handle.read(tail)
    except FileNotFoundError:
        return ""
    cut = size - head - tail
    return (
        first.decode("utf-8", "replace")
        + f"\n[... {cut} bytes cut; full output in {path} ...]\n"
        + last.decode("utf-8", "replace")
    )


def execute(fragment: Fragment, slot: int) -> Outcome:
    """Run a fragment with its driver; never raises."""
    from drivers import load_reference

    start = time.time()
    began = time.monotonic()
    ctx = None
    try:
        if fragment.prepare:
            if not os.path.isdir(fragment.source_dir):
                raise FileNotFoundError(f"testcase directory {fragment.source_dir} is not visible here")
            prepare_work_dir(fragment.source_dir, fragment.work_dir)
            os.makedirs(fragment.log_dir, exist_ok=True)
        ctx = RunContext(fragment, slot)
        driver = load_reference(fragment.driver)()
        outcome = driver.run(fragment, ctx)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"{fragment.driver}.run returned {type(outcome).__name__}, not Outcome")
    except Exception as exc:  # a driver's bug is this testcase's ERROR, not the run's
        outcome = Outcome(
            Status.ERROR,
            Reason.DRIVER,
            f"driver raised {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    outcome.start = start
    outcome.duration = time.monotonic() - began
    outcome.slot = slot
    if ctx is not None:
        outcome.commands = ctx.records
    if not outcome.output:
        outcome.output = read_head_tail(fragment.log_path)
    outcome.log_files = [fragment.log_path]
    return outcome
