"""Running fragments on a Dask cluster (``--dask ADDRESS``, ``--dask local:N``,
or ``--dask slurm:N``/``pbs:N``, whose jobs ``dask_batch`` starts).

The scheduler stays in the main process and keeps doing everything it does
for a local run: the dependency graph, the order of work, retries, resource
pools, verdicts and reports. Only the execution of each fragment moves: a
``DaskWorker`` fills one slot by submitting the fragment to the cluster as
one Dask task, ``dask_tasks.run_fragment``, which calls
``run_testsuite.execution.execute`` where it lands. ``-j`` slots thus cap the fragments in flight on the
cluster, one future per slot.

The file model is a shared file system seen at the same path everywhere:
the suite, the drivers and the output directory (work directories, logs)
must be visible to every Dask worker under the paths the main process
uses. A worker that cannot see them says so in an ERROR (reason CRASH).

``distributed`` is imported only when a cluster is used: run-testsuite
works without it, and ``--dask`` then says how to install it.
"""

from __future__ import annotations

import threading
import time
from typing import Any  # Dask imports typing anyway

from run_testsuite.workers.dask_errors import DaskError, one_line
from run_testsuite.workers.dask_tasks import probe, running_tasks, stop_tasks

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


def parse_batch(text: str) -> tuple[str, int] | None:
    """``("slurm", N)`` for ``slurm:N``, ``("pbs", N)`` for ``pbs:N``, else None."""
    kind, colon, count = text.strip().partition(":")
    if kind not in ("slurm", "pbs"):
        return None
    if not colon or not count.isdigit() or int(count) < 1:
        raise DaskError(f"--dask {text.strip()}: expected {kind}:N with N at least 1 ({kind}:4 submits four jobs)")
    return kind, int(count)


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
        self.batch_spec = parse_batch(address)
        self.address, self.local_workers = parse_address(address) if self.batch_spec is None else ("", None)
        require_distributed()
        self._batch: Any = None  # a dask_batch.BatchCluster, once configured
        self._client: Any = None  # a distributed.Client once connected
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
    def configure_batch(
        self, suite_cluster: dict, options: list[tuple[str, str]], output_dir: str, origin: str
    ) -> None:
        """slurm:N, pbs:N: the jobs' settings, from suite.yaml's ``cluster:``
        and ``--dask-option``; DaskError names a bad one."""
        from run_testsuite.workers.dask_batch import BatchCluster, require_jobqueue, settings_from

        assert self.batch_spec is not None
        require_jobqueue()
        kind, jobs = self.batch_spec
        self._batch = BatchCluster(kind, jobs, settings_from(suite_cluster, options, origin), output_dir)

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
                if self._batch is not None:
                    client = self._batch.start(distributed.Client)
                elif self.local_workers:
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
            except DaskError:
                self._close_local()
                raise
            except Exception as exc:  # OSError, TimeoutError, ValueError (a bad address)...
                self._close_local()
                what = (
                    f"start a Dask cluster ({self.spec})"
                    if self.local_workers or self._batch is not None
                    else f"connect to the Dask scheduler at {self.spec}"
                )
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
        from run_testsuite import __version__

        try:
            answer = self._client.run_on_scheduler(probe)
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
        answers = self._client.run(probe, on_error="return")
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
        """Stop the cluster this run started, if any: local:N's processes,
        or slurm:N's and pbs:N's jobs (cancelled)."""
        if self._batch is not None:
            self._batch.close()
        local, self._local = self._local, None
        if local is not None:
            try:
                local.close()
            except Exception:
                pass

    def __enter__(self) -> DaskCluster:
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
        """Fragments the cluster can run at once right now (0 with no worker
        yet), or, of batch jobs, once all are in."""
        if self._batch is not None:
            return self._batch.threads
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
            detail = ", ".join(
                f"{pool}: {ask[pool]} (most on one worker now: {advertised.get(pool, 0):g})" for pool in short
            )
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
                answers = self.client.run(running_tasks, on_error="ignore")
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
            client.run(stop_tasks, tasks, on_error="ignore")
        except Exception:
            pass
