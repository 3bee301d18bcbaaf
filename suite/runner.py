"""What this process is, as a runner of commands: one state object.

A process that runs fragments (a forked worker, the main process with
``--no-multiprocessing``, a Dask worker) declares what it may do once, at
its start; ``commands``, ``workdir`` and ``context`` read it from here.
"""

from __future__ import annotations

import os

from run_testsuite.processes import become_subreaper

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


class RunnerState:
    """This process's role in running commands, and what it holds.

    A plain class: a dataclass cost 0.6 ms of every run's start here.
    """

    def __init__(self) -> None:
        # A forked worker runs one command at a time from one thread: it may
        # change its own working directory, so commands start with posix_spawn.
        self.sole_runner = False
        # After each command, kill the orphans it left (this process adopts
        # them), except the processes in ``keep`` (a host program's own).
        self.sweep_orphans = False
        self.keep: frozenset[int] = frozenset()
        # With --cpus-per-slot: the CPUs this process is pinned to, as
        # commands see them in SLOT_CPUS.
        self.slot_cpus: str | None = None
        # Empty directories made or kept while a command runs: the next
        # testcases' work directories (see workdir.SPARE_PREFIX).
        self.spares: list[str] = []
        self.spares_made = 0
        # Commands running now, so a signal handler can stop them.
        self.active: set[Any] = set()
        # Told of each command's process group as it starts and ends: on a
        # Dask worker, the guard that kills them if the worker dies.
        self.watch: Any = None
        # Work directories of passed testcases to remove (see workdir.discard).
        self.discard: list[str] = []
        self._base_env: dict[str, str] | None = None

    def base_environment(self) -> dict[str, str]:
        """This process's environment, copied once: ``dict(os.environ)``
        decodes every variable and cost more than the rest of a fragment's
        set-up."""
        if self._base_env is None:
            self._base_env = dict(os.environ)
        return self._base_env


STATE = RunnerState()


def pin_to(cpus: list[int] | None) -> None:
    """Pin this process (and the commands it starts) to ``cpus``; they see
    the list in SLOT_CPUS."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    STATE.slot_cpus = ",".join(map(str, cpus)) if cpus else None


def become_sole_runner() -> None:
    """Declare this process a worker that runs commands one at a time from
    a single thread: commands then start through posix_spawn, which costs
    less than half of Popen's time in the worker per command (Popen encodes
    the environment and searches PATH in Python). Descriptors this process
    inherited from outside (a jobserver's, say) are kept from commands, as
    Popen's close_fds would."""
    STATE.sole_runner = hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open")
    if not STATE.sole_runner:
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
    STATE.sweep_orphans = become_subreaper()
    STATE.keep = keep


def slot_cpu_sets(jobs: int, per_slot: int | None) -> dict[int, list[int]]:
    """Disjoint CPU sets, one per slot, for --cpus-per-slot."""
    from run_testsuite.plan import UsageError

    if not per_slot:
        return {}
    cpus = sorted(os.sched_getaffinity(0))
    sets = len(cpus) // per_slot
    if jobs > sets:
        raise UsageError(
            f"-j {jobs} slots with {per_slot} CPU{'s' if per_slot > 1 else ''} each need "
            f"{jobs * per_slot} CPUs; this process may use {len(cpus)} ({','.join(map(str, cpus))})"
        )
    return {slot: cpus[(slot - 1) * per_slot : slot * per_slot] for slot in range(1, jobs + 1)}
