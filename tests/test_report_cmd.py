"""`run-testsuite report`: the summary of a run on disk, comparing two runs,
and rebuilding the index of a run that was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types

import pytest

import run_testsuite.reports
from conftest import (
    report,
    REPO,
    cli_env,
    load_index,
    read_json,
    run_cli,
    start_cli,
    statuses,
    validate_index,
    wait_for,
    write_suite,
)
from run_testsuite import report_cmd
from run_testsuite.rebuild import rebuild_index
from run_testsuite.reports.compare import classify, compare, render_text
from run_testsuite.results import Status


MIXED = {
    "suite.yaml": "name: mixed\n",
    "ok/test.yaml": "cmd: echo ok\n",
    "dir/ok2/test.yaml": "cmd: echo ok2\n",
    "bad/test.yaml": "cmd: echo oops; exit 2\n",
    "after-bad/test.yaml": "depends: [bad]\ncmd: echo never\n",
    "broken/test.yaml": "cmd: echo\ntimout: 1\n",
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A finished run of MIXED: (base directory, output directory, index)."""
    base = tmp_path_factory.mktemp("mixed")
    out = base / "out"
    run = run_cli(write_suite(base / "suite", MIXED), out, "-j", "2")
    assert run.returncode == 1
    return base, out, run.index


# -- the summary --------------------------------------------------------------------------
def test_summary_of_a_run(mixed):
    base, out, index = mixed
    proc = report(out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("suite mixed: run of ")
    assert f"-j 2 on {index['host']}" in lines[0]
    assert lines[1] == f"root: {base / 'suite'}"
    # One line per non-passing result, the worst first; passing ones not at all.
    assert [line.split()[:2] for line in lines if line[:5].strip() in {s.value for s in Status}] == [
        ["ERROR", "broken"],
        ["FAIL", "bad"],
        ["SKIP", "after-bad"],
    ]
    assert "FAIL  bad [EXIT_CODE]: step 'run' exited with 2, expected 0" in lines
    assert not any(" ok" in line and line.startswith("PASS") for line in lines)
    assert f"5 testcases: 2 passed, 1 failed, 1 skipped, 1 error in {index['duration']:.2f} s" in lines
    assert lines[-1] == f"report index: {out / 'new' / '_index.json'}"


def test_output_may_be_the_output_dir_its_new_dir_or_the_index(mixed):
    base, out, _ = mixed
    outputs = [report(path).stdout.splitlines()[:-1] for path in (out, out / "new", out / "new" / "_index.json")]
    assert outputs[0] == outputs[1] == outputs[2]
    # OUTPUT defaults to ./out.
    assert report(cwd=base).stdout.splitlines()[:-1] == outputs[0]


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["nowhere"], "nowhere: no such file or directory"),
        ("empty", ["empty"], "no run in empty"),
        ("garbage", ["garbage"], "the index is unreadable"),
        (None, ["out", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (None, ["out", "--compare", "a", "b"], "give OUTPUT or --compare OLD NEW, not both"),
        (None, ["--compare", "a"], "expected 2 arguments"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(tmp_path, setup, args, message):
    if setup == "empty":
        (tmp_path / "empty").mkdir()
    elif setup == "garbage":
        (tmp_path / "garbage").mkdir()
        (tmp_path / "garbage" / "_index.json").write_text("{not json")
    proc = report(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_junit_xml_to_an_unwritable_place_is_a_clear_error(mixed, tmp_path):
    _, out, _ = mixed
    proc = report(out, "--junit-xml", tmp_path / "missing-dir" / "r.xml")
    assert proc.returncode == 2
    assert f"cannot write {tmp_path / 'missing-dir' / 'r.xml'}: No such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_junit_xml_only_prints_where_it_went(mixed, tmp_path):
    _, out, index = mixed
    proc = report(out, "--junit-xml", tmp_path / "r.xml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"JUnit XML: {tmp_path / 'r.xml'}\n"
    assert b'tests="5"' in (tmp_path / "r.xml").read_bytes()
    assert load_index(out)["results"] == index["results"]  # a complete index is left alone


# -- --html: the writer is someone else's module, loaded only when asked for ---------------------
def test_html_calls_the_html_writer(mixed, tmp_path, monkeypatch, capsys):
    _, out, _ = mixed
    calls = []
    fake = types.ModuleType("run_testsuite.reports.html")
    fake.write_html = lambda index_dir, path, old_index_dir=None: calls.append((index_dir, path, old_index_dir))
    monkeypatch.setitem(sys.modules, "run_testsuite.reports.html", fake)
    monkeypatch.setattr(run_testsuite.reports, "html", fake, raising=False)
    assert report_cmd.main([str(out), "--html", str(tmp_path / "r.html")]) == 0
    assert calls == [(str(out / "new"), str(tmp_path / "r.html"), None)]
    assert capsys.readouterr().out == f"HTML report: {tmp_path / 'r.html'}\n"
    calls.clear()
    assert report_cmd.main(["--compare", str(out / "new"), str(out / "new"), "--html", "x.html"]) == 0
    assert calls == [(str(out / "new"), "x.html", str(out / "new"))]


def test_html_without_the_html_writer_is_a_clear_error(mixed, monkeypatch, capsys):
    _, out, _ = mixed
    monkeypatch.setitem(sys.modules, "run_testsuite.reports.html", None)  # import fails, as if absent
    monkeypatch.delattr(run_testsuite.reports, "html", raising=False)
    assert report_cmd.main([str(out), "--html", "r.html"]) == 2
    assert "HTML reports are not available" in capsys.readouterr().err


def test_html_with_the_real_writer(mixed, tmp_path):
    pytest.importorskip("run_testsuite.reports.html", reason="the HTML writer or its dependencies are not installed")
    _, out, _ = mixed
    proc = report("--compare", out / "new", out / "new", "--html", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.html").stat().st_size > 0


# -- comparing runs ---------------------------------------------------------------------------
def test_compare_two_runs(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "steady/test.yaml": "cmd: echo steady\n",
            "breaks/test.yaml": "cmd: echo fine\n",
            "gets-fixed/test.yaml": "cmd: exit 1\n",
            "still/test.yaml": "cmd: exit 1\n",
            "goes-away/test.yaml": "cmd: echo bye\n",
        },
    )
    run_cli(root, out)
    write_suite(
        root,
        {
            "breaks/test.yaml": "cmd: echo broken; exit 4\n",
            "gets-fixed/test.yaml": "cmd: echo fixed\n",
            "arrives/test.yaml": "cmd: exit 1\n",
        },
    )
    (root / "goes-away" / "test.yaml").unlink()
    run_cli(root, out)
    proc = report("--compare", out / "old", out / "new")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout
    assert text.startswith(f"Comparing {out / 'old'} (")
    sections = _sections(text)
    assert sections == {
        "Regressions (1):": ["PASS -> FAIL  breaks [EXIT_CODE]: step 'run' exited with 4, expected 0"],
        "Fixed (1):": ["FAIL -> PASS  gets-fixed"],
        "Still failing (1):": ["FAIL -> FAIL  still [EXIT_CODE]: step 'run' exited with 1, expected 0"],
        "New testcases (1):": ["FAIL  arrives [EXIT_CODE]: step 'run' exited with 1, expected 0"],
        "Removed testcases (1):": ["PASS  goes-away"],
    }
    assert text.splitlines()[-1] == "1 regression, 1 fix, 1 still failing, 0 other changes, 1 new, 1 removed, 1 unchanged"
    # The same run on both sides: nothing regressed.
    same = report("--compare", out / "new", out)
    assert same.returncode == 0
    assert same.stdout.splitlines()[-1] == "0 regressions, 0 fixes, 3 still failing, 0 other changes, 0 new, 0 removed, 2 unchanged"


def _sections(text: str) -> dict[str, list[str]]:
    sections, current = {}, None
    for line in text.splitlines()[1:-1]:
        if line.endswith(":") and not line.startswith(" "):
            current = sections.setdefault(line, [])
        elif line.strip() and current is not None:
            current.append(line.strip())
    return sections


@pytest.mark.parametrize(
    "old, new, kind",
    [
        ("PASS", "FAIL", "regressions"),
        ("PASS", "ERROR", "regressions"),
        ("XFAIL", "FAIL", "regressions"),
        ("XPASS", "ERROR", "regressions"),
        ("PASS", "XPASS", "regressions"),
        ("XFAIL", "XPASS", "regressions"),
        ("FAIL", "PASS", "fixes"),
        ("ERROR", "XFAIL", "fixes"),
        ("FAIL", "XPASS", "fixes"),
        ("FAIL", "FAIL", "still_failing"),
        ("FAIL", "ERROR", "still_failing"),
        ("PASS", "SKIP", "changed"),
        ("SKIP", "FAIL", "changed"),
        ("FAIL", "SKIP", "changed"),
        ("XPASS", "PASS", "changed"),
        ("PASS", "PASS", None),
        ("XPASS", "XPASS", None),
        ("SKIP", "SKIP", None),
    ],
)
def test_classification(old, new, kind):
    assert classify(Status(old), Status(new)) == kind


def test_compare_new_and_removed_keep_their_status():
    def index(**names):
        return {"results": [{"name": n, "status": s, "reason": None, "message": "", "result": ""} for n, s in names.items()]}

    comparison = compare(index(a="PASS", gone="ERROR"), index(a="PASS", b="SKIP", c="XFAIL"))
    assert [(c.name, c.old, c.new) for c in comparison.new] == [("b", None, Status.SKIP), ("c", None, Status.XFAIL)]
    assert [(c.name, c.old, c.new) for c in comparison.removed] == [("gone", Status.ERROR, None)]
    assert comparison.unchanged == 1 and not comparison.regressions
    assert "Removed testcases (1):\n  ERROR  gone\n" in render_text(comparison)


# -- rebuilding the index of a killed run ------------------------------------------------------
def written(path) -> bool:
    """A result file that is there and whole."""
    try:
        read_json(path)
    except (OSError, ValueError):
        return False
    return True


def test_report_after_kill_9_rebuilds_the_index(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "quick1/test.yaml": "cmd: echo one\n",
            "quick2/test.yaml": "cmd: echo two; exit 5\n",
            "slow/test.yaml": "cmd: sleep 60\n",
        },
    )
    proc = start_cli(root, out, "-j", "3")
    results = out / "new" / "results"
    try:
        # Written whole, not only created: a kill between the two would leave an empty file.
        assert wait_for(lambda: all(written(results / f"{name}.json") for name in ("quick1", "quick2")), 30)
        assert proc.poll() is None, "the run ended before the kill: the slow testcase did not hold it"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    stale = read_json(out / "new" / "_index.json")
    assert stale["complete"] is False

    shown = report(out)
    assert shown.returncode == 0, shown.stderr
    assert "the index is incomplete" in shown.stderr
    assert f"rebuilt {out / 'new' / '_index.json'} from 2 result files" in shown.stderr
    assert "the run did not finish" in shown.stdout
    assert "FAIL  quick2 [EXIT_CODE]: step 'run' exited with 5, expected 0" in shown.stdout
    assert "2 testcases: 1 passed, 1 failed in" in shown.stdout
    index = load_index(out)  # validated against schemas/index.schema.json
    assert index["complete"] is False and index["rebuilt"] is True
    assert statuses(index) == {"quick1": ("PASS", None), "quick2": ("FAIL", "EXIT_CODE")}
    assert index["counts"] == {"PASS": 1, "FAIL": 1, "XFAIL": 0, "XPASS": 0, "SKIP": 0, "ERROR": 0}
    for key in ("suite", "root", "command_line", "jobs", "host", "start"):
        assert index[key] == stale[key], key
    assert index["duration"] >= stale["duration"]
    # Still incomplete, so rebuilt again (results may have come since): the same report.
    again = report(out)
    assert "rebuilt" in again.stderr and again.stdout == shown.stdout


def test_rebuild_without_an_index_and_with_leftovers(tmp_path):
    root, out = tmp_path / "proj", tmp_path / "out"
    write_suite(root, {"suite.yaml": "name: named\n", "a/b/test.yaml": "cmd: echo ab\n", "c/test.yaml": "cmd: exit 1\n"})
    first = run_cli(root, out, "-j", "2")
    new = out / "new"
    os.unlink(new / "_index.json")
    (new / "results" / "half.json").write_text('{"name": "half", "sta')
    (new / "results" / "c.json.tmp").write_text("{}")
    (new / "results" / "wrong.json").write_text('{"name": "w", "status": "MAYBE"}')
    proc = report(out)
    assert proc.returncode == 0, proc.stderr
    assert "no index (the run was killed before writing one)" in proc.stderr
    assert "from 2 result files" in proc.stderr
    for leftover in ("half.json: unreadable", "c.json.tmp: not a result file", "wrong.json: unreadable"):
        assert f"skipped results/{leftover}" in proc.stderr
    assert "suite named: run of" in proc.stdout
    index = load_index(out)
    assert index["suite"] == "named"
    assert index["root"] == str(root)
    assert index["jobs"] >= 1 and index["command_line"] == []
    assert abs(index["start"] - first.index["start"]) < 5
    assert statuses(index) == statuses(first.index)


def test_rebuilt_entries_are_the_ones_the_run_writes(mixed):
    _, out, index = mixed
    rebuilt = rebuild_index(str(out / "new"), write=False)
    validate_index(rebuilt)
    assert sorted(rebuilt["results"], key=lambda e: e["name"]) == sorted(index["results"], key=lambda e: e["name"])
    assert rebuilt["counts"] == index["counts"]
    same = {k: v for k, v in index.items() if k not in ("complete", "duration", "results")}
    assert {k: rebuilt[k] for k in same} == same
    assert load_index(out) == index  # write=False wrote nothing


def test_rebuild_option_rebuilds_a_complete_index(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    run = run_cli(write_suite(root, {"t/test.yaml": "cmd: echo t\n"}), out)
    proc = report(out, "--rebuild")
    assert proc.returncode == 0
    assert "rebuilding as asked" in proc.stderr
    index = load_index(out)
    assert index["rebuilt"] is True and index["complete"] is False
    assert index["results"] == run.index["results"]
    assert not [name for name in os.listdir(out / "new") if name.endswith(".tmp")]


def test_a_corrupt_index_is_rebuilt_from_the_results(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    run = run_cli(write_suite(root, {"t/test.yaml": "cmd: echo t\n"}), out)
    (out / "new" / "_index.json").write_text(json.dumps(run.index)[:100])
    proc = report(out)
    assert proc.returncode == 0
    assert "the index is unreadable" in proc.stderr
    assert "1 testcase: 1 passed, 0 failed" in proc.stdout
    assert load_index(out)["results"] == run.index["results"]
