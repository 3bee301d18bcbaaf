"""Fragments sent ahead: a busy worker is given its slot's next fragment
while the current one runs, once history says fragments are short.

The worker protocol is driven directly (a real forked worker, real
commands); the scheduler's choices are checked on real plans; the failure
policy and crashes end to end through the command line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import run_cli, statuses, write_suite
from run_testsuite.loader import build_plan
from run_testsuite.plan import DECIDED
from run_testsuite.results import Status
from run_testsuite.scheduler.dispatch import AHEAD_WITHIN, MultiprocessScheduler
from run_testsuite.scheduler.verdicts import Policy
from run_testsuite.workers.local import ProcessWorker


def plan_of(tmp_path: Path, files: dict):
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    return build_plan(str(root), [], str(out), str(out / "work"))


def fragments_by_testcase(plan) -> dict:
    return {plan.fragments[n].testcase: n for n in range(len(plan.fragments))}


def collect(worker: ProcessWorker, count: int, timeout: float = 20.0) -> list:
    """The next ``count`` events of ``worker``, in order."""
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        assert time.monotonic() < deadline, f"only {events} after {timeout} s"
        events.extend(worker.events())
        time.sleep(0.005)
    return events


def a_then_b(tmp_path: Path, worker, a_cmd: str, more: dict | None = None):
    """A worker running testcase ``a`` with ``b`` sent ahead; ``b`` and
    any of ``more`` touch a file named after them in the returned marks."""
    marks = tmp_path / "marks"
    marks.mkdir()
    files = {"a/test.yaml": f"cmd: {a_cmd}\n", "b/test.yaml": f"cmd: touch {marks}/b\n"}
    files.update({f"{name}/test.yaml": f"cmd: touch {marks}/{name}\n" for name in more or ()})
    plan = plan_of(tmp_path, files)
    jobs = fragments_by_testcase(plan)
    w = worker()
    w.submit(jobs["a"], plan.fragments[jobs["a"]])
    w.submit(jobs["b"], plan.fragments[jobs["b"]])
    return w, plan, jobs, marks


@pytest.fixture
def worker():
    created = []

    def make(slot: int = 1) -> ProcessWorker:
        created.append(ProcessWorker(slot))
        return created[-1]

    yield make
    for each in created:
        each.stop()


# -- the worker's side ---------------------------------------------------------
def test_fragment_sent_ahead_runs_when_the_current_one_passes(tmp_path, worker):
    plan = plan_of(tmp_path, {"a/test.yaml": "cmd: sleep 0.3\n", "b/test.yaml": "cmd: sleep 0.3\n"})
    jobs = fragments_by_testcase(plan)
    w = worker()
    w.submit(jobs["a"], plan.fragments[jobs["a"]])
    assert w.free_ahead
    w.submit(jobs["b"], plan.fragments[jobs["b"]])
    assert not w.free_ahead and w.job == jobs["a"] and w.queued[0] == jobs["b"]
    first = collect(w, 1)
    assert first[0][0] == jobs["a"] and first[0][1].status is Status.PASS
    assert w.job == jobs["b"] and w.queued is None and w.deadline is not None  # now in flight
    second = collect(w, 1)
    assert second[0][0] == jobs["b"] and second[0][1].status is Status.PASS
    assert not w.busy


def test_fragment_sent_ahead_comes_back_unrun_after_a_failure(tmp_path, worker):
    """It was sent not knowing the failure: the main process decides again."""
    w, plan, jobs, marks = a_then_b(tmp_path, worker, "sleep 0.2 && exit 1", ["c"])
    events = collect(w, 2)
    assert [job for job, _ in events] == [jobs["a"], jobs["b"]]
    assert events[0][1].status is Status.FAIL
    assert events[1][1] is None
    assert not (marks / "b").exists()
    # What is sent once the failure is known runs.
    w.submit(jobs["c"], plan.fragments[jobs["c"]])
    events = collect(w, 1)
    assert events[0][1].status is Status.PASS and (marks / "c").exists()


def test_withdrawn_fragment_comes_back_unrun(tmp_path, worker):
    w, plan, jobs, marks = a_then_b(tmp_path, worker, "sleep 0.5")
    w.withdraw()
    w.withdraw()  # once is enough
    events = collect(w, 2)
    assert events[0][0] == jobs["a"] and events[0][1].status is Status.PASS
    assert events[1] == (jobs["b"], None)
    assert not (marks / "b").exists()
    # A withdrawal that comes too late changes nothing.
    w.submit(jobs["b"], plan.fragments[jobs["b"]])
    events = collect(w, 1)
    w.withdraw()  # nothing queued: nothing sent
    assert events[0][1].status is Status.PASS and (marks / "b").exists()


def test_worker_death_gives_back_the_fragment_sent_ahead(tmp_path, worker):
    w, plan, jobs, marks = a_then_b(tmp_path, worker, "sleep 0.2 && kill -KILL $PPID")
    events = collect(w, 2)
    assert events[0][0] == jobs["a"] and events[0][1].reason.value == "CRASH"
    assert events[1] == (jobs["b"], None)
    assert not w.busy and w.queued is None and w.process.is_alive()  # replaced
    assert not (marks / "b").exists()


# -- the scheduler's choices ---------------------------------------------------
class Recording(ProcessWorker):
    """Notes which fragments were sent to a worker already busy."""

    ahead: list[int] = []

    def submit(self, job, fragment):
        if self.job is not None:
            Recording.ahead.append(job)
        super().submit(job, fragment)


def schedule(plan, jobs: int, durations: dict) -> dict:
    Recording.ahead = []
    results = {}
    scheduler = MultiprocessScheduler(
        plan, jobs, lambda r: results.__setitem__(r.name, r.status.value), Recording,
        policy=Policy(durations=durations),
    )
    scheduler.run()
    return results


SHORT_SUITE = {f"t{n:02}/test.yaml": "cmd: 'true'\n" for n in range(24)}


def test_short_fragments_are_sent_ahead_once_their_durations_are_known(tmp_path):
    plan = plan_of(tmp_path, SHORT_SUITE)
    known = {(f.testcase, f.name): 0.01 for f in plan.fragments}
    assert schedule(plan, 2, known) == {f"t{n:02}": "PASS" for n in range(24)}
    assert len(Recording.ahead) >= 10, Recording.ahead


def test_nothing_is_sent_ahead_without_durations_or_behind_long_fragments(tmp_path):
    plan = plan_of(tmp_path, SHORT_SUITE)
    assert set(schedule(plan, 2, {}).values()) == {"PASS"}  # estimated at 1 s each
    assert Recording.ahead == []
    long = {(f.testcase, f.name): AHEAD_WITHIN * 2 for f in plan.fragments}
    assert set(schedule(plan, 2, long).values()) == {"PASS"}
    assert Recording.ahead == []


def test_fragments_needing_resources_are_never_sent_ahead(tmp_path):
    files = {"suite.yaml": "resources:\n  licenses: 2\n"}
    files.update({f"t{n:02}/test.yaml": "resources: {licenses: 1}\ncmd: 'true'\n" for n in range(12)})
    plan = plan_of(tmp_path, files)
    known = {(f.testcase, f.name): 0.01 for f in plan.fragments}
    assert set(schedule(plan, 2, known).values()) == {"PASS"}
    assert Recording.ahead == []


# -- end to end ----------------------------------------------------------------
def touch_suite(marks: Path, first: str, count: int = 8) -> dict:
    files = {f"{first}/test.yaml": f"cmd: touch {marks}/{first} && exit 1\n"}
    files.update({f"t{n}/test.yaml": f"cmd: touch {marks}/t{n}\n" for n in range(count)})
    return files


def test_max_failures_starts_nothing_sent_ahead_after_the_limit(tmp_path):
    """Second run: durations known, the failure of last time first. What the
    worker holds behind it is given back, not run."""
    marks = tmp_path / "marks"
    marks.mkdir()
    root = write_suite(tmp_path / "suite", touch_suite(marks, "fails"))
    out = tmp_path / "out"
    run_cli(root, out, "-j", "1")
    for mark in marks.iterdir():
        mark.unlink()
    run = run_cli(root, out, "-j", "1", "--max-failures", "1")
    found = statuses(run.index)
    assert found.pop("fails") == ("FAIL", "EXIT_CODE")
    assert set(found.values()) == {("SKIP", "MAX_FAILURES")}, found
    assert sorted(p.name for p in marks.iterdir()) == ["fails"]


def test_worker_crash_reruns_the_fragment_it_held_ahead(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    files = touch_suite(marks, "crash")
    files["crash/test.yaml"] = f"cmd: touch {marks}/crash && kill -KILL $PPID\n"
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    run_cli(root, out, "-j", "1")
    run = run_cli(root, out, "-j", "1")
    found = statuses(run.index)
    assert found.pop("crash") == ("ERROR", "CRASH")
    assert set(found.values()) == {("PASS", None)}, found
    assert len(list(marks.iterdir())) == 9


def test_a_spent_plan_keeps_only_the_fragments_of_failures(tmp_path):
    # The run's plan (spend_plan): a testcase decided without failing gives
    # its fragments back, a failed one keeps them (--rewrite reads them), and
    # history still learns every fragment's name and duration.
    files = {f"ok{n}/test.yaml": "steps:\n  - cmd: 'true'\n  - cmd: 'true'\n" for n in range(3)}
    files["bad/test.yaml"] = "cmd: 'false'\n"
    plan = plan_of(tmp_path, files)
    results = {}
    scheduler = MultiprocessScheduler(
        plan, 2, lambda r: results.__setitem__(r.name, r.status.value), Recording, spend_plan=True
    )
    scheduler.run()
    assert results == {"bad": "FAIL", "ok0": "PASS", "ok1": "PASS", "ok2": "PASS"}
    kept = {plan.fragments[n].testcase for n in range(len(plan.fragments)) if plan.fragments[n] is not DECIDED}
    assert kept == {"bad"}
    rows = scheduler.fragment_outcomes()
    assert sorted((t, f, s) for t, f, s, _ in rows) == [
        ("bad", "run", "FAIL"),
        *[(f"ok{n}", step, "PASS") for n in range(3) for step in ("step1", "step2")],
    ]
