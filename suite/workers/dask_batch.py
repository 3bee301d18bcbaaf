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
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
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
        self.cluster: Any = None

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
            # Jobs are not replaced when they end (walltime, preemption): once
            # none is left for start_timeout, what waits for a worker fails
            # (ERROR, CRASH), where the run would wait for ever.
            with dask.config.set({"distributed.scheduler.no-workers-timeout": f"{self.timeout}s"}):
                self.cluster = base(job_cls=_watched(base.job_cls, self.failures), **self.arguments)
        except Exception as exc:  # a bad setting dask-jobqueue refuses
            raise DaskError(f"cannot set up the {self.name}: {type(exc).__name__}: {one_line(exc)}") from None
        client = None
        try:
            self.cluster.scale(jobs=self.jobs)
            client = client_class(self.cluster, set_as_default=False)
            self._wait(client)
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
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # jobs already gone are cancelled enough
                pass


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
