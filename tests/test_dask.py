"""--dask: fragments run on a Dask cluster, with the verdicts of a local run.

A real ``distributed.LocalCluster`` (two single-threaded worker processes on
127.0.0.1) stands in for a cluster; its workers share this host's file
system, which is the model: the same paths everywhere. The tests run the
command line against it and compare with a local run, kill a Dask worker in
the middle of a run, place fragments on workers by their Dask resources, and
drive a DaskWorker directly for what the command line cannot show (a worker
that does not see the testcase directory).

Skipped when ``distributed`` is not installed (the ``dask`` extra), unless CI
is set: CI installs it, and a skip there would hide its loss.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    PYTHON,
    act_mid_run,
    load_index,
    load_result,
    process_alive,
    run_cli,
    start_cli,
    statuses,
    wait_for,
    write_suite,
)

try:
    import distributed
except ImportError as exc:
    distributed = None
    if os.environ.get("CI"):
        raise ImportError(f"the Dask tests must run under CI, and distributed is not installed ({exc})") from exc

needs_dask = pytest.mark.skipif(distributed is None, reason="distributed is not installed: pip install -e '.[dask]'")



def _local_cluster(**worker_options):
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: never clashes with another cluster
        **worker_options,
    )
    client = distributed.Client(cluster, set_as_default=False)
    return cluster, client


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two worker processes: (scheduler address, client)."""
    if distributed is None:
        pytest.skip("distributed is not installed")
    local, client = _local_cluster()
    try:
        yield local.scheduler_address, client
    finally:
        client.close()
        local.close()


# A suite with something of everything the scheduler does: dependencies,
# failures of each kind, a timeout, retries, a set-up, a resource pool,
# steps (which may land on different workers), a matrix, an expected
# failure, and an output large enough to spill into a log file.
SUITE = {
    "suite.yaml": """
        name: dask-check
        resources:
          boards: [board-a, board-b]
        setup:
          build:
            cmd: echo built > "$SETUP_DIR/artifact"
    """,
    "ok/test.yaml": "driver: diff\ncmd: echo hello\n",
    "ok/test.out": "hello\n",
    "differs/test.yaml": "driver: diff\ncmd: echo hello\n",
    "differs/test.out": "goodbye\n",
    "exits/test.yaml": "cmd: exit 3\n",
    "after-ok/test.yaml": "depends: [ok]\ncmd: 'true'\n",
    "after-exits/test.yaml": "depends: [exits]\ncmd: 'true'\n",
    "slow/test.yaml": "cmd: sleep 5\ntimeout: 1\n",
    "always-fails/test.yaml": "cmd: exit 1\nretries: 1\n",
    "board/test.yaml": "resources: {boards: 1}\ncmd: test -n \"$RESOURCE_BOARDS\"\n",
    "built/test.yaml": "needs: [build]\ncmd: test -f \"$SETUP_BUILD_DIR/artifact\"\n",
    "steps/test.yaml": """
        steps:
          - {name: write, cmd: echo made > made.txt}
          - {name: read, cmd: grep -q made made.txt}
    """,
    "matrix/test.yaml": "matrix: {n: [1, 2]}\ncmd: test $n -gt 0\n",
    "expected/test.yaml": "cmd: exit 1\ncontrol:\n  - xfail: os != 'no-such-os'\n    reason: known\n",
    "big/test.yaml": f"cmd: {PYTHON} -c \"print('x' * 100000)\"\n",
}

EXPECTED = {
    "setup:build": ("PASS", None),
    "ok": ("PASS", None),
    "differs": ("FAIL", "DIFF"),
    "exits": ("FAIL", "EXIT_CODE"),
    "after-ok": ("PASS", None),
    "after-exits": ("SKIP", "DEPENDENCY"),
    "slow": ("FAIL", "TIMEOUT"),
    "always-fails": ("FAIL", "EXIT_CODE"),
    "board": ("PASS", None),
    "built": ("PASS", None),
    "steps": ("PASS", None),
    "matrix[n=1]": ("PASS", None),
    "matrix[n=2]": ("PASS", None),
    "expected": ("XFAIL", "EXIT_CODE"),
    "big": ("PASS", None),
}


def _attempts(out, index) -> dict[str, int]:
    return {e["name"]: load_result(out, e["name"], index).get("attempts", 1) for e in index["results"]}


@needs_dask
def test_same_verdicts_as_a_local_run(tmp_path, cluster):
    address, _ = cluster
    root = write_suite(tmp_path / "suite", SUITE)
    local = run_cli(root, tmp_path / "local", "-j", "4")
    remote = run_cli(root, tmp_path / "dask", "-j", "4", "--dask", address)
    assert local.returncode == remote.returncode == 1, remote.stderr
    assert statuses(local.index) == EXPECTED
    assert statuses(remote.index) == statuses(local.index)
    assert sorted(e["name"] for e in remote.index["results"]) == sorted(e["name"] for e in local.index["results"])
    assert _attempts(tmp_path / "dask", remote.index) == _attempts(tmp_path / "local", local.index)
    assert _attempts(tmp_path / "dask", remote.index)["always-fails"] == 2
    # The reports say the same things.
    local_diff = load_result(tmp_path / "local", "differs", local.index)
    remote_diff = load_result(tmp_path / "dask", "differs", remote.index)
    assert remote_diff["diff"] == local_diff["diff"] and "+hello" in remote_diff["diff"]
    big = load_result(tmp_path / "dask", "big", remote.index)
    assert big["log_files"] and all(os.path.exists(path) for path in big["log_files"])
    assert "FAIL  differs [DIFF]" in remote.stdout
    assert remote.index["jobs"] == 4


@needs_dask
def test_local_cluster_end_to_end(tmp_path):
    root = write_suite(tmp_path / "suite", SUITE)
    run = run_cli(root, tmp_path / "out", "--dask", "local:2")
    assert run.returncode == 1, run.stderr
    assert statuses(run.index) == EXPECTED
    assert run.index["jobs"] == 4  # default -j: twice the cluster's worker threads


@needs_dask
def test_a_worker_killed_mid_run_loses_no_result(tmp_path):
    local, client = _local_cluster()
    try:
        names = [f"sleep-{n}" for n in range(8)]
        root = write_suite(tmp_path / "suite", {f"{name}/test.yaml": "cmd: sleep 1\n" for name in names})
        out = tmp_path / "out"
        proc = start_cli(root, out, "-j", "4", "--dask", local.scheduler_address)

        def kill_a_worker() -> None:  # once fragments run on both
            os.kill(sorted(client.run(os.getpid).values())[0], signal.SIGKILL)

        stderr = act_mid_run(proc, out, 2, kill_a_worker, timeout=60, start_timeout=30)
        assert proc.returncode in (0, 1), stderr
        index = load_index(out)
        assert index["complete"] is True
        seen = [e["name"] for e in index["results"]]
        assert sorted(seen) == sorted(names), f"{seen}\n{stderr}"  # each exactly once
        for name, (status, reason) in statuses(index).items():
            # Dask runs a dead worker's tasks again elsewhere; past its
            # allowed failures it is KilledWorker: ERROR (CRASH).
            assert (status, reason) in (("PASS", None), ("ERROR", "CRASH")), (name, status, reason, stderr)
    finally:
        client.close()
        local.close()


def _dask_process(tmp_path, *args, env=None) -> subprocess.Popen:
    """``dask scheduler`` or ``dask worker`` in a process of its own
    (PYTHONSAFEPATH: a directory named 'suite' where it starts must not
    shadow the package)."""
    return subprocess.Popen(
        [PYTHON, "-m", *args], env={**os.environ, "PYTHONSAFEPATH": "1", **(env or {})}, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@needs_dask
def test_a_lost_scheduler_ends_the_run_with_every_result(tmp_path):
    info = tmp_path / "scheduler.json"
    scheduler = _dask_process(tmp_path, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(info))
    worker = None
    try:
        assert wait_for(lambda: info.exists() and info.read_text().strip().endswith("}"), 30)
        worker = _dask_process(tmp_path, "distributed.cli.dask_worker", "--scheduler-file", str(info),
                               "--nthreads", "2", "--no-dashboard", "--death-timeout", "10")
        address = json.loads(info.read_text())["address"]
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=30)
        names = [f"sleep-{n:02}" for n in range(12)]
        root = write_suite(tmp_path / "suite", {f"{name}/test.yaml": "cmd: sleep 2\n" for name in names})
        out = tmp_path / "out"
        # The client gives up reconnecting after Dask's connect timeout.
        proc = start_cli(root, out, "-j", "4", "--dask", address, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
        try:
            work = out / "new" / "work"
            assert wait_for(lambda: work.is_dir() and len(list(work.iterdir())) >= 2, 30), proc.poll()
            scheduler.kill()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 1, stderr
        index = load_index(out)
        assert sorted(e["name"] for e in index["results"]) == names
        found = statuses(index)
        assert set(found.values()) == {("ERROR", "CRASH")}, found
        for name in names:
            message = load_result(out, name, index)["message"]
            assert message.startswith((
                f"the connection to the Dask scheduler at {address} was lost",  # submitted after
                "the Dask cluster dropped the fragment (cancelled",  # in flight
            )), message
    finally:
        for process in (scheduler, worker):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.wait(timeout=30)


@needs_dask
def test_fragments_go_to_workers_advertising_their_resources(tmp_path, cluster):
    address, client = cluster
    # A third worker, the only one with a GPU; its commands see WHO=gpu.
    worker = _dask_process(tmp_path, "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                           "--resources", "GPU=1", "--no-dashboard", "--host", "127.0.0.1", env={"WHO": "gpu"})
    try:
        client.wait_for_workers(3, timeout=30)
        files = {
            "suite.yaml": "resources: {GPU: 2}\n",
            "big-gpu/test.yaml": "resources: {GPU: 2}\ncmd: 'true'\n",
        }
        for n in range(3):
            files[f"gpu-{n}/test.yaml"] = "resources: {GPU: 1}\ncmd: test \"$WHO\" = gpu\n"
            files[f"cpu-{n}/test.yaml"] = "cmd: 'true'\n"
        root = write_suite(tmp_path / "suite", files)
        run = run_cli(root, tmp_path / "out", "-j", "4", "--dask", address)
        found = statuses(run.index)
        for n in range(3):
            assert found[f"gpu-{n}"] == ("PASS", None), load_result(tmp_path / "out", f"gpu-{n}", run.index)
            assert found[f"cpu-{n}"] == ("PASS", None)
        # The pool has two, but no Dask worker has two: an ERROR, not a hang.
        assert found["big-gpu"] == ("ERROR", "CRASH")
        message = load_result(tmp_path / "out", "big-gpu", run.index)["message"]
        assert "no Dask worker advertises" in message and "GPU: 2" in message
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@needs_dask
def test_a_worker_that_does_not_see_the_testcase_says_so(tmp_path, cluster):
    """Driven directly: the slot's pipe wakes the selector, events() gives
    the outcome, with the worker's address and what the cluster needs."""
    from run_testsuite.api import Command, Fragment
    from run_testsuite.workers.dask_cluster import DaskCluster
    from run_testsuite.workers.dask_worker import worker_class

    address, _ = cluster
    logs = tmp_path / "new" / "logs"
    logs.mkdir(parents=True)
    (tmp_path / "here").mkdir()

    def fragment(source: str) -> Fragment:
        return Fragment(
            testcase="t", name="run", driver="run_testsuite.drivers.shell:ShellDriver",
            commands=[Command(["echo", "hi"], 0, 30.0, "run")], env={},
            source_dir=source, work_dir=str(tmp_path / "work" / Path(source).name),
            log_stem=str(logs / "t"), prepare=True, final=True,
        )

    with DaskCluster(address) as dask:
        worker = worker_class(dask)(1)
        selector = selectors.DefaultSelector()
        for fd in worker.waitables():
            selector.register(fd, selectors.EVENT_READ)
        try:
            outcomes = []
            for source in ("/nonexistent/elsewhere", str(tmp_path / "here")):
                worker.submit(7, fragment(source))
                events = []
                deadline = time.monotonic() + 30
                while not events and time.monotonic() < deadline:
                    assert selector.select(30), "the slot's pipe never woke"
                    events = worker.events()
                assert len(events) == 1 and events[0][0] == 7 and not worker.busy
                outcomes.append(events[0][1])
        finally:
            worker.stop()
    missing, present = outcomes
    assert (missing.status.value, missing.reason.value) == ("ERROR", "CRASH")
    assert missing.message.startswith("testcase directory /nonexistent/elsewhere is not visible on Dask worker tcp://127.0.0.1:")
    assert missing.message.endswith("the cluster needs a shared filesystem at the same path")
    assert present.status.value == "PASS" and present.output == "hi\n"
    assert present.slot == 1


def _wait_for_events(worker, timeout: float = 30) -> list:
    selector = selectors.DefaultSelector()
    for fd in worker.waitables():
        selector.register(fd, selectors.EVENT_READ)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(max(0.0, deadline - time.monotonic())):
                events = worker.events()
                if events:
                    return events
        return []
    finally:
        selector.close()


def _sleeper(tmp_path, name: str, seconds: int):
    """A fragment that writes its command's pid to NAME.pid, then sleeps."""
    from run_testsuite.api import Command, Fragment

    logs = tmp_path / "new" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return Fragment(
        testcase=name, name="run", driver="run_testsuite.drivers.shell:ShellDriver",
        commands=[Command(f"echo $$ > {tmp_path}/{name}.pid; exec sleep {seconds}", 0, 60.0, "run")],
        env={}, source_dir="", work_dir=str(tmp_path / "work" / name),
        log_stem=str(logs / name), prepare=True, final=True,
    )


@needs_dask
def test_the_watchdog_counts_from_the_start_not_the_queue(tmp_path, cluster):
    """Three slots on two single-threaded workers: the third fragment waits
    in Dask's queue, and the watchdog gives it its whole time once it
    starts. A fragment that runs past its time is cancelled and its command
    stopped on the worker."""
    from run_testsuite.workers.dask_cluster import DaskCluster
    from run_testsuite.workers.dask_worker import worker_class

    address, _ = cluster
    with DaskCluster(address) as dask:
        cls = worker_class(dask)
        workers = [cls(slot) for slot in (1, 2, 3)]
        try:
            for number, worker in enumerate(workers):
                worker.submit(number, _sleeper(tmp_path, f"s{number}", 30))
            pids = [tmp_path / f"s{n}.pid" for n in range(3)]
            assert wait_for(lambda: sum(p.exists() for p in pids) == 2, 30)
            time.sleep(0.5)  # the two that run have run a while
            queued = next(w for n, w in enumerate(workers) if not pids[n].exists())
            running = [w for w in workers if w is not queued]
            # Past their deadlines: the queued one gets its whole allowance
            # again, a running one what it has left.
            for worker in workers:
                worker.deadline = time.monotonic() - 1
                assert worker.expire() == []
                assert worker.busy
            assert queued.deadline - time.monotonic() > queued.allowance - 5
            for worker in running:
                assert worker.deadline - time.monotonic() < worker.allowance - 0.4
            # A running fragment past its allowance: cancelled, ERROR (CRASH),
            # its command killed where it ran.
            victim = running[0]
            pid = int(pids[workers.index(victim)].read_text())
            victim.allowance = 0.1
            victim.deadline = time.monotonic() - 1
            [(job, outcome)] = victim.expire()
            assert job == workers.index(victim) and not victim.busy
            assert (outcome.status.value, outcome.reason.value) == ("ERROR", "CRASH")
            assert "past its timeouts" in outcome.message and "tcp://127.0.0.1:" in outcome.message
            assert wait_for(lambda: not process_alive(pid), 10), "the command outlived its cancelled fragment"
            # ... which frees its worker for the queued fragment.
            assert wait_for(lambda: pids[workers.index(queued)].exists(), 10)
        finally:
            for worker in workers:
                worker.kill()
            for worker in workers:
                worker.stop()
    for path in pids:
        if path.exists():
            assert wait_for(lambda: not process_alive(int(path.read_text())), 10)


@needs_dask
def test_ctrl_c_stops_the_commands_on_the_cluster(tmp_path, cluster):
    address, _ = cluster
    root = write_suite(tmp_path / "suite", {
        "long/test.yaml": f"cmd: echo $$ > {tmp_path}/long.pid; exec sleep 60\ntimeout: 120\n",
        "later/test.yaml": "depends: [long]\ncmd: 'true'\n",
    })
    out = tmp_path / "out"
    proc = start_cli(root, out, "--dask", address)
    try:
        pid_file = tmp_path / "long.pid"
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
        pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert statuses(load_index(out)) == {"long": ("ERROR", "INTERRUPTED"), "later": ("SKIP", "DEPENDENCY")}
    assert wait_for(lambda: not process_alive(pid), 10), "the command outlived the interrupted run"


@needs_dask
def test_an_unreachable_scheduler_is_a_usage_error(tmp_path):
    root = write_suite(tmp_path / "suite", {"ok/test.yaml": "cmd: 'true'\n"})
    started = time.monotonic()
    run = run_cli(root, tmp_path / "out", "--dask", "tcp://127.0.0.1:9",
                  env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert run.returncode == 2
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in run.stderr
    assert run.index is None  # nothing ran, nothing rotated
    assert time.monotonic() - started < 30


@needs_dask
def test_a_scheduler_without_run_testsuite_is_refused(tmp_path):
    """The scheduler unpickles the tasks: it needs run-testsuite too."""
    from run_testsuite.workers.dask_cluster import DaskCluster, DaskError

    hidden = write_suite(tmp_path / "hidden", {"run_testsuite/__init__.py": "raise ImportError('no run-testsuite here')\n"})
    scheduler = _dask_process(tmp_path, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(tmp_path / "scheduler.json"),
                              env={"PYTHONPATH": str(hidden)})
    try:
        info = tmp_path / "scheduler.json"
        assert wait_for(lambda: info.exists() and info.read_text().strip().endswith("}"), 30)
        address = json.loads(info.read_text())["address"]
        with pytest.raises(DaskError, match="the Dask scheduler at .* cannot import run-testsuite .*no run-testsuite here"):
            with DaskCluster(address) as dask:
                dask.connect()
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


def test_without_dask_the_option_says_how_to_install_it(tmp_path):
    # A 'distributed' that cannot be imported, first on the path.
    fake = write_suite(tmp_path / "fake", {"distributed/__init__.py": "raise ImportError('No module named distributed')\n"})
    root = write_suite(tmp_path / "suite", {"ok/test.yaml": "cmd: 'true'\n"})
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH", "")) if p)
    for address in ("local:2", "tcp://127.0.0.1:8786"):
        run = run_cli(root, tmp_path / "out", "--dask", address, env={"PYTHONPATH": path})
        assert run.returncode == 2, run.stderr
        assert "pip install 'run-testsuite[dask]'" in run.stderr
        assert "Traceback" not in run.stderr


@pytest.mark.parametrize("address", ["local:0", "local:x", "local"])
def test_a_malformed_local_cluster_is_a_usage_error(tmp_path, address):
    if distributed is None:
        pytest.skip("distributed is not installed")
    root = write_suite(tmp_path / "suite", {"ok/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, tmp_path / "out", "--dask", address)
    assert run.returncode == 2
    assert "expected local:N" in run.stderr


@needs_dask
def test_suite_drivers_load_on_dask_workers(tmp_path, cluster):
    """The cluster's workers were started without the suite on their
    sys.path: each fragment brings the suite root for its
    ``package.module:Class`` driver; file drivers come by absolute path."""
    from test_namespace import OWN_PACKAGES_SUITE, all_passed

    address, _ = cluster
    root = write_suite(tmp_path / "own", OWN_PACKAGES_SUITE)
    run = run_cli(root, tmp_path / "out", "--dask", address, "-j", "4", timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert all_passed(run.index), run.stdout


@needs_dask
def test_a_killed_workers_commands_die_with_it_and_the_retry_runs_alone(tmp_path):
    """kill -9 of the Dask worker running a command: its guard kills the
    command's group (a background child too), and Dask's second attempt,
    in the same work directory, sees nothing the orphans would have written."""
    flags = tmp_path / "flags"
    flags.mkdir()
    script = (
        f'if [ -e {flags}/started ]; then echo second > "$TEST_WORK_DIR/attempt"; exit 0; fi; '
        f"touch {flags}/started; echo $$ > {flags}/pid; "
        f'(sleep 4; echo orphan > "$TEST_WORK_DIR/orphan-wrote"; touch {flags}/orphan-lived) & '
        f"echo $! > {flags}/child; wait"
    )
    root = write_suite(tmp_path / "suite", {"victim/test.yaml": f"cmd: {json.dumps(script)}\n"})
    local, client = _local_cluster()
    try:
        out = tmp_path / "out"
        proc = start_cli(root, out, "-j", "2", "--cleanup", "none", "--dask", local.scheduler_address)
        try:
            assert wait_for(lambda: (flags / "child").exists() and (flags / "child").read_text().strip(), 30)
            command = int((flags / "pid").read_text())
            child = int((flags / "child").read_text())
            worker = int(Path(f"/proc/{command}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
            assert worker in client.run(os.getpid).values()
            os.kill(worker, signal.SIGKILL)
            assert wait_for(lambda: not process_alive(command) and not process_alive(child), 10), (
                "the killed worker's command outlived it"
            )
            stdout, stderr = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        index = load_index(out)
        assert statuses(index) == {"victim": ("PASS", None)}, stdout + stderr
        work = out / "new" / "work"
        assert (work / "victim" / "attempt").read_text() == "second\n"
        time.sleep(4.5)  # past the moment the orphan would have written
        assert not (flags / "orphan-lived").exists()
        assert not (work / "victim" / "orphan-wrote").exists()
        assert not [p.name for p in work.iterdir() if p.name.startswith(".lease-")]
    finally:
        client.close()
        local.close()


def test_a_lease_waits_for_its_holder_and_is_taken_over_from_the_dead(tmp_path, monkeypatch):
    from run_testsuite.workers import dask_guard

    monkeypatch.setattr(dask_guard, "tell", lambda message: None)  # no guard for this test process

    work = tmp_path / "work" / "t"
    path = dask_guard.take_lease(str(work))
    assert Path(path).read_text().split()[1] == str(os.getpid())
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _take_within(str(work), 0.5)  # held by a live process: it waits
    assert time.monotonic() - started >= 0.5
    dask_guard.release_lease(path)
    assert wait_for(lambda: Path(path).exists(), 5)  # the waiting thread took it: release it as it would
    Path(path).unlink()
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    Path(path).write_text(f"{os.uname().nodename} {int(dead.stdout)}\n")  # a holder that died, guard and all
    assert dask_guard.take_lease(str(work), wait=5) == path  # taken over at once
    dask_guard.release_lease(path)


def test_an_unreadable_lease_is_taken_over_after_the_wait(tmp_path, monkeypatch):
    """An empty lease names no holder to ask: taken over after the wait,
    not waited on for ever."""
    from run_testsuite.workers import dask_guard

    monkeypatch.setattr(dask_guard, "tell", lambda message: None)
    work = tmp_path / "work" / "t"
    work.parent.mkdir()
    Path(dask_guard.lease_path(str(work))).write_text("")
    started = time.monotonic()
    taken: list[str] = []
    thread = threading.Thread(target=lambda: taken.append(dask_guard.take_lease(str(work), wait=0.5)), daemon=True)
    thread.start()
    thread.join(10)
    assert taken, "an empty lease was waited on past the wait"
    assert time.monotonic() - started >= 0.5
    path = taken[0]
    assert Path(path).read_text().split() == [os.uname().nodename, str(os.getpid())]
    assert sorted(p.name for p in work.parent.iterdir()) == [".lease-t"]  # no draft left
    dask_guard.release_lease(path)


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_worker_killed_as_it_takes_a_lease_leaves_nothing_that_blocks(tmp_path, moment):
    """kill -9 just before or just after the lease is linked into place: its
    guard removes the draft and the lease, and the next attempt takes it."""
    work = tmp_path / "work" / "t"
    script = f"""
import os, signal
from run_testsuite.workers import dask_guard
real_link = os.link
def link(source, target):
    if {moment == "after"!r}:
        real_link(source, target)
    os.kill(os.getpid(), signal.SIGKILL)
os.link = link
dask_guard.take_lease({str(work)!r}, wait=600)
"""
    killed = subprocess.run([PYTHON, "-c", script], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert wait_for(lambda: not list(work.parent.iterdir()), 15), sorted(p.name for p in work.parent.iterdir())
    _take_within(str(work), 5)


def _take_within(work: str, seconds: float) -> None:
    from run_testsuite.workers import dask_guard

    done = threading.Event()
    threading.Thread(target=lambda: (dask_guard.take_lease(work, wait=60), done.set()), daemon=True).start()
    if not done.wait(seconds):
        raise TimeoutError


def test_a_guard_releases_only_the_leases_that_still_name_its_worker(tmp_path):
    import socket

    mine, taken = tmp_path / ".lease-a", tmp_path / ".lease-b"
    worker = 424242
    mine.write_text(f"{socket.gethostname()} {worker}\n")
    taken.write_text(f"{socket.gethostname()} {os.getpid()}\n")  # taken over since by another worker
    draft = tmp_path / f".lease-c.draft-{worker}-7"
    draft.write_text("")  # the worker died as it wrote it
    alike = tmp_path / ".lease-x.draft-1-2"  # the lease of testcase 'x.draft-1-2', another's
    alike.write_text(f"{socket.gethostname()} {os.getpid()}\n")
    guard = subprocess.run(
        [PYTHON, "-c", "from run_testsuite.workers.dask_guard import serve; serve()", str(worker)],
        input=f"L {mine}\nL {taken}\nL {draft}\nL {alike}\n",
        text=True,
        timeout=30,
    )
    assert guard.returncode == 0
    assert not mine.exists() and taken.exists()
    assert not draft.exists() and alike.exists()
