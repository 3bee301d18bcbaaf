"""Spawning, watching and killing the commands of fragments.

This module runs wherever a fragment runs (a worker process, the main
process, a cluster node), so it imports nothing heavy. Commands are started
with ``subprocess`` or ``os.posix_spawn`` rather than ``e3.os.process.Run``:
measured here, ``Run`` costs 2.8 ms per ``echo`` against 0.8 ms, and the
per-fragment cost is what bounds a suite of many small testcases.
"""

from __future__ import annotations

import errno
import os
import re
import select
import shutil
import signal
import subprocess
import time

from run_testsuite.capture import OutputCapture
from run_testsuite.fragment import MAX_TIMEOUT, Command
from run_testsuite.processes import children, kill_orphans
from run_testsuite.results import CommandRecord
from run_testsuite.runner import STATE
from run_testsuite.sandbox import STATUS_FD, BwrapStatus, SandboxError, bwrap_failure
from run_testsuite.workdir import make_spare

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Protocol

    from run_testsuite.sandbox import Sandbox

    class Child(Protocol):
        """A started command: a ``subprocess.Popen`` or a ``_Spawned``."""

        pid: int
        stdout: Any
        returncode: int | None

        def poll(self) -> int | None: ...

        def wait(self, timeout: float | None = None) -> int: ...


# Seconds between SIGTERM and SIGKILL when a command's time is up.
KILL_GRACE = 2.0
# Bytes read from a command's pipe at a time.
CHUNK = 64 * 1024


def run_command(
    command: Command, cwd: str, env: dict, capture: OutputCapture, sandbox: Sandbox | None = None
) -> CommandRecord:
    """Run one command with its timeout; stdout and stderr go to ``capture``.

    The command leads a new session, so on timeout its whole process group
    is signalled: SIGTERM first, SIGKILL after ``KILL_GRACE``. Processes it
    left behind in its group, or that escaped it with setsid (see
    run_testsuite.processes), are killed when it ends, so none outlives its fragment.
    With a ``sandbox``, bubblewrap runs it (see run_testsuite.sandbox).
    """
    argv = to_argv(command.cmd)
    timeout = command.timeout if 0 < command.timeout <= MAX_TIMEOUT else MAX_TIMEOUT  # inf, NaN
    start = time.monotonic()
    # Children we already have (a driver's own helpers) are not the
    # command's orphans, and are left alone by the sweep below.
    before = frozenset(children()) if STATE.sweep_orphans else frozenset()
    proc: Child
    status = None if sandbox is None else BwrapStatus()
    try:
        spawned = argv
        if sandbox is not None and status is not None:  # (both or neither)
            spawned = sandbox.wrap(argv, cwd, env, status.child_fd(STATE.sole_runner))
        if STATE.sole_runner:
            proc = _spawn(spawned, cwd, env, status.write_end if status is not None else None)
        else:
            proc = subprocess.Popen(
                spawned,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(status.write_end,) if status is not None else (),
            )
    except OSError as exc:
        if status is not None:
            status.discard()
        capture.write(f"run-testsuite: cannot run {argv[0]!r}: {exc.strerror or exc}\n".encode())
        return CommandRecord(command.step, command.cmd, 127, time.monotonic() - start)
    except BaseException:
        if status is not None:
            status.discard()
        raise
    if status is not None:
        status.spawned()
        proc.sandbox_status = status  # type: ignore[union-attr]  # for kill_group
    STATE.active.add(proc)
    if STATE.watch is not None:
        STATE.watch.started(proc.pid)  # it leads its own group
    if STATE.sole_runner:
        make_spare(os.path.dirname(cwd))
    try:
        timed_out = not pump(proc, capture, start + timeout)
        if timed_out:
            kill_group(proc)
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the background
        if STATE.sweep_orphans:
            kill_orphans(adopted_since=before, exclude=STATE.keep)
        drain(proc.stdout, capture)
    except BaseException:  # Ctrl-C in this process: the command must not outlive us
        kill_group(proc)
        raise
    finally:
        STATE.active.discard(proc)
        if STATE.watch is not None:
            STATE.watch.ended(proc.pid)
        if proc.stdout is not None:
            proc.stdout.close()
        if status is not None:
            status.close()
    if sandbox is not None and not timed_out:
        failed = bwrap_failure(proc.returncode, capture.data())
        if failed:
            raise SandboxError(failed)
    return CommandRecord(command.step, command.cmd, proc.returncode, time.monotonic() - start, timed_out, timeout)


class _Spawned:
    """The part of ``subprocess.Popen`` that run_command and its helpers
    use, for a process started by ``_spawn``."""

    def __init__(self, pid: int, stdout_fd: int):
        self.pid = pid
        self.stdout = open(stdout_fd, "rb", buffering=0)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:  # only where pidfds fail (see wait_for_exit)
            deadline = time.monotonic() + timeout
            while self.poll() is None:
                if time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
                time.sleep(0.01)
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


# Signals a command starts with at their defaults: those Popen restores
# (Python ignores SIGPIPE), and SIGINT and SIGHUP, which workers ignore themselves.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


def _spawn(argv: list[str], cwd: str, env: dict, status_fd: int | None = None) -> _Spawned:
    """Start ``argv`` in ``cwd`` as Popen would in run_command (new session,
    stdin from /dev/null, stdout and stderr into one pipe), by posix_spawn.

    posix_spawn has no working-directory action: this process moves there
    itself for the moment of the call, which only a sole runner (see
    runner.become_sole_runner) may do.
    PATH is searched by the C library when the command's PATH is this
    process's own (``posix_spawnp``); otherwise here, in the command's.
    """
    program = argv[0]
    spawn = os.posix_spawn
    if os.sep not in program:
        path = env.get("PATH", os.defpath)
        if path == os.environ.get("PATH", os.defpath):
            spawn = os.posix_spawnp
        else:
            found = shutil.which(program, path=path)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
            program = found
    home = os.getcwd()
    os.chdir(cwd)  # back below: drivers may rely on the directory run-testsuite started in
    read_end, write_end = os.pipe()
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, write_end, 1),
        (os.POSIX_SPAWN_DUP2, write_end, 2),
    ]
    moved = None
    if status_fd is not None:  # bwrap's status, as descriptor 3 (sandbox.STATUS_FD)
        if status_fd == STATUS_FD:  # a dup2 onto itself would keep close-on-exec
            status_fd = moved = os.dup(status_fd)
        actions.append((os.POSIX_SPAWN_DUP2, status_fd, STATUS_FD))
    try:
        pid = spawn(
            program,
            argv,
            env,
            file_actions=actions,
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
        if moved is not None:
            os.close(moved)
        os.chdir(home)
    return _Spawned(pid, read_end)


# A command string made only of these characters and spaces means the same
# to sh as its words split on blanks, so it can be run without a shell.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+( +[A-Za-z0-9_@%+=:,./-]+)*")
# Words sh handles itself, with no program of that name to run instead.
_SHELL_WORDS = frozenset(
    [
        "!",
        "{",
        "}",
        ".",
        ":",
        "alias",
        "bg",
        "break",
        "case",
        "cd",
        "command",
        "continue",
        "do",
        "done",
        "elif",
        "else",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
        "fc",
        "fg",
        "fi",
        "for",
        "getopts",
        "hash",
        "if",
        "in",
        "jobs",
        "local",
        "read",
        "readonly",
        "return",
        "set",
        "shift",
        "source",
        "then",
        "time",
        "times",
        "trap",
        "type",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
    ]
)


def to_argv(cmd: str | list[str]) -> list[str]:
    """The argv for a command: a list as it is; a string through ``sh -c``,
    except a plain one (``sleep 0.2``, ``make -C src all``) that sh would
    only split into words: it is run directly, which spares a shell's start
    per command. PATH lookup, status 127 for a missing program and the
    output are the same either way."""
    if not isinstance(cmd, str):
        return cmd
    text = cmd.strip()
    if _PLAIN.fullmatch(text):
        words = text.split()
        if words[0] not in _SHELL_WORDS and "=" not in words[0]:
            return words
    return ["/bin/sh", "-c", cmd]


def pump(proc: Child, capture: OutputCapture, deadline: float) -> bool:
    """Copy the command's output into ``capture`` until it exits (True) or
    the deadline passes (False).

    One poll waits on both the pipe and a pidfd: the exit is seen the moment
    it happens (``Popen.wait(timeout)`` sleeps up to 50 ms between checks),
    and a command whose background children keep the pipe open does not
    hold us past its own exit.
    """
    out = proc.stdout.fileno()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # pragma: no cover - kernels before 5.3
        pidfd = None
    poller = select.poll()
    poller.register(out, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    pipe_open = True
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return proc.poll() is not None
            # At most an hour a wait: poll() takes an int of milliseconds.
            wait_ms = min(remaining, 3600.0) * 1000 if pidfd is not None or pipe_open else min(remaining, 0.05) * 1000
            for fd, _ in poller.poll(wait_ms):
                if fd == out:
                    data = os.read(out, CHUNK)
                    if data:
                        capture.write(data)
                    else:
                        poller.unregister(out)
                        pipe_open = False
                elif fd == pidfd:
                    proc.wait()
                    return True
            if pidfd is None and not pipe_open and proc.poll() is not None:
                return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def drain(stream, capture: OutputCapture) -> None:
    """Read what is left in the pipe once every writer is gone."""
    fd = stream.fileno()
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:  # a writer we could not kill still holds it
            return
        if not data:
            return
        capture.write(data)


def wait_for_exit(proc: Child, timeout: float) -> bool:
    """Wait until ``proc`` exits or ``timeout`` passes; True if it exited."""
    exited = _pidfd_wait(proc.pid, timeout)
    if exited is None:  # pragma: no cover - old kernels
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    if exited:
        proc.wait()
        return True
    return proc.poll() is not None


def _pidfd_wait(pid: int, timeout: float) -> bool | None:
    """Wait on a pidfd until ``pid`` (a child or not) has exited (True) or
    ``timeout`` passed (False); None where pidfds are missing."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):  # pragma: no cover - old kernels
        return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # At most an hour a wait: poll() takes an int of milliseconds.
            if poller.poll(min(remaining, 3600.0) * 1000):
                return True
    finally:
        os.close(fd)


def kill_group(proc: Child, grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers. In a
    sandbox, the process waited for is the one bwrap started: bwrap itself
    dies at once, its command may take its grace to clean up."""
    status = getattr(proc, "sandbox_status", None)
    inner = status.child_pid() if status is not None else None
    _signal_group(proc.pid, signal.SIGTERM)
    exited = bool(_pidfd_wait(inner, grace)) if inner is not None else wait_for_exit(proc, grace)
    if not exited:
        _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    # The leader may have obeyed SIGTERM while children ignored it.
    _signal_group(proc.pid, signal.SIGKILL)


def kill_active(grace: float = KILL_GRACE) -> None:
    """Stop every command this process is running (on interrupt)."""
    for proc in list(STATE.active):
        kill_group(proc, grace)
    if STATE.sweep_orphans:
        kill_orphans(adopted_since=frozenset(), exclude=STATE.keep)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
