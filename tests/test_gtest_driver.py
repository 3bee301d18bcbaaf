"""The gtest driver, end to end with a real GoogleTest binary.

One binary (tests/data/gtest/sample_test.cc) is compiled once per session
with Debian's googletest (libgtest-dev): passes, failures with messages,
GTEST_SKIP, a disabled test, typed and value-parameterised tests, and
misbehaviour switched on by environment variables (a crash, a hang, an
exit status after every test passed, a failure on demand, sleeps, and a log
of each run's shard with its begin and end times).

A few suites run through the real command line, once each per module: the
main one holds most testcases; the side-by-side shards, the hang and the
history of ``shards: auto`` each get their own run, where timing matters.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import xmlschema
from conftest import entry as index_entry
from conftest import load_result, report, run_cli, statuses, write_suite

SOURCE = Path(__file__).parent / "data" / "gtest" / "sample_test.cc"
HEADER_DIRS = ("/usr/include", "/usr/local/include")
JUNIT_XSD = Path(__file__).parent / "data" / "junit.xsd"

# The binary's tests, in the order it lists (and runs) them.
LISTING = [
    *[f"Alpha.Pass{n:02d}" for n in range(10)],
    "Alpha.FailsWithMessage",
    "Alpha.SkipsItself",
    "Alpha.DISABLED_NeverRuns",
    "Danger.Before",
    "Danger.Crashes",
    "Danger.Hangs",
    "Danger.FailsOnDemand",
    "Danger.After",
    *[f"Beta.Pass{n:02d}" for n in range(10)],
    "Beta.AlsoFails",
    *[f"Sleepy.S{n}" for n in range(4)],
    "Typed/0.Zero",
    "Typed/1.Zero",
    *[f"Inst/Param.Small/{n}" for n in range(3)],
    *[f"Inst/Param.Positive/{n}" for n in range(3)],
]
DISABLED = ["Alpha.DISABLED_NeverRuns"]
# What GoogleTest's sharding splits: the tests that are not disabled.
RUNNABLE = [name for name in LISTING if name not in DISABLED]
FAILING = ["Alpha.FailsWithMessage", "Beta.AlsoFails", "Inst/Param.Small/2"]
# Statuses with no misbehaviour switched on.
EXPECTED = {
    name: "FAIL" if name in FAILING else "SKIP" if name in ("Alpha.SkipsItself", *DISABLED) else "PASS"
    for name in LISTING
}
FAIL_MESSAGE = "3 of 41 failed: Alpha.FailsWithMessage, Beta.AlsoFails, Inst/Param.Small/2"
SHUFFLE = ["--gtest_shuffle", "--gtest_random_seed=7"]
ORDER = ("FAIL", "ERROR", "XPASS", "XFAIL", "SKIP", "PASS")


# -- the binary ------------------------------------------------------------------
@pytest.fixture(scope="session")
def gtest_binary(tmp_path_factory) -> str:
    """The sample binary, compiled once (-O0, one translation unit)."""
    missing = []
    if shutil.which("g++") is None:
        missing.append("g++")
    if not any(os.path.exists(os.path.join(d, "gtest", "gtest.h")) for d in HEADER_DIRS):
        missing.append("gtest/gtest.h")
    if missing:
        why = f"{' and '.join(missing)} missing (apt-get install g++ libgtest-dev)"
        if os.environ.get("CI"):
            pytest.fail(f"on CI the gtest driver's tests need a compiler and GoogleTest: {why}")
        pytest.skip(why)
    binary = tmp_path_factory.mktemp("gtest-binary") / "sample_test"
    proc = subprocess.run(
        ["g++", "-std=c++17", "-O0", "-o", str(binary), str(SOURCE), "-lgtest", "-lgtest_main", "-pthread"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"compiling {SOURCE} failed:\n{proc.stderr}"
    return str(binary)


def gtest_spec(binary: str, *, env: dict | None = None, extra: str = "", **options) -> str:
    """A gtest testcase's test.yaml (JSON is YAML: values need no quoting care)."""
    lines = ["driver: gtest"]
    if env:
        lines.append(f"env: {json.dumps(env)}")
    if extra:
        lines.append(extra.strip())
    lines.append("options:")
    lines.append(f"  binary: {json.dumps(binary)}")
    for key, value in options.items():
        lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def sub_names(result: dict) -> list[str]:
    return [sub["name"] for sub in result["subresults"]]


def sub_by_name(result: dict) -> dict[str, dict]:
    subs = {}
    for sub in result["subresults"]:
        assert sub["name"] not in subs, f"{sub['name']} appears twice"
        subs[sub["name"]] = sub
    return subs


def steps(result: dict) -> list[str]:
    return [command["step"] for command in result["commands"]]


def read_runlog(path: Path) -> list[tuple[str, str, float]]:
    """(shard index, 'begin' or 'end', epoch seconds) for each line the binary logged."""
    rows = []
    for line in path.read_text().splitlines():
        index, what, when = line.split()
        rows.append((index, what, float(when)))
    return rows


def shard_of(name: str, total: int) -> int:
    """GoogleTest's rule: runnable test number i goes to shard i mod total."""
    return RUNNABLE.index(name) % total


# -- the main run ------------------------------------------------------------------
@pytest.fixture(scope="module")
def main_run(gtest_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("gtest-main")
    root, out = base / "suite", base / "out"
    bin_dir = os.path.dirname(gtest_binary)
    runlog = base / "retry.log"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "shards/one/test.yaml": gtest_spec(gtest_binary, shards=1),
            "shards/three/test.yaml": gtest_spec(gtest_binary, shards=3),
            "shards/seven/test.yaml": gtest_spec(gtest_binary, shards=7),
            "shards/many/test.yaml": gtest_spec(gtest_binary, shards=64, filter="Inst/Param.Small/*"),
            "crash/test.yaml": gtest_spec(gtest_binary, env={"GT_CRASH": "1"}, shards=3),
            "exit3/test.yaml": gtest_spec(gtest_binary, env={"GT_EXIT3": "1"}, shards=2, filter="Alpha.Pass0*"),
            "expect/xfail/test.yaml": gtest_spec(
                gtest_binary,
                shards=2,
                xfail={"Alpha.FailsWithMessage": "bug 1", "Inst/Param.Small/2": "bug 2", "Alpha.Pass00": "bug 3"},
                skip={"Beta.AlsoFails": "flaky", "Beta.Pass00": "slow"},
            ),
            "expect/unknown/test.yaml": gtest_spec(
                gtest_binary,
                shards=2,
                xfail={"No.SuchTest": "typo", "Alpha.FailsWithMessage": "bug 1"},
                skip={"Nor.ThisOne": "gone"},
            ),
            "filter/simple/test.yaml": gtest_spec(gtest_binary, shards=2, filter="Alpha.*"),
            "filter/negative/test.yaml": gtest_spec(
                gtest_binary, shards=2, filter="Alpha.*:Typed/*-Alpha.Pass*:*Fails*"
            ),
            "missing/test.yaml": gtest_spec("no/such/binary", shards=2),
            "empty/test.yaml": gtest_spec(gtest_binary, shards=2, filter="Nope.*"),
            "envvar/test.yaml": gtest_spec(
                "$GT_BIN_DIR/sample_test", env={"GT_BIN_DIR": bin_dir}, shards=2, filter="Alpha.Pass0*"
            ),
            "relative/test.yaml": gtest_spec("bin/sample_test", shards=2, filter="Alpha.Pass0*"),
            "retry/test.yaml": gtest_spec(
                gtest_binary,
                env={"GT_FAIL": "1", "GT_RUNLOG": str(runlog)},
                extra="retries: 1",
                shards=2,
                filter="Danger.*",
            ),
            "args/shuffle/test.yaml": gtest_spec(gtest_binary, shards=3, args=SHUFFLE),
            "args/also-disabled/test.yaml": gtest_spec(
                gtest_binary, shards=3, args=["--gtest_also_run_disabled_tests"]
            ),
            "after-fail/test.yaml": "cmd: 'true'\ndepends: [shards/three]\n",
            "plain/test.yaml": "cmd: 'true'\n",
        },
    )
    (root / "relative" / "bin").mkdir()
    shutil.copy2(gtest_binary, root / "relative" / "bin" / "sample_test")
    run = run_cli(root, out, "-j", "4")
    assert run.index is not None, run.stderr
    return SimpleNamespace(root=root, out=out, run=run, index=run.index, binary=gtest_binary, runlog=runlog)


def result_of(run, name: str) -> dict:
    return load_result(run.out, name, run.index)


def test_binary_lists_what_these_tests_expect(gtest_binary):
    """The ground truth: the binary itself lists LISTING, in that order."""
    proc = subprocess.run([gtest_binary, "--gtest_list_tests"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    names, suite = [], None
    for line in proc.stdout.splitlines():
        if re.match(r"^\S+\.(\s+#.*)?$", line):
            suite = line.split()[0]
        elif line.startswith("  ") and suite:
            names.append(suite + line.split()[0])
    assert names == LISTING


def test_run_statuses(main_run):
    assert statuses(main_run.index) == {
        "after-fail": ("SKIP", "DEPENDENCY"),
        "args/also-disabled": ("FAIL", None),
        "args/shuffle": ("FAIL", None),
        "crash": ("FAIL", None),
        "empty": ("FAIL", "EXIT_CODE"),
        "envvar": ("PASS", None),
        "exit3": ("FAIL", "EXIT_CODE"),
        "expect/unknown": ("FAIL", None),
        "expect/xfail": ("XPASS", None),
        "filter/negative": ("PASS", None),
        "filter/simple": ("FAIL", None),
        "missing": ("FAIL", None),
        "plain": ("PASS", None),
        "relative": ("PASS", None),
        "retry": ("FAIL", None),
        "shards/many": ("FAIL", None),
        "shards/one": ("FAIL", None),
        "shards/seven": ("FAIL", None),
        "shards/three": ("FAIL", None),
    }


# -- every test once, in order, whatever the shards ----------------------------------
@pytest.mark.parametrize(("name", "total"), [("shards/one", 1), ("shards/three", 3), ("shards/seven", 7)])
def test_every_test_once_with_its_status(main_run, name, total):
    result = result_of(main_run, name)
    names = sub_names(result)
    assert Counter(names) == Counter(LISTING)  # each exactly once; the union is the listing
    assert [n for n in names if n not in DISABLED] == RUNNABLE  # the binary's order
    assert {sub["name"]: sub["status"] for sub in result["subresults"]} == EXPECTED
    assert result["status"] == "FAIL"
    assert result["message"] == FAIL_MESSAGE


@pytest.mark.parametrize("name", ["shards/one", "shards/three"])
def test_disabled_tests_keep_their_place_in_the_binary_order(main_run, name):
    assert sub_names(result_of(main_run, name)) == LISTING


@pytest.mark.parametrize(("name", "total"), [("shards/one", 1), ("shards/three", 3), ("shards/seven", 7)])
def test_one_listing_then_one_command_per_shard(main_run, name, total):
    result = result_of(main_run, name)
    assert steps(result) == ["list", *[f"shard-{k}-of-{total}" for k in range(1, total + 1)]]
    assert result["commands"][0]["cmd"] == [main_run.binary, "--gtest_list_tests"]
    for k, command in enumerate(result["commands"][1:]):
        cmd = command["cmd"]
        assert cmd[:3] == ["env", f"GTEST_TOTAL_SHARDS={total}", f"GTEST_SHARD_INDEX={k}"]
        assert cmd[3].startswith("GTEST_OUTPUT=json:")
        assert cmd[4:] == [main_run.binary]
        # GoogleTest exits 1 when a test of the shard failed.
        failed = any(shard_of(n, total) == k for n in FAILING)
        assert command["exit_code"] == (1 if failed else 0)


def test_sub_result_details(main_run):
    subs = sub_by_name(result_of(main_run, "shards/three"))
    failed = subs["Alpha.FailsWithMessage"]
    assert failed["status"] == "FAIL"
    assert failed["message"].startswith(str(SOURCE)) and "Expected equality of these values" in failed["message"]
    assert "arithmetic is broken" in failed["output"]
    param = subs["Inst/Param.Small/2"]
    assert "param 3 is not small" in param["output"]
    assert "actual: 3 vs 3" in param["message"]
    assert subs["Beta.AlsoFails"]["message"].endswith(": Failed a second failure")
    assert "a second failure" in subs["Beta.AlsoFails"]["output"]
    assert subs["Alpha.SkipsItself"]["message"] == "skipped by the test (GTEST_SKIP)"
    assert subs["Alpha.DISABLED_NeverRuns"]["message"] == "disabled (DISABLED_)"
    assert "duration" not in subs["Alpha.DISABLED_NeverRuns"]  # it never ran
    for name in RUNNABLE:
        assert isinstance(subs[name].get("duration"), float), name
        assert subs[name].get("reason") is None, name
    assert subs["Typed/1.Zero"]["status"] == "PASS"
    assert subs["Inst/Param.Positive/2"]["status"] == "PASS"


def test_more_shards_than_tests(main_run):
    result = result_of(main_run, "shards/many")
    assert [(s["name"], s["status"]) for s in result["subresults"]] == [
        ("Inst/Param.Small/0", "PASS"),
        ("Inst/Param.Small/1", "PASS"),
        ("Inst/Param.Small/2", "FAIL"),
    ]
    assert result["message"] == "1 of 3 failed: Inst/Param.Small/2"
    # Shards with no test run nothing.
    assert steps(result) == ["list", "shard-1-of-64", "shard-2-of-64", "shard-3-of-64"]
    for command in result["commands"]:
        assert "--gtest_filter=Inst/Param.Small/*" in command["cmd"]


# -- a crash mid-shard -----------------------------------------------------------------
CRASHED_SHARD = shard_of("Danger.Crashes", 3)
assert CRASHED_SHARD == 1  # the middle one of three
CRASH_SHARD_TESTS = RUNNABLE[CRASHED_SHARD::3]
AFTER_CRASH = CRASH_SHARD_TESTS[CRASH_SHARD_TESTS.index("Danger.Crashes") + 1 :]


def test_crash_fails_the_running_test_and_reruns_the_rest(main_run):
    result = result_of(main_run, "crash")
    names = sub_names(result)
    assert Counter(names) == Counter(LISTING)  # none lost
    assert [n for n in names if n not in DISABLED] == RUNNABLE
    subs = sub_by_name(result)
    crashed = subs["Danger.Crashes"]
    assert (crashed["status"], crashed["reason"]) == ("FAIL", "CRASH")
    assert crashed["message"] == "the binary ended with signal SIGSEGV during it"
    assert crashed["output"].splitlines() == ["[ RUN      ] Danger.Crashes", "about to crash"]
    assert len(AFTER_CRASH) >= 5
    for name in AFTER_CRASH:
        assert subs[name]["status"] == EXPECTED[name], name
    for name in LISTING:
        if name != "Danger.Crashes":
            assert subs[name]["status"] == EXPECTED[name], name
    assert result["message"] == (
        "4 of 41 failed: Alpha.FailsWithMessage, Danger.Crashes, Beta.AlsoFails, Inst/Param.Small/2"
    )


def test_crash_rerun_names_exactly_the_tests_left(main_run):
    result = result_of(main_run, "crash")
    crashed_step = f"shard-{CRASHED_SHARD + 1}-of-3"
    # The crashed shard's command twice: its run, then the tests left.
    assert steps(result) == ["list", "shard-1-of-3", crashed_step, crashed_step, "shard-3-of-3"]
    first, again = [c for c in result["commands"] if c["step"] == crashed_step]
    assert first["exit_code"] == -11  # SIGSEGV
    assert f"GTEST_SHARD_INDEX={CRASHED_SHARD}" in first["cmd"]
    # The re-run is not sharded: it names the tests left, in order.
    assert again["cmd"][:5] == ["env", "-u", "GTEST_TOTAL_SHARDS", "-u", "GTEST_SHARD_INDEX"]
    assert again["cmd"][-1] == "--gtest_filter=" + ":".join(AFTER_CRASH)
    assert again["exit_code"] == 0


@pytest.mark.parametrize("run_name", ["main_run", "hang_run"])
def test_failure_before_a_crash_keeps_its_message(main_run, request, run_name):
    run = request.getfixturevalue(run_name)
    name, culprit, total = ("crash", "Danger.Crashes", 3) if run_name == "main_run" else ("hang", "Danger.Hangs", 2)
    # It ran in the shard that crashed or hung, before the culprit.
    assert shard_of("Alpha.FailsWithMessage", total) == shard_of(culprit, total)
    assert RUNNABLE.index("Alpha.FailsWithMessage") < RUNNABLE.index(culprit)
    expected = sub_by_name(result_of(main_run, "shards/three"))["Alpha.FailsWithMessage"]["message"]
    sub = sub_by_name(result_of(run, name))["Alpha.FailsWithMessage"]
    assert sub["status"] == "FAIL"
    assert "arithmetic is broken" in sub["output"]
    assert sub.get("message", "") == expected


# -- an exit status, xfail and skip, filters -----------------------------------------------
def test_exit_status_after_every_test_passed(main_run):
    result = result_of(main_run, "exit3")
    assert [(s["name"], s["status"]) for s in result["subresults"]] == [
        (f"Alpha.Pass{n:02d}", "PASS") for n in range(10)
    ]
    assert (result["status"], result["reason"]) == ("FAIL", "EXIT_CODE")
    said = f"every test passed, but {main_run.binary} exited with 3"
    assert result["message"] == f"shard-1-of-2: {said}; shard-2-of-2: {said}"
    assert [c["exit_code"] for c in result["commands"]] == [0, 3, 3]


def test_xfail_and_skip_options(main_run):
    result = result_of(main_run, "expect/xfail")
    subs = sub_by_name(result)
    assert Counter(sub_names(result)) == Counter(LISTING)
    assert subs["Alpha.FailsWithMessage"]["status"] == "XFAIL"
    assert subs["Alpha.FailsWithMessage"]["message"].startswith("expected failure (bug 1): ")
    assert subs["Inst/Param.Small/2"]["status"] == "XFAIL"
    assert subs["Alpha.Pass00"]["status"] == "XPASS"
    assert subs["Alpha.Pass00"]["message"] == "passed, but a failure was expected: bug 3"
    assert (subs["Beta.AlsoFails"]["status"], subs["Beta.AlsoFails"]["reason"]) == ("SKIP", "CONTROL")
    assert subs["Beta.AlsoFails"]["message"].startswith("known skip (flaky); it was FAIL")
    assert subs["Beta.Pass00"]["status"] == "SKIP"
    assert subs["Beta.Pass00"]["message"] == "known skip (slow); it was PASS"
    changed = {"Alpha.FailsWithMessage", "Inst/Param.Small/2", "Alpha.Pass00", "Beta.AlsoFails", "Beta.Pass00"}
    for name in set(LISTING) - changed:
        assert subs[name]["status"] == EXPECTED[name], name
    # Alpha.Pass00, listed as a known failure, passed: the list is stale.
    assert (result["status"], result["reason"]) == ("XPASS", None)
    assert result["message"] == "1 of 41 passed unexpectedly: Alpha.Pass00"


def test_xfail_or_skip_of_a_test_the_binary_lacks(main_run):
    result = result_of(main_run, "expect/unknown")
    spec = main_run.root / "expect" / "unknown" / "test.yaml"
    assert (result["status"], result["reason"]) == ("FAIL", None)
    message = result["message"]
    assert message.startswith(f"2 of 41 failed: Beta.AlsoFails, Inst/Param.Small/2; {spec}:"), message  # the spec's, not a shard's
    assert "options.skip: 'Nor.ThisOne' is not a test the binary lists" in message
    assert "options.xfail: 'No.SuchTest' is not a test the binary lists" in message
    assert "Alpha.FailsWithMessage" not in message
    assert steps(result) == shard_steps(2)  # the tests still run, and are reported
    assert sub_by_name(result)["Alpha.FailsWithMessage"]["status"] == "XFAIL"


def test_filter_is_honoured(main_run):
    result = result_of(main_run, "filter/simple")
    alpha = [n for n in LISTING if n.startswith("Alpha.")]
    assert Counter(sub_names(result)) == Counter(alpha)
    assert {s["name"]: s["status"] for s in result["subresults"]} == {n: EXPECTED[n] for n in alpha}
    assert result["message"] == "1 of 13 failed: Alpha.FailsWithMessage"
    for command in result["commands"]:
        assert "--gtest_filter=Alpha.*" in command["cmd"]


def test_negative_filter_and_disabled_tests(main_run):
    result = result_of(main_run, "filter/negative")
    got = {s["name"]: s["status"] for s in result["subresults"]}
    assert got == {
        "Alpha.SkipsItself": "SKIP",
        "Alpha.DISABLED_NeverRuns": "SKIP",
        "Typed/0.Zero": "PASS",
        "Typed/1.Zero": "PASS",
    }
    assert sub_by_name(result)["Alpha.DISABLED_NeverRuns"]["message"] == "disabled (DISABLED_)"
    assert result["message"] == "4 sub-results: 2 passed, 2 skipped"


# -- args --------------------------------------------------------------------------------------
def test_args_reach_every_command(main_run):
    result = result_of(main_run, "args/shuffle")
    assert steps(result) == ["list", "shard-1-of-3", "shard-2-of-3", "shard-3-of-3"]
    for command in result["commands"]:
        assert command["cmd"][-2:] == SHUFFLE
    # Run in a shuffled order, reported in the binary's.
    assert [n for n in sub_names(result) if n not in DISABLED] == RUNNABLE
    assert {s["name"]: s["status"] for s in result["subresults"]} == EXPECTED


def test_disabled_tests_run_by_args_are_reported_as_they_ran(main_run):
    sub = sub_by_name(result_of(main_run, "args/also-disabled"))["Alpha.DISABLED_NeverRuns"]
    assert sub["status"] == "FAIL"
    assert "a disabled test ran" in sub.get("output", "")


def test_disabled_tests_run_by_args_shard_once(main_run):
    result = result_of(main_run, "args/also-disabled")
    assert steps(result) == ["list", "shard-1-of-3", "shard-2-of-3", "shard-3-of-3"]


# -- a binary that is missing or lists nothing --------------------------------------------
def test_missing_binary(main_run):
    result = result_of(main_run, "missing")
    where = str(main_run.out / "new" / "work" / "missing" / "no" / "such" / "binary")
    assert result["message"] == f"the binary {where} does not exist (options.binary: no/such/binary) (2 shards not run)"
    assert steps(result) == []  # nothing to run
    assert "subresults" not in result


def test_binary_listing_no_tests(main_run):
    result = result_of(main_run, "empty")
    assert result["message"].startswith(f"{main_run.binary} lists no tests matching filter 'Nope.*'")
    assert steps(result) == ["list"]
    assert "subresults" not in result


def test_other_testcases_are_unaffected(main_run):
    for name in ("plain", "envvar", "relative"):
        assert index_entry(main_run.index, name)["status"] == "PASS", name


@pytest.mark.parametrize("name", ["envvar", "relative"])
def test_binary_from_a_variable_or_the_work_dir(main_run, name):
    result = result_of(main_run, name)
    expected = (
        main_run.binary if name == "envvar" else str(main_run.out / "new" / "work" / "relative" / "bin" / "sample_test")
    )
    assert result["commands"][0]["cmd"][0] == expected
    assert all(command["cmd"][-2] == expected for command in result["commands"][1:])
    assert [(s["name"], s["status"]) for s in result["subresults"]] == [
        (f"Alpha.Pass{n:02d}", "PASS") for n in range(10)
    ]
    assert result["message"] == "10 sub-results: 10 passed"


# -- retries and dependencies ---------------------------------------------------------------
def test_retries_run_every_shard_again(main_run):
    result = result_of(main_run, "retry")
    assert result["attempts"] == 2
    assert result["status"] == "FAIL"
    assert result["message"] == "1 of 5 failed: Danger.FailsOnDemand (failed all 2 attempts)"
    begins = Counter(index for index, what, _ in read_runlog(main_run.runlog) if what == "begin")
    assert begins == {"0": 2, "1": 2}
    assert steps(result) == ["list", "shard-1-of-2", "shard-2-of-2"]  # the last attempt's


def test_dependent_of_a_failed_gtest_testcase_is_skipped(main_run):
    result = result_of(main_run, "after-fail")
    assert (result["status"], result["reason"]) == ("SKIP", "DEPENDENCY")
    assert result["message"] == "not run: dependency 'shards/three' did not pass (FAIL)"


# -- the index and JUnit XML ------------------------------------------------------------------
def test_index_sub_result_summary_matches_the_result_files(main_run):
    checked = 0
    for item in main_run.index["results"]:
        result = result_of(main_run, item["name"])
        subs = result.get("subresults")
        if not subs:
            assert "subresults" not in item, item["name"]
            continue
        found = Counter(s["status"] for s in subs)
        counts = {status: found[status] for status in ORDER if found[status]}
        notable = [
            {"name": s["name"], "status": s["status"], "message": s.get("message", "").split("\n", 1)[0][:300]}
            for s in subs
            if s["status"] in ("FAIL", "ERROR", "XPASS")
        ]
        assert list(item["subresults"]["counts"].items()) == list(counts.items()), item["name"]
        assert item["subresults"]["notable"] == notable, item["name"]
        checked += 1
    assert checked == 15
    three = index_entry(main_run.index, "shards/three")["subresults"]
    assert three["counts"] == {"FAIL": 3, "SKIP": 2, "PASS": 36}
    assert [n["name"] for n in three["notable"]] == FAILING
    xfail = index_entry(main_run.index, "expect/xfail")["subresults"]
    assert xfail["counts"] == {"XPASS": 1, "XFAIL": 2, "SKIP": 4, "PASS": 34}
    assert xfail["notable"] == [
        {"name": "Alpha.Pass00", "status": "XPASS", "message": "passed, but a failure was expected: bug 3"}
    ]


@pytest.fixture(scope="module")
def junit(main_run):
    path = main_run.out.parent / "junit.xml"
    proc = report(main_run.out, "--junit-xml", path)
    assert proc.returncode == 0, proc.stderr
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(path))
    return ET.parse(path).getroot()


def test_junit_one_testcase_per_sub_result(main_run, junit):
    cases = [c for c in junit.iter("testcase") if c.get("classname") == "x.shards.three"]
    result = result_of(main_run, "shards/three")
    assert [c.get("name") for c in cases] == sub_names(result)
    kinds = {c.get("name"): [child.tag for child in c if child.tag != "system-out"] for c in cases}
    for name, status in EXPECTED.items():
        assert kinds[name] == {"FAIL": ["failure"], "SKIP": ["skipped"], "PASS": []}[status], name
    failure = next(c for c in cases if c.get("name") == "Alpha.FailsWithMessage").find("failure")
    assert "arithmetic is broken" in failure.text
    # No <testcase> for the testcase itself: its sub-results show its failure.
    assert not [c for c in junit.iter("testcase") if (c.get("classname"), c.get("name")) == ("x.shards", "three")]


def test_junit_xfail_xpass_and_an_exit_status(junit):
    cases = {c.get("name"): c for c in junit.iter("testcase") if c.get("classname") == "x.expect.xfail"}
    assert len(cases) == 41
    assert cases["Alpha.Pass00"].find("failure").get("type") == "XPASS"
    assert cases["Alpha.FailsWithMessage"].find("skipped") is not None
    exit3 = [c for c in junit.iter("testcase") if c.get("classname") == "x.exit3"]
    assert [c.get("name") for c in exit3] == [f"Alpha.Pass{n:02d}" for n in range(10)]
    # A failure no sub-result shows gets the testcase's own <testcase>.
    own = [c for c in junit.iter("testcase") if (c.get("classname"), c.get("name")) == ("x", "exit3")]
    assert len(own) == 1
    assert own[0].find("failure").get("type") == "EXIT_CODE"
    assert "exited with 3" in own[0].find("failure").get("message")


# -- shards side by side, and a dependent waiting for all of them ---------------------------------
SLEEP = 0.8  # each Sleepy test; Sleepy.S3 (the last shard) half of it


@pytest.fixture(scope="module")
def parallel_run(gtest_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("gtest-parallel")
    root, out = base / "suite", base / "out"
    runlog = base / "sleepy.log"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "sleepy/test.yaml": gtest_spec(
                gtest_binary, env={"GT_SLEEP": str(SLEEP), "GT_RUNLOG": str(runlog)}, shards=4, filter="Sleepy.*"
            ),
            "after/test.yaml": "cmd: 'true'\ndepends: [sleepy]\n",
        },
    )
    run = run_cli(root, out, "-j", "4")
    assert run.index is not None, run.stderr
    rows = read_runlog(runlog)
    begins = {index: when for index, what, when in rows if what == "begin"}
    ends = {index: when for index, what, when in rows if what == "end"}
    return SimpleNamespace(out=out, run=run, index=run.index, begins=begins, ends=ends, rows=rows)


def test_shards_run_side_by_side(parallel_run):
    result = result_of(parallel_run, "sleepy")
    assert result["status"] == "PASS"
    assert steps(result) == ["list", *[f"shard-{k}-of-4" for k in range(1, 5)]]
    assert [s["name"] for s in result["subresults"]] == [f"Sleepy.S{n}" for n in range(4)]
    assert len(parallel_run.rows) == 8  # each shard ran once
    assert sorted(parallel_run.begins) == sorted(parallel_run.ends) == ["0", "1", "2", "3"]
    # All four were running at one moment: the last to begin began before the first to end ended.
    assert max(parallel_run.begins.values()) < min(parallel_run.ends.values())
    span = max(parallel_run.ends.values()) - min(parallel_run.begins.values())
    serial = 3.5 * SLEEP  # the shards' sleeps one after the other
    assert span < serial - SLEEP
    assert result["duration"] >= serial - 0.05  # the testcase's duration adds up its fragments


def test_dependent_waits_for_every_shard(parallel_run):
    after = result_of(parallel_run, "after")
    assert after["status"] == "PASS"
    # The last shard (Sleepy.S3) is not the last to end: the dependent waits for the others too.
    assert parallel_run.ends["3"] < max(parallel_run.ends.values())
    assert after["start"] > max(parallel_run.ends.values())


# -- a hang ---------------------------------------------------------------------------------------
TIMEOUT = 2
HUNG_SHARD = shard_of("Danger.Hangs", 2)
HUNG_SHARD_TESTS = RUNNABLE[HUNG_SHARD::2]
AFTER_HANG = HUNG_SHARD_TESTS[HUNG_SHARD_TESTS.index("Danger.Hangs") + 1 :]


def hang_failures() -> list[str]:
    """The tests that fail or err in the hang run, in the binary's order."""
    return [n for n in RUNNABLE if n in FAILING or n == "Danger.Hangs" or n in AFTER_HANG]


@pytest.fixture(scope="module")
def hang_run(gtest_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("gtest-hang")
    root, out = base / "suite", base / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "hang/test.yaml": gtest_spec(gtest_binary, env={"GT_HANG": "1"}, extra=f"timeout: {TIMEOUT}", shards=2),
        },
    )
    began = time.monotonic()
    run = run_cli(root, out, "-j", "2")
    elapsed = time.monotonic() - began
    assert run.index is not None, run.stderr
    return SimpleNamespace(out=out, run=run, index=run.index, elapsed=elapsed, binary=gtest_binary)


def test_hang_times_out_the_running_test_and_errs_the_rest(hang_run):
    result = result_of(hang_run, "hang")
    names = sub_names(result)
    assert Counter(names) == Counter(LISTING)
    assert [n for n in names if n not in DISABLED] == RUNNABLE
    subs = sub_by_name(result)
    hung = subs["Danger.Hangs"]
    assert (hung["status"], hung["reason"]) == ("FAIL", "TIMEOUT")
    assert re.fullmatch(r"timed out after [0-9.]+ s \(the shard's time\)", hung["message"]), hung["message"]
    assert hung["output"].splitlines() == ["[ RUN      ] Danger.Hangs", "about to hang"]
    assert len(AFTER_HANG) >= 10
    for name in AFTER_HANG:
        assert (subs[name]["status"], subs[name]["reason"]) == ("ERROR", "TIMEOUT"), name
        assert subs[name]["message"] == "not run: the shard's timeout was spent before it", name
    for name in set(LISTING) - set(AFTER_HANG) - {"Danger.Hangs"}:
        assert subs[name]["status"] == EXPECTED[name], name
    bad = hang_failures()
    assert len(bad) == 15
    assert result["status"] == "FAIL"
    assert result["message"] == f"{len(bad)} of 41 failed: {', '.join(bad[:5])} and {len(bad) - 5} more"


def test_hang_is_stopped_at_the_timeout(hang_run):
    result = result_of(hang_run, "hang")
    hung = [c for c in result["commands"] if c["timed_out"]]
    assert [c["step"] for c in hung] == [f"shard-{HUNG_SHARD + 1}-of-2"]
    assert TIMEOUT - 0.1 <= hung[0]["duration"] < TIMEOUT + 1
    assert steps(result) == ["list", "shard-1-of-2", "shard-2-of-2"]  # no run again after a timeout
    assert result["duration"] < TIMEOUT + 1.5  # the list, the hung shard and the other one
    assert hang_run.elapsed < TIMEOUT + 5  # the whole command line, Python's start included
    # No process of the binary is left.
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if hang_run.binary.encode() in handle.read():
                    left.append(pid)
        except OSError:
            pass
    assert not left


def test_hang_index_summary(hang_run):
    item = index_entry(hang_run.index, "hang")
    failed = len(hang_failures()) - len(AFTER_HANG)
    assert item["subresults"]["counts"] == {
        "FAIL": failed,
        "ERROR": len(AFTER_HANG),
        "SKIP": 2,
        "PASS": 41 - failed - len(AFTER_HANG) - 2,
    }
    assert [(n["name"], n["status"]) for n in item["subresults"]["notable"]] == [
        (n, "ERROR" if n in AFTER_HANG else "FAIL") for n in hang_failures()
    ]


# -- shards: auto, with history --------------------------------------------------------------------
@pytest.fixture(scope="module")
def history_runs(gtest_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("gtest-history")
    root, out = base / "suite", base / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "auto/test.yaml": gtest_spec(gtest_binary, filter="Alpha.Pass0*"),
            # Sleepy.* sleep 3.5 times GT_SLEEP in all: about 0.7 s and 1.75 s.
            "medium/test.yaml": gtest_spec(gtest_binary, env={"GT_SLEEP": "0.2"}, filter="Sleepy.*"),
            "slow/test.yaml": gtest_spec(gtest_binary, env={"GT_SLEEP": "0.5"}, filter="Sleepy.*"),
        },
    )
    runs = []
    for _ in range(2):
        run = run_cli(root, out, "-j", "3")
        assert run.index is not None, run.stderr
        runs.append({name: load_result(out, name, run.index) for name in ("auto", "medium", "slow")})
    return runs


# shards: auto splits in as many as the run's slots, on one machine no more
# than its CPUs: -j 3 here.
AUTO_SLOTS = min(3, len(os.sched_getaffinity(0)))


def shard_steps(total: int) -> list[str]:
    return ["list", *[f"shard-{k}-of-{total}" for k in range(1, total + 1)]]


@pytest.mark.parametrize("name", ["auto", "medium", "slow"])
def test_auto_shards_are_the_slots_without_history(history_runs, name):
    first, _ = history_runs
    assert steps(first[name]) == shard_steps(AUTO_SLOTS)


def test_auto_shards_of_a_quick_binary_with_history(history_runs):
    first, second = history_runs
    assert first["auto"]["duration"] < 0.5  # quick: what the second run is told
    assert steps(second["auto"]) == shard_steps(1)
    assert [(s["name"], s["status"]) for s in second["auto"]["subresults"]] == [
        (f"Alpha.Pass{n:02d}", "PASS") for n in range(10)
    ]


@pytest.mark.parametrize("name", ["medium", "slow"])
def test_auto_shards_follow_the_last_duration_capped_by_the_slots(history_runs, name):
    first, second = history_runs
    last = first[name]["duration"]
    if name == "slow":
        assert last > 1.5  # more than 3 shards' worth: the slots cap it
    expected = min(AUTO_SLOTS, max(1, math.ceil(last / 0.5)))
    assert expected == {"medium": min(2, AUTO_SLOTS), "slow": AUTO_SLOTS}[name], last
    assert steps(second[name]) == shard_steps(expected)
    assert [s["name"] for s in second[name]["subresults"]] == [f"Sleepy.S{n}" for n in range(4)]


def test_incremental_runs_the_binary_again_once_it_changes(gtest_binary, tmp_path):
    """A binary outside the suite is part of the testcase's key."""
    binary = tmp_path / "bin" / "unit_tests"
    binary.parent.mkdir()
    shutil.copy2(gtest_binary, binary)
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"suite.yaml": "name: x\n", "unit/test.yaml": gtest_spec(str(binary), filter="Alpha.Pass0*")})
    assert statuses(run_cli(root, out).index) == {"unit": ("PASS", None)}
    assert statuses(run_cli(root, out, "--incremental").index) == {"unit": ("PASS", "CACHED")}
    with open(binary, "ab") as handle:  # rebuilt: other bytes, still a binary that runs
        handle.write(b"\0rebuilt")
    again = run_cli(root, out, "--incremental")
    assert statuses(again.index) == {"unit": ("PASS", None)}
    assert len(load_result(out, "unit", again.index)["subresults"]) == 10
