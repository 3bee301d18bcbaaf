"""Where a run writes, checked and claimed before anything runs.

A run that cannot write its results must say so before the first
testcase, not after the last: the output directory, the work directory
and a ``--junit-xml`` file are checked first (a usage error, exit 2).

One run at a time per output directory, and per work directory where
``--work-dir`` puts it outside the output directory.

Two runs writing one output directory rotate each other's ``new/`` away
and mix their results. A run therefore holds ``OUTPUT/.lock`` with
``flock`` for its whole life: the kernel drops the lock when the process
that holds it is gone, however it ends (``kill -9`` included), so a lock
is never left stale. The file says who holds it, for the message of the
run that is refused. ``report`` asks the same lock before it rewrites an
index: a run still going owns its index.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

LOCK_FILE = ".lock"
# Left in a work directory's root by the run that made it: what its tests
# wrote there (a test.yaml, say) does not make it a suite's directory.
WORK_MARK = ".run-testsuite-work"

# The locks of this process's run, by directory (its device and inode: a
# work directory may be the output directory by another path): open for as
# long as the process lives.
_held: dict[tuple[int, int], int] = {}


class OutputBusy(Exception):
    """Another run holds the output directory."""


def lock_output(output_dir: str) -> None:
    """Take the output directory for this run, or raise OutputBusy; an
    OSError says the directory cannot be made or written."""
    _lock(output_dir, "wait for it to end, or give another --output-dir")


def _lock(directory: str, advice: str) -> None:
    """Hold ``DIRECTORY/.lock`` for this run, or raise OutputBusy naming
    the run that holds it."""
    os.makedirs(directory, exist_ok=True)
    info = os.stat(directory)
    if (info.st_dev, info.st_ino) in _held:
        return
    path = os.path.join(directory, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise OutputBusy(f"{directory} is in use by another run ({holder}): {advice}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    _held[(info.st_dev, info.st_ino)] = fd


def running_in(output_dir: str) -> str | None:
    """Who runs in ``output_dir`` now ("pid 123, started ..."), or None."""
    try:
        fd = os.open(os.path.join(output_dir, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def check_writable_file(path: str, what: str) -> None:
    """Whether a report file can be written at ``path``: its directory
    exists and takes a new file. Raises OSError with a plain message."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise OSError(f"{what} {path} is a directory")
    if not os.path.isdir(directory):
        raise OSError(f"{what} {path}: no directory {directory}")
    try:
        _probe(directory, os.path.basename(path))
    except OSError as exc:
        raise OSError(f"{what} {path} cannot be written: {exc.strerror}") from None


def _probe(directory: str, name: str) -> None:
    """Create and remove a file in ``directory``: access() says yes to root
    on a read-only file system, so writing is tried."""
    probe = os.path.join(directory, f".{name}.{os.getpid()}.probe")
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    os.unlink(probe)


def claim_outputs(output_dir: str, work_dir: str, report_files: dict[str, str | None]) -> None:
    """Lock the output directory, make sure the work directory can be made
    and each report file (what -> path) written; OutputBusy or OSError
    with a message for the user otherwise."""
    for what, path in report_files.items():
        if path and path != "-":
            check_writable_file(path, what)
    try:
        lock_output(output_dir)
    except OSError as exc:
        raise OSError(f"output directory {output_dir} cannot be written: {exc.strerror or exc}") from None
    inside = os.path.join(output_dir, "new") + os.sep
    if not (work_dir + os.sep).startswith(inside):  # there: made by the run, under the lock
        try:
            os.makedirs(work_dir, exist_ok=True)
            _probe(work_dir, "work")
            # Elsewhere, its own lock: two runs of one --work-dir (and two
            # -o) removed each other's testcases' directories mid-run.
            _lock(work_dir, "give each run its own --work-dir")
        except OSError as exc:
            raise OSError(f"work directory {work_dir} cannot be written: {exc.strerror or exc}") from None


def mark_work_dir(work_dir: str) -> None:
    """Say that ``work_dir`` is a run's (see WORK_MARK); a file that cannot
    be made only costs the next run a look inside."""
    try:
        with open(os.path.join(work_dir, WORK_MARK), "a"):
            pass
    except OSError:
        pass


def read_cache(path: str, what: str) -> Any:
    """The JSON of a cache the run keeps in its output directory, or None:
    missing, or unreadable (set aside, with a warning, for a look). A test
    can write there, so anything may be in it, a file nested too deep for
    the decoder too."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        set_aside(path, f"the {what} cannot be read ({exc})")
        return None


def set_aside(path: str, why: str) -> None:
    """Rename a file the run cannot use to ``PATH.corrupt-TIME`` (kept for
    a look), with a warning; the run goes on without it."""
    aside = stem = f"{path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
    number = 1
    while os.path.lexists(aside):  # one set aside this second already: keep both
        number += 1
        aside = f"{stem}-{number}"
    try:
        os.replace(path, aside)
        done = f"set aside as {os.path.basename(aside)}"
    except OSError as exc:
        done = f"and cannot be set aside ({exc.strerror}); ignored"
    print(f"run-testsuite: warning: {path}: {why}; {done}", file=sys.stderr)
