"""Adversarial edges of fragments side by side and sub-results.

GoogleTest shards and a suite's own driver whose fragments run side by
side, driven through the real command line: interrupts (one and two
Ctrl-C), -x and --max-failures while shards run, retries and what depends
on a retried testcase, resources shared by the fragments of one testcase,
set-ups, --failed and --incremental, --cleanup, --dask, hostile sub-results
(100,000 TAP points, names with newlines, markup and escapes, huge JUnit
files and names) and the history of shards whose names change with their
count.

Tests marked ``xfail(strict=True)`` with a reason starting "BUG:" show a
defect found here; they pass once it is fixed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from conftest import (
    PYTHON,
    entry,
    load_index,
    load_result,
    process_alive,
    read_json,
    report,
    run_cli,
    start_cli,
    statuses,
    wait_for,
    write_suite,
)
from test_gtest_driver import RUNNABLE, gtest_binary, gtest_spec  # noqa: F401 - gtest_binary is a fixture

from run_testsuite.history import read_history
from run_testsuite.reports.progress import expected_durations

# A suite's own driver: a `prep` fragment, then `options.parts`, each
# {name, sleep, fail, after, sub}: it sleeps, then reports two checks as
# sub-results (the first FAIL when it fails). `fail` is true, false, or N:
# fail the first N runs of that part (counted in files under
# options.state). Each part logs "testcase fragment begin|end TIME BOARD"
# to options.log ("end-nodir" when its work directory was gone).
SPLIT = """
import os, time
from run_testsuite.api import Driver, Fragment, Outcome, Status, SubResult, summarise


class Split(Driver):
    options_schema = {"type": "object"}

    def fragments(self, test):
        options = test.spec.get("options", {})

        def fragment(name, part):
            return Fragment(testcase=test.name, name=name, driver=self.reference(), commands=[],
                            env=test.env, source_dir=test.source_dir, work_dir=test.work_dir,
                            log_stem=test.log_stem,
                            data={"part": part, "log": options.get("log"), "state": options.get("state")})

        prep = fragment("prep", {"sleep": options.get("prep_sleep", 0)})
        prep.prepare = True
        fragments = [prep]
        for part in options.get("parts", []):
            each = fragment(part["name"], part)
            each.after = tuple(part.get("after", [0]))
            fragments.append(each)
        fragments[-1].final = True
        return fragments

    def run(self, fragment, ctx):
        part = fragment.data["part"]
        log = fragment.data["log"]

        def say(what):
            if log:
                board = ctx.env.get("RESOURCE_BOARDS", "-")
                with open(log, "a") as handle:
                    handle.write(f"{fragment.testcase} {fragment.name} {what} {time.time()} {board}\\n")

        say("begin")
        time.sleep(part.get("sleep", 0))
        fail = part.get("fail", False)
        if not isinstance(fail, bool):
            counter = os.path.join(fragment.data["state"], fragment.testcase.replace("/", "_") + "-" + fragment.name)
            runs = os.path.getsize(counter) if os.path.exists(counter) else 0
            with open(counter, "a") as handle:
                handle.write("x")
            fail = runs < fail
        say("end" if os.path.isdir(ctx.work_dir) else "end-nodir")
        if fragment.name == "prep":
            return Outcome(Status.PASS)
        checks = [SubResult(f"{fragment.name}.t{n}", Status(part.get("sub", "PASS"))) for n in range(2)]
        if fail:
            checks[0].status, checks[0].message = Status.FAIL, "wrong"
        status, reason, message = summarise(checks)
        return Outcome(status, reason, message, subresults=checks)
"""


def split_suite(root: Path, extra_suite: str = "", **specs: str) -> None:
    """A suite with the Split driver; ``specs``: testcase name -> test.yaml
    (``__`` in a name is a ``/``)."""
    files = {
        "suite.yaml": "name: edges\ndrivers:\n  split: _drivers/split.py:Split\n" + extra_suite,
        "_drivers/split.py": SPLIT,
    }
    for name, spec in specs.items():
        files[f"{name.replace('__', '/')}/test.yaml"] = spec
    write_suite(root, files)


def split_spec(log: Path, parts: list[dict], state: Path | None = None, extra: str = "") -> str:
    options = {"log": str(log), "parts": parts}
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        options["state"] = str(state)
    return f"driver: split\n{extra}options: {json.dumps(options)}\n"


def read_log(log: Path) -> list[tuple[str, str, str, float, str]]:
    """(testcase, fragment, what, time, board) per line the Split driver logged."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        testcase, fragment, what, when, board = line.split()
        rows.append((testcase, fragment, what, float(when), board))
    return rows


def spans(log: Path, testcase: str) -> list[tuple[str, float, float]]:
    """(fragment, begin, end) of each run of a testcase's fragments, in order."""
    open_at: dict[str, float] = {}
    found = []
    for name, fragment, what, when, _ in read_log(log):
        if name != testcase:
            continue
        if what == "begin":
            open_at[fragment] = when
        else:
            found.append((fragment, open_at.pop(fragment), when))
    return sorted(found, key=lambda span: span[1])


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline and process_alive(int(pid)):
            found.append(int(pid))
    return found


def private_binary(gtest_binary: str, where: Path) -> str:  # noqa: F811 - the fixture's value
    """A copy of the sample binary at a path of this test's own, so that its
    processes can be told from any other test's."""
    where.mkdir(parents=True, exist_ok=True)
    copy = where / "sample_test"
    copy.write_bytes(Path(gtest_binary).read_bytes())
    copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
    return str(copy)


def sub_names(result: dict) -> list[str]:
    return [sub["name"] for sub in result.get("subresults", ())]


# With filter "Alpha.Pass0*:Sleepy.S0" the binary runs 11 tests; in 3 shards
# Sleepy.S0 (runnable number 10) is in shard index 1 (10 mod 3).
SLEEPY_FILTER = "Alpha.Pass0*:Sleepy.S0"
SLEEPY_RUNNABLE = [f"Alpha.Pass{n:02d}" for n in range(10)] + ["Sleepy.S0"]
QUICK_SHARDS = [name for i, name in enumerate(SLEEPY_RUNNABLE) if i % 3 != 1]
assert RUNNABLE.index("Sleepy.S0") > RUNNABLE.index("Alpha.Pass09")


# -- 1. interrupts -------------------------------------------------------------------
def test_sigint_while_a_shard_runs_keeps_the_finished_shards_and_leaves_no_process(gtest_binary, tmp_path):  # noqa: F811
    root, out = tmp_path / "suite", tmp_path / "out"
    binary = private_binary(gtest_binary, tmp_path / "bin")
    runlog = tmp_path / "runlog"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "g/test.yaml": gtest_spec(
                binary, env={"GT_SLEEP": "60", "GT_RUNLOG": str(runlog)}, shards=3, filter=SLEEPY_FILTER
            ),
            "after-g/test.yaml": "depends: [g]\ncmd: 'true'\n",
            "slow/test.yaml": "cmd: sleep 60\n",
        },
    )
    proc = start_cli(root, out, "-j", "4")
    try:
        # Two shards ended, the sleepy one still runs.
        assert wait_for(lambda: runlog.exists() and runlog.read_text().count(" end ") == 2, 20), proc.stderr
        assert wait_for(lambda: len(processes_with(binary)) == 1, 10)
        # The binaries ended; their workers read the reports and send them.
        time.sleep(0.5)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert time.monotonic() - began < 10
    index = load_index(out)
    assert index["interrupted"] is True
    assert Counter(e["name"] for e in index["results"]) == Counter(["g", "after-g", "slow"])
    assert statuses(index) == {
        "g": ("ERROR", "INTERRUPTED"),
        "after-g": ("SKIP", "DEPENDENCY"),
        "slow": ("ERROR", "INTERRUPTED"),
    }
    g = load_result(out, "g", index)
    # Kept: the sub-results of the shards that ended before the interrupt
    # (the interrupted shard's own are lost with it), in the binary's order.
    assert sub_names(g) == QUICK_SHARDS
    assert {sub["status"] for sub in g["subresults"]} == {"PASS"}
    assert "shard-2-of-3: interrupted while running" in g["message"]
    assert not processes_with(binary)
    assert not processes_with("sleep 60")


FAKE_GTEST = """#!/bin/sh
# A GoogleTest look-alike whose tests ignore SIGTERM.
case "$*" in *--gtest_list_tests*) printf 'Stubborn.\\n  A\\n  B\\n'; exit 0 ;; esac
trap '' TERM
echo "[ RUN      ] Stubborn.A"
exec sleep {marker}
"""


def test_a_second_sigint_kills_shards_that_ignore_sigterm(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    marker = f"59.{os.getpid() % 1000:03d}{time.time_ns() % 10_000:04d}"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "bin/fake_gtest": FAKE_GTEST.replace("{marker}", marker),
            "g/test.yaml": gtest_spec(str(root / "bin" / "fake_gtest"), shards=2),
            "queued/test.yaml": "depends: [g]\ncmd: 'true'\n",
        },
    )
    (root / "bin" / "fake_gtest").chmod(0o755)
    proc = start_cli(root, out, "-j", "3")
    try:
        assert wait_for(lambda: len(processes_with(marker)) == 2, 20), proc.stderr
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "second interrupt" in stderr
    assert took < 1.9, f"the second interrupt did not cut the 2 s grace: {took:.2f} s"
    index = load_index(out)
    assert index["interrupted"] is True
    assert statuses(index) == {"g": ("ERROR", "INTERRUPTED"), "queued": ("SKIP", "DEPENDENCY")}
    assert wait_for(lambda: not processes_with(marker), 5)


def test_an_interrupt_keeps_a_failure_seen_before_it(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    log = tmp_path / "log"
    # -j 1: prep, p0 (fails: the testcase WAITs for p1), then 'a-long'
    # (same priority as p1, named first), during which Ctrl-C comes; p1
    # never starts.
    split_suite(
        root,
        fan=split_spec(log, [{"name": "p0", "fail": True}, {"name": "p1", "after": []}]),
        a_long="cmd: sleep 60\n",
    )
    proc = start_cli(root, out, "-j", "1")
    try:
        assert wait_for(lambda: any(f == "p0" and w == "end" for _, f, w, _, _ in read_log(log)), 20)
        assert wait_for(lambda: bool(processes_with("sleep 60")), 10)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    index = load_index(out)
    assert [f for _, f, w, _, _ in read_log(log) if w == "begin"] == ["prep", "p0"]
    fan = load_result(out, "fan", index)
    # p0 ran and failed before the interrupt: that is not "not run".
    assert fan["status"] in ("FAIL", "ERROR"), fan["message"]
    assert "p0.t0" in sub_names(fan)


# -- 2. -x and --max-failures while shards run ------------------------------------------
# A stand-in for the sample binary: while FLAG exists (outside every key),
# its test runs first sleep, so -x finds them running; the listing never
# sleeps.
SLOW_WHILE_FLAGGED = """#!/bin/sh
case "$*" in *--gtest_list_tests*) exec REAL "$@" ;; esac
if [ -e FLAG ]; then sleep 30; fi
exec REAL "$@"
"""


def fail_fast_suite(root: Path, gtest_binary: str, flag: Path) -> None:  # noqa: F811 - the fixture's value
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "bin/gtest": SLOW_WHILE_FLAGGED.replace("REAL", gtest_binary).replace("FLAG", str(flag)),
            # Alpha.FailsWithMessage fails: a run to the end is a FAIL.
            "g/test.yaml": gtest_spec(str(root / "bin" / "gtest"), shards=2, filter="Sleepy.*:Alpha.FailsWithMessage"),
            "steps/test.yaml": "steps:\n  - {name: one, cmd: 'true'}\n  - {name: two, cmd: sleep 30}\n",
            "bad/test.yaml": "cmd: sleep 0.5; exit 1\n",
        },
    )
    (root / "bin" / "gtest").chmod(0o755)
    flag.touch()


def test_fail_fast_stops_running_shards_as_skip(gtest_binary, tmp_path):  # noqa: F811
    root, out, flag = tmp_path / "suite", tmp_path / "out", tmp_path / "slow"
    fail_fast_suite(root, gtest_binary, flag)
    run = run_cli(root, out, "-j", "4", "-x")
    assert run.returncode == 1
    # The in-order testcase stopped mid-step: SKIP, MAX_FAILURES.
    assert statuses(run.index)["steps"] == ("SKIP", "MAX_FAILURES")
    assert statuses(run.index) == {
        "bad": ("FAIL", "EXIT_CODE"),
        "g": ("SKIP", "MAX_FAILURES"),
        "steps": ("SKIP", "MAX_FAILURES"),
    }
    assert run.index["counts"]["FAIL"] == 1


def test_shards_stopped_by_fail_fast_are_run_again_by_incremental(gtest_binary, tmp_path):  # noqa: F811
    root, out, flag = tmp_path / "suite", tmp_path / "out", tmp_path / "slow"
    fail_fast_suite(root, gtest_binary, flag)
    first = run_cli(root, out, "-j", "4", "-x")
    assert statuses(first.index)["bad"] == ("FAIL", "EXIT_CODE")
    flag.unlink()
    (root / "bad" / "test.yaml").write_text("cmd: 'true'\n")
    (root / "steps" / "test.yaml").write_text("cmd: 'true'\n")
    again = run_cli(root, out, "-j", "4", "--incremental")
    assert statuses(again.index)["g"] == ("FAIL", None)
    assert "Alpha.FailsWithMessage" in sub_names(load_result(out, "g", again.index))


def test_max_failures_lets_the_shards_under_way_finish(gtest_binary, tmp_path):  # noqa: F811
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "g/test.yaml": gtest_spec(gtest_binary, env={"GT_SLEEP": "0.6"}, shards=2, filter="Sleepy.*"),
            "bad/test.yaml": "cmd: sleep 0.2; exit 1\n",
            "zz/test.yaml": "cmd: 'true'\n",
        },
    )
    run = run_cli(root, out, "-j", "2", "--max-failures", "1")
    assert run.returncode == 1
    assert statuses(run.index) == {
        "bad": ("FAIL", "EXIT_CODE"),
        "g": ("PASS", None),
        "zz": ("SKIP", "MAX_FAILURES"),
    }
    g = load_result(out, "g", run.index)
    assert sub_names(g) == [f"Sleepy.S{n}" for n in range(4)]
    assert [c["step"] for c in g["commands"]] == ["list", "shard-1-of-2", "shard-2-of-2"]


# -- 3. retries --------------------------------------------------------------------------
def test_a_retry_waits_for_every_fragment_of_the_failed_attempt(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    log, state = tmp_path / "log", tmp_path / "state"
    split_suite(
        root,
        fan=split_spec(
            log, [{"name": "quick", "fail": 1}, {"name": "slow", "sleep": 0.6}], state, extra="retries: 2\n"
        ),
    )
    run = run_cli(root, out, "-j", "3")
    assert statuses(run.index) == {"fan": ("PASS", None)}
    result = load_result(out, "fan", run.index)
    assert result["attempts"] == 2
    assert result["message"].startswith("passed on attempt 2 of 3 (flaky: earlier attempts FAIL")
    # Only the last attempt's sub-results, each once.
    assert sub_names(result) == ["quick.t0", "quick.t1", "slow.t0", "slow.t1"]
    ran = spans(log, "fan")
    assert [f for f, _, _ in ran].count("prep") == 2
    first_slow_end = next(end for f, _, end in ran if f == "slow")
    second_prep = [begin for f, begin, _ in ran if f == "prep"][1]
    assert second_prep >= first_slow_end, "attempt 2 began while attempt 1 still ran"


def test_a_dependent_of_a_retried_side_by_side_testcase_waits_for_its_verdict(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    log = tmp_path / "log"
    marker = tmp_path / "after-ran"
    split_suite(
        root,
        fan=split_spec(
            log, [{"name": "quick", "sleep": 0.1}, {"name": "slow", "sleep": 0.8, "fail": True}], extra="retries: 1\n"
        ),
        after=f"depends: [fan]\ncmd: {PYTHON} -c 'import time; print(time.time())' > {marker}\n",
    )
    run = run_cli(root, out, "-j", "3")
    assert statuses(run.index)["fan"] == ("FAIL", None)
    assert load_result(out, "fan", run.index)["attempts"] == 2
    assert not marker.exists(), "the dependent ran while its dependency was undecided"
    assert statuses(run.index)["after"] == ("SKIP", "DEPENDENCY")


# -- 4. resources ------------------------------------------------------------------------
def test_side_by_side_fragments_share_their_testcases_resource(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    log, state = tmp_path / "log", tmp_path / "state"
    parts = [{"name": "a", "sleep": 0.3}, {"name": "b", "sleep": 0.3}]
    flaky = [{"name": "a", "sleep": 0.3, "fail": 1}, {"name": "b", "sleep": 0.3}]
    split_suite(
        root,
        extra_suite="resources:\n  boards: [b1]\n",
        one=split_spec(log, parts, extra="resources: {boards: 1}\n"),
        two=split_spec(log, flaky, state, extra="resources: {boards: 1}\nretries: 1\n"),
        free=split_spec(log, parts),
    )
    run = run_cli(root, out, "-j", "4")
    assert statuses(run.index) == {"one": ("PASS", None), "two": ("PASS", None), "free": ("PASS", None)}
    rows = read_log(log)
    for testcase in ("one", "two"):
        assert {board for name, _, _, _, board in rows if name == testcase} == {"b1"}
        ran = [span for span in spans(log, testcase) if span[0] != "prep"]
        # Its parts ran side by side, on the one board it holds.
        assert max(b for _, b, _ in ran[:2]) < min(e for _, _, e in ran[:2]), ran
    # One board: the two testcases never overlap, retry included.
    one, two = spans(log, "one"), spans(log, "two")
    first, second = (one, two) if one[0][1] < two[0][1] else (two, one)
    assert max(end for _, _, end in first) <= min(begin for _, begin, _ in second)
    assert len(two) == 6  # prep, a, b twice
    assert {board for name, _, _, _, board in rows if name == "free"} == {"-"}


# -- 5. set-ups, dependents, --failed, --incremental ----------------------------------------
def test_setups_dependents_failed_and_incremental_around_shards(gtest_binary, tmp_path):  # noqa: F811
    root, out = tmp_path / "suite", tmp_path / "out"
    runlog, marker = tmp_path / "runlog", tmp_path / "after-started"
    write_suite(
        root,
        {
            "suite.yaml": (
                "name: x\nsetup:\n  build:\n"
                f"    cmd: cp {gtest_binary} sample_test && echo built\n"
                f"    inputs: [{gtest_binary}]\n"
            ),
            "good/test.yaml": gtest_spec(
                "$SETUP_BUILD_DIR/sample_test",
                env={"GT_SLEEP": "0.3", "GT_RUNLOG": str(runlog)},
                extra="needs: [build]",
                shards=4,
                filter="Sleepy.*:Alpha.Pass0*",
            ),
            "bad/test.yaml": gtest_spec(gtest_binary, shards=2, filter="Alpha.Pass00:Alpha.FailsWithMessage"),
            "after-good/test.yaml": f"depends: [good]\ncmd: {PYTHON} -c 'import time; print(time.time())' > {marker}\n",
            "after-bad/test.yaml": "depends: [bad]\ncmd: 'true'\n",
        },
    )
    run = run_cli(root, out, "-j", "4")
    assert statuses(run.index) == {
        "setup:build": ("PASS", None),
        "good": ("PASS", None),
        "bad": ("FAIL", None),
        "after-good": ("PASS", None),
        "after-bad": ("SKIP", "DEPENDENCY"),
    }
    ends = [float(line.split()[2]) for line in runlog.read_text().splitlines() if " end " in line]
    assert len(ends) == 4
    assert float(marker.read_text()) >= max(ends), "the dependent started before every shard ended"
    assert len(load_result(out, "good", run.index)["subresults"]) == 14

    again = run_cli(root, out, "-j", "4", "--failed")
    assert statuses(again.index) == {"bad": ("FAIL", None), "after-bad": ("SKIP", "DEPENDENCY")}
    assert sub_names(load_result(out, "bad", again.index)) == ["Alpha.Pass00", "Alpha.FailsWithMessage"]

    cached = run_cli(root, out, "-j", "4", "--incremental")
    assert statuses(cached.index) == {
        "good": ("PASS", "CACHED"),
        "bad": ("FAIL", None),
        "after-good": ("PASS", "CACHED"),
        "after-bad": ("SKIP", "DEPENDENCY"),
    }
    assert len(runlog.read_text().splitlines()) == 8  # the shards of the first run only


# -- 6. --cleanup ---------------------------------------------------------------------------
def test_cleanup_never_takes_a_directory_from_under_a_running_fragment(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    log = tmp_path / "log"
    specs = {
        "wide": split_spec(log, [{"name": f"p{k}", "sleep": 0.15 * k} for k in range(5)]),
        "flaky": split_spec(log, [{"name": "a", "sleep": 0.1}, {"name": "b", "sleep": 0.4, "fail": True}]),
    }
    for n in range(12):  # passes handing their directories over while 'wide' runs
        specs[f"quick{n:02d}"] = split_spec(log, [{"name": "x"}, {"name": "y"}])
    split_suite(root, **specs)
    run = run_cli(root, out, "-j", "3", "--cleanup", "passed")
    found = statuses(run.index)
    assert found.pop("flaky") == ("FAIL", None)
    assert set(found.values()) == {("PASS", None)}
    rows = read_log(log)
    assert not [row for row in rows if row[2] == "end-nodir"]
    work = out / "new" / "work"
    assert not (work / "wide").exists()
    assert (work / "flaky").is_dir()  # a failure's directory stays


# -- 7. --dask -----------------------------------------------------------------------------
def test_dask_local_runs_shards_with_the_verdict_of_a_local_run(gtest_binary, tmp_path):  # noqa: F811
    pytest.importorskip("distributed")
    root = tmp_path / "suite"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "g/test.yaml": gtest_spec(gtest_binary, shards=3),
            "ok/test.yaml": gtest_spec(gtest_binary, shards=2, filter="Alpha.Pass0*:Beta.Pass0*"),
        },
    )
    local = run_cli(root, tmp_path / "local", "-j", "3")
    dask = run_cli(root, tmp_path / "dask", "-j", "3", "--dask", "local:2")
    assert dask.returncode == local.returncode == 1, dask.stderr
    assert statuses(dask.index) == statuses(local.index) == {"g": ("FAIL", None), "ok": ("PASS", None)}
    for name in ("g", "ok"):
        here, there = load_result(tmp_path / "local", name), load_result(tmp_path / "dask", name)
        assert [(s["name"], s["status"]) for s in there["subresults"]] == [
            (s["name"], s["status"]) for s in here["subresults"]
        ]
        assert there["message"] == here["message"]


# -- 8. hostile sub-results -------------------------------------------------------------------
TAP_GENERATOR = """
import sys
n = int(sys.argv[1])
lines = ["1..%d" % n]
for i in range(1, n + 1):
    lines.append(("not ok" if i % 10000 == 0 else "ok") + " %d - point %d" % (i, i))
sys.stdout.write("\\n".join(lines) + "\\n")
"""


def html_data(path: Path) -> dict:
    """The JSON the HTML report embeds (its rows are built from it with textContent)."""
    text = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_a_hundred_thousand_tap_points(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "gen.py": TAP_GENERATOR,
            "big/test.yaml": f"driver: tap\ncmd: {PYTHON} $TEST_SUITE_ROOT/gen.py 100000\n",
        },
    )
    began = time.monotonic()
    # Not run_cli: validating 100,000 sub-results against the schema would
    # time the test, not the run.
    proc = start_cli(root, out)
    proc.communicate(timeout=120)
    took = time.monotonic() - began
    assert proc.returncode == 1
    index = load_index(out)
    assert statuses(index) == {"big": ("FAIL", None)}
    assert took < 30
    big = entry(index, "big")
    assert big["subresults"]["counts"] == {"FAIL": 10, "PASS": 99990}
    assert len(big["subresults"]["notable"]) == 10
    assert (out / "new" / "_index.json").stat().st_size < 20_000  # counts, not the points
    result = read_json(out / "new" / big["result"])
    assert result["subresults"][:2] == [
        {"name": "1 - point 1", "status": "PASS"},
        {"name": "2 - point 2", "status": "PASS"},
    ]
    assert len(result["subresults"]) == 100_000
    assert result["message"].startswith("10 of 100000 failed: 10000 - point 10000")
    html = tmp_path / "report.html"
    began = time.monotonic()
    made = report(out, "--html", html)
    assert made.returncode == 0, made.stderr
    assert time.monotonic() - began < 20
    assert html.stat().st_size < 20_000_000


JUNIT_WEIRD = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="s">
<testcase classname="c" name="&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"><failure message="x"/></testcase>
<testcase classname="c" name="dup"/>
<testcase classname="c" name="dup"><failure message="second"/></testcase>
<testcase classname="c" name="unicode \u2028 \u00e9 &amp;amp;"/>
</testsuite></testsuites>
"""


def junit_files(xml: str) -> dict[str, str]:
    """A suite whose testcase ``j`` gives the junit driver the report ``xml``."""
    return {
        "suite.yaml": "name: x\n",
        "j/report.xml": xml,
        "j/test.yaml": "driver: junit\ncmd: cp report.xml out.xml\noptions: {junit: out.xml}\n",
    }


def test_markup_duplicates_and_escapes_in_names_stay_text(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            **junit_files(JUNIT_WEIRD),
            # An ANSI escape, a long description, a NUL byte.
            "t/test.yaml": (
                "driver: tap\n"
                "cmd: printf '1..3\\nnot ok 1 - \\033[31mred\\033[0m\\nnot ok 2 - %s\\nok 3 - nul\\000here\\n' "
                "$(head -c 5000 /dev/zero | tr '\\0' x)\n"
            ),
        },
    )
    run = run_cli(root, out)
    assert statuses(run.index) == {"j": ("FAIL", None), "t": ("FAIL", None)}
    names = sub_names(load_result(out, "j", run.index))
    assert names == ["c.</script><script>alert(1)</script>", "c.dup", "c.dup (2)", "c.unicode \u2028 \u00e9 &amp;"]
    tap = load_result(out, "t", run.index)
    # Control characters in a name are shown escaped: one line stays one line.
    assert tap["subresults"][0]["name"] == "1 - \\x1b[31mred\\x1b[0m"
    assert len(tap["subresults"][1]["name"]) == 300  # capped, with an ellipsis
    html = tmp_path / "r.html"
    assert report(out, "--html", html).returncode == 0
    text = html.read_text(encoding="utf-8")
    # The only scripts are the report's own: the data cannot end its block.
    assert text.count("<script") == 2
    assert "alert(1)" not in text.replace("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)", "")
    data = json.dumps(html_data(html), ensure_ascii=False)
    assert "</script><script>alert(1)</script>" in data
    assert "\\\\x1b[31mred" in data
    # JUnit XML, which cannot hold an ESC or a NUL, says them escaped, and stays well-formed.
    xml = tmp_path / "r.xml"
    assert report(out, "--junit-xml", xml).returncode == 0
    names = [case.get("name") for case in ET.parse(xml).iter("testcase")]
    assert "1 - \\x1b[31mred\\x1b[0m" in names
    assert "c.</script><script>alert(1)</script>" in names


def test_a_newline_in_a_junit_name_cannot_forge_a_terminal_line(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    xml = (
        '<testsuites><testsuite name="s">'
        '<testcase classname="c" name="a&#10;PASS  everything: fine"><failure message="x"/></testcase>'
        "</testsuite></testsuites>\n"
    )
    write_suite(root, junit_files(xml))
    run = run_cli(root, out)
    assert statuses(run.index) == {"j": ("FAIL", None)}
    assert not [line for line in run.stdout.splitlines() if line.startswith("PASS  everything")], run.stdout


def test_a_huge_junit_name_is_capped_like_a_tap_name(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    xml = (
        '<testsuites><testsuite name="s"><testcase classname="c" name="'
        + "n" * 2_000_000
        + '"><failure message="x"/></testcase></testsuite></testsuites>\n'
    )
    write_suite(root, junit_files(xml))
    run = run_cli(root, out)
    assert statuses(run.index) == {"j": ("FAIL", None)}
    assert (out / "new" / "_index.json").stat().st_size < 100_000
    assert len(run.stdout) < 100_000
    assert all(len(name) <= 300 for name in sub_names(load_result(out, "j", run.index)))


JUNIT_200MB = """
import sys
blob = "y" * 100_000
with open("out.xml", "w") as out:
    out.write('<?xml version="1.0"?>\\n<testsuites><testsuite name="s">\\n')
    for i in range(1000):
        out.write(f'<testcase classname="c" name="t{i}"><failure message="m{i}">{blob}</failure>'
                  f'<system-out>{blob}</system-out></testcase>\\n')
        out.write(f'<testcase classname="c" name="ok{i}"/>\\n')
    out.write("</testsuite></testsuites>\\n")
"""


def test_a_200_mb_junit_file(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "j/gen.py": JUNIT_200MB,
            "j/test.yaml": f"driver: junit\ncmd: {PYTHON} gen.py\noptions: {{junit: out.xml}}\n",
        },
    )
    began = time.monotonic()
    run = run_cli(root, out, "--cleanup", "all")
    took = time.monotonic() - began
    assert statuses(run.index) == {"j": ("FAIL", None)}
    assert took < 30
    result = load_result(out, "j", run.index)
    assert len(result["subresults"]) == 2000
    # Each failure keeps an excerpt of its output, not its 200 KB.
    assert max(len(s.get("output", "")) + len(s.get("message", "")) for s in result["subresults"]) < 10_000
    assert (out / "new" / "_index.json").stat().st_size < 50_000
    assert not (out / "new" / "work" / "j").exists()


# -- 9. a shard whose tests all skip ------------------------------------------------------------
def test_a_shard_whose_tests_all_skip_does_not_fail_its_testcase(gtest_binary, tmp_path):  # noqa: F811
    """At 1a4bc3d this failed: a shard whose tests all skipped was a SKIP
    outcome that Verdicts.finished and _side_by_side took as a failure
    ('shard-2-of-2: all 1 skipped', FAIL). 8f0c31a (is_failure in
    verdicts.py) fixed it; this guards it."""
    root, out = tmp_path / "suite", tmp_path / "out"
    pair = "Alpha.Pass00:Alpha.SkipsItself"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "one/test.yaml": gtest_spec(gtest_binary, shards=1, filter=pair),
            "two/test.yaml": gtest_spec(gtest_binary, shards=2, filter=pair),
            "option/test.yaml": gtest_spec(
                gtest_binary, shards=2, filter="Alpha.Pass00:Alpha.Pass01", skip={"Alpha.Pass01": "slow"}
            ),
            "allskip/test.yaml": gtest_spec(
                gtest_binary, shards=2, filter="Alpha.SkipsItself:Alpha.Pass01", skip={"Alpha.Pass01": "slow"}
            ),
            "retried/test.yaml": gtest_spec(gtest_binary, shards=2, filter=pair, extra="retries: 2"),
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert statuses(run.index) == {
        "one": ("PASS", None),
        "two": ("PASS", None),
        "option": ("PASS", None),
        "allskip": ("SKIP", None),
        "retried": ("PASS", None),
    }
    assert load_result(out, "retried", run.index)["attempts"] == 1  # a skip is nothing to retry
    assert run.returncode == 0


# -- 10. history: shards whose names change with their count -------------------------------------
def test_fragment_durations_of_each_shard_are_recorded_and_size_the_next_split(gtest_binary, tmp_path):  # noqa: F811
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "g/test.yaml": gtest_spec(gtest_binary, env={"GT_SLEEP": "0.1"}, shards="auto", filter="Sleepy.*"),
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert statuses(run.index) == {"g": ("PASS", None)}
    with sqlite3.connect(out / "history.sqlite") as db:
        rows = dict(db.execute("SELECT fragment, duration FROM fragment_durations WHERE testcase = 'g'"))
    assert set(rows) == {"list", "shard-1-of-2", "shard-2-of-2"}  # one per slot, with no history
    # Each shard slept through two tests (S3 half as long).
    assert rows["shard-1-of-2"] >= 0.18 and rows["shard-2-of-2"] >= 0.13
    took = entry(run.index, "g")["duration"]
    assert took == pytest.approx(sum(rows.values()), abs=0.01)  # the sum of the fragments, not the wall
    # Known to take under 0.5 s: one shard next time.
    assert took < 0.5
    again = run_cli(root, out, "-j", "2")
    assert [c["step"] for c in load_result(out, "g", again.index)["commands"]] == ["list", "shard-1-of-1"]
    assert sub_names(load_result(out, "g", again.index)) == [f"Sleepy.S{n}" for n in range(4)]


def test_the_eta_forgets_the_shards_of_an_earlier_count(gtest_binary, tmp_path):  # noqa: F811
    root, out = tmp_path / "suite", tmp_path / "out"

    def suite(shards: int) -> None:
        spec = gtest_spec(gtest_binary, env={"GT_SLEEP": "0.2"}, shards=shards, filter="Sleepy.*")
        write_suite(root, {"suite.yaml": "name: x\n", "g/test.yaml": spec})

    suite(4)
    run_cli(root, out, "-j", "2")
    suite(1)
    second = run_cli(root, out, "-j", "2")
    took = entry(second.index, "g")["duration"]
    view = read_history(str(out))
    assert view is not None
    # As the run asks: for the fragments it plans (one shard now).
    expected = expected_durations(["g"], view.durations, str(out / "old"), {("g", "list"), ("g", "shard-1-of-1")})
    # What the next run expects of g: about what its latest run took.
    assert expected["g"] < 1.5 * took, (expected["g"], took, view.durations)
