"""What a Dask worker leaves behind when it is killed: nothing.

A Dask worker process killed in the middle of a fragment (``kill -9``, the
OOM killer, a nanny restarting it) cannot stop the commands it started:
they lead sessions of their own, so they live on, orphans still writing
into the testcase's work directory, while Dask runs the task again on
another worker, in that same directory.

Two things close that:

- a **guard**: each Dask worker process that runs fragments starts one
  small helper process and tells it, through a pipe, the process group of
  each command as it starts and ends. When the worker dies, the kernel
  closes the pipe; the guard SIGKILLs every group still registered, waits
  until they are gone, then releases the worker's leases;
- a **lease** per work directory (``WORK/.lease-NAME``, holding the host
  and process that runs a fragment there): a fragment starts only once it
  holds its directory's lease, which appears whole (drafted, then linked
  into place). One left by a dead worker is released by its guard once the
  orphans are dead (only if it still names that worker); the next attempt
  waits for that. A holder alive on this host is waited for as long as it
  lives (the run's watchdog bounds that); one whose process and guard are
  both gone is taken over at once; one of another host, which cannot be
  asked, or one that cannot be read, after LEASE_WAIT (the commands of a
  lost host do not write any more). A lease is taken over by renaming it
  away first, so that of two waiters only one can.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

# Longest a fragment waits for a lease left by a worker that died.
LEASE_WAIT = 30.0
# Longest the guard waits for killed groups to be gone before releasing.
KILL_WAIT = 10.0
LEASE_PREFIX = ".lease-"
DRAFT = ".draft-"  # in a draft's name, never in a lease's (see take_lease)

_lock = threading.Lock()
_guard: subprocess.Popen | None = None


def guard_fd() -> int | None:
    """The pipe to this process's guard, started at the first call."""
    global _guard
    with _lock:
        if _guard is None or _guard.poll() is not None:
            try:
                _guard = subprocess.Popen(
                    # The worker's pid in the command line: see _guard_of_alive.
                    [
                        sys.executable,
                        "-c",
                        "from run_testsuite.workers.dask_guard import serve; serve()",
                        str(os.getpid()),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                    start_new_session=True,  # not in the worker's group: it must outlive it
                )
            except OSError:
                return None
        assert _guard.stdin is not None
        return _guard.stdin.fileno()


def tell(message: str) -> None:
    """One line to the guard: ``+PGID``/``-PGID`` as a command starts and
    ends, ``L PATH``/``U PATH`` as a lease is taken and released. One
    write, under PIPE_BUF bytes: lines of concurrent tasks never mix."""
    fd = guard_fd()
    if fd is not None:
        try:
            os.write(fd, (message + "\n").encode("utf-8", "surrogateescape"))
        except OSError:
            pass


class CommandWatch:
    """What commands.run_command tells of each command it starts."""

    def started(self, pgid: int) -> None:
        tell(f"+{pgid}")

    def ended(self, pgid: int) -> None:
        tell(f"-{pgid}")


def lease_path(work_dir: str) -> str:
    return os.path.join(os.path.dirname(work_dir), LEASE_PREFIX + os.path.basename(work_dir))


def take_lease(work_dir: str, wait: float = LEASE_WAIT) -> str:
    """Hold ``work_dir``'s lease, waiting while another worker's (alive, or
    dead and not yet cleaned up by its guard) holds it. Returns its path.

    The lease appears whole or not at all: it is written to a draft of this
    thread's own, then hard-linked into place (a link fails when the name
    is taken, as an exclusive create does). Created first and written
    after, a worker killed in between left an empty lease that named
    nobody, so no guard released it and every later attempt waited on it
    for ever (a run that hung, seen once in 1,100 tests under CI's load)."""
    path = lease_path(work_dir)
    me = f"{socket.gethostname()} {os.getpid()}\n"
    draft = f"{path}{DRAFT}{os.getpid()}-{threading.get_ident()}"
    deadline = time.monotonic() + wait
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Told first: if this worker dies from here on, its guard removes the
    # draft, and the lease too once it names this worker.
    tell(f"L {draft}")
    tell(f"L {path}")
    with open(draft, "w", encoding="utf-8") as handle:
        handle.write(me)
    try:
        while not _link(draft, path, me):
            holder = _holder(path)
            # An unreadable lease (not one of ours) is waited for like one of
            # another host: it cannot be asked whether its holder lives.
            if holder == "gone" or (holder in ("elsewhere", "unknown") and time.monotonic() >= deadline):
                _take_over(path)
                continue
            time.sleep(0.05)
    finally:
        _unlink(draft)
        tell(f"U {draft}")
    return path


def _link(draft: str, path: str, me: str) -> bool:
    """Put the lease at ``path`` if the name is free; False if it is taken.
    Where the file system has no hard links, an exclusive create and a
    write stand in (an empty lease left by a death in between is then
    taken over after the wait, as an unreadable one)."""
    try:
        os.link(draft, path)
        return True
    except FileExistsError:
        # On NFS a link the server made may be retried and fail: the draft's
        # link count says whether it went (open(2), O_EXCL).
        try:
            return os.stat(draft).st_nlink == 2 and _same_file(draft, path)
        except OSError:
            return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(me)
    return True


def release_lease(path: str) -> None:
    _unlink(path)
    tell(f"U {path}")


def _same_file(one: str, other: str) -> bool:
    first, second = os.stat(one), os.stat(other)
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _holder(path: str) -> str:
    """Who holds a lease: ``alive`` (a process of this host, or its guard,
    still at work), ``gone`` (both dead), ``elsewhere`` (another host's,
    which cannot be asked), or ``unknown`` (unreadable, or gone between the
    failed link and this read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            host, pid_text = handle.read().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return "unknown"
    if host != socket.gethostname():
        return "elsewhere"
    try:
        os.kill(pid, 0)
        return "alive"
    except ProcessLookupError:
        pass
    except OSError:  # another user's process: alive
        return "alive"
    return "alive" if _guard_of_alive(pid) else "gone"


def _take_over(path: str) -> None:
    """Remove a stale lease so that only one waiter can: renamed away
    first (only one rename of it succeeds), then deleted."""
    tombstone = f"{path}.stale-{os.getpid()}-{threading.get_ident()}"
    try:
        os.rename(path, tombstone)
    except OSError:
        return  # another waiter took it over first
    _unlink(tombstone)


def _guard_of_alive(pid: int) -> bool:
    """Whether a guard started by process ``pid`` still runs (it releases
    that process's leases once its orphans are dead)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc to look in: only the wait frees it
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")
        except OSError:
            continue
        if any(b"run_testsuite.workers.dask_guard" in w for w in words) and str(pid).encode() in words:
            return True
    return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def serve() -> None:
    """The guard: follow the worker's commands and leases; when its pipe
    closes (the worker is gone), kill what still runs, then release the
    leases that still name the worker (argv[1] is its pid)."""
    worker = f"{socket.gethostname()} {sys.argv[1] if len(sys.argv) > 1 else ''}"
    drafts = re.compile(re.escape(DRAFT) + re.escape(sys.argv[1] if len(sys.argv) > 1 else "?") + r"-\d+$")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    leases: set[str] = set()
    buffered = b""
    while chunk := os.read(0, 1 << 16):
        *lines, buffered = (buffered + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "surrogateescape")
            if line.startswith("+"):
                groups.add(int(line[1:]))
            elif line.startswith("-"):
                groups.discard(int(line[1:]))
            elif line.startswith("L "):
                leases.add(line[2:])
            elif line.startswith("U "):
                leases.discard(line[2:])
    for pgid in groups:
        _kill_group(pgid)
    deadline = time.monotonic() + KILL_WAIT
    while groups and time.monotonic() < deadline:
        groups = {pgid for pgid in groups if _group_alive(pgid)}
        time.sleep(0.01)
    for path in leases:
        if drafts.search(path):  # the worker's own draft, empty if it died writing it
            _unlink(path)
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                mine = handle.read().strip() == worker
        except OSError:
            continue
        if mine:  # another worker may hold it by now
            _unlink(path)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies aside: the
    worker's death handed them to a reaper that waits for them)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False
