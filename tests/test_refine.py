"""The diff driver's refinements, regex baselines and actual output for --rewrite.

End to end: each testcase below runs through the real command line; a few
checks at the end exercise drivers.refine directly where a run could not
show the difference (streaming across block boundaries, name boundaries).
"""

from __future__ import annotations

import os
import random
from types import SimpleNamespace

import pytest

from conftest import PYTHON, load_result, run_cli, statuses, write_suite
from run_testsuite.drivers.diff import DIFF_LIMIT, rewrite_baseline
from run_testsuite.drivers.refine import Refiner

BINARY = b"\x00\xff\xfe head \x80\x81 abc tail \xc3\n"
# A command printing BINARY (hex: YAML would read backslash escapes itself).
WRITE_BINARY = f"[{PYTHON}, -c, \"import sys; sys.stdout.buffer.write(bytes.fromhex('{BINARY.hex()}'))\"]"
LARGE_LINES = 30_000  # lines of a work-directory path: well over DIFF_LIMIT

SUITE = {
    # -- substitutions ------------------------------------------------------------
    "subst/stamps/test.yaml": r"""
        driver: diff
        cmd: echo "started $(date '+%Y-%m-%d %H:%M:%S')"; echo "took $(date +%N | cut -c1-3) ms"
        refine:
          substitute:
            - {pattern: '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', replace: '<DATE>'}
            - {pattern: '\d+ ms', replace: 'N ms'}
        """,
    "subst/stamps/test.out": "started <DATE>\ntook N ms\n",
    "subst/order/test.yaml": r"""
        driver: diff
        cmd: printf 'key=a\nkey=b\n'
        refine:
          substitute:
            - {pattern: '^key=(\w)$', replace: '\1 is the key'}
            - {pattern: 'a is', replace: 'b is'}
        """,
    "subst/order/test.out": "b is the key\nb is the key\n",
    "subst/fail/test.yaml": r"""
        driver: diff
        cmd: echo "run 1 took 12 ms"; echo "run 2 failed"
        refine:
          substitute:
            - {pattern: '\d+ ms', replace: 'N ms'}
        """,
    "subst/fail/test.out": "run 1 took N ms\nrun 2 passed\n",
    "subst/bad-pattern/test.yaml": """
        driver: diff
        cmd: echo hi
        refine:
          substitute:
            - {pattern: 'ok', replace: 'fine'}
            - pattern: '(unclosed'
              replace: x
        """,
    "subst/bad-pattern/test.out": "hi\n",
    "subst/bad-replace/test.yaml": r"""
        driver: diff
        cmd: echo hi
        refine:
          substitute:
            - pattern: 'h(i)'
              replace: '\2'
        """,
    "subst/bad-replace/test.out": "hi\n",
    # -- path tokens --------------------------------------------------------------
    "paths/tokens/test.yaml": """
        driver: diff
        cmd: echo "$TEST_WORK_DIR"; pwd -P; echo "$TEST_WORK_DIR/sub/file.txt"; echo "in $TEST_WORK_DIR."; echo "$TEST_SOURCE_DIR/data"
        """,
    "paths/tokens/test.out": "<WORK_DIR>\n<WORK_DIR>\n<WORK_DIR>/sub/file.txt\nin <WORK_DIR>.\n<SOURCE_DIR>/data\n",
    "paths/off/test.yaml": """
        driver: diff
        cmd: echo "$TEST_WORK_DIR/x"
        refine: {work_dir: false}
        """,
    "paths/off/test.out": "<WORK_DIR>/x\n",
    "paths/large/test.yaml": (
        f"driver: diff\ncmd: [{PYTHON}, -c, \"import os; print((os.getcwd() + '/f\\\\n') * {LARGE_LINES}, end='')\"]\n"
    ),
    "paths/large/test.out": "<WORK_DIR>/f\n" * LARGE_LINES,
    "paths/large-fail/test.yaml": (
        f"driver: diff\ncmd: [{PYTHON}, -c, \"import os; print((os.getcwd() + '/f\\\\n') * {LARGE_LINES}, end='')\"]\n"
    ),
    "paths/large-fail/test.out": "<WORK_DIR>/f\n" * (LARGE_LINES - 1) + "<WORK_DIR>/g\n",
    # -- line endings and sorting -------------------------------------------------
    "eol/crlf/test.yaml": "driver: diff\ncmd: printf 'a\\r\\nb\\r\\nc\\rd\\n'\nrefine: {line_endings: true}\n",
    "eol/crlf/test.out": "a\nb\nc\nd\n",
    "eol/baseline-crlf/test.yaml": "driver: diff\ncmd: printf 'a\\nb\\n'\nrefine: {line_endings: true}\n",
    "eol/baseline-crlf/test.out": b"a\r\nb\r\n",
    "eol/off/test.yaml": "driver: diff\ncmd: printf 'a\\r\\nb\\r\\n'\n",
    "eol/off/test.out": "a\nb\n",
    "sort/pass/test.yaml": "driver: diff\ncmd: printf 'pear\\napple\\nfig\\n'\nrefine: {sort: true}\n",
    "sort/pass/test.out": "apple\nfig\npear\n",
    "sort/as-written/test.yaml": "driver: diff\ncmd: printf 'pear\\napple\\nfig\\n'\nrefine: {sort: true}\n",
    "sort/as-written/test.out": "pear\napple\nfig\n",
    # -- regex baselines ----------------------------------------------------------
    "regex/pass/test.yaml": """
        driver: diff
        baseline_mode: regex
        cmd: |
          echo "Time: $(date +%N | cut -c1-3) ms"
          echo 'version 1.22.3 (a+b)'
          echo "cwd $PWD"
        """,
    "regex/pass/test.out": "Time: \\d+ ms\nversion \\d+\\.\\d+\\.\\d+ \\(a\\+b\\)\ncwd <WORK_DIR>\n",
    "regex/mismatch/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: printf 'one 1\\ntwo 2\\nthree x\\n'\n",
    "regex/mismatch/test.out": "one \\d\ntwo \\d\nthree \\d\n",
    "regex/partial/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: echo abcd\n",
    "regex/partial/test.out": "abc\n",
    "regex/missing/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: echo a\n",
    "regex/missing/test.out": "a\nb+\n",
    "regex/extra/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: printf 'a\\nb\\n'\n",
    "regex/extra/test.out": "a\n",
    "regex/bad/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: echo a\n",
    "regex/bad/test.out": "a\nfoo(bar\n",
    # -- binary output --------------------------------------------------------------
    "binary/pass/test.yaml": f"driver: diff\ncmd: {WRITE_BINARY}\n",
    "binary/pass/test.out": BINARY,
    "binary/substitute/test.yaml": (
        f"driver: diff\ncmd: {WRITE_BINARY}\n"
        "refine:\n  substitute: [{pattern: 'abc', replace: 'xyz'}]\n"
    ),
    "binary/substitute/test.out": BINARY.replace(b"abc", b"xyz"),
    "binary/fail/test.yaml": f"driver: diff\ncmd: {WRITE_BINARY}\n",
    "binary/fail/test.out": BINARY.replace(b"\x81", b"\x82"),
}

EXPECTED = {
    "subst/stamps": ("PASS", None),
    "subst/order": ("PASS", None),
    "subst/fail": ("FAIL", "DIFF"),
    "subst/bad-pattern": ("ERROR", "SPEC"),
    "subst/bad-replace": ("ERROR", "SPEC"),
    "paths/tokens": ("PASS", None),
    "paths/off": ("FAIL", "DIFF"),
    "paths/large": ("PASS", None),
    "paths/large-fail": ("FAIL", "DIFF"),
    "eol/crlf": ("PASS", None),
    "eol/baseline-crlf": ("PASS", None),
    "eol/off": ("FAIL", "DIFF"),
    "sort/pass": ("PASS", None),
    "sort/as-written": ("FAIL", "DIFF"),
    "regex/pass": ("PASS", None),
    "regex/mismatch": ("FAIL", "DIFF"),
    "regex/partial": ("FAIL", "DIFF"),
    "regex/missing": ("FAIL", "DIFF"),
    "regex/extra": ("FAIL", "DIFF"),
    "regex/bad": ("ERROR", "SPEC"),
    "binary/pass": ("PASS", None),
    "binary/substitute": ("PASS", None),
    "binary/fail": ("FAIL", "DIFF"),
}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("refine")
    root, out = base / "suite", base / "out"
    write_suite(root, SUITE)
    return SimpleNamespace(root=root, out=out, run=run_cli(root, out, "-j", "4"))


def result(suite_run, name):
    return load_result(suite_run.out, name, suite_run.run.index)


def actual_file(out, name):
    return out / "new" / "actual" / (name.replace("/", "__") + ".out")


def test_statuses(suite_run):
    assert statuses(suite_run.run.index) == EXPECTED
    assert suite_run.run.returncode == 1


def test_large_output_gets_tokens_in_bounded_memory(suite_run):
    log = suite_run.out / "new" / "logs" / "paths__large@run.log"
    assert log.stat().st_size > DIFF_LIMIT  # compared in blocks, streaming the tokens in
    assert result(suite_run, "paths/large")["status"] == "PASS"
    size = len(SUITE["paths/large/test.out"])
    assert result(suite_run, "paths/large-fail")["message"] == (
        f"output differs from the baseline at byte {size - 2} "
        f"(output {(log.parent / 'paths__large-fail@run.log').stat().st_size} bytes, "
        f"baseline {size} bytes; too large to diff)"
    )
    # What was compared, tokens and all, streamed into the actual file too.
    assert actual_file(suite_run.out, "paths/large-fail").read_text() == SUITE["paths/large/test.out"]
    assert result(suite_run, "paths/large")["status"] == "PASS"


# -- substitutions --------------------------------------------------------------------
def test_substitution_failure_shows_the_refined_output(suite_run):
    res = result(suite_run, "subst/fail")
    assert res["diff"] == (
        "--- test.out (expected)\n+++ output (actual)\n@@ -1,2 +1,2 @@\n"
        " run 1 took N ms\n-run 2 passed\n+run 2 failed\n"
    )
    assert res["output"] == "run 1 took 12 ms\nrun 2 failed\n"  # the raw output stays in the result


def test_invalid_substitution_pattern_is_a_spec_error_at_its_line(suite_run):
    res = result(suite_run, "subst/bad-pattern")
    spec = suite_run.root / "subst" / "bad-pattern" / "test.yaml"
    assert res["message"].startswith(f"{spec}:6:16: invalid regular expression: missing ), unterminated subpattern")
    assert res["commands"] == []  # nothing ran


def test_invalid_replacement_is_a_spec_error_at_its_line(suite_run):
    res = result(suite_run, "subst/bad-replace")
    spec = suite_run.root / "subst" / "bad-replace" / "test.yaml"
    assert res["message"] == f"{spec}:6:16: invalid replacement: invalid group reference 2 at position 1"


# -- path tokens ----------------------------------------------------------------------
def test_work_dir_token_can_be_turned_off(suite_run):
    res = result(suite_run, "paths/off")
    work = suite_run.out / "new" / "work" / "paths__off"
    assert f"+{work}/x\n" in res["diff"]
    assert actual_file(suite_run.out, "paths/off").read_text() == f"{work}/x\n"


def test_real_path_of_the_work_dir_is_replaced_too(tmp_path):
    """An output directory reached through a symbolic link: the commands see
    the link in $TEST_WORK_DIR and the real path from `pwd -P`."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    root, out = tmp_path / "suite", tmp_path / "link" / "out"
    write_suite(root, {
        "t/test.yaml": 'driver: diff\ncmd: echo "$TEST_WORK_DIR"; pwd -P; echo "$TEST_SOURCE_DIR"\n',
        "t/test.out": "<WORK_DIR>\n<WORK_DIR>\n<SOURCE_DIR>\n",
    })
    run = run_cli(root, out)
    assert statuses(run.index) == {"t": ("PASS", None)}, load_result(out, "t", run.index)["diff"]


# -- line endings and sorting ---------------------------------------------------------
def test_line_endings_are_kept_unless_asked(suite_run):
    res = result(suite_run, "eol/off")
    assert res["diff"].startswith("--- test.out (expected)\n+++ output (actual)\n@@ -1,2 +1,2 @@\n-a\n-b\n+a\r\n")


def test_sorted_output_is_compared_with_the_baseline_as_written(suite_run):
    res = result(suite_run, "sort/as-written")
    assert res["diff"].endswith("@@ -1,3 +1,3 @@\n-pear\n apple\n fig\n+pear\n")
    assert actual_file(suite_run.out, "sort/as-written").read_bytes() == b"apple\nfig\npear\n"


# -- regex baselines ------------------------------------------------------------------
def test_regex_mismatch_names_the_line_its_pattern_and_the_output(suite_run):
    res = result(suite_run, "regex/mismatch")
    assert res["message"] == "output line 3 does not match test.out:3\n  pattern: three \\d\n  actual:  three x"
    # Lines that matched are shown as printed: only the real difference stands out.
    assert res["diff"] == (
        "--- test.out, matching lines as printed (expected)\n+++ output (actual)\n"
        "@@ -1,3 +1,3 @@\n one 1\n two 2\n-three \\d\n+three x\n"
    )
    assert "FAIL  regex/mismatch [DIFF]: output line 3 does not match test.out:3\n" in suite_run.run.stdout


def test_regex_must_match_the_whole_line(suite_run):
    assert result(suite_run, "regex/partial")["message"].startswith("output line 1 does not match test.out:1\n")


def test_regex_line_counts_must_agree(suite_run):
    assert result(suite_run, "regex/missing")["message"] == (
        "output has 1 lines, test.out 2: line 2 is missing\n  pattern: b+"
    )
    assert result(suite_run, "regex/extra")["message"] == (
        "output has 2 lines, test.out 1: line 2 is extra\n  actual:  b"
    )


def test_invalid_baseline_regex_is_a_spec_error_at_its_line(suite_run):
    res = result(suite_run, "regex/bad")
    baseline = suite_run.root / "regex" / "bad" / "test.out"
    assert res["message"] == f"{baseline}:2:4: invalid regular expression: missing ), unterminated subpattern"
    assert res["commands"] == []


def test_regex_actual_file_holds_the_refined_output(suite_run):
    assert actual_file(suite_run.out, "regex/mismatch").read_text() == "one 1\ntwo 2\nthree x\n"


# -- binary output --------------------------------------------------------------------
def test_binary_output_fails_on_one_byte(suite_run):
    res = result(suite_run, "binary/fail")
    assert res["message"] == "output differs from the baseline"
    assert actual_file(suite_run.out, "binary/fail").read_bytes() == BINARY


def test_actual_output_is_written_only_on_a_diff_failure(suite_run):
    actual = suite_run.out / "new" / "actual"
    written = sorted(path.name for path in actual.iterdir())
    assert written == sorted(
        name.replace("/", "__") + ".out" for name, (status, reason) in EXPECTED.items() if reason == "DIFF"
    )
    assert actual_file(suite_run.out, "subst/fail").read_text() == "run 1 took N ms\nrun 2 failed\n"


# -- --rewrite ------------------------------------------------------------------------
def test_rewrite_baseline_round_trip(tmp_path):
    root = tmp_path / "suite"
    write_suite(root, {
        "t/test.yaml": """
            driver: diff
            cmd: echo "made $TEST_WORK_DIR/a.o in $(date +%N | cut -c1-3) ms"; printf 'x\\r\\n'
            refine:
              line_endings: true
              substitute: [{pattern: '\\d+ ms', replace: 'N ms'}]
            """,
        "t/test.out": "old\n",
    })
    baseline = root / "t" / "test.out"
    first = run_cli(root, tmp_path / "out1")
    assert statuses(first.index) == {"t": ("FAIL", "DIFF")}
    actual = actual_file(tmp_path / "out1", "t")
    assert actual.read_text() == "made <WORK_DIR>/a.o in N ms\nx\n"

    assert rewrite_baseline(str(actual), str(baseline)) is True
    assert baseline.read_bytes() == actual.read_bytes()
    assert rewrite_baseline(str(actual), str(baseline)) is False  # nothing left to change
    assert rewrite_baseline(str(tmp_path / "no-such.out"), str(baseline)) is False

    # Refined, the baseline holds nothing of this run: a run elsewhere passes.
    (tmp_path / "elsewhere").mkdir()
    again = run_cli(root, tmp_path / "elsewhere" / "out2")
    assert statuses(again.index) == {"t": ("PASS", None)}


def test_rewrite_baseline_keeps_the_file_mode(tmp_path):
    actual, baseline = tmp_path / "a.out", tmp_path / "test.out"
    actual.write_bytes(b"new\n")
    baseline.write_bytes(b"old\n")
    baseline.chmod(0o640)
    assert rewrite_baseline(str(actual), str(baseline)) is True
    assert baseline.read_bytes() == b"new\n"
    assert baseline.stat().st_mode & 0o777 == 0o640


# -- drivers.refine directly ----------------------------------------------------------
WORK = "/runs/out/new/work/t"


def test_paths_are_replaced_only_where_a_name_ends():
    refiner = Refiner({"work_dir": True}, WORK, "")
    text = f"{WORK} {WORK}/f {WORK}. {WORK}: {WORK}2 {WORK}.d {WORK}~2 {WORK}-x\n".encode()
    assert refiner.apply(text) == (
        f"<WORK_DIR> <WORK_DIR>/f <WORK_DIR>. <WORK_DIR>: {WORK}2 {WORK}.d {WORK}~2 {WORK}-x\n".encode()
    )


def test_nested_directories_get_the_innermost_token():
    refiner = Refiner({"work_dir": True}, "/suite/t/out/new/work/t", "/suite/t")
    assert refiner.apply(b"/suite/t/out/new/work/t/f /suite/t/g") == b"<WORK_DIR>/f <SOURCE_DIR>/g"


def test_streaming_equals_refining_in_memory():
    refiner = Refiner({"work_dir": True}, WORK, "/suite/t")
    rng = random.Random(7)
    pieces = [WORK, "/suite/t", "/suite/t2", WORK + "x", "/", "\n", "abc", "\xff"]
    data = "".join(rng.choice(pieces) for _ in range(5000)).encode("utf-8", "surrogateescape")
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 200)))
        blocks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
        assert b"".join(refiner.stream(blocks)) == refiner.apply(data)


def test_bytes_that_are_not_utf8_survive_substitution_and_sorting():
    refiner = Refiner({"work_dir": False, "substitute": [("b.", "B")], "sort": True})
    assert refiner.apply(b"z\xff\nab\x80c\n") == b"aBc\nz\xff\n"


def test_no_path_tokens_without_paths():
    assert Refiner({"work_dir": True}).paths is None
    assert os.fsencode(WORK) not in Refiner({"work_dir": False}, WORK, "/s").tokens


def test_output_without_a_path_costs_no_compilation():
    # The path expression differs for every testcase (its work directory):
    # compiling it for output that holds no path cost the worker 10% more
    # instructions per testcase on 1,000 echo testcases.
    refiner = Refiner({"work_dir": True}, WORK, "/suite/t")
    assert refiner.apply(b"hello\n") == b"hello\n"
    assert refiner._paths is None
    assert refiner.apply(f"{WORK}/x\n".encode()) == b"<WORK_DIR>/x\n"
    assert refiner._paths is not None
