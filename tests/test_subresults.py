"""Sub-results and fragments side by side: the summary rules, a suite's own
driver emitting sub-results (the README's example), fragments of one
testcase running at once, and what waits for them."""

from __future__ import annotations

import pytest

from conftest import entry, load_result, run_cli, statuses, validate_result, write_suite
from run_testsuite.dag import Graph, ReadyQueue
from run_testsuite.results import Reason, Result, Status, SubResult
from run_testsuite.subresults import apply_expectations, counts, describe_counts, index_summary, summarise

# A suite's own driver: a `prep` fragment, then `parts` fragments side by
# side (each sleeps `sleep` seconds and reports its checks as sub-results).
FAN = """
import os, time
from run_testsuite.api import Driver, Fragment, Outcome, Status, SubResult, summarise


class Fan(Driver):
    options_schema = {"type": "object", "properties": {
        "parts": {"type": "integer"}, "sleep": {"type": "number"},
        "fail": {"type": "array", "items": {"type": "string"}},
        "after": {"type": "array", "items": {"type": "integer"}}}}

    def fragments(self, test):
        options = test.spec.get("options", {})
        def fragment(name, **data):
            return Fragment(testcase=test.name, name=name, driver=self.reference(), commands=[],
                            env=test.env, source_dir=test.source_dir, work_dir=test.work_dir,
                            log_stem=test.log_stem, data={"fail": options.get("fail", []), **data})
        prep = fragment("prep")
        prep.prepare = True
        parts = [fragment(f"part{k}", part=k, sleep=options.get("sleep", 0)) for k in range(options.get("parts", 3))]
        for part in parts:
            part.after = tuple(options.get("after", [0]))
        return [prep, *parts]

    def run(self, fragment, ctx):
        if fragment.name == "prep":
            return Outcome(Status.PASS)
        began = time.time()
        time.sleep(fragment.data["sleep"])
        with open(os.path.join(ctx.work_dir, fragment.name + ".span"), "w") as handle:
            handle.write(f"{began} {time.time()}")
        checks = [SubResult(f"{fragment.name}.check{n}", Status.PASS, duration=0.001) for n in range(2)]
        for check in checks:
            if check.name in fragment.data["fail"]:
                check.status, check.message, check.output = Status.FAIL, "wrong answer", "got 41\\n"
        status, reason, message = summarise(checks)
        return Outcome(status, reason, message, subresults=checks)
"""


def fan_suite(root, **specs) -> None:
    files = {"suite.yaml": "name: fan\ndrivers:\n  fan: _drivers/fan.py:Fan\n", "_drivers/fan.py": FAN}
    for name, spec in specs.items():
        files[f"{name}/test.yaml"] = spec
    write_suite(root, files)


def spans(out, name: str) -> list[tuple[float, float]]:
    work = out / "new" / "work" / name
    return sorted(tuple(map(float, p.read_text().split())) for p in work.glob("*.span"))


# -- the rules ---------------------------------------------------------------------
def test_summary_fails_on_a_failure_skips_when_all_skip_and_counts_otherwise():
    subs = [SubResult("a", Status.PASS), SubResult("b", Status.FAIL), SubResult("c", Status.XFAIL)]
    assert summarise(subs) == (Status.FAIL, None, "1 of 3 failed: b")
    many = [SubResult(f"t{n}", Status.ERROR, Reason.CRASH) for n in range(7)]
    assert summarise(many) == (Status.FAIL, Reason.CRASH, "7 of 7 failed: t0, t1, t2, t3, t4 and 2 more")
    assert summarise([SubResult("a", Status.SKIP)] * 2) == (Status.SKIP, None, "all 2 skipped")
    passing = [SubResult("a", Status.PASS), SubResult("b", Status.XPASS), SubResult("c", Status.SKIP)]
    # A known failure that passed: the testcase is XPASS, as its list is stale.
    assert summarise(passing) == (Status.XPASS, None, "1 of 3 passed unexpectedly: b")
    assert summarise(passing[::2]) == (Status.PASS, None, "2 sub-results: 1 passed, 1 skipped")
    assert counts(passing) == {"XPASS": 1, "SKIP": 1, "PASS": 1}
    assert describe_counts({"PASS": 1}) == "1 sub-result: 1 passed"


def test_expectations_turn_failures_into_xfail_and_name_what_is_unknown():
    subs = [
        SubResult("1 - adds", Status.FAIL, message="got 3"),
        SubResult("2 - rounds", Status.PASS),
        SubResult("3 - network", Status.FAIL),
    ]

    def description(sub):
        return [sub.name.partition(" - ")[2]]

    unknown = apply_expectations(
        subs, {"adds": "bug 1", "2 - rounds": "bug 2", "gone": "x"}, {"network": "offline"}, description
    )
    assert [(s.status, s.reason, s.message) for s in subs] == [
        (Status.XFAIL, None, "expected failure (bug 1): got 3"),
        (Status.XPASS, None, "passed, but a failure was expected: bug 2"),
        (Status.SKIP, Reason.CONTROL, "known skip (offline); it was FAIL"),
    ]
    assert unknown == ["gone"]


def test_result_files_and_index_entries_carry_subresults_within_their_schema():
    subs = [
        SubResult("t.ok", Status.PASS, duration=0.5),
        SubResult("t.bad", Status.FAIL, Reason.CRASH, "boom\nmore", None, "out"),
    ]
    result = Result("x", Status.FAIL, subresults=subs)
    data = validate_result(result.to_json())
    assert data["subresults"] == [
        {"name": "t.ok", "status": "PASS", "duration": 0.5},
        {"name": "t.bad", "status": "FAIL", "reason": "CRASH", "message": "boom\nmore", "output": "out"},
    ]
    assert Result.from_json(data).subresults == subs
    assert "subresults" not in Result("y", Status.PASS).to_json()
    assert index_summary(subs) == {
        "counts": {"FAIL": 1, "PASS": 1},
        "notable": [{"name": "t.bad", "status": "FAIL", "message": "boom"}],
    }


def test_a_group_restarts_with_its_inner_order_and_nothing_outside_it():
    graph = Graph(5)
    for before, after in ((0, 1), (0, 2), (0, 3), (3, 4)):  # 0 then 1, 2, 3 side by side; 4 after 3 (outside)
        graph.add_edge(before, after)
    queue = ReadyQueue(graph, [0.0] * 5)
    assert queue.pop() == 0
    queue.done(0)
    assert sorted(queue.pop() for _ in range(len(queue))) == [1, 2, 3]
    queue.restart([0, 1, 2, 3])
    assert [queue.pop() for _ in range(len(queue))] == [0]
    queue.done(0)
    assert sorted(queue.pop() for _ in range(len(queue))) == [1, 2, 3]


# -- fragments side by side --------------------------------------------------------
def test_fragments_side_by_side_run_at_once_and_the_testcase_waits_for_all(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    fan_suite(
        root,
        fan="driver: fan\noptions: {parts: 3, sleep: 0.6, fail: [part0.check1]}\n",
        after="depends: [fan]\ncmd: echo never\n",
    )
    run = run_cli(root, out, "-j", "3", "--cleanup", "none")
    assert statuses(run.index) == {"fan": ("FAIL", None), "after": ("SKIP", "DEPENDENCY")}
    result = load_result(out, "fan", run.index)
    # The failing part did not stop the others: every check is there, in order.
    assert [s["name"] for s in result["subresults"]] == [f"part{k}.check{n}" for k in range(3) for n in range(2)]
    assert result["message"] == "1 of 6 failed: part0.check1"
    assert result["subresults"][1] == {
        "name": "part0.check1",
        "status": "FAIL",
        "message": "wrong answer",
        "duration": 0.001,
        "output": "got 41\n",
    }
    ran = spans(out, "fan")
    assert len(ran) == 3
    assert max(start for start, _ in ran) < min(end for _, end in ran), f"parts did not overlap: {ran}"
    # duration is the work (three parts of 0.6 s), wall the time it took.
    assert result["duration"] >= 1.8 and 0.6 <= result["wall"] < 1.2, (result["duration"], result["wall"])
    assert entry(run.index, "fan")["wall"] == round(result["wall"], 6)
    assert entry(run.index, "fan")["subresults"] == {
        "counts": {"FAIL": 1, "PASS": 5},
        "notable": [{"name": "part0.check1", "status": "FAIL", "message": "wrong answer"}],
    }
    assert "FAIL  part0.check1: wrong answer" in run.stdout
    assert "6 sub-results: 5 passed, 1 failed" in run.stdout


def test_a_dependent_starts_after_every_fragment_side_by_side(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    marker = tmp_path / "after-started"
    fan_suite(
        root,
        # Unequal parts: the dependent must wait for the slowest, not the last named.
        fan="driver: fan\noptions: {parts: 3, sleep: 0.3}\n",
        after=f"depends: [fan]\ncmd: {pytest.importorskip('sys').executable} -c 'import time; print(time.time())' > {marker}\n",
    )
    run = run_cli(root, out, "-j", "4", "--cleanup", "none")
    assert statuses(run.index) == {"fan": ("PASS", None), "after": ("PASS", None)}
    started = float(marker.read_text())
    assert started >= max(end for _, end in spans(out, "fan"))


def test_retries_run_every_fragment_again(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    fan_suite(root, fan="driver: fan\nretries: 1\noptions: {parts: 2, fail: [part1.check0]}\n")
    run = run_cli(root, out, "-j", "2")
    result = load_result(out, "fan", run.index)
    assert (result["status"], result["attempts"]) == ("FAIL", 2)
    assert result["message"] == "1 of 4 failed: part1.check0 (failed all 2 attempts)"
    assert len(result["subresults"]) == 4  # the last attempt's, not both


def test_a_fragment_waiting_for_a_later_one_is_the_drivers_error(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    fan_suite(root, fan="driver: fan\noptions: {parts: 2, after: [1]}\n", plain="cmd: echo fine\n")
    run = run_cli(root, out)
    assert statuses(run.index) == {"fan": ("ERROR", "DRIVER"), "plain": ("PASS", None)}
    message = load_result(out, "fan", run.index)["message"]
    assert "fragment 'part0' (position 1) may only wait for fragments before it, not (1,)" in message


def readme_subresults_example() -> str:
    """The README's driver that emits sub-results (the Python block after
    "A driver emits sub-results")."""
    from conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("A driver emits sub-results", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_subresults_driver_runs_as_written(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "drivers:\n  lines: lines.py:LinesDriver\n",
            "lines.py": readme_subresults_example(),
            "good/test.yaml": "driver: lines\ncmd: printf 'PASS parse\\nPASS print\\n'\n",
            "bad/test.yaml": "driver: lines\ncmd: cat lines.txt; exit 1\n",
            "bad/lines.txt": "PASS parse\nFAIL print: wrong width\n",
        },
    )
    run = run_cli(root, out)
    assert statuses(run.index) == {"good": ("PASS", None), "bad": ("FAIL", None)}
    bad = load_result(out, "bad", run.index)
    assert bad["message"] == "1 of 2 failed: print"
    assert bad["subresults"] == [
        {"name": "parse", "status": "PASS"},
        {"name": "print", "status": "FAIL", "message": "wrong width"},
    ]


def test_a_stale_known_failure_makes_its_testcase_xpass(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "fixed/test.yaml": "driver: tap\ncmd: printf '1..2\\nok 1 - a\\nok 2 - b\\n'\noptions:\n  xfail: {a: bug 4}\n",
            "quiet/test.yaml": "driver: tap\ncmd: printf '1..1\\nok 1 - a\\n'\n",
        },
    )
    run = run_cli(root, out)
    assert run.returncode == 0  # as an XPASS testcase: said, not failed
    assert statuses(run.index) == {"fixed": ("XPASS", None), "quiet": ("PASS", None)}
    lines = run.stdout.splitlines()
    at = lines.index("XPASS fixed: 1 of 2 passed unexpectedly: 1 - a")
    assert lines[at + 1] == "      XPASS 1 - a: passed, but a failure was expected: bug 4"
    assert not any(line.startswith("PASS  quiet") for line in lines)
    assert "3 sub-results: 2 passed, 1 xpassed" in run.stdout


def test_a_renumbered_tap_point_that_breaks_is_a_regression_everywhere(tmp_path):
    """A test inserted before the others renumbers every TAP point: a point
    that passed and fails now is still found by its description, in the
    terminal, --compare and the HTML report."""
    from conftest import cli_argv, cli_env

    root, out = tmp_path / "suite", tmp_path / "out"
    first = "1..3\nok 1 - usage\nnot ok 2 - known broken\nok 3 - version\n"
    second = "1..4\nok 1 - inserted\nnot ok 2 - usage\nnot ok 3 - known broken\nok 4 - version\n"
    write_suite(root, {"cli/test.yaml": "driver: tap\ncmd: cat points.tap\n", "cli/points.tap": first})
    assert run_cli(root, out).returncode == 1
    (root / "cli" / "points.tap").write_text(second)
    run = run_cli(root, out)
    assert "since the previous results: 1 still failing, 1 sub-result regression (cli :: 2 - usage)" in run.stdout
    import subprocess

    compare = subprocess.run(
        [
            *cli_argv(root, out)[:3],
            "report",
            "--compare",
            str(out / "old"),
            str(out / "new"),
            "--html",
            str(tmp_path / "r.html"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert compare.returncode == 1, compare.stdout + compare.stderr
    assert "Sub-result regressions (1):\n  PASS -> FAIL  cli :: 2 - usage" in compare.stdout
    html = (tmp_path / "r.html").read_text()
    assert "Sub-result regressions" in html and "2 - usage" in html
