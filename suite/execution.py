"""Run one fragment: prepare its directory, run its commands, capture output.

This module runs wherever a fragment runs (a worker process, the main
process, a cluster node), so it imports nothing heavy. Commands are started
with ``subprocess`` rather than ``e3.os.process.Run``: measured here,
``Run`` costs 2.8 ms per ``echo`` against 0.8 ms, and the per-fragment cost
is what bounds a suite of many small testcases.
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
import traceback

from drivers.api import Command, Fragment
from suite.capture import OutputCapture
from suite.discovery import SPEC_FILE
from suite.processes import become_subreaper, children, kill_orphans
from suite.results import CommandRecord, Outcome, Reason, Status

# Seconds between SIGTERM and SIGKILL when a command's time is up.
KILL_GRACE = 2.0
# Bytes read from a command's pipe at a time.
CHUNK = 64 * 1024

# Commands running in this process, so a signal handler can stop them.
_active: set[subprocess.Popen] = set()
# Set by a process that runs fragments and adopts their orphans (see
# suite.processes): after each command, any descendant it left is killed,
# except the processes in _keep (say, the workers of the main process).
SWEEP_ORPHANS = False
_keep: frozenset[int] = frozenset()
# Set in a process that runs one command at a time from one thread (a
# forked worker): it may change its own working directory, so commands
# start with os.posix_spawn (see _spawn) rather than subprocess.Popen.
_SOLE_RUNNER = False


_slot_cpus: str | None = None
# A sole runner keeps one empty directory ready beside the work directories,
# made while a command runs: a testcase's fresh work directory is then a
# rename (0.02 ms here) instead of a mkdir (0.1-0.35 ms), at the moment when
# fragments end together and every slot wants the CPUs at once.
SPARE_PREFIX = ".spare-"
_spare: str | None = None


def pin_to(cpus: list[int] | None) -> None:
    """Pin this process (and the commands it starts) to ``cpus``; they see
    the list in SLOT_CPUS."""
    global _slot_cpus
    if cpus:
        os.sched_setaffinity(0, cpus)
    _slot_cpus = ",".join(map(str, cpus)) if cpus else None


def become_sole_runner() -> None:
    """Declare this process a worker that runs commands one at a time from
    a single thread: commands then start through posix_spawn, which costs
    less than half of Popen's time in the worker per command (Popen encodes
    the environment and searches PATH in Python). Descriptors this process
    inherited from outside (a jobserver's, say) are kept from commands, as
    Popen's close_fds would."""
    global _SOLE_RUNNER
    _SOLE_RUNNER = hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open")
    if not _SOLE_RUNNER:
        return
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:  # the descriptor of the listing itself, now closed
                pass


def adopt_orphans(keep: frozenset[int] = frozenset()) -> None:
    """Make this process reap what its commands leave behind."""
    global SWEEP_ORPHANS, _keep
    SWEEP_ORPHANS = become_subreaper()
    _keep = keep


class RunContext:
    """What a driver's ``run`` uses to execute a fragment's commands."""

    def __init__(self, fragment: Fragment, slot: int, on_output=None):
        self.fragment = fragment
        self.slot = slot
        self.records: list[CommandRecord] = []
        self.env = {**_base_environment(), **fragment.env}
        self.env["SLOT"] = str(slot)
        if _slot_cpus:
            self.env["SLOT_CPUS"] = _slot_cpus
        self.work_dir = fragment.work_dir
        self.capture = OutputCapture(fragment.log_path, fragment.keep_log, on_output)

    def run(self, command: Command) -> CommandRecord:
        """Run ``command`` in the work directory, capturing its output."""
        record = run_command(command, self.work_dir, self.env, self.capture)
        self.records.append(record)
        return record

    def output(self) -> bytes:
        """Everything this fragment's commands printed so far."""
        return self.capture.data()

    def output_sources(self) -> list[str | bytes]:
        """The testcase's output so far, in order, as log paths (earlier
        fragments, see ``Driver.combine_output``, and this one if large)
        or bytes: what a driver compares in bounded memory."""
        sources: list[str | bytes] = list(self.fragment.data.get("earlier_logs", ()))
        self.capture.flush()
        sources.append(self.capture.log_path if self.capture.spilled else self.capture.data())
        return sources

    def combined_output(self) -> bytes:
        """The testcase's whole output so far, in memory."""
        parts = []
        for source in self.output_sources():
            if isinstance(source, bytes):
                parts.append(source)
            else:
                with open(source, "rb") as handle:
                    parts.append(handle.read())
        return b"".join(parts)


_base_env: dict[str, str] | None = None


def _base_environment() -> dict[str, str]:
    """This process's environment, copied once: ``dict(os.environ)`` decodes
    every variable and cost more than the rest of a fragment's set-up."""
    global _base_env
    if _base_env is None:
        _base_env = dict(os.environ)
    return _base_env


def run_command(command: Command, cwd: str, env: dict, capture: OutputCapture) -> CommandRecord:
    """Run one command with its timeout; stdout and stderr go to ``capture``.

    The command leads a new session, so on timeout its whole process group
    is signalled: SIGTERM first, SIGKILL after ``KILL_GRACE``. Processes it
    left behind in its group, or that escaped it with setsid (see
    suite.processes), are killed when it ends, so none outlives its fragment.
    """
    argv = to_argv(command.cmd)
    start = time.monotonic()
    # Children we already have (a driver's own helpers) are not the
    # command's orphans, and are left alone by the sweep below.
    before = frozenset(children()) if SWEEP_ORPHANS else frozenset()
    try:
        if _SOLE_RUNNER:
            proc = _spawn(argv, cwd, env)
        else:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:
        capture.write(f"run-testsuite: cannot run {argv[0]!r}: {exc.strerror or exc}\n".encode())
        return CommandRecord(command.step, command.cmd, 127, time.monotonic() - start)
    _active.add(proc)
    if _SOLE_RUNNER:
        _make_spare(os.path.dirname(cwd))
    try:
        timed_out = not pump(proc, capture, start + command.timeout)
        if timed_out:
            kill_group(proc)
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the background
        if SWEEP_ORPHANS:
            kill_orphans(adopted_since=before, exclude=_keep)
        drain(proc.stdout, capture)
    except BaseException:  # Ctrl-C in this process: the command must not outlive us
        kill_group(proc)
        raise
    finally:
        _active.discard(proc)
        proc.stdout.close()
    return CommandRecord(
        command.step, command.cmd, proc.returncode, time.monotonic() - start, timed_out
    )


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
                    raise subprocess.TimeoutExpired(self.pid, timeout)
                time.sleep(0.01)
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


# Signals a command starts with at their defaults: those Popen restores
# (Python ignores SIGPIPE), and SIGINT, which workers ignore themselves.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ", "SIGINT") if hasattr(signal, name)
)


def _spawn(argv: list[str], cwd: str, env: dict) -> _Spawned:
    """Start ``argv`` in ``cwd`` as Popen would in run_command (new session,
    stdin from /dev/null, stdout and stderr into one pipe), by posix_spawn.

    posix_spawn has no working-directory action: this process moves there
    itself for the moment of the call, which only a sole runner (see
    become_sole_runner) may do.
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
    try:
        pid = spawn(
            program,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
        os.chdir(home)
    return _Spawned(pid, read_end)


# A command string made only of these characters and spaces means the same
# to sh as its words split on blanks, so it can be run without a shell.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+( +[A-Za-z0-9_@%+=:,./-]+)*")
# Words sh handles itself, with no program of that name to run instead.
_SHELL_WORDS = frozenset(
    "! { } . : alias bg break case cd command continue do done elif else esac eval exec exit "
    "export fc fg fi for getopts hash if in jobs local read readonly return set shift source "
    "then time times trap type ulimit umask unalias unset until wait while".split()
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


def pump(proc: subprocess.Popen, capture: OutputCapture, deadline: float) -> bool:
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
            wait_ms = remaining * 1000 if pidfd is not None or pipe_open else min(remaining, 0.05) * 1000
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


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until ``proc`` exits or ``timeout`` passes; True if it exited."""
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


def _make_spare(root: str) -> None:
    """Have an empty directory ready in ``root`` (see SPARE_PREFIX)."""
    global _spare
    if _spare is None:
        path = os.path.join(root, f"{SPARE_PREFIX}{os.getpid()}")
        try:
            os.mkdir(path)
        except OSError:  # taken (say, left by a dead worker with our pid)
            return
        _spare = path


def _take_spare(target: str) -> bool:
    """Make ``target`` a fresh empty directory from the spare, if one is
    ready beside it (False: do it the usual way)."""
    global _spare
    spare, _spare = _spare, None
    if spare is None:
        return False
    if os.path.dirname(spare) == os.path.dirname(target):
        try:
            os.rename(spare, target)  # also replaces an empty directory there
            return True
        except OSError:  # a stale tree there, say: the usual way deals with it
            pass
    _remove_empty(spare)
    return False


def discard_spare() -> None:
    """Remove this process's spare directory (a worker's, when it stops)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        _remove_empty(spare)


def _remove_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:  # gone, or not empty: not a spare of ours to remove
        pass


def remove_spares(root: str) -> None:
    """Remove spare directories left in ``root`` by workers that died."""
    try:
        names = [name for name in os.listdir(root) if name.startswith(SPARE_PREFIX)]
    except OSError:
        return
    for name in names:
        _remove_empty(os.path.join(root, name))


def prepare_work_dir(source: str | None, target: str, private: tuple[str, ...] = ()) -> None:
    """Make ``target`` a fresh copy of the testcase directory ``source``.

    Left out: the framework's own files (``private``: the spec, a baseline),
    nested testcase directories (they belong to other testcases),
    hidden entries (version control), and any directory holding the copy
    being made or a run's output (an output directory inside a testcase).
    Symbolic links are kept as links; a relative one that points outside
    the testcase is re-aimed at its target in the suite, so it still
    resolves from the copy.
    """
    try:
        if not _take_spare(target):
            os.mkdir(target)
    except FileExistsError:  # a retry, or a stale tree from an earlier run
        shutil.rmtree(target)
        os.mkdir(target)
    except FileNotFoundError:  # names with '/' or a work root not made yet
        os.makedirs(target)
    if source is None:
        return
    skip = {os.path.join(source, name) for name in private}
    _copy_entries(source, target, source, os.path.realpath(target), skip)


def _copy_entries(src: str, dst: str, top: str, real_target: str, skip: set[str]) -> None:
    for entry in os.scandir(src):
        if entry.name.startswith(".") or entry.path in skip:
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
            _copy_entries(entry.path, dest, top, real_target, skip)
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


def execute(fragment: Fragment, slot: int, on_output=None) -> Outcome:
    """Run a fragment with its driver; never raises.

    ``on_output``, if given, sees the output as it arrives (for --tee)."""
    from drivers import load_reference

    start = time.time()
    began = time.monotonic()
    ctx = None
    try:
        if fragment.prepare:
            if not fragment.source_dir:  # a set-up: a fresh, empty directory
                prepare_work_dir(None, fragment.work_dir)
            elif not os.path.isdir(fragment.source_dir):
                raise FileNotFoundError(f"testcase directory {fragment.source_dir} is not visible here")
            else:
                prepare_work_dir(fragment.source_dir, fragment.work_dir, fragment.private_files)
        ctx = RunContext(fragment, slot, on_output)
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
        ctx.capture.keep_if_not_text()
        ctx.capture.close()
        outcome.commands = ctx.records
        if not outcome.output:
            outcome.output = ctx.capture.summary()
        outcome.log_files = ctx.capture.log_files()
    return outcome
