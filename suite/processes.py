"""Keeping track of every process a fragment starts, so none outlives it.

Killing a command's process group misses descendants that called
``setsid()`` (daemons, ``nohup ... &`` under some shells). A worker therefore
makes itself a *child subreaper*: orphans of the commands it runs are
reparented to it instead of to init, where it can find and kill them after
each command. Workers also ask the kernel to signal them when the main
process dies, so a ``kill -9`` of the run leaves no worker behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable

# The signals that stop a run as Ctrl-C does (session.Interrupts): held
# across a fork, and set back to their defaults in a helper child.
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def become_subreaper(on: bool = True) -> bool:
    """Adopt orphaned descendants, or stop (Linux); True when it worked."""
    return _prctl is not None and _prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Get ``sig`` when the process that started us dies (Linux)."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    # The parent may have died before prctl took effect.
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def children(pid: int | str = "self") -> list[int]:
    """Direct children of ``pid``, from /proc (every thread's)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(p) for p in handle.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int | str = "self") -> list[int]:
    """Every process below ``pid``, parents before their children."""
    result = []
    stack = children(pid)
    while stack:
        child = stack.pop()
        result.append(child)
        stack.extend(children(child))
    return result


def kill_orphans(adopted_since: frozenset[int], exclude: frozenset[int] = frozenset(), rounds: int = 20) -> int:
    """SIGKILL the children this process gained since ``adopted_since`` was
    taken (orphans reparented to it), with their descendants; reap them.

    Children in ``adopted_since`` or ``exclude``, and what lies below them,
    are left alone. Repeats for a short while: a dying process's own
    children are reparented to us only as it exits. Returns how many were
    killed.
    """
    killed = 0
    spared = adopted_since | exclude
    for _ in range(rounds):
        victims = []
        for child in children():
            if child not in spared:
                victims.append(child)
                victims.extend(descendants(child))
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        reap(victims)
        time.sleep(0.005)
    return killed


def reap(pids: list[int]) -> None:
    """Collect exit statuses of our own children among ``pids``."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
