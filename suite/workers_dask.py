"""Running fragments on a Dask cluster (``--dask ADDRESS`` or ``--dask local:N``).

The scheduler stays in the main process and keeps doing everything it does
for a local run: the dependency graph, the order of work, retries, resource
pools, verdicts and reports. Only the execution of each fragment moves: a
``DaskWorker`` fills one slot by submitting the fragment to the cluster as
one Dask task, ``run_fragment``, which calls ``suite.execution.execute``
where it lands. ``-j`` slots thus cap the fragments in flight on the
cluster, one future per slot.

The file model is a shared file system seen at the same path everywhere:
the suite, the drivers and the output directory (work directories, logs)
must be visible to every Dask worker under the paths the main process
uses. A worker that cannot see them says so in an ERROR (reason CRASH).

How a slot wakes the scheduler: each DaskWorker owns a pipe, registered in
the scheduler's selector. A coroutine on the Dask client's event loop
waits for the slot's future, gathers its result, stores it and writes one
byte; ``events`` drains the pipe and hands the result over. The main loop
still blocks in its one selector and never polls, nor waits for the network.

``distributed`` is imported only when a cluster is used: run-testsuite
works without it, and ``--dask`` then says how to install it.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
from concurrent.futures import CancelledError

from drivers.api import Fragment
from suite.execution import KILL_GRACE, execute, kill_active
from suite.results import Outcome, Reason, Status
from suite.workers import WATCHDOG_MARGIN, Event, Worker

INSTALL_HINT = "pip install 'run-testsuite[dask]'"
# Seconds a finished fragment's result may take to arrive from its worker
# (Dask computes it again if that worker died meanwhile) before the watchdog
# gives up on it.
GATHER_TIMEOUT = 60.0
# Seconds the scheduler's view of the workers' resources is trusted.
RESOURCES_TTL = 5.0
# Seconds requests to stop cancelled fragments' commands may delay the end.
STOP_TIMEOUT = 5.0
# Seconds the workers' list of running tasks serves the watchdogs.
TASKS_TTL = 1.0


class DaskError(Exception):
    """--dask cannot be used: Dask missing, a bad address, an unreachable
    scheduler, or workers that cannot run fragments. A usage error (exit 2)."""


def require_distributed():
    """The ``distributed`` module, or a DaskError saying how to get it."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskError(
            f"--dask needs Dask's distributed scheduler, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return distributed


def parse_address(text: str) -> tuple[str, int | None]:
    """``(address, None)`` for a scheduler address, ``("", N)`` for ``local:N``."""
    text = text.strip()
    if text.startswith("local:") or text == "local":
        count = text.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise DaskError(f"--dask {text}: expected local:N with N at least 1 (local:2 starts two worker processes)")
        return "", int(count)
    if not text or text.startswith("-"):
        raise DaskError(f"--dask {text!r}: expected a scheduler address (tcp://host:8786) or local:N")
    return text, None


class DaskCluster:
    """The run's connection to a Dask cluster, shared by every slot.

    The Client is created lazily, by ``connect`` or the first worker, and
    closed by ``close`` or when the last worker stops. With ``local:N`` a
    LocalCluster of N single-threaded worker processes on 127.0.0.1 is
    started with it and stopped with it.
    """

    def __init__(self, address: str):
        self.spec = address
        self.address, self.local_workers = parse_address(address)
        require_distributed()
        self._client = None
        self._local = None
        self._users = 0
        # Reentrant: a second Ctrl-C's handler (DaskWorker.kill) may come
        # while the main thread holds it.
        self._lock = threading.RLock()
        self._advertised: dict[str, float] = {}  # Dask resource -> most any worker has
        self._seen: set[str] = set()  # resources advertised at any time in this run
        self._advertised_at = -RESOURCES_TTL
        self._tasks: dict[str, tuple[float, str]] = {}  # running task -> (elapsed, worker)
        self._tasks_at = -TASKS_TTL
        self._to_stop: list[tuple[str, float]] = []  # (task, grace) not yet asked to stop
        self._stoppers: list[threading.Thread] = []

    # -- connection ----------------------------------------------------------
    @property
    def client(self):
        return self._client if self._client is not None else self.connect()

    def connect(self):
        """Connect (starting the local cluster for local:N); DaskError if it
        cannot be used. Returns the Client."""
        with self._lock:
            if self._client is not None:
                return self._client
            distributed = require_distributed()
            try:
                if self.local_workers:
                    self._local = distributed.LocalCluster(
                        n_workers=self.local_workers,
                        processes=True,
                        threads_per_worker=1,
                        host="127.0.0.1",
                        dashboard_address=":0",  # any free port: never clashes with another cluster
                    )
                    client = distributed.Client(self._local, set_as_default=False)
                else:
                    client = distributed.Client(self.address, set_as_default=False)
            except Exception as exc:  # OSError, TimeoutError, ValueError (a bad address)...
                self._close_local()
                what = f"start a local Dask cluster ({self.spec})" if self.local_workers else f"connect to the Dask scheduler at {self.spec}"
                raise DaskError(f"cannot {what}: {type(exc).__name__}: {one_line(exc)}") from None
            self._client = client
        try:
            self._check_workers()
        except DaskError:
            self.close()
            raise
        return client

    def _check_workers(self) -> None:
        """The scheduler (it unpickles the tasks) and every worker present
        must import this run-testsuite, same version."""
        from suite import __version__

        try:
            answer = self._client.run_on_scheduler(_probe)
        except Exception as exc:
            answer = exc
        if isinstance(answer, BaseException):
            raise DaskError(
                f"the Dask scheduler at {self.spec} cannot import run-testsuite "
                f"({type(answer).__name__}: {one_line(answer)}); the scheduler, like the workers, "
                f"needs run-testsuite installed in its Python environment"
            )
        if answer != __version__:
            raise DaskError(
                f"the Dask scheduler at {self.spec} has run-testsuite {answer}, this is {__version__}: "
                f"it needs the same version"
            )
        answers = self._client.run(_probe, on_error="return")
        for address, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise DaskError(
                    f"Dask worker {address} cannot run run-testsuite's fragments "
                    f"({type(answer).__name__}: {one_line(answer)}); the workers need run-testsuite "
                    f"installed in their Python environment"
                )
            if answer != __version__:
                raise DaskError(
                    f"Dask worker {address} has run-testsuite {answer}, this is {__version__}: "
                    f"the workers need the same version"
                )

    def close(self) -> None:
        # Requests to stop commands go out before the connection closes.
        deadline = time.monotonic() + STOP_TIMEOUT
        for thread in self._stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stoppers.clear()
        with self._lock:
            client, self._client = self._client, None
            if client is not None:
                try:
                    client.close()
                except Exception:  # a cluster already gone is closed enough
                    pass
            self._close_local()

    def _close_local(self) -> None:
        local, self._local = self._local, None
        if local is not None:
            try:
                local.close()
            except Exception:
                pass

    def __enter__(self) -> "DaskCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def acquire(self):
        """A worker starts using the cluster; returns the Client."""
        client = self.client
        with self._lock:
            self._users += 1
        return client

    def release(self) -> None:
        """A worker stopped; the last one closes the connection (and stops a
        local cluster before the scheduler sweeps its leftover processes)."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close()

    def worker_class(self) -> type["DaskWorker"]:
        """A DaskWorker class bound to this cluster, for the scheduler, which
        builds workers as ``worker_class(slot, hook, stderr_dir, cpus)``."""
        return type("DaskWorker", (DaskWorker,), {"cluster": self})

    def lost(self) -> str | None:
        """Why the connection cannot be used any more, or None. (While the
        client reconnects to a lost scheduler, it may still come back.)"""
        client = self._client
        if client is None:
            return f"the connection to the Dask scheduler at {self.spec} is closed"
        status = str(getattr(client, "status", "running"))
        if status in ("closing", "closed"):
            return f"the connection to the Dask scheduler at {self.spec} was lost"
        return None

    # -- what the cluster offers -----------------------------------------------
    def workers(self) -> dict[str, dict]:
        """The scheduler's view of its workers: address -> info (nthreads, resources)."""
        return dict(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def total_threads(self) -> int:
        """Fragments the cluster can run at once right now (0 with no worker yet)."""
        return sum(info.get("nthreads", 1) for info in self.workers().values())

    def advertised(self, refresh: bool = False) -> dict[str, float]:
        """Dask worker resources (``dask worker --resources GPU=1``): the most
        of each that one worker has. Cached for a few seconds."""
        now = time.monotonic()
        if refresh or now - self._advertised_at > RESOURCES_TTL:
            most: dict[str, float] = {}
            for info in self.workers().values():
                for name, amount in (info.get("resources") or {}).items():
                    most[name] = max(most.get(name, 0), amount)
            self._advertised = most
            self._seen.update(most)
            self._advertised_at = now
        return self._advertised

    def placement(self, resources: dict[str, int], refresh: bool = False) -> tuple[dict | None, str | None]:
        """The Dask resources a fragment asks for, from its pools: those that
        Dask workers advertise (or did earlier in the run), so Dask places it
        on such a worker. Returns ``(resources or None, problem or None)``;
        a problem when no worker has enough of one."""
        if not resources:
            return None, None
        advertised = self.advertised(refresh)
        ask = {pool: count for pool, count in resources.items() if pool in advertised or pool in self._seen}
        short = [pool for pool, count in ask.items() if advertised.get(pool, 0) < count]
        if short:
            detail = ", ".join(f"{pool}: {ask[pool]} (most on one worker now: {advertised.get(pool, 0):g})" for pool in short)
            return None, f"no Dask worker advertises the resources this needs: {detail}"
        return ask or None, None

    def running(self, key: str) -> tuple[float | None, str | None]:
        """How long the task ``key`` has been running, and on which worker;
        (None, None) while it waits in the cluster's queue (or if the
        workers cannot be asked). One question to all workers answers for
        every task, and serves the watchdogs of all slots for a second."""
        now = time.monotonic()
        if now - self._tasks_at > TASKS_TTL:
            tasks: dict[str, tuple[float, str]] = {}
            try:
                answers = self.client.run(_running_tasks, on_error="ignore")
            except Exception:
                answers = {}
            for address, running in answers.items():
                for task, elapsed in running.items():
                    tasks[task] = max(tasks.get(task, (0.0, "")), (elapsed, address))
            self._tasks, self._tasks_at = tasks, now
        if key not in self._tasks:
            return None, None
        elapsed, address = self._tasks[key]
        return elapsed + (now - self._tasks_at), address

    def stop_commands(self, key: str, grace: float) -> None:
        """Best effort, without waiting: stop the commands of the cancelled
        task ``key`` (``close`` waits for the request to go out).

        Dask cannot stop a running task; the worker process running it does
        it for us when it runs nothing else (one thread per worker, as
        ``local:N`` and the recipes start them; or all its tasks are being
        stopped, as on Ctrl-C). Otherwise the commands run on until their
        own timeouts. Requests made together (Ctrl-C stops every slot) go
        out as one message to each worker.
        """
        if self._client is None:
            return
        with self._lock:
            self._to_stop.append((key, grace))
            if len(self._to_stop) > 1:
                return  # a request is about to go out, and takes this one too
            thread = threading.Thread(target=self._send_stops, name="run-testsuite-dask-stop", daemon=True)
            self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
        thread.start()

    def _send_stops(self) -> None:
        time.sleep(0.02)  # let a burst of requests gather
        with self._lock:
            tasks, self._to_stop = dict(self._to_stop), []
            client = self._client
        if client is None or not tasks:
            return
        try:
            client.run(_stop_tasks, tasks, on_error="ignore")
        except Exception:
            pass


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

    cluster: DaskCluster  # bound by DaskCluster.worker_class()

    def __init__(self, slot: int, on_output=None, stderr_dir=None, cpus=None):
        super().__init__(slot, on_output, stderr_dir, cpus)  # cpus: pinning is local only
        self.client = self.cluster.acquire()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()  # the pipe's writers against stop()
        self._closed = False
        self.future = None
        self.fetched = None  # (future, Outcome or exception), set on the event loop
        self.completed_at: float | None = None  # when the watchdog saw it done
        self.fragment: Fragment | None = None
        self.allowance = 0.0  # seconds the fragment may run before the watchdog acts
        self.pending: list[Event] = []  # outcomes decided here, without the cluster

    def _send(self, job: int, fragment: Fragment) -> None:
        self.fragment = fragment
        self.allowance = fragment.budget + KILL_GRACE * len(fragment.commands) + WATCHDOG_MARGIN
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
        except BaseException as exc:  # noqa: B036 - whatever it is, the slot must hear of it
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
            outcome = Outcome(Status.ERROR, Reason.CRASH, f"the Dask task returned {type(value).__name__}, not Outcome", slot=self.slot)
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
            what = "the Dask task failed (are run-testsuite and the suite's drivers installed on the scheduler and the workers?)"
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


# -- what runs on the Dask workers ---------------------------------------------
# Tasks running in this (Dask worker) process: key -> monotonic start.
_running: dict[str, float] = {}


def run_fragment(payload: bytes, slot: int) -> Outcome:
    """The Dask task: run one fragment where it landed; never raises."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    _running[key] = time.monotonic()
    try:
        fragment = pickle.loads(payload)
        problem = _invisible(fragment, worker.address)
        if problem:
            return Outcome(Status.ERROR, Reason.CRASH, problem, slot=slot)
        return execute(fragment, slot)
    except Exception as exc:  # execute never raises; unpickling might
        return Outcome(
            Status.ERROR,
            Reason.CRASH,
            f"Dask worker {worker.address} could not run the fragment: {type(exc).__name__}: {exc}",
            slot=slot,
            traceback=traceback.format_exc(),
        )
    finally:
        _running.pop(key, None)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, for a result's message."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


SHARED_FS = "the cluster needs a shared filesystem at the same path"


def _invisible(fragment: Fragment, address: str) -> str | None:
    """Why this worker cannot run the fragment for want of a shared file
    system, or None. Costs a stat or two."""
    if fragment.prepare and fragment.source_dir and not os.path.isdir(fragment.source_dir):
        return f"testcase directory {fragment.source_dir} is not visible on Dask worker {address}: {SHARED_FS}"
    if not fragment.prepare and not os.path.isdir(fragment.work_dir):
        return f"work directory {fragment.work_dir} is not visible on Dask worker {address}: {SHARED_FS}"
    logs = os.path.dirname(fragment.log_stem)
    if logs and not os.path.isdir(logs):
        return f"output directory {os.path.dirname(logs)} is not visible on Dask worker {address}: {SHARED_FS}"
    return None


def _probe() -> str:
    """Run on each worker at connection: the run-testsuite it imports."""
    from suite import __version__

    return __version__


def _running_tasks() -> dict[str, float]:
    """The fragments this worker process runs: task key -> seconds so far."""
    now = time.monotonic()
    return {key: now - started for key, started in list(_running.items())}


def _stop_tasks(tasks: dict[str, float]) -> bool:
    """Stop the commands of the tasks ``tasks`` (key -> grace) if they are
    all that this process runs: commands are not told apart by task, and
    those of another fragment (another run's too) are never touched."""
    running = set(_running)
    if not running or not running <= set(tasks):
        return False
    grace = min(tasks[key] for key in running)
    threading.Thread(target=kill_active, args=(grace,), name="run-testsuite-stop", daemon=True).start()
    return True

