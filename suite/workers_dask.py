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
the scheduler's selector; the future's done-callback (run by Dask in a
thread of its own) writes one byte, and ``events`` drains the pipe and
collects the future. The main loop still blocks in its one selector and
never polls.

``distributed`` is imported only when a cluster is used: run-testsuite
works without it, and ``--dask`` then says how to install it.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
import uuid

from drivers.api import Fragment
from suite.execution import KILL_GRACE, execute, kill_active
from suite.results import Outcome, Reason, Status
from suite.workers import WATCHDOG_MARGIN, Event, Worker

INSTALL_HINT = "pip install 'run-testsuite[dask]'"
# Seconds to wait for a finished fragment's result to arrive from its worker
# before waiting for the future again (its data may be being recomputed).
GATHER_TIMEOUT = 10.0
# Seconds the scheduler's view of the workers' resources is trusted.
RESOURCES_TTL = 5.0
# Seconds a best-effort request to stop a cancelled fragment's commands may take.
STOP_TIMEOUT = 5.0


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
        self._lock = threading.Lock()
        self._advertised: dict[str, float] = {}  # Dask resource -> most any worker has
        self._seen: set[str] = set()  # resources advertised at any time in this run
        self._advertised_at = -RESOURCES_TTL

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
                        dashboard_address=None,
                    )
                    client = distributed.Client(self._local, set_as_default=False)
                else:
                    client = distributed.Client(self.address, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                self._close_local()
                raise DaskError(f"cannot connect to the Dask scheduler at {self.spec}: {exc}") from None
            self._client = client
        try:
            self._check_workers()
        except DaskError:
            self.close()
            raise
        return client

    def _check_workers(self) -> None:
        """Every worker present must import this run-testsuite, same version."""
        from suite import __version__

        answers = self._client.run(_probe, on_error="return")
        for address, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise DaskError(
                    f"Dask worker {address} cannot run run-testsuite's fragments "
                    f"({type(answer).__name__}: {answer}); the workers need run-testsuite "
                    f"installed in their Python environment"
                )
            if answer != __version__:
                raise DaskError(
                    f"Dask worker {address} has run-testsuite {answer}, this is {__version__}: "
                    f"the workers need the same version"
                )

    def close(self) -> None:
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
        """How long the task ``key`` has been running, and where; (None,
        None) while it waits in the cluster's queue (or cannot be asked)."""
        try:
            answers = self.client.run(_elapsed, key, on_error="ignore")
        except Exception:
            return None, None
        found = [(elapsed, address) for address, elapsed in answers.items() if elapsed is not None]
        return max(found) if found else (None, None)

    def stop_commands(self, key: str, grace: float) -> None:
        """Best effort: stop the commands of the (cancelled) task ``key``.

        Dask cannot stop a running task; the worker process running it does
        it for us when that fragment is all it runs (one thread per worker,
        as ``local:N`` and the recipes start them). Otherwise the commands
        run on until their own timeouts.
        """
        client = self._client
        if client is None:
            return

        def ask() -> None:
            try:
                client.run(_stop_task, key, grace, on_error="ignore")
            except Exception:
                pass

        thread = threading.Thread(target=ask, name="run-testsuite-dask-stop", daemon=True)
        thread.start()
        thread.join(STOP_TIMEOUT)


class DaskWorker(Worker):
    """Fills one slot with fragments run on a Dask cluster, one future at a time."""

    cluster: DaskCluster  # bound by DaskCluster.worker_class()

    def __init__(self, slot: int, on_output=None, stderr_dir=None, cpus=None):
        super().__init__(slot, on_output, stderr_dir, cpus)  # cpus: pinning is local only
        self.client = self.cluster.acquire()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()  # the pipe's writer against stop()
        self._closed = False
        self.future = None
        self.fragment: Fragment | None = None
        self.allowance = 0.0  # seconds the fragment may run before the watchdog acts
        self.pending: list[Event] = []  # outcomes decided here, without the cluster

    def _send(self, job: int, fragment: Fragment) -> None:
        self.fragment = fragment
        self.allowance = fragment.budget + KILL_GRACE * len(fragment.commands) + WATCHDOG_MARGIN
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
        self.future.add_done_callback(self._wake)

    def _fail_soon(self, job: int, message: str) -> None:
        self.pending.append((job, Outcome(Status.ERROR, Reason.CRASH, message, slot=self.slot)))
        self._wake()

    def _wake(self, future=None) -> None:
        """Make the pipe readable (from Dask's callback thread too)."""
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
        future = self.future
        if future is None or self.job is None or not future.done():
            return []  # a stale wake-up: a cancelled future's callback
        outcome = self._collect(future)
        if outcome is None:
            return []
        self.future = None
        job = self._finish()
        if self.on_output is not None and outcome.output:
            # No live output from the cluster: --tee shows it as it ends.
            self.on_output(job, outcome.output.encode("utf-8", "replace"))
        return [(job, outcome)]

    def _collect(self, future) -> Outcome | None:
        """The finished future's Outcome, an ERROR (CRASH) for what went
        wrong on the cluster, or None to wait for the future again."""
        status = future.status
        if status == "finished":
            try:
                outcome = future.result(timeout=GATHER_TIMEOUT)
            except TimeoutError:
                # Its worker may have died with the result: Dask computes it
                # again, and the callback fires once more when it is done.
                future.add_done_callback(self._wake)
                return None
            except Exception as exc:
                return self._crash(exc, "could not fetch the result from the Dask cluster")
            if isinstance(outcome, Outcome):
                return outcome
            return self._crash(TypeError(f"run_fragment returned {type(outcome).__name__}"), "the Dask task misbehaved")
        if status == "error":
            try:
                exc = future.exception(timeout=GATHER_TIMEOUT)
            except Exception as error:
                exc = error
            if type(exc).__name__ == "KilledWorker":
                return self._crash(exc, "the Dask workers running it died (KilledWorker)")
            return self._crash(
                exc, "the Dask task failed (are run-testsuite and the suite's drivers installed on the workers?)"
            )
        # Cancelled or lost: the client lost the scheduler, or someone cancelled it.
        return self._crash(None, f"the Dask cluster dropped the fragment (future {status})")

    def _crash(self, exc: BaseException | None, what: str) -> Outcome:
        message = what if exc is None else f"{what}: {type(exc).__name__}: {exc}"
        tb = "".join(traceback.format_exception(exc)) if exc is not None else None
        return Outcome(Status.ERROR, Reason.CRASH, message.splitlines()[0] if message else what, slot=self.slot, traceback=tb)

    def expire(self) -> list[Event]:
        """The watchdog: the deadline counts from submission, but on a
        cluster a fragment may wait in Dask's queue first. Ask how long it
        has actually been running; only one that ran past its timeouts (a
        stuck driver) is cancelled."""
        future = self.future
        if future is None or future.done():
            self._wake()
            return []
        now = time.monotonic()
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


def _elapsed(key: str) -> float | None:
    started = _running.get(key)
    return None if started is None else time.monotonic() - started


def _stop_task(key: str, grace: float) -> bool:
    """Stop the commands of task ``key`` if it is all this process runs
    (another fragment's commands are never touched)."""
    if key not in _running or len(_running) > 1:
        return False
    threading.Thread(target=kill_active, args=(grace,), name="run-testsuite-stop", daemon=True).start()
    return True

