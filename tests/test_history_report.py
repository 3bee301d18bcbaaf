"""``run-testsuite report --history``: flaky, failing since, slowest, grew
slower and each run's totals, from six real runs of a small suite whose
testcases change their behaviour from run to run (a counter file outside
the suite, so their keys stay the same)."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import cli_argv, cli_env, run_cli, write_suite

RUNS = 6


def report(out, *args) -> subprocess.CompletedProcess:
    argv = [*cli_argv("x", out)[:3], "report", str(out), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=60)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    root, out, counter = tmp / "suite", tmp / "out", tmp / "run-number"
    n = f"n=$(cat {counter})"
    write_suite(
        root,
        {
            # Fails in odd runs, passes in even ones: 5 flips in 6 runs.
            "flaky/test.yaml": f"cmd: {n}; test $((n % 2)) -eq 0\n",
            # Fails its first attempt, passes the retry, every run.
            "retried/test.yaml": f"retries: 1\ncmd: {n}; test -e {tmp}/tried-$n || {{ touch {tmp}/tried-$n; exit 1; }}\n",
            # Passes in runs 1-3, fails from run 4 on.
            "broken/test.yaml": f"cmd: {n}; test $n -le 3\n",
            # 10 ms in runs 1-3, 300 ms from run 4 on.
            "slower/test.yaml": f"cmd: {n}; if [ $n -le 3 ]; then sleep 0.01; else sleep 0.3; fi\n",
            "steady/test.yaml": "cmd: 'true'\n",
        },
    )
    runs = []
    for number in range(1, RUNS + 1):
        counter.write_text(str(number))
        runs.append(run_cli(root, out, "--cleanup", "all"))
    return out, runs


def test_summary_lists_flaky_failing_slowest_and_grown(history):
    out, _ = history
    proc = report(out, "--history")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert re.match(r"The last 6 runs of 6 \(runs 1-6, .* to .*\), 5 testcases\n", text), text
    flaky = text.split("Flaky (2):", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    # Most flips first; 'broken' turned once (it broke): not flaky.
    assert flaky == [
        "  6 flips in 6 runs (runs 1, 2, 3, 4, 5, 6)  retried",
        "  5 flips in 6 runs (runs 2, 3, 4, 5, 6)  flaky",
    ]
    failing = text.split("Failing in every run since (1):\n", 1)[1].splitlines()[0]
    assert re.fullmatch(r"  run 4 \(\d{4}-\d\d-\d\d \d\d:\d\d\), 3 runs: broken", failing), failing
    slowest = text.split("Slowest (median of their runs):\n", 1)[1].splitlines()
    assert slowest[0].endswith("  slower")
    grew = text.split("Grew slower (1): the median of their later runs against their earlier:\n", 1)[1].splitlines()[0]
    assert grew.endswith("  slower") and re.search(r"\d+ ms -> 3\d\d ms", grew), grew
    runs = text.split("Runs:\n", 1)[1].splitlines()
    assert runs[0].split() == ["run", "started", "took", "PASS", "FAIL", "XFAIL", "XPASS", "SKIP", "ERROR"]
    # Run 1: flaky fails (odd), the rest pass; run 4: flaky passes, broken fails.
    assert runs[1].split()[0] == "1" and runs[1].split()[-6:] == ["4", "1", "0", "0", "0", "0"]
    assert runs[4].split()[0] == "4" and runs[4].split()[-6:] == ["4", "1", "0", "0", "0", "0"]
    assert runs[5].split()[-6:] == ["3", "2", "0", "0", "0", "0"]


def test_one_testcases_runs(history):
    out, _ = history
    proc = report(out, "--history", "flaky")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "flaky: 6 of the last 6 runs"
    rows = [line.split() for line in lines[2:8]]
    assert [(row[0], row[3]) for row in rows] == [
        ("1", "FAIL"),
        ("2", "PASS"),
        ("3", "FAIL"),
        ("4", "PASS"),
        ("5", "FAIL"),
        ("6", "PASS"),
    ]
    assert [row[-1] for row in rows[1:]] == ["same"] * 5  # the key never changed
    assert lines[8] == "flaky: 5 flips (runs 2, 3, 4, 5, 6)"
    retried = report(out, "--history", "retried").stdout
    assert "(2 attempts)" in retried


def test_last_limits_the_runs_read(history):
    out, _ = history
    text = report(out, "--history", "--last", "2").stdout
    assert text.startswith("The last 2 runs of 6 (runs 5-6,")
    assert "Failing in every run since (1):\n  run 5 (" in text and "2 runs at least: broken" in text
    assert "(4 earlier runs not shown)" in text


def test_unknown_testcase_and_missing_history_are_clear(history, tmp_path):
    out, _ = history
    proc = report(out, "--history", "flakey")
    assert proc.returncode == 2
    assert "'flakey' has no result in the last 6 runs; did you mean 'flaky'?" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = report(tmp_path / "empty", "--history")
    assert proc.returncode == 2 and "no history in" in proc.stderr
    proc = report(out, "--history", "--html", tmp_path / "x.html")
    assert proc.returncode == 2 and "--history reports on history alone" in proc.stderr


def test_history_keep_prunes_older_runs_after_the_run(tmp_path):
    import sqlite3

    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "steps:\n  - cmd: 'true'\n  - cmd: 'true'\n"})
    for _ in range(4):
        assert run_cli(root, out).returncode == 0
    assert run_cli(root, out, "--history-keep", "2").returncode == 0

    def rows(table: str) -> list:
        db = sqlite3.connect(out / "history.sqlite")
        try:
            return db.execute(
                f"SELECT DISTINCT {'id' if table == 'runs' else 'run'} FROM {table} ORDER BY 1"
            ).fetchall()
        finally:
            db.close()

    assert rows("runs") == [(4,), (5,)]
    assert rows("results") == [(4,), (5,)]
    assert rows("fragments") == [(4,), (5,)]  # b's two steps; a's lone fragment is its result
    assert report(out, "--history").stdout.startswith("The last 2 runs of 2 (runs 4-5,")
    # The latest word on each testcase stays: --failed and --incremental still work.
    assert run_cli(root, out, "--incremental").index["cached"] == 2
    # 0 keeps everything from now on.
    assert run_cli(root, out, "--history-keep", "0").returncode == 0
    assert rows("runs") == [(4,), (5,), (6,), (7,)]
    proc = subprocess.run(
        [*cli_argv(root, out)[:3], str(root), "-o", str(out), "--history-keep", "-1"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert proc.returncode == 2 and "--history-keep: must be 0 or more, got -1" in proc.stderr


def test_quarantined_failures_are_reported_but_do_not_fail_the_run(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "name: q\nquarantine:\n  flaky/net: races the mock server (issue 88)\n  gone: typo\n",
            "flaky/net/test.yaml": "cmd: echo lost; exit 1\n",
            "after/test.yaml": "cmd: 'true'\n",
        },
    )
    run = run_cli(root, out, "--max-failures", "1", "--junit-xml", tmp_path / "j.xml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        "FAIL  flaky/net [EXIT_CODE]: step 'run' exited with 1, expected 0 (quarantined, not counted: "
        "races the mock server (issue 88))" in run.stdout
    )
    assert "1 failure quarantined, not counted in the exit status: flaky/net" in run.stdout
    entry = next(e for e in run.index["results"] if e["name"] == "flaky/net")
    assert entry["quarantined"] == "races the mock server (issue 88)"
    # --max-failures 1 was not reached by it: the rest ran.
    assert next(e for e in run.index["results"] if e["name"] == "after")["status"] == "PASS"
    assert "[quarantined, not counted: races the mock server (issue 88)]" in (tmp_path / "j.xml").read_text()
    summary = report(out)
    assert "1 failure quarantined, not counted in the exit status: flaky/net" in summary.stdout
    validate = subprocess.run(
        [*cli_argv(root, out)[:3], "validate", str(root)], capture_output=True, text=True, env=cli_env()
    )
    assert "warning: quarantine: 'gone' names no testcase" in validate.stdout


def test_quarantine_option_takes_the_flaky_testcases_from_history(tmp_path):
    root, out, counter = tmp_path / "suite", tmp_path / "out", tmp_path / "n"
    write_suite(
        root,
        {"flaky/test.yaml": f"cmd: n=$(cat {counter}); test $((n % 2)) -eq 0\n", "steady/test.yaml": "cmd: 'true'\n"},
    )
    for number in range(1, 5):
        counter.write_text(str(number))
        run_cli(root, out)
    counter.write_text("5")
    assert run_cli(root, out).returncode == 1  # without --quarantine it fails the run
    counter.write_text("7")
    run = run_cli(root, out, "--quarantine")
    assert run.returncode == 0, run.stdout
    assert "(quarantined, not counted: flaky: 4 flips in its last 5 runs)" in run.stdout
