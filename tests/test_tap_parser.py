"""The TAP parser: every construct of TAP 12, 13 and 14 a test may print,
and the broken streams a killed or careless test leaves."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time

import pytest

from run_testsuite.drivers.tap_parser import TapVerdict, parse_tap
from run_testsuite.results import Status, SubResult
from run_testsuite.subresults import EXCERPT_LIMIT

PASS, FAIL, XFAIL, XPASS, SKIP = Status.PASS, Status.FAIL, Status.XFAIL, Status.XPASS, Status.SKIP


def tap(text: str) -> TapVerdict:
    return parse_tap(textwrap.dedent(text).lstrip("\n"))


def brief(verdict: TapVerdict) -> list[tuple[str, Status, str]]:
    return [(sub.name, sub.status, sub.message) for sub in verdict.subresults]


def test_tap12_without_version():
    verdict = tap("""
        1..4
        ok 1 - first
        not ok 2 - second
        ok - third, no number
        ok
        """)
    assert brief(verdict) == [
        ("1 - first", PASS, ""),
        ("2 - second", FAIL, ""),
        ("3 - third, no number", PASS, ""),
        ("4", PASS, ""),
    ]
    assert verdict.problems == []
    assert verdict.planned == 4
    assert verdict.plan_skip is None
    assert verdict.bailed_out is None
    assert all(sub.output == "" and sub.duration is None and sub.reason is None for sub in verdict.subresults)


def test_description_forms():
    verdict = tap("""
        1..6
        ok 1 this is fine
        ok 2 -  dash and blanks
        ok 3 -
        ok 4 -not a separator
        ok 5 - issue #42 fixed # and a comment
        ok 6 - a C\\#-ish name, a \\\\ backslash
        """)
    assert [sub.name for sub in verdict.subresults] == [
        "1 - this is fine",
        "2 - dash and blanks",
        "3",
        "4 - -not a separator",
        "5 - issue #42 fixed # and a comment",
        "6 - a C#-ish name, a \\ backslash",
    ]
    assert {sub.status for sub in verdict.subresults} == {PASS}
    assert verdict.problems == []


def test_escaped_hash_is_not_a_directive():
    verdict = tap("""
        1..3
        ok 1 - literal \\# SKIP is text
        not ok 2 - literal \\# TODO is text
        ok 3 - escaped \\# then real # SKIP for real
        """)
    assert brief(verdict) == [
        ("1 - literal # SKIP is text", PASS, ""),
        ("2 - literal # TODO is text", FAIL, ""),
        ("3 - escaped # then real", SKIP, "for real"),
    ]
    assert verdict.problems == []


def test_skip_and_todo_directives():
    verdict = tap("""
        1..9
        ok 1 - mung the gums # SKIP leave gums unmunged
        not ok 2 - failing but skipped # skip
        ok 3 # Skipped: no /sys directory
        ok 4 - # SKIP no network
        not ok 5 - infinite loop # TODO halting problem
        ok 6 - fixed already # todo
        not ok 7 - not a directive # TODO: needs a blank after TODO
        ok 8 - hash without blank#SKIP stays text
        ok 9 - unknown directive # FIXME later
        """)
    assert brief(verdict) == [
        ("1 - mung the gums", SKIP, "leave gums unmunged"),
        ("2 - failing but skipped", SKIP, ""),
        ("3", SKIP, "no /sys directory"),
        ("4", SKIP, "no network"),
        ("5 - infinite loop", XFAIL, "TODO: halting problem"),
        ("6 - fixed already", XPASS, "TODO"),
        ("7 - not a directive # TODO: needs a blank after TODO", FAIL, ""),
        ("8 - hash without blank#SKIP stays text", PASS, ""),
        ("9 - unknown directive # FIXME later", PASS, ""),
    ]
    assert verdict.problems == []


def test_tap13_yaml_blocks():
    verdict = tap("""
        TAP version 13
        1..4
        ok 1 - Input file opened
          ---
          duration_ms: 12.5
          ...
        not ok 2 - First line of the input valid
          ---
          message: 'First line invalid'
          severity: fail
          data:
            got: 'Flirble'
            expect: 'Fnible'
          ...
        not ok 3 - Summarized correctly # TODO Not written yet
          ---
          message: "Can't make summary yet"
          duration_ms: 2000
          ...
        not ok 4 - bad yaml
          ---
          message: [unclosed
          ...
        """)
    assert [(sub.name, sub.status, sub.message, sub.duration) for sub in verdict.subresults] == [
        ("1 - Input file opened", PASS, "", 0.0125),
        ("2 - First line of the input valid", FAIL, "First line invalid", None),
        ("3 - Summarized correctly", XFAIL, "TODO: Not written yet", 2.0),
        ("4 - bad yaml", FAIL, "", None),
    ]
    assert verdict.subresults[0].output == ""  # a pass keeps no output
    assert verdict.subresults[1].output == (
        "  ---\n"
        "  message: 'First line invalid'\n"
        "  severity: fail\n"
        "  data:\n"
        "    got: 'Flirble'\n"
        "    expect: 'Fnible'\n"
        "  ..."
    )
    assert verdict.subresults[2].output == ('  ---\n  message: "Can\'t make summary yet"\n  duration_ms: 2000\n  ...')
    assert verdict.subresults[3].output == "  ---\n  message: [unclosed\n  ..."
    assert verdict.problems == []


def test_yaml_values_that_are_not_a_message_or_a_duration():
    verdict = tap("""
        1..3
        not ok 1 - list block
          ---
          - message
          - duration_ms
          ...
        not ok 2 - odd values
          ---
          message: {nested: mapping}
          duration_ms: soon
          ...
        ok 3 - numbers
          ---
          message: 42
          duration_ms: true
          ...
        """)
    assert [(sub.message, sub.duration) for sub in verdict.subresults] == [("", None), ("", None), ("42", None)]
    assert verdict.subresults[0].output == "  ---\n  - message\n  - duration_ms\n  ..."
    assert verdict.problems == []


def test_diagnostics_belong_to_the_failing_point_before_them():
    verdict = tap("""
        1..4
        # a comment before any point
        ok 1 - passes
        # said after a pass: not kept
        not ok 2 - fails
        #   Failed test 'fails'
        #   at t/basic.t line 12.

        some text the program printed
        ok 3 - passes again
        not ok 4 - fails last
        # Looks like you failed 2 tests of 4.
        """)
    assert [sub.output for sub in verdict.subresults] == [
        "",
        "#   Failed test 'fails'\n#   at t/basic.t line 12.\n\nsome text the program printed",
        "",
        "# Looks like you failed 2 tests of 4.",
    ]
    assert verdict.problems == []


def test_failing_output_is_an_excerpt():
    verdict = parse_tap("1..1\nnot ok 1 - noisy\n" + "# line of noise\n" * 10_000)
    output = verdict.subresults[0].output
    assert len(output) < EXCERPT_LIMIT + 100
    assert output.startswith("# line of noise\n# line of noise")
    assert "characters cut" in output
    assert output.endswith("# line of noise")


TAP14_NESTED = """
    TAP version 14
    1..4
    # Subtest: outer
        # Subtest: middle
            1..2
            ok 1 - deep pass
            not ok 2 - deep fail
              ---
              message: deep trouble
              ...
        not ok 1 - middle
        ok 2 - inner pass
        1..2
    not ok 1 - outer
    # Subtest: all good
        1..2
        ok 1 - one
        ok 2 - two # TODO was broken
    ok 2 - all good
        1..1
        not ok 1 - inner
    ok 3 - plain nested in bare
    # Subtest: unnamed parent
        1..1
        ok 1
    ok 4
    """


def test_tap14_nested_subtests_two_levels_deep():
    verdict = tap(TAP14_NESTED)
    assert brief(verdict) == [
        ("1 - outer", FAIL, "failed inside: 1 - middle"),
        ("2 - all good", PASS, ""),
        ("3 - plain nested in bare", FAIL, "said ok, but failed inside: 1 - inner"),
        ("4 - unnamed parent", PASS, ""),
    ]
    # The nested failure's own message and output travel up, indented.
    assert verdict.subresults[0].output == (
        "1 - middle: failed inside: 2 - deep fail\n"
        "    2 - deep fail: deep trouble\n"
        "          ---\n"
        "          message: deep trouble\n"
        "          ..."
    )
    assert verdict.subresults[1].output == ""
    assert verdict.subresults[2].output == "1 - inner"
    assert verdict.problems == []
    assert verdict.planned == 4


def test_nested_plan_mismatch_fails_an_ok_parent():
    verdict = tap("""
        1..3
        # Subtest: short
            1..3
            ok 1
            ok 2
        ok 1 - short
            ok 1
        ok 2 - no nested plan
        # Subtest: todo parent
            1..1
            not ok 1 - broken
        ok 3 - todo parent # TODO not yet
        """)
    assert brief(verdict) == [
        ("1 - short", FAIL, "said ok, but planned 3, ran 2 (stopped after 2)"),
        ("2 - no nested plan", FAIL, "said ok, but no plan (ran 1 point)"),
        ("3 - todo parent", XFAIL, "TODO: not yet; failed inside: 1 - broken"),
    ]
    assert verdict.subresults[0].output == "planned 3, ran 2 (stopped after 2)"
    assert verdict.problems == []


def test_nested_skip_plan_and_skipped_parent():
    verdict = tap("""
        1..2
            1..0 # SKIP no database
        ok 1 - db tests
            1..2
            not ok 1
        ok 2 - skipped parent # SKIP not here
        """)
    assert brief(verdict) == [("1 - db tests", SKIP, "no database"), ("2 - skipped parent", SKIP, "not here")]
    assert verdict.problems == []


def test_indented_text_without_tap_is_output_not_a_subtest():
    verdict = tap("""
        1..2
        not ok 1 - crashed
            Traceback (most recent call last):
              File "t.py", line 3
        ok 2 - fine
        """)
    assert brief(verdict) == [("1 - crashed", FAIL, ""), ("2 - fine", PASS, "")]
    assert verdict.subresults[0].output == '    Traceback (most recent call last):\n      File "t.py", line 3'
    assert verdict.problems == []


def test_subtest_without_its_point():
    verdict = tap("""
        1..1
        # Subtest: lost
            1..1
            not ok 1 - inner
        # Subtest: found
            1..1
            ok 1
        ok 1 - found
        """)
    assert brief(verdict) == [("1 - found", PASS, "")]
    assert verdict.problems == ["subtest 'lost' has no test point (failed inside: 1 - inner)"]


def test_plan_skips_everything():
    assert tap("1..0 # SKIP no X server\n") == TapVerdict([], [], plan_skip="no X server", planned=0)
    assert tap("TAP version 14\n1..0 # skip because English-to-French translator isn't installed\n") == TapVerdict(
        [], [], plan_skip="because English-to-French translator isn't installed", planned=0
    )
    assert tap("1..0\n") == TapVerdict([], [], plan_skip="", planned=0)
    assert tap("1..0 # Skipped: no network\n").plan_skip == "no network"
    # Points before a 1..0 plan: no skip, a mismatch.
    verdict = tap("ok 1\n1..0 # SKIP late\n")
    assert (verdict.plan_skip, verdict.problems) == (None, ["planned 0, ran 1"])


def test_bail_out():
    verdict = tap("""
        TAP version 14
        1..573
        ok 1 - connects
        not ok 2 - database handle
        # no such table
        Bail out! Couldn't connect to database.
        ok 3 - never read
        1..2
        """)
    assert brief(verdict) == [("1 - connects", PASS, ""), ("2 - database handle", FAIL, "")]
    assert verdict.subresults[1].output == "# no such table"
    assert verdict.bailed_out == "Couldn't connect to database."
    assert verdict.problems == ["Bail out! Couldn't connect to database."]
    assert verdict.planned == 573


def test_bail_out_without_reason_and_inside_a_subtest():
    verdict = tap("1..2\nok 1\nbail out!\n")
    assert (verdict.bailed_out, verdict.problems) == ("", ["Bail out!"])

    verdict = tap("""
        1..2
        ok 1 - before
        # Subtest: dies
            1..3
            ok 1
            Bail out! disk full
            ok 2
        ok 2 - dies
        """)
    assert brief(verdict) == [("1 - before", PASS, "")]
    assert (verdict.bailed_out, verdict.problems) == ("disk full", ["Bail out! disk full"])


def test_missing_plan():
    verdict = tap("ok 1\nnot ok 2\n")
    assert brief(verdict) == [("1", PASS, ""), ("2", FAIL, "")]
    assert (verdict.planned, verdict.problems) == (None, ["no plan (ran 2 points)"])
    assert parse_tap("").problems == ["no plan (ran 0 points)"]
    assert parse_tap("ok\n").problems == ["no plan (ran 1 point)"]


def test_plan_at_the_end_and_mismatches():
    assert tap("ok 1\nok 2\n1..2\n").problems == []
    assert tap("1..3\nok 1\nok 2\nok 3\nok 4\n").problems == ["planned 3, ran 4"]
    verdict = tap("1..103\n" + "".join(f"ok {n} - step {n}\n" for n in range(1, 61)))
    assert verdict.problems == ["planned 103, ran 60 (stopped after 60 - step 60)"]
    assert len(verdict.subresults) == 60


def test_plan_twice_and_plan_in_the_middle():
    verdict = tap("1..2\nok 1\nok 2\n1..2\n")
    assert verdict.problems == ["more than one plan (1..2, then 1..2)"]
    assert verdict.planned == 2

    verdict = tap("ok 1\n1..3\nok 2\nok 3\n")
    assert verdict.problems == ["plan 1..3 in the middle (more points followed)"]
    assert [sub.name for sub in verdict.subresults] == ["1", "2", "3"]


def test_duplicate_and_out_of_sequence_numbers():
    verdict = tap("""
        1..6
        ok 1 - a
        ok 2 - b
        ok 3 - c
        ok 3 - c
        ok 7 - g
        not ok
        """)
    assert brief(verdict) == [
        ("1 - a", PASS, ""),
        ("2 - b", PASS, ""),
        ("3 - c", PASS, ""),
        ("3 - c (2)", PASS, ""),
        ("7 - g", PASS, ""),
        ("8", FAIL, ""),
    ]
    assert verdict.problems == ["point 3 appears twice", "point 7 out of sequence (expected 4)"]


def test_numbering_problems_are_capped():
    verdict = parse_tap("1..12\n" + "ok 1\n" * 12)
    assert verdict.problems == [
        "point 1 appears twice",
        "point 1 appears 3 times",
        "point 1 appears 4 times",
        "point 1 appears 5 times",
        "point 1 appears 6 times",
        "6 more numbering problems",
    ]
    assert [sub.name for sub in verdict.subresults][:3] == ["1", "1 (2)", "1 (3)"]


def test_versions_pragmas_and_crlf():
    verdict = parse_tap("TAP version 15\r\npragma +strict\r\n1..2\r\nok 1 - one\r\nnot ok 2 - two # TODO x\r\n")
    assert brief(verdict) == [("1 - one", PASS, ""), ("2 - two", XFAIL, "TODO: x")]
    assert verdict.problems == []
    verdict = parse_tap("1..1\r\nnot ok 1\r\n  ---\r\n  message: crlf\r\n  ...\r\n# diag\r\n")
    assert (verdict.subresults[0].message, verdict.subresults[0].output) == (
        "crlf",
        "  ---\n  message: crlf\n  ...\n# diag",
    )


def test_stream_cut_mid_yaml():
    verdict = parse_tap("TAP version 13\n1..3\nok 1\nnot ok 2 - cut\n  ---\n  message: 'never fin")
    assert brief(verdict) == [("1", PASS, ""), ("2 - cut", FAIL, "")]
    assert verdict.subresults[1].output == "  ---\n  message: 'never fin"
    assert verdict.problems == ["planned 3, ran 2 (stopped after 2 - cut)"]


def test_stream_cut_mid_line():
    verdict = parse_tap("ok 1 - one\nok 2 - two\nnot o")
    assert brief(verdict) == [("1 - one", PASS, ""), ("2 - two", PASS, "")]
    assert verdict.problems == ["no plan (ran 2 points)"]


def test_garbage_and_binary_text():
    verdict = parse_tap(
        "\x00\x01\ufffd garbage\n1..3\nokay this is not a point\nok 1\n"
        "not ok 2 - \x1b[31mred\x1b[0m \ufffd\n\x00binary\x07 tail\n  \x01---\n"
        "  ---\n  message: \x00\n  ...\n"
        "   ok 3 - indented three: not a point\n1..13 plans take no text\nok 3\n"
    )
    assert brief(verdict) == [("1", PASS, ""), ("2 - \x1b[31mred\x1b[0m \ufffd", FAIL, ""), ("3", PASS, "")]
    assert verdict.subresults[1].output == (
        "\x00binary\x07 tail\n  \x01---\n  ---\n  message: \x00\n  ...\n"
        "   ok 3 - indented three: not a point\n1..13 plans take no text"
    )
    assert verdict.problems == []


def test_deep_nesting_is_bounded():
    # Absurd indentation is text, not a recursion error.
    verdict = parse_tap("1..1\nnot ok 1\n" + " " * 400 + "ok 1\n")
    assert brief(verdict) == [("1", FAIL, "")]
    assert verdict.subresults[0].output == " " * 400 + "ok 1"


def test_one_megabyte_description():
    description = "word #  \\# x " * 80_000  # ~1 MB of hashes, escapes and blanks, no directive
    start = time.perf_counter()
    verdict = parse_tap(f"1..1\nnot ok 1 - {description}\n")
    assert time.perf_counter() - start < 2
    assert verdict.subresults[0].name == "1 - " + description.replace("\\#", "#").strip()
    start = time.perf_counter()
    verdict = parse_tap("1..1\nok 1 " + "#" + " " * 1_000_000 + "x # SKIP why\n")
    assert time.perf_counter() - start < 2
    assert (verdict.subresults[0].status, verdict.subresults[0].message) == (SKIP, "why")


def test_many_points_parse_in_linear_time():
    text = "TAP version 14\n1..100000\n" + "".join(
        f"ok {n} - point {n}\n" if n % 1000 else f"not ok {n} - point {n}\n# why\n" for n in range(1, 100_001)
    )
    start = time.perf_counter()
    verdict = parse_tap(text)
    assert time.perf_counter() - start < 5  # loose: catches quadratic work, not a slow machine
    assert len(verdict.subresults) == 100_000
    assert sum(sub.status is FAIL for sub in verdict.subresults) == 100
    assert verdict.subresults[999] == SubResult("1000 - point 1000", FAIL, output="# why")
    assert verdict.problems == []


def test_real_bats_output(tmp_path):
    bats = shutil.which("bats")
    if bats is None:
        pytest.skip("bats is not installed")
    script = tmp_path / "sample.bats"
    script.write_text(
        textwrap.dedent("""\
            @test "addition works" {
              [ $((1 + 1)) -eq 2 ]
            }

            @test "string # compare fails" {
              echo "some output"
              [ "a" = "b" ]
            }

            @test "needs network" {
              skip "no network here"
            }
            """)
    )
    run = subprocess.run([bats, "--tap", str(script)], capture_output=True, text=True, timeout=60)
    verdict = parse_tap(run.stdout)
    assert brief(verdict) == [
        ("1 - addition works", PASS, ""),
        ("2 - string # compare fails", FAIL, ""),
        ("3 - needs network", SKIP, "no network here"),
    ]
    output = verdict.subresults[1].output
    assert "# some output" in output
    assert "sample.bats, line 7" in output
    assert (verdict.planned, verdict.problems) == (3, [])
