"""``DaskWorker``: one slot of the scheduler, filled with fragments run on a
Dask cluster (see ``dask_cluster`` for the connection and the model).

How a slot wakes the scheduler: each DaskWorker owns a pipe, registered in
the scheduler's selector. A coroutine on the Dask client's event loop
waits for the slot's future, gathers its result, stores it and writes one
byte; ``events`` drains the pipe and hands the result over. The main loop
still blocks in its one selector and never polls, nor waits for the network.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
from concurrent.futures import CancelledError
from typing import Any  # Dask imports typing anyway

from run_testsuite.commands import KILL_GRACE
from run_testsuite.fragment import Fragment
from run_testsuite.results import Outcome, Reason, Status
from run_testsuite.workers.base import Event, Worker, allowance
from run_testsuite.workers.dask_cluster import GATHER_TIMEOUT, DaskCluster, one_line
from run_testsuite.workers.dask_tasks import run_fragment


class DaskWorker(Worker):
    """Fills one slot with fragments run on a Dask cluster, one future at a time.

    Each future is followed on the client's event loop by a coroutine that
    waits for it and gathers its result (the gathers of all slots go on at
    once there, batched by Dask); only then is the slot's pipe written, so
    ``events`` never waits for the network. (A done-callback waking the
    slot, and ``future.result()`` in ``events``, cost a network round trip
    per fragment in the main loop, one after the other: 4.4 ms of the
    7.4 ms per fragment in a profile of bench/bench_dask.py at -j 16.)
    """

    cluster: DaskCluster  # bound by worker_class(cluster), below

    def __init__(self, slot: int, on_output=None, stderr_dir=None, cpus=None):
        super().__init__(slot, on_output, stderr_dir, cpus)  # cpus: pinning is local only
        self.client = self.cluster.acquire()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()  # the pipe's writers against stop()
        self._closed = False
        self.future = None
        self.fetched: tuple[Any, Any] | None = None  # (future, Outcome or exception), set on the event loop
        self.completed_at: float | None = None  # when the watchdog saw it done
        self.fragment: Fragment | None = None
        self.allowance = 0.0  # seconds the fragment may run before the watchdog acts
        self.pending: list[Event] = []  # outcomes decided here, without the cluster

    def _send(self, job: int, fragment: Fragment) -> None:
        self.fragment = fragment
        self.allowance = allowance(fragment)
        self.fetched = self.completed_at = None
        lost = self.cluster.lost()
        if lost:  # a future submitted now would never complete
            self._fail_soon(job, lost)
            return
        try:
            resources, problem = self.cluster.placement(fragment.resources)
            if problem:
                self._fail_soon(job, problem)
                return
            # Pickled here: Dask sees opaque bytes, never walks the fragment
            # for keys or collections.
            self.future = self.client.submit(
                run_fragment, pickle.dumps(fragment), self.slot, pure=False, resources=resources
            )
        except Exception as exc:  # the connection is gone: this fragment's ERROR, not the run's
            self._fail_soon(job, f"could not submit to the Dask cluster: {type(exc).__name__}: {exc}")
            return
        # Thread-safe: the coroutine runs on the client's event loop.
        self.client.loop.add_callback(self._fetch, self.future)

    def _fail_soon(self, job: int, message: str) -> None:
        self.pending.append((job, Outcome(Status.ERROR, Reason.CRASH, message, slot=self.slot)))
        self._wake()

    async def _fetch(self, future) -> None:
        """The client's event loop: wait for the task, gather its result (or
        its exception: KilledWorker, a cancellation), then wake the slot.
        Dask's gather waits for the future, and for its computation again
        if the worker holding the result dies first."""
        try:
            [value] = await self.client.gather([future], asynchronous=True)
        except BaseException as exc:
            value = exc
        if future is self.future:
            self.fetched = (future, value)
            self._wake()

    def _wake(self) -> None:
        """Make the pipe readable (from any thread)."""
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._write, b"!")
            except BlockingIOError:  # full: readable already
                pass

    def waitables(self) -> list:
        return [self._read]

    def events(self) -> list[Event]:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        if self.pending:
            self._finish()
            events, self.pending = self.pending, []
            return events
        fetched, future = self.fetched, self.future
        if fetched is None or future is None or fetched[0] is not future or self.job is None:
            return []  # a stale wake-up: a cancelled future's
        self.fetched = None
        value = fetched[1]
        if isinstance(value, Outcome):
            outcome = value
        elif isinstance(value, BaseException):
            outcome = self._failed(future, value)
        else:
            outcome = Outcome(
                Status.ERROR,
                Reason.CRASH,
                f"the Dask task returned {type(value).__name__}, not Outcome",
                slot=self.slot,
            )
        self.future = None
        job = self._finish()
        if self.on_output is not None and outcome.output:
            # No live output from the cluster: --tee shows it as it ends.
            self.on_output(job, outcome.output.encode("utf-8", "replace"))
        return [(job, outcome)]

    def _failed(self, future, exc: BaseException) -> Outcome:
        """ERROR (CRASH) for what went wrong on the cluster."""
        name = type(exc).__name__
        if name == "KilledWorker":
            what = "the Dask workers running it died (KilledWorker)"
        elif isinstance(exc, CancelledError) or future.status == "cancelled":
            what = "the Dask cluster dropped the fragment (cancelled: was the connection to the scheduler lost?)"
        elif future.status == "error":
            what = (
                "the Dask task failed (is run-testsuite installed on the scheduler and the workers, "
                "and the suite visible to them at the same path?)"
            )
        else:
            what = "could not fetch the result from the Dask cluster"
        detail = one_line(exc)
        message = f"{what}: {name}" + (f": {detail}" if detail else "")
        tb = "".join(traceback.format_exception(exc))
        return Outcome(Status.ERROR, Reason.CRASH, message, slot=self.slot, traceback=tb)

    def expire(self) -> list[Event]:
        """The watchdog: the deadline counts from submission, but on a
        cluster a fragment may wait in Dask's queue first. Ask how long it
        has actually been running; only one that ran past its timeouts (a
        stuck driver) is cancelled. Always moves the deadline on."""
        future = self.future
        now = time.monotonic()
        if future is None:  # an outcome waits in the pipe
            self.deadline = now + 1
            self._wake()
            return []
        if future.done():  # its result is on its way
            if self.completed_at is None:
                self.completed_at = now
            completed = self.completed_at
            if now - completed < GATHER_TIMEOUT:
                self.deadline = completed + GATHER_TIMEOUT
                return []
            self._cancel(commands=False)
            message = f"the fragment finished on the Dask cluster but its result never arrived (future {future.status})"
            return [(self._finish(), Outcome(Status.ERROR, Reason.CRASH, message, slot=self.slot))]
        lost = self.cluster.lost()
        if lost:
            self._cancel(commands=False)
            return [(self._finish(), Outcome(Status.ERROR, Reason.CRASH, lost, slot=self.slot))]
        elapsed, address = self.cluster.running(future.key)
        if elapsed is None:
            if self.fragment is not None and self.fragment.resources:
                _, problem = self.cluster.placement(self.fragment.resources, refresh=True)
                if problem:
                    self._cancel(commands=False)
                    return [(self._finish(), Outcome(Status.ERROR, Reason.CRASH, problem, slot=self.slot))]
            self.deadline = now + self.allowance  # still queued: it has all its time ahead
            return []
        if elapsed < self.allowance:
            self.deadline = now + self.allowance - elapsed
            return []
        self._cancel(commands=True, grace=0)
        message = (
            f"the fragment ran {elapsed:.0f} s on Dask worker {address}, past its timeouts, "
            f"without finishing, and was cancelled"
        )
        return [(self._finish(), Outcome(Status.ERROR, Reason.CRASH, message, slot=self.slot))]

    def _cancel(self, commands: bool, grace: float = KILL_GRACE) -> None:
        future, self.future = self.future, None
        self.fetched = None
        if future is None:
            return
        try:
            future.cancel()
        except Exception:
            pass
        if commands:
            self.cluster.stop_commands(future.key, grace)

    def interrupt(self) -> None:
        # Dask cannot stop a running task; see DaskCluster.stop_commands.
        self._cancel(commands=True)

    def kill(self) -> None:
        self._cancel(commands=True, grace=0)

    def stop(self) -> None:
        if self._closed:
            return
        self._cancel(commands=False)
        with self._lock:
            self._closed = True
            os.close(self._read)
            os.close(self._write)
        self.cluster.release()


def worker_class(cluster: DaskCluster) -> type[DaskWorker]:
    """A DaskWorker class bound to ``cluster``, for the scheduler, which
    builds workers as ``worker_class(slot, hook, stderr_dir, cpus)``."""
    return type("DaskWorker", (DaskWorker,), {"cluster": cluster})
