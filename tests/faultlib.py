"""Helpers for the fault-injection and stress tests (test_faults, test_stress).

Every process a fault test creates can be found again by a *marker*: a
unique string that appears in the command line of the run itself (the
suite root's directory name holds it, so the main process and its forked
workers carry it in their argv), in the command line of every helper
process (``proc.py MARKER ...``), and in the environment of every command
(suite.yaml sets ``FAULT_MARKER``), which ``sleep`` and other programs
inherit. ``marked_processes`` scans ``/proc/*/cmdline`` (and, to catch
programs whose argv we do not control, ``/proc/*/environ``) for it; a
process is never picked by name.

The helper programs are written into each suite (``_bin/proc.py``,
``_bin/talk.py``, ``_drivers/faulty.py``) so that testcases reach them with
``$TEST_SUITE_ROOT`` and the tests need nothing outside the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from conftest import PYTHON, cli_argv, cli_env, process_alive, wait_for

# A helper process: sleeps, ignores SIGTERM, leaves children behind in its
# process group or as a setsid'ed daemon, writes pid files. The marker is
# its first argument, so it shows in /proc/PID/cmdline of every copy
# (forked children keep the parent's argv).
PROC_PY = r'''
import argparse, os, signal, sys, time

p = argparse.ArgumentParser()
p.add_argument("marker")
p.add_argument("--ignore-term", action="store_true")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--pidfile")
p.add_argument("--exit", type=int, default=0)
p.add_argument("--print", default="")
p.add_argument("--spawn", choices=["bg", "daemon"])
p.add_argument("--child-sleep", type=float, default=60.0)
p.add_argument("--child-ignore-term", action="store_true")
p.add_argument("--child-pidfile")
p.add_argument("--child-keep-stdio", action="store_true")
a = p.parse_args()


def write_pid(path):
    if path:
        with open(path + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.rename(path + ".tmp", path)


def child_life():
    if a.child_ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not a.child_keep_stdio:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    write_pid(a.child_pidfile)
    time.sleep(a.child_sleep)
    os._exit(0)


def wait_file(path):
    if not path:
        return
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


if a.ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if a.spawn == "bg":  # a child in our process group
    if os.fork() == 0:
        child_life()
    wait_file(a.child_pidfile)
elif a.spawn == "daemon":  # the classic double fork: escapes the group and session
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            child_life()
        os._exit(0)
    os.waitpid(first, 0)
    wait_file(a.child_pidfile)
write_pid(a.pidfile)
if a.print:
    sys.stdout.write(a.print + "\n")
    sys.stdout.flush()
time.sleep(a.sleep)
sys.exit(a.exit)
'''

# Prints numbered, self-checking lines quickly, or lines in pieces with
# pauses between them (for --tee).
TALK_PY = r'''
import os, sys, time

tag, lines, mode = sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = sys.stdout.buffer
for i in range(lines):
    line = f"{tag}:{i:06d}:" + "abcdefghij" * (i % 13) + ":end\n"
    if mode == "pieces":
        for at in range(0, len(line), 7):
            out.write(line[at:at + 7].encode())
            out.flush()
            time.sleep(0.002)
    else:
        out.write(line.encode())
        if i % 50 == 0:
            out.flush()
out.flush()
'''

# A suite driver that misbehaves on request, per testcase `options.how`:
# exit: os._exit(3); segv: a NULL read (SIGSEGV, faulthandler's last words);
# sigkill: SIGKILL to its own process (the OOM killer); hang: never return;
# raise-run / raise-fragments: a driver bug; anything else: a normal run.
FAULTY_DRIVER_PY = r'''
import ctypes
import os
import signal
import time

from run_testsuite.api import Driver


class FaultyDriver(Driver):
    def fragments(self, test):
        how = test.spec.get("options", {}).get("how", "none")
        if how == "raise-fragments":
            raise RuntimeError("injected fault in fragments()")
        fragments = super().fragments(test)
        for fragment in fragments:
            fragment.data["how"] = how
        return fragments

    def run(self, fragment, ctx):
        how = fragment.data["how"]
        if how == "exit":
            os._exit(3)
        if how == "segv":
            ctypes.string_at(0)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "hang":
            time.sleep(3600)
        if how == "raise-run":
            raise RuntimeError("injected fault in run()")
        return super().run(fragment, ctx)
'''


def new_marker() -> str:
    return f"rtsfault{uuid.uuid4().hex[:16]}"


def suite_root(tmp_path: Path, marker: str) -> Path:
    """The suite directory: its name carries the marker, so the run's own
    processes (main and workers, whose argv holds ROOT) carry it too."""
    return tmp_path / f"suite-{marker}"


def helper_files(marker: str, driver: bool = True) -> dict:
    """Files for write_suite: the helpers and a suite.yaml exporting the marker."""
    files = {
        "_bin/proc.py": PROC_PY,
        "_bin/talk.py": TALK_PY,
        "suite.yaml": (
            "name: faults\n"
            f"defaults:\n  env: {{FAULT_MARKER: {marker}}}\n"
            + ("drivers:\n  faulty: _drivers/faulty.py:FaultyDriver\n" if driver else "")
        ),
    }
    if driver:
        files["_drivers/faulty.py"] = FAULTY_DRIVER_PY
    return files


def proc_cmd(marker: str, *args) -> str:
    """A shell command running the helper process with ``args``; ``exec``
    makes the helper the command's leader (sh does not do it by itself)."""
    return " ".join(["exec", PYTHON, "-S", '"$TEST_SUITE_ROOT/_bin/proc.py"', marker, *map(str, args)])


def talk_cmd(marker: str, tag: str, lines: int, mode: str = "fast") -> str:
    return " ".join([PYTHON, "-S", '"$TEST_SUITE_ROOT/_bin/talk.py"', marker, tag, str(lines), mode])


# -- finding processes -------------------------------------------------------------
def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def marked_processes(marker: str) -> dict[int, str]:
    """Live processes (zombies excluded) with ``marker`` in their command
    line or environment: {pid: command line}."""
    needle = marker.encode()
    found = {}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        cmdline = _read(f"/proc/{name}/cmdline")
        if needle in cmdline or needle in _read(f"/proc/{name}/environ"):
            if process_alive(int(name)):
                found[int(name)] = cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return found


def survivors(marker: str, within: float = 3.0) -> dict[int, str]:
    """Marked processes still alive after waiting up to ``within`` seconds
    for them to go (a killed process takes a moment to be reaped)."""
    left: dict[int, str] = {}

    def gone() -> bool:
        left.clear()
        left.update(marked_processes(marker))
        return not left

    wait_for(gone, within, interval=0.05)
    return dict(left)


def kill_marked(marker: str) -> int:
    """SIGKILL every marked process (clean-up after a failed test)."""
    pids = marked_processes(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


def pid_alive(path: Path) -> bool:
    """Whether the process whose pid is in file ``path`` still runs."""
    return path.exists() and process_alive(int(path.read_text()))


# -- running the command line --------------------------------------------------------
def _sigint_default() -> None:
    # Jobs a non-interactive shell starts in the background inherit SIGINT
    # ignored: give the run the disposition a terminal user's run has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launched:
    """A run of the command line started in the background; its stdout and
    stderr go to files (never a pipe: forked workers inherit the main
    process's stdout, and a pipe would block a reader after a ``kill -9``)."""

    def __init__(self, root, out, *args, env=None, names=(), own_group=False, argv=None):
        self.out = Path(out)
        self.stdout_path = self.out.parent / f"{self.out.name}.stdout"
        self.stderr_path = self.out.parent / f"{self.out.name}.stderr"
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                argv or cli_argv(root, out, *args, names=names),
                cwd=self.out.parent,
                env=cli_env(env),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                preexec_fn=_sigint_default,
                process_group=0 if own_group else None,
            )
        self.ended: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 120) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the run did not end within {timeout} s\n{self.stdout}\n{self.stderr}") from None
        self.ended = time.monotonic()
        return code

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def result_files(out) -> list[Path]:
    return sorted((Path(out) / "new" / "results").glob("*.json"))


def assert_one_result_each(index: dict, out, names) -> None:
    """Every testcase has exactly one index entry and one result file, and
    nothing else has any."""
    listed = [entry["name"] for entry in index["results"]]
    duplicated = sorted({name for name in listed if listed.count(name) > 1})
    assert not duplicated, f"testcases with several results: {duplicated}"
    missing = sorted(set(names) - set(listed))
    assert not missing, f"testcases without a result (lost): {missing}"
    extra = sorted(set(listed) - set(names))
    assert not extra, f"results for unknown testcases: {extra}"
    files = {p.name for p in result_files(out)}
    referenced = {Path(entry["result"]).name for entry in index["results"]}
    assert files == referenced, (
        f"result files without an index entry: {sorted(files - referenced)}; "
        f"index entries without a file: {sorted(referenced - files)}"
    )


def tree_state(root) -> dict:
    """Every path under ``root`` with its kind, size and mtime (links: target)."""
    root = Path(root)
    state = {".": ("dir", None, os.lstat(root).st_mtime_ns)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = os.lstat(path)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                state[rel] = ("link", os.readlink(path), info.st_mtime_ns)
            elif path.is_dir():
                state[rel] = ("dir", None, info.st_mtime_ns)
            else:
                state[rel] = ("file", info.st_size, info.st_mtime_ns, oct(info.st_mode))
    return state


__all__ = [
    "Launched", "PYTHON", "assert_one_result_each", "helper_files", "kill_marked", "marked_processes",
    "new_marker", "pid_alive", "proc_cmd", "result_files", "suite_root", "survivors", "talk_cmd",
    "tree_state", "wait_for",
]
