"""Workers: what runs fragments for a slot of the scheduler.

The scheduler owns one Worker per slot and reuses it for every fragment the
slot runs. A worker is driven through four calls: ``submit`` a fragment,
``waitables`` to block on, ``events`` to collect what finished, ``stop``.
Subclasses: ``local.ProcessWorker`` (a forked process, the default),
``local.InlineWorker`` (``--no-multiprocessing``) and
``dask_worker.DaskWorker`` (``--dask``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from run_testsuite.commands import KILL_GRACE
from run_testsuite.fragment import Fragment
from run_testsuite.results import Outcome

# Extra seconds a worker gets past a fragment's own timeouts before the
# scheduler decides the worker itself is stuck (a driver in an endless loop).
WATCHDOG_MARGIN = 30.0

Event = tuple[int, "Outcome | None"]
# Called with (job, bytes) as a running fragment prints (--tee).
OutputHook = Callable[[int, bytes], None]


def allowance(fragment: Fragment) -> float:
    """Seconds a fragment may run before the watchdog acts: its commands'
    timeouts, a kill grace each, and a margin for the driver's own work."""
    return fragment.budget + KILL_GRACE * len(fragment.commands) + WATCHDOG_MARGIN


class Worker(ABC):
    """Runs fragments for one slot, one at a time.

    A worker that ``takes_ahead`` may also hold the slot's next fragment,
    sent while the current one runs (see ``submit``): it starts that one the
    moment the current one ends, without waiting a round trip to the main
    process for it.
    """

    # How many slots this kind of worker can fill at once.
    max_slots: int | None = None
    takes_ahead = False

    def __init__(
        self,
        slot: int,
        on_output: OutputHook | None = None,
        stderr_dir: str | None = None,
        cpus: list[int] | None = None,
    ):
        self.slot = slot
        self.on_output = on_output
        self.stderr_dir = stderr_dir
        self.cpus = cpus  # pinned to these CPUs, with its commands
        self.job: int | None = None  # the fragment in flight, if any
        self.deadline: float | None = None
        # When the fragment in flight began (wall clock), as near as this
        # process knows: an interrupted one still has its bar in the timeline.
        self.began: float | None = None
        # The fragment sent ahead, to start when ``job`` ends, and the
        # seconds its deadline will allow.
        self.queued: tuple[int, float] | None = None
        self.withdrawing = False
        # Bumped when the worker is replaced: its new descriptors may reuse
        # the old numbers, and must be registered again all the same.
        self.generation = 0

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def free_ahead(self) -> bool:
        """True when a fragment may be sent ahead to this worker now."""
        return self.takes_ahead and self.job is not None and self.queued is None

    def submit(self, job: int, fragment: Fragment) -> None:
        """Hand over a fragment: to run now, or, to a busy worker that
        ``free_ahead``, to run next."""
        seconds = allowance(fragment)
        if self.job is None:
            self.job = job
            self.deadline = time.monotonic() + seconds
            self.began = time.time()
        else:
            self.queued = (job, seconds)
            self.withdrawing = False
        self._send(job, fragment)

    def withdraw(self) -> None:
        """Ask the worker not to start the fragment sent ahead. It comes
        back as an event without an outcome, unless it had started."""
        if self.queued is not None and not self.withdrawing:
            self.withdrawing = True
            self._withdraw(self.queued[0])

    def _withdraw(self, job: int) -> None:
        raise NotImplementedError

    @abstractmethod
    def _send(self, job: int, fragment: Fragment) -> None: ...

    def waitables(self) -> list:
        """File descriptors to block on; none for a worker that finishes
        fragments synchronously in ``submit``."""
        return []

    @abstractmethod
    def events(self) -> list[Event]:
        """Finished fragments, without blocking. A fragment given back
        unrun (withdrawn, or sent ahead to a worker that died) comes with
        None for its outcome."""

    def expire(self) -> list[Event]:
        """Called when the fragment in flight passed its deadline."""
        return []

    def release(self) -> None:
        """Say no more fragments will come, without waiting (see ``stop``)."""

    def stop(self) -> None:
        """Finish: no more fragments will come; wait until the worker is gone."""

    def interrupt(self) -> None:
        """Stop the fragment in flight (its commands get SIGTERM, then SIGKILL)."""

    def kill(self) -> None:
        """Stop at once, without grace."""

    def _finish(self) -> int:
        """The fragment in flight is over; the one sent ahead, if any, is
        now in flight (its deadline counted from now)."""
        job = self.job
        if self.queued is not None:
            self.job, seconds = self.queued
            self.deadline = time.monotonic() + seconds
            self.began = time.time()
            self.queued = None
            self.withdrawing = False
        else:
            self.job = self.deadline = None
        assert job is not None, "a worker finished a fragment it did not hold"
        return job
