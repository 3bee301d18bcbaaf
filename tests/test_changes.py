"""Changes since the previous run, measured from each testcase's latest
earlier verdict in history: partial runs (-k, names, Ctrl-C) hide nothing
of the full run before them, unselected testcases are not "removed", and a
run's stop (INTERRUPTED, MAX_FAILURES) is never a regression."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

from conftest import PYTHON, cli_env, run_cli, start_cli, statuses, wait_for, write_suite


def suite(tmp_path, fail: set[str] = frozenset()):
    """Testcases a, b, c, d; those named in ``fail`` exit 1 (by a flag file
    the specs read, so that their keys and specs stay put)."""
    flags = tmp_path / "flags"
    flags.mkdir(exist_ok=True)
    for name in "abcd":
        flag = flags / name
        if name in fail:
            flag.touch()
        elif flag.exists():
            flag.unlink()
    return write_suite(tmp_path / "suite", {f"{n}/test.yaml": f"cmd: test ! -e {flags}/{n}\n" for n in "abcd"})


def report(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "run_testsuite", "report", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )


def test_a_partial_run_is_compared_with_the_full_run_before_it(tmp_path):
    out = tmp_path / "out"
    root = suite(tmp_path, fail={"c"})
    full = run_cli(root, out)
    assert full.returncode == 1
    assert "since the previous results" not in full.stdout  # a first run has none

    root = suite(tmp_path, fail={"a", "c"})
    partial = run_cli(root, out, names=["a"])
    assert statuses(partial.index) == {"a": ("FAIL", "EXIT_CODE")}
    assert "since the previous results: 1 regression (a)" in partial.stdout
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 1, compared.stdout
    assert "Regressions (1):" in compared.stdout and "PASS -> FAIL  a" in compared.stdout
    assert "Removed" not in compared.stdout
    assert "(3 of the old run not selected in the new one)" in compared.stdout

    # The next full run: old/ holds only `a`; b, c and d are measured from history.
    root = suite(tmp_path, fail={"c"})
    again = run_cli(root, out)
    assert "since the previous results: 1 fixed, 1 still failing" in again.stdout
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 0
    assert "New testcases" not in compared.stdout
    assert "FAIL -> PASS  a" in compared.stdout
    assert "FAIL -> FAIL  c" in compared.stdout
    index = json.loads((out / "new" / "_index.json").read_text())
    previous = {e["name"]: e.get("previous") for e in index["results"]}
    assert previous["b"] == {"status": "PASS", "reason": None, "run": 1}
    assert previous["a"]["status"] == "FAIL" and previous["a"]["run"] == 2


def test_a_removed_testcase_is_removed_only_from_a_whole_run(tmp_path):
    out = tmp_path / "out"
    root = suite(tmp_path)
    run_cli(root, out)
    (root / "d" / "test.yaml").unlink()
    run_cli(root, out)
    compared = report("--compare", out / "old", out / "new")
    assert "Removed testcases (1):" in compared.stdout and "PASS  d" in compared.stdout


def test_failure_limit_skips_are_not_regressions(tmp_path):
    out = tmp_path / "out"
    root = suite(tmp_path, fail={"a"})
    run_cli(root, out, "-j", "1")
    # a failed last time, so it goes first, and the limit skips the rest.
    stopped = run_cli(root, out, "-j", "1", "--max-failures", "1")
    results = statuses(stopped.index)
    assert results["a"] == ("FAIL", "EXIT_CODE")
    assert {results[n] for n in "bcd"} == {("SKIP", "MAX_FAILURES")}
    assert "regression" not in stopped.stdout and "1 still failing" in stopped.stdout
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 0 and "Regressions" not in compared.stdout, compared.stdout
    assert "Not run (the run was interrupted or stopped, or a dependency did not pass) (3):" in compared.stdout
    # The next run measures b, c, d from their last verdict (PASS), not from the skip.
    root = suite(tmp_path, fail={"b"})
    after = run_cli(root, out, "-j", "1")
    assert "1 regression (b), 1 fixed" in after.stdout
    with sqlite3.connect(out / "history.sqlite") as db:
        verdicts = dict(db.execute("SELECT name, status FROM verdicts"))
    assert verdicts == {"a": "PASS", "b": "FAIL", "c": "PASS", "d": "PASS"}


def test_an_interrupted_testcase_is_not_a_regression(tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "started"
    root = write_suite(
        tmp_path / "suite",
        {"slow/test.yaml": f"cmd: touch {marker}; sleep ${{SLOW:-0}}\n", "quick/test.yaml": "cmd: 'true'\n"},
    )
    run_cli(root, out)
    marker.unlink()
    proc = start_cli(root, out, "-j", "2", env={"SLOW": "30"})
    assert wait_for(marker.exists, 20)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT
    index = json.loads((out / "new" / "_index.json").read_text())
    assert {e["name"]: e["reason"] for e in index["results"]}["slow"] == "INTERRUPTED"
    assert "regression" not in stdout
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 0 and "Regressions" not in compared.stdout


def test_history_from_before_verdicts_were_kept_is_used(tmp_path):
    out = tmp_path / "out"
    root = suite(tmp_path)
    run_cli(root, out)
    with sqlite3.connect(out / "history.sqlite") as db:
        db.execute("DROP TABLE verdicts")  # as an older version left it
    root = suite(tmp_path, fail={"d"})
    run = run_cli(root, out, names=["d"])
    assert "1 regression (d)" in run.stdout


def test_the_html_report_of_a_partial_run_names_only_real_changes(tmp_path):
    out = tmp_path / "out"
    root = suite(tmp_path, fail={"b"})
    run_cli(root, out)
    root = suite(tmp_path, fail={"a", "b"})
    run_cli(root, out, names=["a"])
    page = (out / "new" / "report.html").read_text(encoding="utf-8")
    # The changes section is rendered server-side: a is a new failure (was PASS).
    section = page[page.index('id="changes"') :]
    section = section[: section.index("</section>")] if "</section>" in section else section[:4000]
    assert 'data-name="a"' in section and "was PASS" in section
    assert 'data-name="b"' not in section  # not selected: neither fixed nor removed


def test_a_dependency_skip_does_not_hide_a_later_regression(tmp_path):
    out = tmp_path / "out"
    flags = tmp_path / "flags"
    flags.mkdir()
    root = write_suite(
        tmp_path / "suite",
        {"dep/test.yaml": f"cmd: test ! -e {flags}/dep\n", "t/test.yaml": f"depends: [dep]\ncmd: test ! -e {flags}/t\n"},
    )
    run_cli(root, out)  # both pass
    (flags / "dep").touch()
    skipped = run_cli(root, out)
    assert statuses(skipped.index)["t"] == ("SKIP", "DEPENDENCY")
    (flags / "dep").unlink()
    (flags / "t").touch()
    broken = run_cli(root, out)
    assert statuses(broken.index)["t"] == ("FAIL", "EXIT_CODE")
    assert "1 regression (t)" in broken.stdout
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 1 and "PASS -> FAIL  t" in compared.stdout, compared.stdout


def test_the_old_run_is_read_cut_down_to_what_changes_need(tmp_path):
    from run_testsuite.reports.compare import read_earlier

    old = tmp_path / "old"
    old.mkdir()
    entries = [
        {"name": "a", "status": "PASS", "reason": None, "message": "", "duration": 1.0, "result": "results/a.json"},
        {"name": "b", "status": "PASS", "reason": None, "message": "x", "duration": 2.0, "result": "results/b.json"},
        {"name": "c", "status": "SKIP", "reason": "CONTROL", "message": "", "duration": 0, "result": "results/c.json"},
        {
            "name": "g",
            "status": "FAIL",
            "reason": "EXIT_CODE",
            "message": "",
            "duration": 1.0,
            "result": "results/g.json",
            "previous": {"status": "PASS", "reason": None, "run": 3},
            "subresults": {"counts": {"FAIL": 1}, "notable": [{"name": "T.x", "status": "FAIL", "message": ""}]},
        },
    ]
    index = {"format": 1, "suite": "s", "results": entries}
    (old / "_index.json").write_text(json.dumps(index))
    found = read_earlier(str(old))
    assert found is not None and sorted(found) == ["a", "b", "c", "g"]
    assert found["a"] == {"status": "PASS", "reason": None} and found["a"] is found["b"]  # alike: one dict
    assert found["c"] == {"status": "SKIP", "reason": "CONTROL"}
    # A testcase with sub-results keeps its file and summary: they are compared.
    assert found["g"]["result"] == "results/g.json" and found["g"]["subresults"]["notable"][0]["name"] == "T.x"
    assert read_earlier(str(tmp_path / "none")) is None
    for bad in ("{", '{"results": 3}', '{"results": [{"name": "a", "status": "BAD", "result": "r"}]}'):
        (old / "_index.json").write_text(bad)
        assert read_earlier(str(old)) is None, bad


def test_a_testcase_skipped_in_both_runs_is_not_new_and_an_unneeded_set_up_not_removed(tmp_path):
    files = {
        "suite.yaml": "setup:\n  build: {cmd: 'true'}\n",
        "ok/test.yaml": "cmd: 'true'\n",
        "sk/test.yaml": "cmd: 'true'\ncontrol: [{skip: 'True', reason: never}]\n",
        "dep/test.yaml": "cmd: 'true'\nneeds: [build]\n",
    }
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    assert run_cli(root, out).returncode == 0
    assert run_cli(root, out).returncode == 0
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 0, compared.stdout
    assert "New" not in compared.stdout and "0 new" in compared.stdout, compared.stdout
    assert "4 unchanged" in compared.stdout, compared.stdout  # ok, sk, dep and the set-up

    # --incremental: dep is cached, so its set-up is not needed, not removed.
    cached = run_cli(root, out, "--incremental")
    assert "setup:build" not in statuses(cached.index)
    compared = report("--compare", out / "old", out / "new")
    assert compared.returncode == 0, compared.stdout
    assert "Removed" not in compared.stdout and "0 removed" in compared.stdout, compared.stdout
