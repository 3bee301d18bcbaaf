"""The tap and junit drivers end to end: a suite whose last step prints TAP
or writes a JUnit file, run through the real command line; its sub-results
as the result files, the index, the terminal, ``report``, ``report
--junit-xml`` and ``report --compare`` show them, and the verdict rule of
``drivers/collecting.py`` (failures, a broken stream or file, timeouts,
exit statuses, ``xfail:``/``skip:`` names)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PYTHON, entry, load_result, report, run_cli, statuses, write_suite

# -- the main suite ------------------------------------------------------------------------
# Every TAP construct at once: version 14, plan, descriptions, SKIP, TODO
# failing (XFAIL) and passing (XPASS), a YAML block whose `message` is used,
# a comment under a failure, nested subtests (one clean, one said ok over a
# failure), an escaped hash. Exits 1, as a harness with failures does.
ALL_TAP = r"""#!/bin/sh
cat <<'EOF'
TAP version 14
1..9
ok 1 - adds
not ok 2 - divides
  ---
  message: got 3, expected 4
  duration_ms: 12
  ...
ok 3 - reads the network # SKIP no network here
not ok 4 - takes the divisor's sign # TODO follows C
ok 5 - rounds half to even # TODO fixed by accident
# Subtest: functions
    1..2
    ok 1 - sqrt
    ok 2 - abs
ok 6 - functions
# Subtest: parsers
    1..2
    ok 1 - numbers
    not ok 2 - names
ok 7 - parsers
not ok 8 - formats
# got '1,5'
ok 9 - escapes \# a hash
EOF
exit 1
"""

PYTEST_FILE = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("no db")

def test_pass():
    pass

def test_fail():
    raise ValueError("one is not two")

def test_skip():
    pytest.skip("not here")

@pytest.mark.xfail(reason="bug 9")
def test_xfail():
    assert False

def test_error(broken):
    pass
"""

JUNIT_WRITER = r"""#!/bin/sh
mkdir -p "$REPORT_DIR"
cat > "$REPORT_DIR/r.xml" <<'EOF'
<testsuites><testsuite name="s">
<testcase classname="pkg.Thing" name="works" time="0.5"/>
<testcase classname="pkg.Thing" name="breaks" time="0.25"><failure message="boom">trace here</failure></testcase>
</testsuite></testsuites>
EOF
exit 1
"""

SUITE = {
    "suite.yaml": "name: x\n",
    # -- tap --
    "tap/all/test.yaml": "driver: tap\ncmd: ./script.sh\n",
    "tap/all/script.sh": ALL_TAP,
    "tap/killed/test.yaml": "driver: tap\ncmd: ./script.sh\n",
    "tap/killed/script.sh": ("#!/bin/sh\necho 1..5\necho ok 1 - one\necho ok 2 - two\nkill -9 $$\necho ok 3 - three\n"),
    "tap/timeout/test.yaml": "driver: tap\ntimeout: 1\ncmd: ./script.sh\n",
    "tap/timeout/script.sh": "#!/bin/sh\necho 1..2\necho ok 1 - first\nsleep 30\necho ok 2 - second\n",
    "tap/exit-all-ok/test.yaml": "driver: tap\ncmd: ./script.sh\n",
    "tap/exit-all-ok/script.sh": "#!/bin/sh\necho 1..2\necho ok 1 - a\necho ok 2 - b\nexit 3\n",
    "tap/exit-xfailed/test.yaml": "driver: tap\ncmd: ./script.sh\noptions:\n  xfail: {b: bug 12}\n",
    "tap/exit-xfailed/script.sh": "#!/bin/sh\necho 1..2\necho ok 1 - a\necho not ok 2 - b\nexit 1\n",
    "tap/bail/test.yaml": "driver: tap\ncmd: ./script.sh\n",
    "tap/bail/script.sh": (
        "#!/bin/sh\necho 1..3\necho ok 1 - a\necho 'Bail out! database down'\necho ok 2 - b\necho ok 3 - c\n"
    ),
    "tap/names/test.yaml": """
        driver: tap
        cmd: ./script.sh
        options:
          xfail:
            parses dates: bug 1       # by description
            "2 - formats": bug 2      # by full name
            rounds: bug 3             # passes: XPASS
          skip:
            slow: too slow            # fails, skipped by description
            "5 - fast": flaky         # passes, skipped by full name
        """,
    "tap/names/script.sh": (
        "#!/bin/sh\necho 1..5\necho not ok 1 - parses dates\necho not ok 2 - formats\n"
        "echo ok 3 - rounds\necho not ok 4 - slow\necho ok 5 - fast\nexit 1\n"
    ),
    "tap/unknown/test.yaml": """
        driver: tap
        cmd: ./script.sh
        options:
          xfail: {ghost: bug 4}
          skip: {"9 - phantom": gone}
        """,
    "tap/unknown/script.sh": "#!/bin/sh\necho 1..1\necho ok 1 - a\n",
    "tap/unknown-and-failing/test.yaml": "driver: tap\ncmd: ./script.sh\noptions:\n  xfail: {ghost: bug 4}\n",
    "tap/unknown-and-failing/script.sh": "#!/bin/sh\necho 1..2\necho ok 1 - a\necho not ok 2 - b\nexit 1\n",
    "tap/steps/test.yaml": """
        driver: tap
        steps:
          - name: build
            cmd: ./build.sh
          - name: check
            cmd: ./check.sh
        """,
    # Looks like TAP, and fails: none of it is read.
    "tap/steps/build.sh": "#!/bin/sh\necho 1..3\necho ok 1 - compiled\necho not ok 2 - warnings\necho built > built.txt\n",
    "tap/steps/check.sh": '#!/bin/sh\necho 1..1\necho "ok 1 - runs the $(cat built.txt) program"\n',
    "tap/steps-fail/test.yaml": """
        driver: tap
        steps:
          - name: build
            cmd: ./build.sh
          - name: check
            cmd: ./check.sh
        """,
    "tap/steps-fail/build.sh": "#!/bin/sh\necho 1..1\necho ok 1 - compiled\nexit 2\n",
    "tap/steps-fail/check.sh": "#!/bin/sh\necho 1..1\necho ok 1 - runs\n",
    "tap/plan-skip/test.yaml": "driver: tap\ncmd: ./script.sh\n",
    "tap/plan-skip/script.sh": "#!/bin/sh\necho '1..0 # SKIP no database'\n",
    # -- junit --
    "junit/pytest/test.yaml": f"""
        driver: junit
        env: {{PYTEST_DISABLE_PLUGIN_AUTOLOAD: "1"}}
        cmd: [{PYTHON}, -m, pytest, -q, -p, no:cacheprovider, test_x.py, --junitxml=reports/r.xml]
        options:
          junit: reports/r.xml
        """,
    "junit/pytest/test_x.py": PYTEST_FILE,
    "junit/missing/test.yaml": "driver: junit\ncmd: 'true'\noptions:\n  junit: reports/none.xml\n",
    "junit/broken/test.yaml": (
        "driver: junit\ncmd: mkdir -p reports && cp broken.xml reports/r.xml\noptions:\n  junit: reports/r.xml\n"
    ),
    "junit/broken/broken.xml": b'<testsuite name="s">\n<testcase name="a">',
    "junit/stale/test.yaml": "driver: junit\ncmd: 'true'\noptions:\n  junit: reports/r.xml\n",
    "junit/stale/reports/r.xml": '<testsuite name="s"><testcase classname="old" name="stale"/></testsuite>\n',
    "junit/var/test.yaml": (
        "driver: junit\nenv: {REPORT_DIR: out-reports}\ncmd: ./write.sh\n"
        "options:\n  junit: $REPORT_DIR/r.xml\n  xfail: {pkg.Thing.breaks: bug 7}\n"
    ),
    "junit/var/write.sh": JUNIT_WRITER,
}


def make_executable(root: Path) -> None:
    for path in root.rglob("*.sh"):
        path.chmod(0o755)


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("collecting")
    root, out = base / "suite", base / "out"
    write_suite(root, SUITE)
    make_executable(root)
    return SimpleNamespace(root=root, out=out, run=run_cli(root, out, "-j", "2"))


def result(main_run, name: str) -> dict:
    return load_result(main_run.out, name, main_run.run.index)


def subs(res: dict) -> list[tuple]:
    """(name, status, message) of each sub-result, in order."""
    return [(s["name"], s["status"], s.get("message", "")) for s in res.get("subresults") or []]


def work(main_run, name: str) -> Path:
    """The testcase's work directory (``dir/name`` is ``dir__name`` there)."""
    return main_run.out / "new" / "work" / name.replace("/", "__")


def test_statuses_of_every_testcase(main_run):
    assert statuses(main_run.run.index) == {
        "junit/broken": ("FAIL", None),
        "junit/missing": ("FAIL", None),
        "junit/pytest": ("FAIL", None),
        "junit/stale": ("FAIL", None),
        "junit/var": ("PASS", None),
        "tap/all": ("FAIL", None),
        "tap/bail": ("FAIL", None),
        "tap/exit-all-ok": ("FAIL", "EXIT_CODE"),
        "tap/exit-xfailed": ("PASS", None),
        "tap/killed": ("FAIL", "EXIT_CODE"),
        "tap/names": ("XPASS", None),
        "tap/plan-skip": ("SKIP", None),
        "tap/steps": ("PASS", None),
        "tap/steps-fail": ("FAIL", "EXIT_CODE"),
        "tap/timeout": ("FAIL", "TIMEOUT"),
        "tap/unknown": ("FAIL", None),
        "tap/unknown-and-failing": ("FAIL", None),
    }
    assert main_run.run.returncode == 1


# -- tap: every construct ---------------------------------------------------------------------
def test_tap_every_construct_subresults(main_run):
    res = result(main_run, "tap/all")
    assert res["driver"] == "tap"
    assert subs(res) == [
        ("1 - adds", "PASS", ""),
        ("2 - divides", "FAIL", "got 3, expected 4"),
        ("3 - reads the network", "SKIP", "no network here"),
        ("4 - takes the divisor's sign", "XFAIL", "TODO: follows C"),
        ("5 - rounds half to even", "XPASS", "TODO: fixed by accident"),
        ("6 - functions", "PASS", ""),
        ("7 - parsers", "FAIL", "said ok, but failed inside: 2 - names"),
        ("8 - formats", "FAIL", ""),
        ("9 - escapes # a hash", "PASS", ""),
    ]
    by_name = {s["name"]: s for s in res["subresults"]}
    assert by_name["2 - divides"]["duration"] == 0.012  # the YAML block's duration_ms
    # A failure keeps its own output: the diagnostics under it, nothing of the points after.
    assert "message: got 3, expected 4" in by_name["2 - divides"]["output"]
    assert "3 - reads" not in by_name["2 - divides"]["output"]
    assert by_name["8 - formats"]["output"] == "# got '1,5'"
    assert by_name["7 - parsers"]["output"] == "2 - names"
    assert not by_name["1 - adds"].get("output")  # a pass keeps none


def test_tap_every_construct_testcase_verdict(main_run):
    res = result(main_run, "tap/all")
    assert (res["status"], res["reason"]) == ("FAIL", None)
    # Exit 1 is explained by the failures: no EXIT_CODE problem is added.
    assert res["message"] == "3 of 9 failed: 2 - divides, 7 - parsers, 8 - formats"
    summary = entry(main_run.run.index, "tap/all")["subresults"]
    assert summary["counts"] == {"FAIL": 3, "XPASS": 1, "XFAIL": 1, "SKIP": 1, "PASS": 3}
    assert summary["notable"] == [
        {"name": "2 - divides", "status": "FAIL", "message": "got 3, expected 4"},
        {"name": "5 - rounds half to even", "status": "XPASS", "message": "TODO: fixed by accident"},
        {"name": "7 - parsers", "status": "FAIL", "message": "said ok, but failed inside: 2 - names"},
        {"name": "8 - formats", "status": "FAIL", "message": ""},
    ]


def test_tap_every_construct_on_the_terminal(main_run):
    stdout = main_run.run.stdout
    assert (
        "FAIL  tap/all: 3 of 9 failed: 2 - divides, 7 - parsers, 8 - formats\n"
        "      FAIL  2 - divides: got 3, expected 4\n"
        "      XPASS 5 - rounds half to even: TODO: fixed by accident\n"
        "      FAIL  7 - parsers: said ok, but failed inside: 2 - names\n"
        "      FAIL  8 - formats\n"
    ) in stdout
    details = stdout.split("---- FAIL tap/all\n", 1)[1].split("\n----", 1)[0]
    assert "  -- FAIL 2 - divides: got 3, expected 4\n  |   ---\n  |   message: got 3, expected 4\n" in details
    assert "  -- FAIL 8 - formats\n  | # got '1,5'\n" in details


# -- tap: a stream cut short, a bail out, exit statuses ----------------------------------------
def test_tap_killed_mid_stream(main_run):
    res = result(main_run, "tap/killed")
    assert (res["status"], res["reason"]) == ("FAIL", "EXIT_CODE")
    assert "planned 5, ran 2" in res["message"]
    assert res["message"] == (
        "planned 5, ran 2 (stopped after 2 - two); step 'run' exited with signal SIGKILL, expected 0"
    )
    assert subs(res) == [("1 - one", "PASS", ""), ("2 - two", "PASS", "")]
    assert f"FAIL  tap/killed [EXIT_CODE]: {res['message']}\n" in main_run.run.stdout


def test_tap_timeout_keeps_the_points_seen(main_run):
    res = result(main_run, "tap/timeout")
    assert (res["status"], res["reason"]) == ("FAIL", "TIMEOUT")
    assert res["message"] == "step 'run' timed out after 1 s; planned 2, ran 1 (stopped after 1 - first)"
    assert subs(res) == [("1 - first", "PASS", "")]
    assert res["commands"][0]["timed_out"] is True
    assert entry(main_run.run.index, "tap/timeout")["duration"] < 15  # the sleep 30 was stopped


def test_tap_nonzero_exit_with_every_point_ok_fails(main_run):
    res = result(main_run, "tap/exit-all-ok")
    assert (res["status"], res["reason"]) == ("FAIL", "EXIT_CODE")
    assert res["message"] == "every test passed, but step 'run' exited with 3, expected 0"
    assert subs(res) == [("1 - a", "PASS", ""), ("2 - b", "PASS", "")]


def test_tap_nonzero_exit_explained_by_a_known_failure_passes(main_run):
    res = result(main_run, "tap/exit-xfailed")
    assert (res["status"], res["reason"]) == ("PASS", None)
    assert res["message"] == "2 sub-results: 1 passed, 1 xfailed"
    assert subs(res) == [("1 - a", "PASS", ""), ("2 - b", "XFAIL", "expected failure (bug 12)")]


def test_tap_bail_out(main_run):
    res = result(main_run, "tap/bail")
    assert res["status"] == "FAIL"
    assert res["message"] == "Bail out! database down"
    # Nothing after the bail out is read.
    assert subs(res) == [("1 - a", "PASS", "")]
    assert "FAIL  tap/bail: Bail out! database down\n" in main_run.run.stdout


def test_tap_plan_skip_skips_the_testcase(main_run):
    res = result(main_run, "tap/plan-skip")
    assert (res["status"], res["reason"], res["message"]) == ("SKIP", None, "skipped: no database")
    assert not res.get("subresults")


# -- tap: xfail and skip names -------------------------------------------------------------
def test_tap_xfail_and_skip_by_description_and_by_full_name(main_run):
    res = result(main_run, "tap/names")
    assert (res["status"], res["reason"]) == ("XPASS", None)
    assert res["message"] == "1 of 5 passed unexpectedly: 3 - rounds"
    assert subs(res) == [
        ("1 - parses dates", "XFAIL", "expected failure (bug 1)"),
        ("2 - formats", "XFAIL", "expected failure (bug 2)"),
        ("3 - rounds", "XPASS", "passed, but a failure was expected: bug 3"),
        ("4 - slow", "SKIP", "known skip (too slow); it was FAIL"),
        ("5 - fast", "SKIP", "known skip (flaky); it was PASS"),
    ]
    assert [s.get("reason") for s in res["subresults"]] == [None, None, None, "CONTROL", "CONTROL"]
    assert entry(main_run.run.index, "tap/names")["subresults"]["notable"] == [
        {"name": "3 - rounds", "status": "XPASS", "message": "passed, but a failure was expected: bug 3"}
    ]


def test_tap_unknown_xfail_and_skip_names_fail(main_run):
    res = result(main_run, "tap/unknown")
    spec = main_run.root / "tap" / "unknown" / "test.yaml"
    assert res["status"] == "FAIL"
    assert res["message"] == (
        f"{spec}:5:25: options.skip: '9 - phantom' is not a test in the TAP stream; "
        f"{spec}:4:18: options.xfail: 'ghost' is not a test in the TAP stream"
    )
    assert subs(res) == [("1 - a", "PASS", "")]


def test_tap_unknown_name_beside_a_failure_is_named_too(main_run):
    res = result(main_run, "tap/unknown-and-failing")
    assert res["status"] == "FAIL"
    spec = main_run.root / "tap" / "unknown-and-failing" / "test.yaml"
    assert (
        res["message"] == f"1 of 2 failed: 2 - b; {spec}:4:18: options.xfail: 'ghost' is not a test in the TAP stream"
    )


# -- tap: steps --------------------------------------------------------------------------------
def test_tap_only_the_last_step_is_read(main_run):
    res = result(main_run, "tap/steps")
    assert (res["status"], res["message"]) == ("PASS", "1 sub-result: 1 passed")
    assert subs(res) == [("1 - runs the built program", "PASS", "")]
    assert [c["step"] for c in res["commands"]] == ["build", "check"]


def test_tap_failing_first_step_fails_without_subresults(main_run):
    res = result(main_run, "tap/steps-fail")
    assert (res["status"], res["reason"]) == ("FAIL", "EXIT_CODE")
    assert res["message"] == "step 'build' exited with 2, expected 0 (1 later step not run)"
    assert not res.get("subresults")
    assert "subresults" not in entry(main_run.run.index, "tap/steps-fail")


# -- bats ----------------------------------------------------------------------------------
BATS = "/usr/bin/bats"
BATS_FILE = """
@test "adds numbers" {
  [ $((1 + 2)) -eq 3 ]
}

@test "compares strings" {
  [ "a" = "b" ]
}

@test "needs a network" {
  skip "no network here"
}
"""


def test_bats_tap(tmp_path):
    if not os.path.exists(BATS):
        if os.environ.get("CI"):
            pytest.fail(f"{BATS} is missing, and CI must run this test")
        pytest.skip(f"{BATS} is missing (apt-get install bats)")
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "calc/test.yaml": "driver: tap\ncmd: bats --tap t.bats\n",
            "calc/t.bats": BATS_FILE,
        },
    )
    run = run_cli(root, out)
    assert run.returncode == 1, run.stderr
    res = load_result(out, "calc", run.index)
    assert (res["status"], res["reason"]) == ("FAIL", None)
    assert res["message"] == "1 of 3 failed: 2 - compares strings"
    assert subs(res) == [
        ("1 - adds numbers", "PASS", ""),
        ("2 - compares strings", "FAIL", ""),
        ("3 - needs a network", "SKIP", "no network here"),
    ]
    # bats's comment lines under the failure are its output.
    assert '[ "a" = "b" ]' in res["subresults"][1]["output"]
    assert "FAIL  calc: 1 of 3 failed: 2 - compares strings\n      FAIL  2 - compares strings\n" in run.stdout


# -- junit -----------------------------------------------------------------------------------
def test_junit_with_real_pytest(main_run):
    res = result(main_run, "junit/pytest")
    assert res["driver"] == "junit"
    assert (res["status"], res["reason"]) == ("FAIL", None)
    assert res["message"] == "2 of 5 failed: test_x.test_fail, test_x.test_error"
    assert subs(res) == [
        ("test_x.test_pass", "PASS", ""),
        ("test_x.test_fail", "FAIL", "ValueError: one is not two"),
        ("test_x.test_skip", "SKIP", "not here"),
        ("test_x.test_xfail", "XFAIL", "bug 9"),
        ("test_x.test_error", "ERROR", 'failed on setup with "RuntimeError: no db"'),
    ]
    for sub in res["subresults"]:
        assert isinstance(sub["duration"], float) and sub["duration"] >= 0
    by_name = {s["name"]: s for s in res["subresults"]}
    assert 'raise ValueError("one is not two")' in by_name["test_x.test_fail"]["output"]
    assert 'raise RuntimeError("no db")' in by_name["test_x.test_error"]["output"]
    assert entry(main_run.run.index, "junit/pytest")["subresults"]["counts"] == {
        "FAIL": 1,
        "ERROR": 1,
        "XFAIL": 1,
        "SKIP": 1,
        "PASS": 1,
    }
    assert (
        "FAIL  junit/pytest: 2 of 5 failed: test_x.test_fail, test_x.test_error\n"
        "      FAIL  test_x.test_fail: ValueError: one is not two\n"
        '      ERROR test_x.test_error: failed on setup with "RuntimeError: no db"\n'
    ) in main_run.run.stdout


def test_junit_file_never_written(main_run):
    res = result(main_run, "junit/missing")
    assert res["status"] == "FAIL"
    assert res["message"] == f"{work(main_run, 'junit/missing')}/reports/none.xml was not written"
    assert not res.get("subresults")


def test_junit_unparsable_file_names_path_line_and_column(main_run):
    res = result(main_run, "junit/broken")
    assert res["status"] == "FAIL"
    assert res["message"] == f"{work(main_run, 'junit/broken')}/reports/r.xml:2:20: no element found"
    assert not res.get("subresults")


def test_junit_stale_report_is_removed_before_the_step(main_run):
    res = result(main_run, "junit/stale")
    assert res["status"] == "FAIL"
    assert res["message"] == f"{work(main_run, 'junit/stale')}/reports/r.xml was not written"
    assert not res.get("subresults")  # not old.stale from the committed file
    assert not (work(main_run, "junit/stale") / "reports" / "r.xml").exists()
    # The committed file itself is left alone: only the work directory's copy goes.
    assert (main_run.root / "junit" / "stale" / "reports" / "r.xml").read_text() == SUITE["junit/stale/reports/r.xml"]


def test_junit_path_expands_variables(main_run):
    res = result(main_run, "junit/var")
    # Exit 1 is explained by the (known) failure: PASS.
    assert (res["status"], res["reason"]) == ("PASS", None)
    assert res["message"] == "2 sub-results: 1 passed, 1 xfailed"
    assert subs(res) == [
        ("pkg.Thing.works", "PASS", ""),
        ("pkg.Thing.breaks", "XFAIL", "expected failure (bug 7): boom"),
    ]
    assert [s["duration"] for s in res["subresults"]] == [0.5, 0.25]


# -- report, report --junit-xml ---------------------------------------------------------------
def test_report_summary_names_failing_subresults(main_run):
    proc = report(main_run.out)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert (
        "FAIL  junit/pytest: 2 of 5 failed: test_x.test_fail, test_x.test_error\n"
        "      FAIL  test_x.test_fail: ValueError: one is not two\n"
        '      ERROR test_x.test_error: failed on setup with "RuntimeError: no db"\n'
        "FAIL  junit/stale: "
    ) in text
    assert (
        "FAIL  tap/all: 3 of 9 failed: 2 - divides, 7 - parsers, 8 - formats\n"
        "      FAIL  2 - divides: got 3, expected 4\n"
        "      XPASS 5 - rounds half to even: TODO: fixed by accident\n"
        "      FAIL  7 - parsers: said ok, but failed inside: 2 - names\n"
        "      FAIL  8 - formats\n"
        "FAIL  tap/bail: Bail out! database down\n"
    ) in text
    # Every testcase's sub-results count, passes' too.
    assert "\n33 sub-results: 15 passed, 5 failed, 1 error, 6 xfailed, 2 xpassed, 4 skipped\n" in text
    total = sum(sum(e.get("subresults", {}).get("counts", {}).values()) for e in main_run.run.index["results"])
    assert total == 33


@pytest.fixture(scope="module")
def junit_report(main_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("junit-report") / "r.xml"
    proc = report(main_run.out, "--junit-xml", path)
    assert proc.returncode == 0, proc.stderr
    return ET.parse(path).getroot()


def cases_of(root, classname: str) -> list[ET.Element]:
    return [case for case in root.iter("testcase") if case.get("classname") == classname]


def test_junit_xml_has_one_testcase_per_subresult(junit_report):
    cases = cases_of(junit_report, "x.tap.all")
    assert [c.get("name") for c in cases] == [
        "1 - adds",
        "2 - divides",
        "3 - reads the network",
        "4 - takes the divisor's sign",
        "5 - rounds half to even",
        "6 - functions",
        "7 - parsers",
        "8 - formats",
        "9 - escapes # a hash",
    ]
    kinds = [[child.tag for child in case] for case in cases]
    assert kinds == [[], ["failure"], ["skipped"], ["skipped"], ["failure"], [], ["failure"], ["failure"], []]
    assert cases[1].find("failure").get("message") == "got 3, expected 4"
    assert cases[4].find("failure").get("type") == "XPASS"
    assert cases[1].get("time") == "0.012"
    # The testcase failed through its sub-results: no element of its own.
    assert [c for c in cases_of(junit_report, "x.tap") if c.get("name") == "all"] == []
    pytest_cases = cases_of(junit_report, "x.junit.pytest")
    assert [(c.get("name"), [child.tag for child in c]) for c in pytest_cases] == [
        ("test_x.test_pass", []),
        ("test_x.test_fail", ["failure"]),
        ("test_x.test_skip", ["skipped"]),
        ("test_x.test_xfail", ["skipped"]),
        ("test_x.test_error", ["error"]),
    ]


def test_junit_xml_keeps_a_failure_no_subresult_shows(junit_report):
    assert [c.get("name") for c in cases_of(junit_report, "x.tap.killed")] == ["1 - one", "2 - two"]
    assert all(len(c) == 0 for c in cases_of(junit_report, "x.tap.killed"))
    own = [c for c in cases_of(junit_report, "x.tap") if c.get("name") == "killed"]
    assert len(own) == 1
    failure = own[0].find("failure")
    assert failure is not None
    assert failure.get("message").startswith("planned 5, ran 2 (stopped after 2 - two)")
    # The same for a timeout, and for files that were not written.
    assert [c.get("name") for c in cases_of(junit_report, "x.tap") if c.find("failure") is not None] == [
        "bail",
        "exit-all-ok",
        "killed",
        "steps-fail",
        "timeout",
        "unknown",
    ]
    assert sorted(c.get("name") for c in cases_of(junit_report, "x.junit") if c.find("failure") is not None) == [
        "broken",
        "missing",
        "stale",
    ]


def test_junit_xml_counts_match_the_elements(junit_report):
    suite = junit_report.find("testsuite")
    cases = list(suite.iter("testcase"))
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
    assert int(suite.get("errors")) == sum(c.find("error") is not None for c in cases) == 1


# -- report --compare ---------------------------------------------------------------------------
def tap_script(points: list[str]) -> str:
    lines = [f"echo 1..{len(points)}"] + [f"echo '{point}'" for point in points]
    return "#!/bin/sh\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Three runs into one output directory: 1 -> 2 breaks a point, fixes one
    and adds a failing one; 2 -> 3 only adds a failing one."""
    base = tmp_path_factory.mktemp("compare")
    root, out = base / "suite", base / "out"
    script = root / "pts" / "script.sh"
    write_suite(root, {"suite.yaml": "name: x\n", "pts/test.yaml": "driver: tap\ncmd: ./script.sh\n"})
    runs = [
        ["ok 1 - a", "not ok 2 - b", "not ok 3 - c"],
        ["not ok 1 - a", "ok 2 - b", "not ok 3 - c", "not ok 4 - d"],
        ["not ok 1 - a", "ok 2 - b", "not ok 3 - c", "not ok 4 - d", "not ok 5 - e"],
    ]
    reports = []
    for number, points in enumerate(runs):
        script.write_text(tap_script(points))
        script.chmod(0o755)
        run = run_cli(root, out)
        assert statuses(run.index) == {"pts": ("FAIL", None)}, run.stdout + run.stderr
        if number:  # OUT/old is the run before, OUT/new this one
            reports.append(report("--compare", out / "old", out / "new"))
    return reports[0], reports[1]


def test_compare_subresult_regression_fix_and_new_failure(compared):
    proc, _ = compared
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout
    assert "\nSub-result regressions (1):\n  PASS -> FAIL  pts :: 1 - a\n" in text
    assert "\nSub-results fixed (1):\n  FAIL -> PASS  pts :: 2 - b\n" in text
    assert "\nNew sub-results that fail (1):\n  new -> FAIL  pts :: 4 - d\n" in text
    # The testcase itself was FAIL both times: still failing, not a regression.
    assert "\nStill failing (1):\n" in text
    assert "\nRegressions (" not in text
    assert "1 sub-result regression" in text.splitlines()[-1]


def test_compare_new_failing_subresult_alone_is_no_regression(compared):
    _, proc = compared
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "\nNew sub-results that fail (1):\n  new -> FAIL  pts :: 5 - e\n" in text
    assert "Sub-result regressions" not in text
    assert "Sub-results fixed" not in text


# -- bugs ----------------------------------------------------------------------------------
BIG_POINTS = 1000  # ~60 kB of TAP: past the 32 kB the output capture keeps in memory

FLAKY_TAP = r"""#!/bin/sh
# Fails every point on the first attempt, passes them all on the retry.
if [ -e "$FLAG" ]; then st="ok"; else st="not ok"; touch "$FLAG"; fi
echo 1..{n}
i=1
while [ $i -le {n} ]; do
  echo "$st $i - point number $i, with a description long enough to fill the output"
  i=$((i + 1))
done
"""


@pytest.fixture(scope="module")
def bug_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("collecting-bugs")
    root, out = base / "suite", base / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: x\n",
            "retry-big/test.yaml": f"driver: tap\nretries: 1\nenv: {{FLAG: {base / 'flag-big'}}}\ncmd: ./script.sh\n",
            "retry-big/script.sh": FLAKY_TAP.replace("{n}", str(BIG_POINTS)),
            "retry-small/test.yaml": f"driver: tap\nretries: 1\nenv: {{FLAG: {base / 'flag-small'}}}\ncmd: ./script.sh\n",
            "retry-small/script.sh": FLAKY_TAP.replace("{n}", "3"),
            "xfail-twice/test.yaml": ("driver: tap\ncmd: ./script.sh\noptions:\n  xfail: {a: bug 1, '1 - a': bug 1}\n"),
            "xfail-twice/script.sh": "#!/bin/sh\necho 1..1\necho not ok 1 - a\n",
        },
    )
    make_executable(root)
    return SimpleNamespace(out=out, run=run_cli(root, out, "-j", "2"))


def test_retry_of_a_small_tap_stream_reads_the_last_attempt(bug_run):
    res = load_result(bug_run.out, "retry-small", bug_run.run.index)
    assert (res["status"], res["attempts"]) == ("PASS", 2)
    assert [s["status"] for s in res["subresults"]] == ["PASS"] * 3


def test_retry_of_a_large_tap_stream_reads_the_last_attempt(bug_run):
    res = load_result(bug_run.out, "retry-big", bug_run.run.index)
    assert len(res["subresults"]) == BIG_POINTS
    assert (res["status"], res["attempts"]) == ("PASS", 2)
    assert res["message"].startswith("passed on attempt 2 of 2")


def test_xfail_naming_a_point_twice_is_not_an_unknown_name(bug_run):
    res = load_result(bug_run.out, "xfail-twice", bug_run.run.index)
    assert subs(res) == [("1 - a", "XFAIL", "expected failure (bug 1)")]
    assert (res["status"], res["message"]) == ("PASS", "1 sub-result: 1 xfailed")
