"""``--dask slurm:N`` on a real one-node SLURM (``slurm_cluster.py``: Debian's
slurm-wlm and munge, daemons started by the test, nothing of the system's).

A run submits N worker jobs with dask-jobqueue, runs its fragments on them,
and cancels them at its end: the index matches a local run's, a job
cancelled mid-run loses no result, and a submission that fails (or jobs
that never start) ends the run at once, or within its ``start_timeout``,
with what SLURM said. Without SLURM the tests skip, unless CI is set.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import slurm_cluster as harness
from conftest import (
    REPO,
    act_mid_run,
    cli_argv,
    cli_env,
    load_index,
    run_cli,
    start_cli,
    statuses,
    wait_for,
    write_suite,
)
from test_dask import EXPECTED, SUITE

slurm = harness.slurm  # the fixture: a fresh cluster per test

if not os.environ.get("CI"):
    pytest.importorskip("dask_jobqueue", reason="pip install -e '.[slurm]'")

# The test cluster's partition; its scheduler and workers talk on 127.0.0.1.
OPTIONS = ("--dask-option", f"queue={harness.PARTITION}", "--dask-option", "interface=lo")


def leftovers(cluster: harness.SlurmCluster) -> list[str]:
    """Processes of this cluster but its daemons (job steps, workers), once
    SLURM lists no job."""
    daemons = {proc.pid for proc in cluster.daemons.values()}
    assert cluster.wait_no_jobs(timeout=20) == [], "jobs left queued"
    found = []
    for pid in harness.processes_of(cluster.conf):
        if pid in daemons or pid == os.getpid() or _parent(pid) in daemons:  # slurmctld's slurmscriptd
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append(f"{pid}: {command}")
    return found


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def no_leftovers(cluster: harness.SlurmCluster) -> bool:
    return wait_for(lambda: not leftovers(cluster), 15)


def test_a_suite_through_slurm_matches_a_local_run(slurm, tmp_path):
    root = write_suite(tmp_path / "suite", SUITE)
    local = run_cli(root, tmp_path / "local", "-j", "4")
    remote = run_cli(root, tmp_path / "slurm", "-j", "4", "--dask", "slurm:2", *OPTIONS)
    assert remote.returncode == local.returncode == 1, remote.stderr
    assert statuses(remote.index) == statuses(local.index) == EXPECTED
    assert sorted(e["name"] for e in remote.index["results"]) == sorted(e["name"] for e in local.index["results"])
    # The workers' jobs write their logs in the output directory (the run
    # starts with the first worker: the second job may be cancelled before
    # it starts, as this suite is short).
    logs = sorted(p.name for p in (tmp_path / "slurm" / "cluster-logs").iterdir())
    assert 1 <= len([name for name in logs if name.endswith(".err")]) <= 2, logs
    assert no_leftovers(slurm), leftovers(slurm)


def test_the_example_suite_runs_green_on_slurm(slurm, tmp_path):
    local = run_cli(REPO / "testcases", tmp_path / "local", "-j", "4")
    remote = run_cli(REPO / "testcases", tmp_path / "slurm", "-j", "4", "--dask", "slurm:2", *OPTIONS)
    assert remote.returncode == local.returncode == 0, remote.stdout[-3000:] + remote.stderr
    assert statuses(remote.index) == statuses(local.index)
    assert no_leftovers(slurm), leftovers(slurm)


def test_a_worker_job_cancelled_mid_run_loses_no_result(slurm, tmp_path):
    names = [f"sleep-{n}" for n in range(8)]
    root = write_suite(tmp_path / "suite", {f"{name}/test.yaml": "cmd: sleep 1\n" for name in names})
    out = tmp_path / "out"
    proc = start_cli(root, out, "-j", "4", "--dask", "slurm:2", *OPTIONS)

    def cancel_one() -> None:  # once fragments run on the cluster
        jobs = slurm.squeue()
        assert len(jobs) == 2, jobs
        slurm.run("scancel", jobs[0])

    stderr = act_mid_run(proc, out, 2, cancel_one, timeout=120)
    assert proc.returncode in (0, 1), stderr
    index = load_index(out)
    assert index["complete"] is True
    assert sorted(e["name"] for e in index["results"]) == sorted(names), stderr  # each exactly once
    for name, (status, reason) in statuses(index).items():
        # Dask runs the cancelled job's tasks again on the other worker;
        # past its allowed failures a task is ERROR (CRASH).
        assert (status, reason) in (("PASS", None), ("ERROR", "CRASH")), (name, status, reason, stderr)
    assert no_leftovers(slurm), leftovers(slurm)


def test_a_run_whose_every_job_ended_ends_with_every_result(slurm, tmp_path):
    names = [f"sleep-{n}" for n in range(4)]
    files = {f"{name}/test.yaml": "cmd: sleep 2\n" for name in names}
    # Long enough for the job's worker to come on a loaded machine (3 s was
    # not, under CI), and what waits after it is gone fails as soon.
    # resubmit: 0, so that nothing comes in its place.
    root = write_suite(tmp_path / "suite", {**files, "suite.yaml": "cluster:\n  start_timeout: 20\n  resubmit: 0\n"})
    out = tmp_path / "out"
    proc = start_cli(root, out, "-j", "2", "--dask", "slurm:1", *OPTIONS)
    # As a walltime would: no job is left.
    stderr = act_mid_run(proc, out, 1, lambda: slurm.run("scancel", *slurm.squeue()), timeout=90)
    assert proc.returncode == 1, stderr
    index = load_index(out)
    assert sorted(e["name"] for e in index["results"]) == sorted(names), stderr
    assert ("ERROR", "CRASH") in set(statuses(index).values()), statuses(index)
    assert no_leftovers(slurm), leftovers(slurm)


def test_a_job_that_ends_early_is_submitted_again_and_the_run_completes(slurm, tmp_path):
    names = [f"sleep-{n}" for n in range(5)]
    root = write_suite(tmp_path / "suite", {f"{name}/test.yaml": "cmd: sleep 1\n" for name in names})
    out = tmp_path / "out"
    proc = start_cli(root, out, "-j", "2", "--dask", "slurm:1", *OPTIONS)
    first: list[str] = []

    def end_the_job() -> None:  # as a walltime would
        first.extend(slurm.squeue())
        slurm.run("scancel", *first)

    stderr = act_mid_run(proc, out, 1, end_the_job, timeout=120)
    assert proc.returncode == 0, stderr
    # The fragments it was running ran again on the job that replaced it.
    assert set(statuses(load_index(out)).values()) == {("PASS", None)}, statuses(load_index(out))
    jobs = {p.stem for p in (out / "cluster-logs").iterdir()}  # dask-worker-ID.out and .err
    assert len(jobs) == 2 and f"dask-worker-{first[0]}" in jobs, jobs  # a second job
    assert no_leftovers(slurm), leftovers(slurm)


def test_the_job_keeper_replaces_jobs_that_had_workers_up_to_its_limit(monkeypatch):
    pytest.importorskip("dask_jobqueue")
    from run_testsuite.workers import dask_batch

    class Cluster:  # what the keeper reads of a SLURMCluster, and how it acts on it
        def __init__(self) -> None:
            self.scheduler_info: dict = {"workers": {}}
            self.resubmitted: list[list[str]] = []

        def workers_of(self, *names: str) -> None:
            self.scheduler_info = {"workers": {f"tcp://w{n}": {"name": name} for n, name in enumerate(names)}}

        def sync(self, function, cluster, jobs) -> None:
            assert function is dask_batch._resubmit and cluster is self
            self.resubmitted.append(list(jobs))

    cluster = Cluster()
    keeper = dask_batch.JobKeeper(cluster, processes=2, limit=3)
    assert keeper.gone_after == 17.0  # past Dask's lost-worker-timeout
    cluster.workers_of("C-0-0", "C-0-1", "C-1-0", "C-1-1")
    assert keeper._ended(0.0) == []
    cluster.workers_of("C-0-0", "C-1-0")  # one worker of each gone: the jobs live
    assert keeper._ended(1.0) == []
    cluster.workers_of("C-1-0")  # C-0 has no worker left
    assert keeper._ended(2.0) == []
    assert keeper._ended(18.0) == []  # 16 s: not yet
    assert keeper._ended(19.5) == ["C-0"]
    assert keeper._ended(60.0) == []  # replaced: waits for the new job's workers again
    cluster.workers_of("C-1-0", "C-2-0")  # a job that never had workers is never counted
    assert keeper._ended(61.0) == []
    cluster.workers_of()
    assert keeper._ended(62.0) == [] and keeper._ended(80.0) == ["C-1", "C-2"]

    monkeypatch.setattr(dask_batch, "KEEP_EVERY", 0.01)
    limited = dask_batch.JobKeeper(cluster, processes=1, limit=1)
    limited.gone_after = 0.0
    cluster.workers_of("C-0", "C-1")
    limited.start()
    assert wait_for(lambda: limited._had_workers == {"C-0", "C-1"}, 5)
    cluster.workers_of()
    limited.join(5)
    assert not limited.is_alive() and limited.replaced == 1
    assert cluster.resubmitted == [["C-0"]]  # one of the two: the limit

    # A submission that fails is said, counted, and the keeper goes on.
    class Refusing(Cluster):
        def sync(self, function, cluster, jobs) -> None:
            super().sync(function, cluster, jobs)
            if len(self.resubmitted) == 1:
                raise RuntimeError("sbatch: error: Batch job submission failed")

    refusing = Refusing()
    keeper = dask_batch.JobKeeper(refusing, processes=1, limit=None)
    keeper.gone_after = 0.0
    refusing.workers_of("C-0", "C-1")
    keeper.start()
    try:
        assert wait_for(lambda: keeper._had_workers == {"C-0", "C-1"}, 5)
        refusing.workers_of("C-1")
        assert wait_for(lambda: refusing.resubmitted == [["C-0"]], 5)
        refusing.workers_of()  # and then C-1 ends too
        assert wait_for(lambda: refusing.resubmitted == [["C-0"], ["C-1"]], 5), refusing.resubmitted
        assert keeper.is_alive() and keeper.failures == ["RuntimeError: sbatch: error: Batch job submission failed"]
    finally:
        keeper.stop()


def test_a_failed_submission_ends_the_run_at_once_with_what_sbatch_said(slurm, tmp_path):
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n"})
    began = time.monotonic()
    run = run_cli(root, tmp_path / "out", "--dask", "slurm:2", *OPTIONS, "--dask-option", "queue=nosuch")
    took = time.monotonic() - began
    assert run.returncode == 2, run.stderr
    assert "could not submit its jobs: sbatch: error: invalid partition specified: nosuch" in run.stderr, run.stderr
    assert took < 30, took  # not the 300 s of start_timeout
    assert not (tmp_path / "out" / "new").exists()  # nothing ran, nothing was reported
    # Without SLURM_CONF (and no /etc/slurm here), sbatch cannot start at all.
    if not os.path.exists("/etc/slurm/slurm.conf"):
        env = cli_env()
        env.pop("SLURM_CONF")
        argv = cli_argv(root, tmp_path / "out2", "--dask", "slurm:1", *OPTIONS)
        unset = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert unset.returncode == 2, unset.stderr
        assert "sbatch: fatal: Could not establish a configuration source" in unset.stderr, unset.stderr
    assert no_leftovers(slurm), leftovers(slurm)


def test_workers_that_never_start_end_the_run_with_the_jobs_states(slurm, tmp_path):
    # A job holding every core of the node: the workers' jobs stay pending.
    blocker = slurm.run("sbatch", "--parsable", "--exclusive", "--output=/dev/null", "--wrap", "sleep 300")
    assert wait_for(lambda: "RUNNING" in slurm.run("squeue", "--noheader", "--format=%T").stdout, 20)
    root = write_suite(
        tmp_path / "suite", {"suite.yaml": "cluster:\n  start_timeout: 3\n", "a/test.yaml": "cmd: 'true'\n"}
    )
    began = time.monotonic()
    run = run_cli(root, tmp_path / "out", "--dask", "slurm:1", *OPTIONS)
    took = time.monotonic() - began
    assert run.returncode == 2, run.stderr
    assert "no Dask worker of the SLURM cluster of --dask slurm:1 arrived within 3 s" in run.stderr, run.stderr
    assert "PENDING" in run.stderr and "cluster-logs" in run.stderr, run.stderr
    assert took < 20, took
    # Its job was cancelled with the run; the blocker is all that is left.
    assert wait_for(lambda: slurm.squeue() == [blocker.stdout.strip().split(";")[0]], 10), slurm.squeue()
    slurm.run("scancel", blocker.stdout.strip().split(";")[0])
    assert no_leftovers(slurm), leftovers(slurm)


def test_the_jobs_settings_come_from_suite_yaml_and_the_options(tmp_path):
    pytest.importorskip("dask_jobqueue")
    from run_testsuite.workers.dask_batch import job_arguments, settings_from
    from run_testsuite.workers.dask_cluster import DaskError

    settings = settings_from(
        {"queue": "long", "walltime": 5400, "cores": 2, "directives": ["--exclusive"]},
        [("cores", "4"), ("memory", "8GB"), ("account", "proj1"), ("worker_resources", "{GPU: 1}")],
        "suite.yaml's cluster: and --dask-option",
    )
    arguments = job_arguments("slurm", settings, str(tmp_path))
    assert arguments["queue"] == "long" and arguments["walltime"] == "01:30:00"  # YAML read 01:30:00 as 5400
    assert arguments["cores"] == arguments["processes"] == 4  # one thread a worker
    assert arguments["memory"] == "8GB" and arguments["account"] == "proj1"
    assert arguments["job_extra_directives"] == ["--exclusive"]
    assert arguments["worker_extra_args"] == ["--resources", "GPU=1"]
    assert arguments["log_directory"] == str(tmp_path / "cluster-logs")
    import dask_jobqueue

    with dask_jobqueue.SLURMCluster(**arguments) as cluster:
        script = cluster.job_script()
    for line in ("#SBATCH -p long", "#SBATCH -A proj1", "#SBATCH -t 01:30:00", "#SBATCH --exclusive"):
        assert line in script, script
    # Text keys keep the option's text: walltime=90 is SLURM's 90 minutes, not YAML's 90 seconds.
    assert job_arguments("slurm", settings_from({}, [("walltime", "90")], "--dask-option"), ".")["walltime"] == "90"
    with pytest.raises(DaskError, match=r"--dask-option\): cluster.cores: must be at least 1, got 0"):
        settings_from({}, [("cores", "0")], "--dask-option")
    with pytest.raises(DaskError, match="'nosuch' was unexpected"):
        settings_from({}, [("nosuch", "1")], "--dask-option")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--dask", "slurm:0"), "expected slurm:N with N at least 1"),
        (("--dask", "pbs:x"), "expected pbs:N with N at least 1"),
        (("--dask", "local:2", "--dask-option", "cores=2"), "--dask-option sets the batch jobs of --dask slurm:N"),
        (("--dask-option", "cores=2"), "--dask-option sets the batch jobs of --dask slurm:N"),
        (("--dask", "slurm:1", "--dask-option", "memory=lots"), "memory: 'lots' does not match"),
    ],
)
def test_bad_batch_options_are_usage_errors(tmp_path, args, said):
    pytest.importorskip("distributed")
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n"})
    run = subprocess.run(
        cli_argv(root, tmp_path / "out", *args), capture_output=True, text=True, timeout=60, env=cli_env()
    )
    assert run.returncode == 2, run.stderr
    assert said in run.stderr, run.stderr
    assert not (tmp_path / "out" / "new").exists()


def test_a_bad_cluster_section_is_a_spec_error_with_its_line(tmp_path):
    root = write_suite(tmp_path / "suite", {"suite.yaml": "cluster:\n  cores: 0\n", "a/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 2 and "suite.yaml:2:" in run.stderr and "cluster.cores" in run.stderr, run.stderr



def test_ctrl_c_cancels_the_jobs(slurm, tmp_path):
    import signal

    root = write_suite(tmp_path / "suite", {f"s{n}/test.yaml": "cmd: sleep 30\n" for n in range(4)})
    out = tmp_path / "out"
    proc = start_cli(root, out, "-j", "2", "--dask", "slurm:2", *OPTIONS)
    stderr = act_mid_run(proc, out, 2, lambda: proc.send_signal(signal.SIGINT), timeout=60)
    assert proc.returncode == 130, stderr
    assert {status for status, _ in statuses(load_index(out)).values()} <= {"SKIP", "ERROR", "FAIL"}
    assert no_leftovers(slurm), leftovers(slurm)
