"""Edges of history for people: ``report --history``, flaky detection,
quarantine, ``--history-keep`` and its pruning child, and the HTML
report's strips and lists.

Most histories here are written straight into SQLite (``make_history``):
the readers see exactly the rows a run would have recorded, and a case
that takes twenty runs costs none. Tests marked ``xfail(strict=True)``
pin bugs found while writing them: each fails today and says what is
expected.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import cli_argv, cli_env, run_cli, write_suite

T0 = 1_700_000_000.0
KEY = "0123456789abcdef"  # a key as results keep it (its first 64 bits)


# -- helpers -------------------------------------------------------------------------
def report(out, *args) -> subprocess.CompletedProcess:
    argv = [*cli_argv("x", out)[:3], "report", str(out), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=60)


def R(status, reason=None, duration=0.01, attempts=1, key=KEY):
    """One result row: (status, reason, duration, attempts, key)."""
    return (status, reason, duration, attempts, key)


def make_history(out, runs: list[dict], first: int = 1) -> str:
    """OUT/history.sqlite with the current schema and ``runs`` (each
    name -> R(...)), numbered from ``first``, a minute apart, long ago."""
    from run_testsuite.history import History

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "history.sqlite")
    History(path).close()
    db = sqlite3.connect(path)
    with db:
        for number, results in enumerate(runs, first):
            counts: dict[str, int] = {}
            for status, *_ in results.values():
                counts[status] = counts.get(status, 0) + 1
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?)", (number, T0 + 60 * number, 1.0, "[]", json.dumps(counts))
            )
            db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(number, name, *row) for name, row in results.items()],
            )
    db.close()
    return path


def section(text: str, title: str) -> list[str]:
    """The lines of a summary's section, after its title line."""
    if title not in text:
        return []
    return text.split(title, 1)[1].split("\n\n", 1)[0].splitlines()[1:]


def run_count(path) -> tuple[int, int, int]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM runs").fetchone()
    finally:
        db.close()


def lock_is_free(out) -> bool:
    """Nobody holds OUT/.lock (the pruning child inherits the run's)."""
    fd = os.open(os.path.join(out, ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def report_data(path) -> dict:
    text = open(path, encoding="utf-8").read()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found, "no report data in the page"
    return json.loads(found.group(1))


# -- report --history: what it reads -------------------------------------------------------
def test_an_empty_history_says_so_and_a_name_is_refused(tmp_path):
    make_history(tmp_path / "out", [])
    proc = report(tmp_path / "out", "--history")
    assert proc.returncode == 0 and proc.stdout == "no run recorded in this history\n", proc
    proc = report(tmp_path / "out", "--history", "x")
    assert proc.returncode == 2 and "'x' has no result in the last 0 runs" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "content",
    [b"", b"not a database at all" * 200, b"SQLite format 3\x00" + b"\x00" * 3000],
    ids=["empty-file", "garbage", "bad-header"],
)
def test_a_damaged_history_is_a_usage_error_without_traceback(tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.sqlite").write_bytes(content)
    for args in (["--history"], ["--history", "x"]):
        proc = report(out, *args)
        assert proc.returncode == 2, proc
        assert "the history cannot be read" in proc.stderr and "Traceback" not in proc.stderr


def test_no_history_names_the_file_it_looked_for(tmp_path):
    (tmp_path / "out").mkdir()
    proc = report(tmp_path / "out", "--history")
    assert proc.returncode == 2 and "history.sqlite does not exist" in proc.stderr


def test_a_pruned_history_with_gaps_and_last_one(tmp_path):
    out = tmp_path / "out"
    make_history(out, [{"a": R("PASS"), "b": R("FAIL", "EXIT_CODE")}] * 3, first=302)
    proc = report(out, "--history", "--last", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("The last 1 run of 3 (runs 304-304, "), proc.stdout
    assert "(2 earlier runs not shown)" in proc.stdout
    # b's streak reaches the first run read: it began then or before.
    assert section(proc.stdout, "Failing in every run since (1)")[0].endswith("1 run at least: b")
    proc = report(out, "--history", "b", "--last", "2")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "b: 2 of the last 2 runs"


def test_names_with_spaces_unicode_quotes_and_variants(tmp_path):
    out = tmp_path / "out"
    names = ["a b", "ü/é 漢", "name[opt=O2]", "name[opt=O1]", "x'; DROP TABLE runs; --"]
    make_history(out, [{n: R("PASS") for n in names}] * 2)
    for name in names:
        proc = report(out, "--history", name)
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.splitlines()[0].startswith(f"{name}: ")
    proc = report(out, "--history", "name[opt=O3]")
    assert proc.returncode == 2 and "did you mean 'name[opt=O" in proc.stderr
    proc = report(out, "--history")
    assert proc.returncode == 0 and "5 testcases" in proc.stdout.splitlines()[0]


def test_a_renamed_testcase_keeps_its_runs_under_its_old_name(tmp_path):
    out = tmp_path / "out"
    make_history(out, [{"old": R("PASS")}, {"old": R("PASS")}, {"new": R("PASS")}, {"new": R("PASS")}])
    assert report(out, "--history", "old").stdout.splitlines()[0] == "old: 2 of the last 4 runs"
    assert report(out, "--history", "new").stdout.splitlines()[0] == "new: 2 of the last 4 runs"


def test_a_huge_last_is_not_a_traceback(tmp_path):
    make_history(tmp_path / "out", [{"a": R("PASS")}])
    proc = report(tmp_path / "out", "--history", "--last", str(10**20))
    assert "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert proc.returncode in (0, 2)


# -- flaky, failing since, grew slower ---------------------------------------------------
def summary(out) -> str:
    proc = report(out, "--history")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_flips_skip_over_results_that_say_nothing_of_the_testcase(tmp_path):
    out = tmp_path / "out"
    make_history(
        out,
        [
            {"t": R("PASS")},
            {"t": R("SKIP", "INTERRUPTED")},
            {"t": R("FAIL", "EXIT_CODE")},
            {"t": R("SKIP", "DEPENDENCY")},
            {"t": R("SKIP", "MAX_FAILURES")},
            {"t": R("PASS")},
        ],
    )
    assert section(summary(out), "Flaky (1)") == ["  2 flips in 3 runs (runs 3, 6)  t"]


def test_a_changed_key_is_no_flip(tmp_path):
    out = tmp_path / "out"
    # Broken by a change of its key, fixed by changing it back: no flip at all.
    make_history(out, [{"t": R("PASS", key="k1")}, {"t": R("FAIL", "DIFF", key="k2")}, {"t": R("PASS", key="k1")}])
    text = summary(out)
    assert "Flaky" not in text
    lines = report(out, "--history", "t").stdout.splitlines()
    assert [line.split()[-1] for line in lines[2:]] == ["ms", "changed", "changed"]


def test_one_turn_is_a_change_two_are_flaky_and_a_retry_is_flaky(tmp_path):
    out = tmp_path / "out"
    make_history(
        out,
        [
            {"broke": R("PASS"), "flaky": R("FAIL", "EXIT_CODE"), "retried": R("PASS")},
            {"broke": R("FAIL", "EXIT_CODE"), "flaky": R("PASS"), "retried": R("PASS", attempts=2)},
            {"broke": R("FAIL", "EXIT_CODE"), "flaky": R("ERROR", "TIMEOUT"), "retried": R("PASS")},
        ],
    )
    text = summary(out)
    assert section(text, "Flaky (2)") == [
        "  2 flips in 3 runs (runs 2, 3)  flaky",
        "  1 flip in 3 runs (run 2)  retried",
    ]
    assert section(text, "Failing in every run since (2)")[0].endswith("2 runs: broke")


def test_xfail_and_xpass_do_not_flip(tmp_path):
    # XPASS is neither good nor bad (README): an expected failure that
    # sometimes passes is not listed as flaky.
    out = tmp_path / "out"
    make_history(out, [{"x": R("XFAIL" if n % 2 else "XPASS")} for n in range(6)])
    assert "Flaky" not in summary(out)


def test_grew_slower_needs_six_runs_that_ended(tmp_path):
    out = tmp_path / "out"
    five = [R("PASS", duration=d) for d in (0.01, 0.01, 0.5, 0.5, 0.5)]
    six = [R("PASS", duration=d) for d in (0.01, 0.01, 0.01, 0.5, 0.5, 0.5)]
    make_history(out, [{"five": five[n], "six": six[n]} if n < 5 else {"six": six[n]} for n in range(6)])
    grew = section(summary(out), "Grew slower (1)")
    assert len(grew) == 1 and grew[0].endswith("  six") and "10 ms -> 500 ms" in grew[0], grew


def test_a_streak_begun_before_the_window_says_at_least(tmp_path):
    out = tmp_path / "out"
    make_history(out, [{"t": R("PASS")}, {"t": R("FAIL", "EXIT_CODE")}, {"t": R("FAIL", "EXIT_CODE")}])
    line = section(report(out, "--history", "--last", "2").stdout, "Failing in every run since (1)")[0]
    assert re.fullmatch(r"  run 2 \(.*\), 2 runs at least: t", line), line


def test_a_streak_begun_before_the_window_behind_a_skip_says_at_least(tmp_path):
    out = tmp_path / "out"
    make_history(
        out,
        [
            {"t": R("PASS")},
            {"t": R("FAIL", "EXIT_CODE")},  # the streak begins here, before the runs read
            {"t": R("SKIP", "INTERRUPTED")},
            {"t": R("FAIL", "EXIT_CODE")},
            {"t": R("FAIL", "EXIT_CODE")},
        ],
    )
    line = section(report(out, "--history", "--last", "3").stdout, "Failing in every run since (1)")[0]
    # Today: "  run 4 (...), 2 runs: t", as if it had begun failing in run 4.
    assert "at least" in line, line


# -- a history from before this change ------------------------------------------------------
OLD_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, start REAL NOT NULL, duration REAL, command TEXT, counts TEXT);
CREATE TABLE results (
    run INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    duration REAL NOT NULL, attempts INTEGER NOT NULL, key TEXT, PRIMARY KEY (run, name));
CREATE TABLE fragments (
    run INTEGER NOT NULL REFERENCES runs(id), testcase TEXT NOT NULL, fragment TEXT NOT NULL,
    status TEXT NOT NULL, duration REAL NOT NULL, PRIMARY KEY (run, testcase, fragment));
CREATE TABLE latest (name TEXT PRIMARY KEY, run INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
    duration REAL NOT NULL, key TEXT);
CREATE TABLE verdicts (name TEXT PRIMARY KEY, run INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT);
"""


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    """A flaky testcase (fails in odd runs, key unchanged): runs 1-2 in a
    history of the old schema (rowid tables, whole keys in results), runs
    3-4 recorded into it by this version."""
    tmp = tmp_path_factory.mktemp("upgraded")
    root, out, counter = tmp / "suite", tmp / "out", tmp / "n"
    write_suite(root, {"f/test.yaml": f"cmd: test $(( $(cat {counter}) % 2 )) -eq 0\n"})
    for number in (1, 2):
        counter.write_text(str(number))
        run_cli(root, out, "--cleanup", "all", "-q")
    path = out / "history.sqlite"
    db = sqlite3.connect(path)
    runs = db.execute("SELECT * FROM runs").fetchall()
    latest = db.execute("SELECT * FROM latest").fetchall()
    verdicts = db.execute("SELECT * FROM verdicts").fetchall()
    results = db.execute("SELECT * FROM results").fetchall()
    db.close()
    whole = {row[0]: row[5] for row in latest}
    assert len(whole["f"]) > 16
    for name in ("history.sqlite", "history.sqlite-wal", "history.sqlite-shm"):
        if (out / name).exists():
            (out / name).unlink()
    db = sqlite3.connect(path)
    with db:
        db.executescript(OLD_SCHEMA)
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", runs)
        db.executemany("INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?)", latest)
        db.executemany("INSERT INTO verdicts VALUES (?, ?, ?, ?)", verdicts)
        db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", [(*r[:6], whole[r[1]]) for r in results])
    db.close()
    for number in (3, 4):
        counter.write_text(str(number))
        run_cli(root, out, "--cleanup", "all", "-q")
    return out


def test_a_history_of_the_old_schema_takes_new_runs(upgraded):
    assert run_count(upgraded / "history.sqlite") == (4, 1, 4)
    proc = report(upgraded, "--history", "f")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[3] for line in proc.stdout.splitlines()[2:6]] == ["FAIL", "PASS", "FAIL", "PASS"]


def test_a_flip_across_the_upgrade_counts_under_the_same_key(upgraded):
    lines = report(upgraded, "--history", "f").stdout.splitlines()
    # Today run 3 says 'changed' and the flips are runs 2 and 4 only.
    assert [line.split()[-1] for line in lines[3:6]] == ["same", "same", "same"], lines
    assert lines[-1] == "flaky: 3 flips (runs 2, 3, 4)"


# -- quarantine -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quarantine_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("quarantine") / "suite"
    write_suite(
        root,
        {
            "suite.yaml": "quarantine:\n  q: races the mock server (issue 88)\n  spec: a mistake is never excused\n",
            "q/test.yaml": "cmd: 'false'\n",
            "bad/test.yaml": "cmd: 'false'\n",
            "ok1/test.yaml": "cmd: 'true'\n",
            "ok2/test.yaml": "cmd: 'true'\n",
            "spec/test.yaml": "cmd: 'true'\nbogus_key: 1\n",
        },
    )
    return root


def by_name(index) -> dict:
    return {entry["name"]: entry for entry in index["results"]}


def test_a_quarantined_failure_alone_does_not_fail_the_run(quarantine_suite, tmp_path):
    run = run_cli(quarantine_suite, tmp_path / "out", names=["q", "ok1"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(quarantined, not counted: races the mock server (issue 88))" in run.stdout
    assert "1 failure quarantined, not counted in the exit status: q" in run.stdout
    assert by_name(run.index)["q"]["quarantined"] == "races the mock server (issue 88)"


def test_a_quarantined_and_a_normal_failure_fail_the_run(quarantine_suite, tmp_path):
    run = run_cli(quarantine_suite, tmp_path / "out", names=["q", "bad"])
    assert run.returncode == 1
    assert "quarantined" not in by_name(run.index)["bad"]


def test_a_spec_error_of_a_quarantined_testcase_is_not_excused(quarantine_suite, tmp_path):
    run = run_cli(quarantine_suite, tmp_path / "out", names=["spec", "ok1"])
    assert run.returncode == 1
    entry = by_name(run.index)["spec"]
    assert (entry["status"], entry["reason"]) == ("ERROR", "SPEC") and "quarantined" not in entry


def test_fail_fast_is_not_stopped_by_a_quarantined_failure_and_failed_reruns_it(quarantine_suite, tmp_path):
    out = tmp_path / "out"
    run_cli(quarantine_suite, out, "-j", "1", names=["q", "ok1", "ok2"])
    # q failed last time: it runs first now, and -x must not stop at it.
    run = run_cli(quarantine_suite, out, "-j", "1", "-x", names=["q", "ok1", "ok2"])
    assert run.returncode == 0, run.stdout
    statuses = {name: entry["status"] for name, entry in by_name(run.index).items()}
    assert statuses == {"q": "FAIL", "ok1": "PASS", "ok2": "PASS"}
    run = run_cli(quarantine_suite, out, "--failed")
    assert [entry["name"] for entry in run.index["results"]] == ["q"] and run.returncode == 0


def test_quarantine_as_a_list_takes_in_variants(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "quarantine: [v]\n",
            "v/test.yaml": "matrix:\n  opt: [O1, O2]\ncmd: test $opt = O1\n",
        },
    )
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert by_name(run.index)["v[opt=O2]"]["quarantined"] == "in suite.yaml's quarantine"


@pytest.mark.parametrize("bad", ["quarantine: 5\n", "quarantine: [q, '']\n", "quarantine: q\n"])
def test_a_quarantine_of_a_wrong_type_is_a_located_usage_error(tmp_path, bad):
    root = write_suite(tmp_path / "suite", {"suite.yaml": bad, "q/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 2 and run.index is None
    assert re.search(r"suite\.yaml:1:\d+: .*\(at quarantine(\[1\])?\)", run.stderr), run.stderr


def test_a_bad_quarantine_entry_is_located_at_the_entry(tmp_path):
    root = write_suite(
        tmp_path / "suite", {"suite.yaml": "quarantine:\n  q: net\n  ok: 5\n", "q/test.yaml": "cmd: 'true'\n"}
    )
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 2
    assert "suite.yaml:3:" in run.stderr, run.stderr  # today: suite.yaml:2:3: expected a list or a mapping, ...


def test_quarantine_from_history_with_none_with_a_damaged_one_and_with_a_flaky_testcase(tmp_path):
    root = write_suite(tmp_path / "suite", {"q/test.yaml": "cmd: 'false'\n", "r/test.yaml": "cmd: 'false'\n"})
    run = run_cli(root, tmp_path / "none", "--quarantine")
    assert run.returncode == 1 and "quarantined" not in run.stdout
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "history.sqlite").write_bytes(b"garbage" * 500)
    run = run_cli(root, damaged, "--quarantine")
    assert run.returncode == 1 and "the history cannot be read" in run.stderr and "Traceback" not in run.stderr
    flaky = tmp_path / "flaky"
    make_history(flaky, [{"q": R("PASS")}, {"q": R("FAIL", "EXIT_CODE")}, {"q": R("PASS")}])
    run = run_cli(root, flaky, "--quarantine")
    assert run.returncode == 1  # r is not flaky
    assert by_name(run.index)["q"]["quarantined"] == "flaky: 2 flips in its last 3 runs"
    assert "quarantined" not in by_name(run.index)["r"]


def test_a_spec_error_at_run_time_is_not_excused(tmp_path):
    root = tmp_path / "suite"
    write_suite(
        root,
        {
            "suite.yaml": "quarantine: [q]\n",
            "q/test.yaml": f"driver: diff\ncmd: rm -f {root}/q/test.out; echo hi\n",
            "q/test.out": "hi\n",
        },
    )
    run = run_cli(root, tmp_path / "out")
    assert by_name(run.index)["q"]["reason"] == "SPEC"
    assert run.returncode == 1, run.stdout  # today 0: '(quarantined, not counted: ...)'


@pytest.fixture(scope="module")
def quarantined_regression(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qcompare")
    root, out, flag = tmp / "suite", tmp / "out", tmp / "flag"
    write_suite(root, {"suite.yaml": "quarantine: {q: net}\n", "q/test.yaml": f"cmd: test ! -e {flag}\n"})
    run_cli(root, out)
    flag.write_text("")
    run = run_cli(root, out)
    assert run.returncode == 0
    return out


def test_compare_marks_a_quarantined_regression(quarantined_regression):
    out = quarantined_regression
    proc = subprocess.run(
        [*cli_argv("x", out)[:3], "report", "--compare", str(out / "old"), str(out / "new")],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert "PASS -> FAIL  q" in proc.stdout
    assert "quarantined" in proc.stdout, proc.stdout


def test_editing_the_quarantine_keeps_the_keys(tmp_path):
    root = write_suite(tmp_path / "suite", {"suite.yaml": "quarantine: [x]\n", "a/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    run_cli(root, out, "-q")
    (root / "suite.yaml").write_text("quarantine: {a: races the mock server}\n")
    run = run_cli(root, out, "--incremental", "-q")
    assert by_name(run.index)["a"].get("cached"), run.stdout


# -- --history-keep and the pruning child --------------------------------------------------
def backlog(out, runs: int, testcases: int) -> str:
    """A history of ``runs`` runs of ``testcases`` passes, written fast."""
    from run_testsuite.history import History

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "history.sqlite")
    History(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ?) "
            "INSERT INTO runs SELECT i, ? + i * 60, 1.0, '[]', '{}' FROM r",
            (runs, T0),
        )
        db.execute(
            "WITH RECURSIVE t(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM t WHERE j < ? - 1) "
            "INSERT INTO results SELECT runs.id, printf('t%05d', j), 'PASS', NULL, 0.01, 1, ? FROM runs, t "
            "ORDER BY runs.id, j",
            (testcases, KEY),
        )
    db.close()
    return path


def slow_pruning(path, rows: int) -> None:
    """Make each run the prune deletes cost ``rows`` squared row visits
    (a trigger in the file): the pruning child stays busy for a while."""
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE slow (x)")
        db.executemany("INSERT INTO slow VALUES (?)", [(i,) for i in range(rows)])
        db.execute(
            "CREATE TRIGGER slow_prune AFTER DELETE ON runs BEGIN SELECT COUNT(*) FROM slow a, slow b WHERE a.x + b.x = -1; END"
        )
    db.close()


@pytest.fixture
def one_test(tmp_path):
    return write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n"})


def test_history_keep_zero_one_and_huge(one_test, tmp_path):
    out = tmp_path / "out"
    path = out / "history.sqlite"
    for _ in range(3):
        assert run_cli(one_test, out, "-q", "--history-keep", "0").returncode == 0
    assert run_count(path) == (3, 1, 3)
    assert run_cli(one_test, out, "-q", "--history-keep", str(10**20)).returncode == 0
    assert run_count(path) == (4, 1, 4)
    run = run_cli(one_test, out, "-q", "--history-keep", "1")
    assert run.returncode == 0 and run_count(path) == (1, 5, 5)
    proc = report(out, "--history")
    assert proc.stdout.startswith("The last 1 run of 1 (runs 5-5, ")
    # What a run needs of the runs gone stays: --failed, the previous verdicts.
    assert by_name(run_cli(one_test, out, "-q", "--history-keep", "1").index)["a"]["status"] == "PASS"
    run = run_cli(one_test, out, "--history-keep", "-1")
    assert run.returncode == 2 and "must be 0 or more" in run.stderr


def test_a_backlog_of_500_runs_is_pruned_and_the_child_is_gone_at_exit(one_test, tmp_path):
    out = tmp_path / "out"
    path = backlog(out, 500, 200)
    slow_pruning(path, 200)  # 300 runs to drop: a few tenths of a second more
    began = time.monotonic()
    run = run_cli(one_test, out, "-q")
    took = time.monotonic() - began
    assert run.returncode == 0, run.stderr
    # The CLI waited for its pruning child: the prune is done and nobody
    # holds the output directory's lock any more.
    assert lock_is_free(out)
    assert run_count(path) == (200, 302, 501)
    db = sqlite3.connect(path)
    assert db.execute("SELECT MIN(run) FROM results").fetchone()[0] == 302
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert took < 30


def start_run(root, out) -> subprocess.Popen:
    return subprocess.Popen(
        cli_argv(root, out, "-q", "--history-keep", "3"),
        cwd=out.parent,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def pruner_of(pid: int, path, timeout: float = 10.0) -> int | None:
    """The child of ``pid`` that has the history open: its pruner."""
    target = os.path.realpath(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                if parent != pid:
                    continue
                links = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")]
            except (OSError, ValueError, IndexError):
                continue
            if target in links:
                return int(entry)
        time.sleep(0.005)
    return None


def alive(pid: int) -> bool:
    """Running still (not gone, not a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_ctrl_c_while_pruning_leaves_a_readable_history(one_test, tmp_path):
    out = tmp_path / "out"
    path = backlog(out, 3, 10)
    slow_pruning(path, 10_000)  # seconds of work for the one run to drop
    proc = start_run(one_test, out)
    pruner = pruner_of(proc.pid, path)
    try:
        assert pruner is not None, "no pruning child seen"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        proc.wait(timeout=30)
        assert proc.returncode == 130, proc.stderr.read()
        time.sleep(0.1)
        assert not alive(pruner)
    finally:
        if pruner is not None and alive(pruner):
            os.kill(pruner, signal.SIGKILL)
    # The prune rolled back; the run itself is recorded; the file is whole.
    assert run_count(path) == (4, 1, 4)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert report(out, "--history").returncode == 0
    assert lock_is_free(out)


def test_the_pruning_child_does_not_outlive_an_interrupted_cli(one_test, tmp_path):
    out = tmp_path / "out"
    path = backlog(out, 3, 10)
    slow_pruning(path, 10_000)
    proc = start_run(one_test, out)
    pruner = pruner_of(proc.pid, path)
    try:
        assert pruner is not None, "no pruning child seen"
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        time.sleep(0.2)
        assert not alive(pruner), "the pruning child outlived the CLI"
    finally:
        if pruner is not None and alive(pruner):
            os.kill(pruner, signal.SIGKILL)


# -- HTML: strips and lists ---------------------------------------------------------------
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def html_runs(tmp_path_factory):
    """Three runs of a suite with a hostile name that flips (counter file
    outside the suite, so its key stays), and one added in the third."""
    tmp = tmp_path_factory.mktemp("html")
    root, out, counter = tmp / "suite", tmp / "out", tmp / "n"
    write_suite(
        root,
        {
            f"{HOSTILE}/test.yaml": f"cmd: test $(( $(cat {counter}) % 2 )) -eq 0\n",
            "a&b\"c'/test.yaml": "cmd: 'true'\n",
        },
    )
    for number in (1, 2, 3):
        counter.write_text(str(number))
        if number == 3:
            write_suite(root, {"late/test.yaml": "cmd: 'true'\n"})
        run_cli(root, out, "--cleanup", "all")
    return out


def test_the_strips_hold_the_runs_before_and_none_for_a_new_testcase(html_runs):
    rows = {row["name"]: row for row in report_data(html_runs / "new" / "report.html")["results"]}
    assert [status for status, _ in rows[HOSTILE]["history"]] == ["FAIL", "PASS"]
    assert rows["late"]["history"] == [] and rows["late"]["flips"] == 0


def test_a_report_made_later_does_not_count_its_run_twice(html_runs, tmp_path):
    proc = report(html_runs, "--html", tmp_path / "later.html")
    assert proc.returncode == 0, proc.stderr
    later = {row["name"]: row["history"] for row in report_data(tmp_path / "later.html")["results"]}
    during = {row["name"]: row["history"] for row in report_data(html_runs / "new" / "report.html")["results"]}
    assert later == during
    proc = report(html_runs / "old", "--html", tmp_path / "old.html")
    assert proc.returncode == 0, proc.stderr
    older = {row["name"]: row["history"] for row in report_data(tmp_path / "old.html")["results"]}
    assert [status for status, _ in older[HOSTILE]] == ["FAIL"]


def test_a_report_from_a_rebuilt_index_does_not_count_its_run_twice(html_runs, tmp_path):
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(html_runs, copy)
    (copy / "new" / "_index.json").unlink()
    assert report(copy, "--html", tmp_path / "rebuilt.html").returncode == 0
    rows = {row["name"]: row["history"] for row in report_data(tmp_path / "rebuilt.html")["results"]}
    assert [status for status, _ in rows[HOSTILE]] == ["FAIL", "PASS"], rows[HOSTILE]


def test_hostile_names_in_the_lists_are_data_not_markup(html_runs):
    page = (html_runs / "new" / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page and "a&b\"c'" not in page
    data = report_data(html_runs / "new" / "report.html")
    assert HOSTILE in {item["name"] for item in data["lists"]["slowest"]}


def test_hostile_names_in_the_flaky_list_render_as_text(tmp_path):
    import browser

    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    # A history that makes both names flaky, then one run whose report lists them.
    root = write_suite(
        tmp_path / "suite", {f"{HOSTILE}/test.yaml": "cmd: 'true'\n", "a&b\"c'/test.yaml": "cmd: 'true'\n"}
    )
    out = tmp_path / "out"
    flips = [
        {HOSTILE: R("PASS" if n % 2 else "FAIL", None if n % 2 else "EXIT_CODE"), "a&b\"c'": R("PASS", attempts=2)}
        for n in range(4)
    ]
    make_history(out, flips)
    run_cli(root, out)
    driver = browser.start(tmp_path / "profile")
    try:
        browser.open_report(driver, out / "new" / "report.html")
        names = driver.execute_script(
            "return Array.from(document.querySelectorAll('[data-list=flaky] a.jump')).map(a => a.textContent)"
        )
        assert sorted(names) == sorted([HOSTILE, "a&b\"c'"])
        assert driver.execute_script("return document.querySelectorAll('img').length") == 0
        assert browser.page_errors(driver) == []
    finally:
        driver.quit()


def test_strips_of_10000_testcases_are_read_and_written_in_seconds(tmp_path):
    from run_testsuite.history_view import strips
    from run_testsuite.reports import html

    out = tmp_path / "out"
    n = 10_000
    backlog(out, 10, n)
    start = T0 + 3600
    os.makedirs(out / "new" / "results")
    index = {
        "start": start,
        "duration": 5.0,
        "complete": True,
        "jobs": 2,
        "suite": "s",
        "counts": {"PASS": n},
        "results": [
            {
                "name": f"t{j:05d}",
                "status": "PASS",
                "duration": 0.01,
                "start": start + j * 1e-4,
                "slot": j % 2,
                "result": f"results/t{j:05d}.json",
            }
            for j in range(n)
        ],
    }
    (out / "new" / "_index.json").write_text(json.dumps(index))
    began = time.monotonic()
    found = strips(str(out), html.STRIP_RUNS, before=start)
    read = time.monotonic() - began
    assert len(found.runs) == n and all(len(json.loads(s)) == 10 for s in found.runs.values())
    began = time.monotonic()
    html.write_html(str(out / "new"), str(tmp_path / "r.html"))
    written = time.monotonic() - began
    assert read < 5 and written < 10, (read, written)


def test_an_output_directory_with_uri_characters_keeps_its_history(tmp_path):
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out #1?x=%41"
    assert run_cli(root, out, "-q").returncode == 0
    again = run_cli(root, out, "-q", "--incremental")
    assert again.returncode == 0, again.stderr
    assert {e["name"]: e.get("cached") for e in again.index["results"]} == {"a": True, "b": True}
    assert "The last 2 runs" in report(out, "--history").stdout


def test_a_streak_from_the_first_run_ever_is_exact(tmp_path):
    out = tmp_path / "out"
    make_history(out, [{"f": R("FAIL", "EXIT_CODE")}] * 3)
    line = section(report(out, "--history").stdout, "Failing in every run since (1)")[0]
    assert re.fullmatch(r"  run 1 \(.*\), 3 runs: f", line), line  # every run was read: no "at least"


def test_set_ups_are_counted_apart_from_testcases(tmp_path):
    out = tmp_path / "out"
    make_history(out, [{"a": R("PASS"), "b": R("PASS"), "setup:build": R("PASS")}] * 2)
    assert ", 2 testcases, 1 set-up\n" in report(out, "--history").stdout.splitlines(keepends=True)[0]


def test_a_streak_from_the_first_run_kept_after_pruning_says_at_least(tmp_path):
    out = tmp_path / "out"
    make_history(out, [{"f": R("FAIL", "EXIT_CODE")}] * 2, first=4)  # runs 1-3 pruned
    line = section(report(out, "--history").stdout, "Failing in every run since (1)")[0]
    assert re.fullmatch(r"  run 4 \(.*\), 2 runs at least: f", line), line
