"""The scheduler and workers: slots, worker reuse, parallelism, timeouts and
the processes commands leave behind."""

from __future__ import annotations

import signal
import subprocess
import time
from types import SimpleNamespace

import pytest
from conftest import (
    PYTHON,
    children_of,
    load_index,
    load_result,
    process_alive,
    run_cli,
    start_cli,
    statuses,
    wait_for,
    write_suite,
)

MIXED = {
    "pass/1/test.yaml": "cmd: echo one\n",
    "pass/2/test.yaml": "cmd: [echo, two]\n",
    "pass/3/test.yaml": "steps:\n  - cmd: echo a > f\n  - cmd: cat f\n",
    "fail/exit/test.yaml": "cmd: exit 7\n",
    "fail/step/test.yaml": "steps:\n  - cmd: 'true'\n  - cmd: 'false'\n  - cmd: 'true'\n",
    "diff/ok/test.yaml": "driver: diff\ncmd: echo same\n",
    "diff/ok/test.out": "same\n",
    "diff/bad/test.yaml": "driver: diff\ncmd: echo other\n",
    "diff/bad/test.out": "same\n",
    "deps/a/test.yaml": "cmd: echo a\n",
    "deps/b/test.yaml": "depends: [deps/a]\ncmd: echo b\n",
    "deps/c/test.yaml": "depends: [deps/b, fail/exit]\ncmd: echo c\n",
    "spec/bad/test.yaml": "cmd: echo\ntimout: 1\n",
    "time/out/test.yaml": "timeout: 0.3\ncmd: sleep 30\n",
}
MIXED_EXPECTED = {
    "deps/a": ("PASS", None),
    "deps/b": ("PASS", None),
    "deps/c": ("SKIP", "DEPENDENCY"),
    "diff/bad": ("FAIL", "DIFF"),
    "diff/ok": ("PASS", None),
    "fail/exit": ("FAIL", "EXIT_CODE"),
    "fail/step": ("FAIL", "EXIT_CODE"),
    "pass/1": ("PASS", None),
    "pass/2": ("PASS", None),
    "pass/3": ("PASS", None),
    "spec/bad": ("ERROR", "SPEC"),
    "time/out": ("FAIL", "TIMEOUT"),
}


@pytest.mark.parametrize("mode", [["-j", "1"], ["-j", "2"], ["-j", "16"], ["--no-multiprocessing"]], ids=" ".join)
def test_same_statuses_whatever_the_slots(tmp_path, mode):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, MIXED)
    run = run_cli(root, out, *mode)
    assert statuses(run.index) == MIXED_EXPECTED
    assert run.returncode == 1
    messages = {e["name"]: e["message"] for e in run.index["results"]}
    assert messages["fail/step"] == "step 'step2' exited with 1, expected 0 (1 later step not run)"
    assert messages["deps/c"] == "not run: dependency 'fail/exit' did not pass (FAIL)"
    assert messages["time/out"] == "step 'run' timed out after 0.3 s"
    assert load_result(out, "pass/3", run.index)["output"] == "[step1]\n\n[step2]\na\n"
    slots = {e["slot"] for e in run.index["results"] if e["slot"] is not None}
    if mode == ["--no-multiprocessing"]:
        assert slots == {1}
    else:
        jobs = int(mode[1])
        assert run.index["jobs"] == jobs
        assert slots <= set(range(1, jobs + 1))


PPID_CMD = f'cmd: [{PYTHON}, -c, "import os; print(os.getppid())"]\n'


def _ppid_suite(root, count=20):
    return write_suite(root, {f"t{n:02}/test.yaml": PPID_CMD for n in range(count)})


def test_workers_are_reused_across_fragments(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    _ppid_suite(root)
    proc = start_cli(root, out, "-j", "2")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    index = load_index(out)
    ppid_of_slot: dict[int, set[int]] = {}
    for e in index["results"]:
        res = load_result(out, e["name"], index)
        ppid_of_slot.setdefault(res["slot"], set()).add(int(res["output"]))
    parents = set().union(*ppid_of_slot.values())
    assert len(index["results"]) == 20
    assert 1 <= len(parents) <= 2, parents
    # One worker per slot, and it is not the main process.
    assert all(len(pids) == 1 for pids in ppid_of_slot.values()), ppid_of_slot
    assert proc.pid not in parents
    # The workers are gone once the run is over.
    assert not any(process_alive(pid) for pid in parents)


def test_no_multiprocessing_runs_commands_from_the_main_process(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    _ppid_suite(root, count=5)
    proc = start_cli(root, out, "--no-multiprocessing", "-j", "4")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    index = load_index(out)
    parents = {int(load_result(out, e["name"], index)["output"]) for e in index["results"]}
    assert parents == {proc.pid}
    assert {e["slot"] for e in index["results"]} == {1}


def test_fragments_run_in_parallel(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {f"s{n}/test.yaml": "cmd: sleep 0.5\n" for n in range(8)})
    began = time.monotonic()
    run = run_cli(root, out, "-j", "8")
    wall = time.monotonic() - began
    assert run.returncode == 0
    results = [load_result(out, e["name"], run.index) for e in run.index["results"]]
    assert len(results) == 8
    # Serially this takes 4 s; in parallel about 0.5 s plus start-up.
    assert wall < 3.0, wall
    assert run.index["duration"] < 2.5
    # Every testcase started before the first one finished.
    assert max(r["start"] for r in results) < min(r["start"] + r["duration"] for r in results)
    assert sorted(r["slot"] for r in results) == list(range(1, 9))


def test_slot_variable_matches_the_slot_and_stays_within_jobs(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {f"s{n}/test.yaml": "cmd: echo $SLOT\n" for n in range(9)})
    run = run_cli(root, out, "-j", "3")
    assert run.returncode == 0
    seen = set()
    for e in run.index["results"]:
        res = load_result(out, e["name"], run.index)
        assert res["output"] == f"{res['slot']}\n"
        assert e["slot"] == res["slot"]
        seen.add(res["slot"])
    assert seen <= {1, 2, 3}
    assert 1 in seen


def test_more_slots_than_fragments(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"only/test.yaml": "cmd: echo $SLOT\n"})
    run = run_cli(root, out, "-j", "64")
    assert statuses(run.index) == {"only": ("PASS", None)}
    assert load_result(out, "only", run.index)["output"] == "1\n"


def test_suite_of_only_errors_starts_no_worker(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"bad/test.yaml": "nope: 1\n"})
    run = run_cli(root, out, "-j", "4")
    assert statuses(run.index) == {"bad": ("ERROR", "SPEC")}
    assert run.returncode == 1


# -- timeouts -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timeout_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("timeouts")
    root, out = base / "suite", base / "out"
    pids = base / "pids"
    pids.mkdir()
    # The background child ignores SIGTERM and stays in the command's
    # process group; it writes its pid where the test can check it.
    bg = '(trap "" TERM; exec sleep 60) & echo $! > {}'
    write_suite(
        root,
        {
            "a-plain/test.yaml": "timeout: 0.5\ncmd: sleep 30\n",
            "b-stubborn/test.yaml": "timeout: 0.5\ncmd: trap '' TERM; sleep 30; echo survived\n",
            "c-bg-timeout/test.yaml": f"timeout: 0.5\ncmd: {bg.format(pids / 'timeout')}; sleep 30\n",
            "d-bg-exit/test.yaml": f"cmd: {bg.format(pids / 'exit')}; echo leader done\n",
            "e-step/test.yaml": "steps:\n  - cmd: sleep 30\n    timeout: 0.3\n  - cmd: touch never\n",
            # setsid leaves the command's process group: killing the group misses it.
            "e2-setsid/test.yaml": f"cmd: setsid sleep 60 & echo $! > {pids / 'setsid'}; echo started\n",
            "f-quick/test.yaml": "cmd: echo quick\n",
            "g-quick/test.yaml": "cmd: echo quick\n",
        },
    )
    began = time.monotonic()
    run = run_cli(root, out, "-j", "1")
    return SimpleNamespace(root=root, out=out, run=run, pids=pids, wall=time.monotonic() - began)


def test_timeouts_statuses_and_the_slot_carries_on(timeout_run):
    run = timeout_run.run
    assert statuses(run.index) == {
        "a-plain": ("FAIL", "TIMEOUT"),
        "b-stubborn": ("FAIL", "TIMEOUT"),
        "c-bg-timeout": ("FAIL", "TIMEOUT"),
        "d-bg-exit": ("PASS", None),
        "e-step": ("FAIL", "TIMEOUT"),
        "e2-setsid": ("PASS", None),
        "f-quick": ("PASS", None),
        "g-quick": ("PASS", None),
    }
    for name in ("f-quick", "g-quick"):
        res = load_result(timeout_run.out, name, run.index)
        assert res["slot"] == 1 and res["output"] == "quick\n"
    # 30 s sleeps, cut short: the whole run takes a few seconds.
    assert timeout_run.wall < 20


def test_timeout_kills_the_command_quickly(timeout_run):
    res = load_result(timeout_run.out, "a-plain", timeout_run.run.index)
    assert res["message"] == "step 'run' timed out after 0.5 s"
    command = res["commands"][0]
    assert command["timed_out"] is True
    assert command["exit_code"] is not None and command["exit_code"] < 0
    assert 0.4 < res["duration"] < 3.0


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(timeout_run):
    res = load_result(timeout_run.out, "b-stubborn", timeout_run.run.index)
    assert res["commands"][0]["exit_code"] == -9
    assert res["commands"][0]["timed_out"] is True
    assert "survived" not in res["output"]
    assert res["duration"] < 10


def test_per_step_timeout(timeout_run):
    res = load_result(timeout_run.out, "e-step", timeout_run.run.index)
    assert res["message"] == "step 'step1' timed out after 0.3 s (1 later step not run)"
    assert not (timeout_run.out / "new" / "work" / "e-step" / "never").exists()


@pytest.mark.parametrize("case", ["timeout", "exit", "setsid"])
def test_background_child_ignoring_sigterm_is_killed(timeout_run, case):
    pid = int((timeout_run.pids / case).read_text())
    assert pid > 0
    assert not process_alive(pid), f"background child {pid} outlived its command ({case})"


def test_killing_the_run_stops_its_workers_and_commands(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    pid_file = tmp_path / "pid"
    write_suite(
        root, {"a/test.yaml": f"cmd: echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 30\n"}
    )
    proc = start_cli(root, out, "-j", "1", "--cleanup", "none")  # no cleanup helper among its children
    try:
        assert wait_for(pid_file.exists, 20), "the command never started"
        workers = children_of(proc.pid)
        assert len(workers) == 1
        proc.kill()
        proc.communicate(timeout=30)
        command = int(pid_file.read_text())
        assert wait_for(lambda: not process_alive(command) and not any(map(process_alive, workers)), 10), (
            "a worker or its command outlived the run"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_timeout_is_the_default(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "default/test.yaml": "cmd: sleep 30\n",
            "own/test.yaml": "timeout: 20\ncmd: sleep 0.8\n",
        },
    )
    run = run_cli(root, out, "--timeout", "0.5", "-j", "2")
    assert statuses(run.index) == {"default": ("FAIL", "TIMEOUT"), "own": ("PASS", None)}
    assert load_result(out, "default", run.index)["message"] == "step 'run' timed out after 0.5 s"


# -- worker crashes -----------------------------------------------------------------------------
CRASH_DRIVER = """
import os

from run_testsuite.api import Driver


class Crash(Driver):
    def run(self, fragment, ctx):
        os._exit(3)
"""


def _crash_suite(root, files):
    return write_suite(
        root,
        {
            "suite.yaml": "drivers:\n  crash: drivers_local/crash.py:Crash\n",
            "drivers_local/crash.py": CRASH_DRIVER,
            **files,
        },
    )


def _run_or_stop(root, out, *args, within: float):
    """Run the CLI; if it has not finished ``within`` seconds, interrupt it
    (SIGTERM: it still writes its index) and fail."""
    proc = start_cli(root, out, *args)
    try:
        stdout, stderr = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
        index = load_index(out)
        pytest.fail(f"the run stalled; interrupted after {within} s with {statuses(index)}")
    return proc.returncode, stdout, load_index(out)


def test_repeated_worker_crashes_do_not_stall_the_slot(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    _crash_suite(
        root,
        {
            "a-crash/test.yaml": "driver: crash\ncmd: 'true'\n",
            "b-crash/test.yaml": "driver: crash\ncmd: 'true'\n",
            "c-after/test.yaml": "cmd: echo after\n",
        },
    )
    # Normally done in well under a second.
    returncode, _, index = _run_or_stop(root, out, "-j", "1", within=6)
    assert statuses(index) == {
        "a-crash": ("ERROR", "CRASH"),
        "b-crash": ("ERROR", "CRASH"),
        "c-after": ("PASS", None),
    }
