"""``--dask slurm:N`` and ``--dask pbs:N``: a Dask cluster of N batch jobs.

dask-jobqueue submits N jobs to the batch scheduler (``sbatch`` or
``qsub``), each starting Dask workers that connect back to a Dask
scheduler in this process; the run then goes on as with any Dask cluster
(see ``dask_cluster``), and its end cancels the jobs.

The jobs' settings come from suite.yaml's ``cluster:`` section and the
``--dask-option KEY=VALUE`` options (which win), checked against the
schema's ``cluster`` keys. Defaults suit a small run: one core and 2 GB a
job, one single-threaded worker per core (a worker that runs one fragment
at a time is one run-testsuite can stop), the jobs' logs in
``OUTPUT/cluster-logs`` (shared, like the rest of the output directory).

dask-jobqueue only logs a failed submission, on a logger that does not
propagate, and the caller would wait for workers forever: each job here
keeps its submission's error, and ``start`` waits no longer than
``start_timeout`` seconds, failing at once with the batch scheduler's own
message when a submission fails, and with the jobs' states when no worker
arrives in time.

A job that ends before the run does (its walltime, a preemption, a node
lost) is replaced: a ``JobKeeper`` thread watches which jobs have Dask
workers, and a job that had some and has had none for 17 s is submitted
again under its name, up to ``resubmit`` times in all (no limit by
default). A job that never brought a worker is not replaced: it is still
queued, or its script fails, and more of it would only flood the queue.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any  # Dask imports typing anyway

from run_testsuite.workers.dask_errors import DaskError, one_line

INSTALL_HINT = "pip install 'run-testsuite[slurm]'"
KINDS = {"slurm": "SLURM", "pbs": "PBS"}
# What the jobs' states are asked with, when no worker arrived in time.
QUEUE_COMMANDS = {"slurm": ["squeue", "--noheader", "--format=%i %T %r", "--jobs"], "pbs": ["qstat"]}
DEFAULTS: dict[str, Any] = {"cores": 1, "memory": "2GB", "start_timeout": 300}
LOGS = "cluster-logs"
# Seconds a worker waits for a scheduler that went away before it ends
# (and its job with it): the run was killed, nothing must stay queued.
DEATH_TIMEOUT = 60
# Seconds a job that had workers must have none before it is replaced, past
# Dask's distributed.deploy.lost-worker-timeout (15 s), when the cluster
# drops a single-worker job itself: replaced sooner, the new job under the
# same name would be the one it drops. (A nanny restarts a worker that
# died in about 2 s, its job living on.)
GONE_AFTER = 2.0
# Seconds between two looks at which jobs have workers (a dict read).
KEEP_EVERY = 1.0


def settings_from(suite_cluster: dict, options: list[tuple[str, str]], origin: str) -> dict[str, Any]:
    """suite.yaml's ``cluster:`` section (already checked by its schema)
    with each ``--dask-option KEY=VALUE`` over it, checked by the same
    schema; DaskError names a bad option. A value is read as YAML
    (``cores=4`` is a number, ``directives=[--exclusive]`` a list), but for
    the keys that take text, which keep it as given: ``walltime=90`` is
    SLURM's 90 minutes, where YAML would make it 90 seconds."""
    import yaml

    from run_testsuite import schemas
    from run_testsuite.spec import describe, load_yaml_text, validator

    keys = schemas.load("suite")["properties"]["cluster"]["properties"]
    merged = dict(suite_cluster)
    for key, text in options:
        if keys.get(key, {}).get("type") == "string" or key == "walltime":
            merged[key] = text
            continue
        try:
            merged[key] = load_yaml_text(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise DaskError(f"--dask-option {key}={text}: not a YAML value ({one_line(exc)})") from None
    errors = sorted(
        validator("suite").iter_errors({"cluster": merged}), key=lambda error: [str(part) for part in error.path]
    )
    if errors:
        where = ".".join(str(part) for part in errors[0].path)
        raise DaskError(f"the cluster settings ({origin}): {where}: {describe(errors[0])}")
    return merged


def job_arguments(kind: str, settings: dict[str, Any], output_dir: str) -> dict[str, Any]:
    """dask-jobqueue's keyword arguments for ``settings``."""
    values = {**DEFAULTS, **settings}
    cores = int(values["cores"])
    arguments: dict[str, Any] = {
        "cores": cores,
        "processes": cores,  # one thread a worker: see the module's docstring
        "memory": str(values["memory"]),
        "log_directory": values.get("log_directory") or os.path.join(output_dir, LOGS),
        "python": values.get("python") or sys.executable,
        "death_timeout": DEATH_TIMEOUT,
        "scheduler_options": {"dashboard_address": ":0"},  # any free port: never clashes with another run
        "job_extra_directives": list(values.get("directives", [])),
        "job_script_prologue": list(values.get("prologue", [])),
    }
    for key in ("queue", "account", "interface"):
        if values.get(key) is not None:
            arguments[key] = str(values[key])
    walltime = values.get("walltime")
    if isinstance(walltime, int):  # YAML 1.1 reads an unquoted 01:30:00 as 5400
        walltime = f"{walltime // 3600:02d}:{walltime // 60 % 60:02d}:{walltime % 60:02d}"
    if walltime is not None:
        arguments["walltime"] = walltime
    resources = values.get("worker_resources") or {}
    if resources:
        arguments["worker_extra_args"] = [
            "--resources",
            ",".join(f"{name}={amount}" for name, amount in sorted(resources.items())),
        ]
    return arguments


def require_jobqueue():
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise DaskError(
            f"--dask slurm:N and pbs:N need dask-jobqueue, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return dask_jobqueue


class BatchCluster:
    """N batch jobs of Dask workers, started by ``start`` and cancelled by ``close``."""

    def __init__(self, kind: str, jobs: int, settings: dict[str, Any], output_dir: str):
        self.kind, self.jobs = kind, jobs
        self.arguments = job_arguments(kind, settings, output_dir)
        self.timeout = float(settings.get("start_timeout", DEFAULTS["start_timeout"]))
        self.failures: list[str] = []  # the submissions' errors, as the jobs met them
        self.resubmit: int | None = settings.get("resubmit")  # None: no limit
        self.cluster: Any = None
        self.keeper: JobKeeper | None = None

    @property
    def name(self) -> str:
        return f"{KINDS[self.kind]} cluster of --dask {self.kind}:{self.jobs}"

    @property
    def threads(self) -> int:
        """Fragments the whole cluster runs at once, once every job is in."""
        return self.jobs * int(self.arguments["cores"])

    def start(self, client_class) -> Any:
        """Submit the jobs and return a Client once the first worker is in
        and every job was submitted; DaskError when a submission failed or
        no worker came within the timeout."""
        dask_jobqueue = require_jobqueue()
        base = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[self.kind]
        os.makedirs(self.arguments["log_directory"], exist_ok=True)
        import dask

        try:
            # Once no job has been left for start_timeout (none replaced, or
            # the replacements queued that long), what waits for a worker
            # fails (ERROR, CRASH), where the run would wait for ever.
            with dask.config.set({"distributed.scheduler.no-workers-timeout": f"{self.timeout}s"}):
                self.cluster = _recording(base)(job_cls=_watched(base.job_cls, self.failures), **self.arguments)
        except Exception as exc:  # a bad setting dask-jobqueue refuses
            raise DaskError(f"cannot set up the {self.name}: {type(exc).__name__}: {one_line(exc)}") from None
        client = None
        try:
            self.cluster.scale(jobs=self.jobs)
            client = client_class(self.cluster, set_as_default=False)
            self._wait(client)
            if self.resubmit != 0:
                self.keeper = JobKeeper(self.cluster, int(self.arguments["processes"]), self.resubmit, self.failures)
                self.keeper.start()
        except BaseException:
            if client is not None:
                client.close()
            self.close()
            raise
        return client

    def _wait(self, client) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.failures:
                raise DaskError(
                    f"the {self.name} could not submit its jobs: {self.failures[0]}"
                    + (f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else "")
                )
            jobs = list(self.cluster.workers.values())
            submitted = len(jobs) >= self.jobs and all(getattr(job, "job_id", None) for job in jobs)
            if submitted and client.scheduler_info(n_workers=-1).get("workers"):
                return
            if time.monotonic() >= deadline:
                raise DaskError(self._late(jobs))
            time.sleep(0.2)

    def _late(self, jobs: list) -> str:
        ids = [str(job.job_id) for job in jobs if getattr(job, "job_id", None)]
        said = f"no Dask worker of the {self.name} arrived within {self.timeout:g} s (cluster: start_timeout)"
        if not ids:
            return said + f"; {self.jobs} job submission{'s' if self.jobs != 1 else ''} still waiting for an answer"
        states = _job_states(self.kind, ids)
        logs = self.arguments["log_directory"]
        return said + f"; jobs {', '.join(ids)}: {states or 'state unknown'}; their logs: {logs}"

    def close(self) -> None:
        """Cancel the jobs (dask-jobqueue's ``scancel``/``qdel`` of each) and
        stop the scheduler."""
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.stop()  # before the jobs are cancelled: they are not to come back
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # jobs already gone are cancelled enough
                pass


class JobKeeper(threading.Thread):
    """Submits again each job that ended before the run (see the module's
    docstring); ``replaced`` counts them."""

    def __init__(self, cluster: Any, processes: int, limit: int | None, failures: list[str] | None = None):
        super().__init__(name="run-testsuite-job-keeper", daemon=True)
        self.cluster, self.processes, self.limit = cluster, processes, limit
        self.failures = failures if failures is not None else []  # the submissions' errors (see _watched)
        self.replaced = 0
        import dask
        from dask.utils import parse_timedelta

        lost = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
        self.gone_after = float(lost or 0) + GONE_AFTER
        self._stopping = threading.Event()
        self._had_workers: set[str] = set()
        self._gone_since: dict[str, float] = {}

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def run(self) -> None:
        while not self._stopping.wait(KEEP_EVERY):
            if self.limit is not None and self.replaced >= self.limit:
                return
            ended = self._ended(time.monotonic())
            if ended:
                if self.limit is not None:
                    ended = ended[: self.limit - self.replaced]
                failed = len(self.failures)
                try:
                    self.cluster.sync(_resubmit, self.cluster, ended)
                except Exception as exc:
                    if self._stopping.is_set():  # the cluster closing under us: nothing to keep
                        return
                    self.failures.append(f"{type(exc).__name__}: {one_line(exc)}")
                # Counted, whether it went or not: a submission that fails
                # again and again must not be tried for ever.
                self.replaced += len(ended)
                if len(self.failures) > failed:  # sbatch said no: the run goes on with the jobs it has
                    print(
                        f"run-testsuite: warning: could not submit a job in place of {', '.join(ended)}, "
                        f"which ended: {self.failures[-1]}",
                        file=sys.stderr,
                    )

    def _ended(self, now: float) -> list[str]:
        """The jobs that had workers and have had none for ``gone_after`` s."""
        # The cluster's own copy of the scheduler's view, kept current by
        # its event loop: a read, not a question to the scheduler.
        names = [info.get("name") for info in dict(self.cluster.scheduler_info.get("workers", {})).values()]
        with_workers = {self._job_of(str(name)) for name in names if name is not None}
        # Workers that came and went between two looks count too.
        arrivals: deque = getattr(self.cluster, "arrivals", deque())
        while arrivals:
            self._had_workers.add(self._job_of(str(arrivals.popleft())))
        self._had_workers |= with_workers
        ended = []
        for job in sorted(self._had_workers - with_workers):
            since = self._gone_since.setdefault(job, now)
            if now - since >= self.gone_after:
                ended.append(job)
        for job in with_workers:
            self._gone_since.pop(job, None)
        for job in ended:
            self._had_workers.discard(job)
            del self._gone_since[job]
        return ended

    def _job_of(self, worker: str) -> str:
        """A job's workers are named after it: JOB alone, or JOB-0, JOB-1...
        when it starts several."""
        return worker.rsplit("-", 1)[0] if self.processes > 1 else worker


async def _resubmit(cluster: Any, jobs: list[str]) -> None:
    """On the cluster's event loop: forget the ended ``jobs`` (cancelling
    them is harmless once they ended), then let the cluster start what its
    spec still names and no job runs: a new job under each name."""
    for name in jobs:
        job = cluster.workers.pop(name, None)
        if job is not None:
            try:
                await job.close()
            except Exception:  # scancel of a job that is gone
                pass
    await cluster._correct_state()


def _recording(cluster_class: Any) -> Any:
    """``cluster_class``, noting in ``arrivals`` the name of each worker
    as the scheduler tells of it (on the cluster's event loop), for the
    JobKeeper: a job killed within a second of its worker's arrival is one
    that had a worker."""

    class Recording(cluster_class):  # named as the class it records: jobs and workers take its name
        def _update_worker_status(self, op, msg):
            if op == "add":
                if not hasattr(self, "arrivals"):
                    self.arrivals: deque = deque()
                self.arrivals.extend(info.get("name") for info in msg.get("workers", {}).values())
            super()._update_worker_status(op, msg)

    Recording.__name__ = Recording.__qualname__ = cluster_class.__name__
    return Recording


def _watched(job_class, failures: list[str]):
    """``job_class``, keeping its submission's error in ``failures``."""

    class Watched(job_class):
        async def _submit_job(self, script_filename):
            try:
                return await super()._submit_job(script_filename)
            except Exception as exc:
                failures.append(_submission_error(exc))
                from distributed.core import Status

                # Failed, not running: closing the cluster then leaves it be.
                self.status = Status.failed
                raise

    return Watched


def _submission_error(exc: BaseException) -> str:
    """The batch scheduler's own words from dask-jobqueue's error: the
    ``stderr:`` part of its message (``sbatch: error: invalid partition``)."""
    text = str(exc)
    found = re.search(r"stderr:\s*(.*)", text, re.S)
    words = " ".join((found.group(1) if found else text).split())
    return words[:500] or type(exc).__name__


def _job_states(kind: str, ids: list[str]) -> str:
    """What the batch scheduler says of the jobs (``12 PENDING Resources``)."""
    command = [*QUEUE_COMMANDS[kind], ",".join(ids)] if kind == "slurm" else [*QUEUE_COMMANDS[kind], *ids]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return "; ".join(line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip())[:500]
