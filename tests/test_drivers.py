"""The diff driver, and suites' own drivers through the Driver API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import PYTHON, load_result, run_cli, statuses, write_suite

# -- diff driver -------------------------------------------------------------------------
BIG = 1_500_000  # over DIFF_LIMIT (1 MiB): compared in chunks

DIFF_SUITE = {
    "pass/test.yaml": "driver: diff\ncmd: echo hello\n",
    "pass/test.out": "hello\n",
    "fail/test.yaml": "driver: diff\ncmd: echo world\n",
    "fail/test.out": "hello\n",
    "stderr/test.yaml": "driver: diff\ncmd: echo out; echo err >&2; echo out2\n",
    "stderr/test.out": "out\nerr\nout2\n",
    "steps/test.yaml": "driver: diff\nsteps:\n  - cmd: echo one\n  - cmd: echo two >&2\n",
    "steps/test.out": "one\ntwo\n",
    "steps-fail/test.yaml": "driver: diff\nsteps:\n  - cmd: echo one\n  - cmd: echo two\n",
    "steps-fail/test.out": "one\nTWO\n",
    "custom-baseline/test.yaml": "driver: diff\ncmd: echo custom\nbaseline: expected/hello.txt\n",
    "custom-baseline/expected/hello.txt": "custom\n",
    "custom-baseline/test.out": "not this one\n",
    "no-newline/test.yaml": "driver: diff\ncmd: printf abc\n",
    "no-newline/test.out": "abc\n",
    "exit-first/test.yaml": "driver: diff\ncmd: echo hello; exit 1\n",
    "exit-first/test.out": "hello\n",
    "outside/test.yaml": "driver: diff\ncmd: echo secret\nbaseline: ../../outside.txt\n",
    "large-equal/test.yaml": f"driver: diff\ncmd: [{PYTHON}, -c, \"print('a' * {BIG - 1})\"]\n",
    "large-equal/test.out": "a" * (BIG - 1) + "\n",
    "large-differ/test.yaml": (
        f"driver: diff\ncmd: [{PYTHON}, -c, \"import sys; sys.stdout.write('a' * 1000000 + 'b' + 'a' * {BIG - 1000001})\"]\n"
    ),
    "large-differ/test.out": "a" * BIG,
    "large-shorter/test.yaml": f"driver: diff\ncmd: [{PYTHON}, -c, \"import sys; sys.stdout.write('a' * 1200000)\"]\n",
    "large-shorter/test.out": "a" * BIG,
}


@pytest.fixture(scope="module")
def diff_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("diff")
    (base / "outside.txt").write_text("secret\n")
    root, out = base / "suite", base / "out"
    write_suite(root, DIFF_SUITE)
    return SimpleNamespace(root=root, out=out, run=run_cli(root, out, "-j", "2"))


def diff_result(diff_run, name):
    return load_result(diff_run.out, name, diff_run.run.index)


def test_diff_statuses(diff_run):
    assert statuses(diff_run.run.index) == {
        "custom-baseline": ("PASS", None),
        "exit-first": ("FAIL", "EXIT_CODE"),
        "fail": ("FAIL", "DIFF"),
        "large-differ": ("FAIL", "DIFF"),
        "large-equal": ("PASS", None),
        "large-shorter": ("FAIL", "DIFF"),
        "no-newline": ("FAIL", "DIFF"),
        "outside": ("ERROR", "SPEC"),
        "pass": ("PASS", None),
        "stderr": ("PASS", None),
        "steps": ("PASS", None),
        "steps-fail": ("FAIL", "DIFF"),
    }
    assert diff_run.run.returncode == 1


def test_diff_pass_has_no_diff(diff_run):
    res = diff_result(diff_run, "pass")
    assert res["diff"] is None
    assert res["output"] == "hello\n"
    assert res["driver"] == "diff"


def test_diff_failure_carries_a_unified_diff(diff_run):
    res = diff_result(diff_run, "fail")
    assert res["message"] == "output differs from the baseline"
    assert res["diff"] == "--- test.out (expected)\n+++ output (actual)\n@@ -1 +1 @@\n-hello\n+world\n"
    assert res["output"] == "world\n"


def test_diff_failure_is_printed_on_the_terminal(diff_run):
    stdout = diff_run.run.stdout
    assert "FAIL  fail [DIFF]: output differs from the baseline\n" in stdout
    details = stdout.split("---- FAIL fail\n", 1)[1]
    assert details.startswith(
        "output differs from the baseline\n"
        "  $ echo world    # exit 0\n"
        "--- test.out (expected)\n+++ output (actual)\n@@ -1 +1 @@\n-hello\n+world\n"
    )


def test_diff_compares_stdout_and_stderr_together(diff_run):
    assert diff_result(diff_run, "stderr")["output"] == "out\nerr\nout2\n"


def test_diff_concatenates_the_steps_outputs(diff_run):
    assert diff_result(diff_run, "steps")["status"] == "PASS"
    res = diff_result(diff_run, "steps-fail")
    assert res["diff"] == "--- test.out (expected)\n+++ output (actual)\n@@ -1,2 +1,2 @@\n one\n-TWO\n+two\n"
    assert [c["step"] for c in res["commands"]] == ["step1", "step2"]


def test_diff_custom_baseline_file(diff_run):
    res = diff_result(diff_run, "custom-baseline")
    assert res["status"] == "PASS"
    assert res["output"] == "custom\n"


def test_diff_missing_final_newline_is_shown(diff_run):
    res = diff_result(diff_run, "no-newline")
    assert res["diff"] == (
        "--- test.out (expected)\n+++ output (actual)\n@@ -1 +1 @@\n-abc\n+abc\n\\ No newline at end of file\n"
    )


def test_diff_exit_status_is_judged_before_the_output(diff_run):
    res = diff_result(diff_run, "exit-first")
    assert res["message"] == "step 'run' exited with 1, expected 0"
    assert res["diff"] is None


def test_diff_baseline_outside_the_suite_is_rejected(diff_run):
    res = diff_result(diff_run, "outside")
    spec = diff_run.root / "outside" / "test.yaml"
    assert res["message"] == f"{spec}:3:11: baseline '../../outside.txt' is outside the suite directory"


def test_diff_large_outputs_are_compared_in_chunks(diff_run):
    assert diff_result(diff_run, "large-equal")["status"] == "PASS"
    assert diff_result(diff_run, "large-differ")["message"] == (
        f"output differs from the baseline at byte 1000000 "
        f"(output {BIG} bytes, baseline {BIG} bytes; too large to diff)"
    )
    assert diff_result(diff_run, "large-shorter")["message"] == (
        f"output differs from the baseline at byte 1200000 "
        f"(output 1200000 bytes, baseline {BIG} bytes; too large to diff)"
    )


def test_diff_testcase_in_a_symlinked_directory(tmp_path):
    write_suite(tmp_path / "shared", {"t/test.yaml": "driver: diff\ncmd: echo hi\n", "t/test.out": "hi\n"})
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"local/test.yaml": "cmd: 'true'\n"})
    (root / "linked").symlink_to(tmp_path / "shared", target_is_directory=True)
    run = run_cli(root, out)
    assert statuses(run.index) == {"linked/t": ("PASS", None), "local": ("PASS", None)}


# -- suites' own drivers --------------------------------------------------------------------
DRIVER_FILE = '''
import os

from run_testsuite.api import Driver, Outcome, Reason, Status


class MyDriver(Driver):
    """PASS when the output contains options.expect."""

    options_schema = {
        "type": "object",
        "required": ["expect"],
        "additionalProperties": False,
        "properties": {"expect": {"type": "string"}},
    }

    def fragments(self, test):
        fragments = super().fragments(test)
        expect = test.spec["options"]["expect"]
        if not expect:
            test.error("options.expect must not be empty", ["options", "expect"])
        fragments[-1].data["expect"] = expect
        self.combine_output(fragments)
        return fragments

    def check(self, fragment, ctx):
        if not fragment.final:
            return Outcome(Status.PASS)
        text = ctx.combined_output().decode()
        if fragment.data["expect"] in text:
            return Outcome(Status.PASS)
        return Outcome(Status.FAIL, Reason.DIFF, f"{fragment.data['expect']!r} not in the output")


class BrokenFragments(Driver):
    def fragments(self, test):
        raise ValueError("boom in fragments")


class BrokenRun(Driver):
    def run(self, fragment, ctx):
        raise RuntimeError("boom in run")


class BrokenCheck(Driver):
    def check(self, fragment, ctx):
        raise KeyError("boom in check")


class WrongReturn(Driver):
    def run(self, fragment, ctx):
        return "not an outcome"


class NotADriver:
    pass


class Crash(Driver):
    def run(self, fragment, ctx):
        os._exit(3)
'''

DRIVERS_SUITE = {
    "suite.yaml": """
        drivers:
          mine: drivers_local/mine.py:MyDriver
          broken-fragments: drivers_local/mine.py:BrokenFragments
          broken-run: drivers_local/mine.py:BrokenRun
          broken-check: drivers_local/mine.py:BrokenCheck
          wrong-return: drivers_local/mine.py:WrongReturn
          not-a-driver: drivers_local/mine.py:NotADriver
          missing-file: drivers_local/absent.py:Whatever
          missing-class: drivers_local/mine.py:Nope
          crash: drivers_local/mine.py:Crash
          alias: run_testsuite.drivers.shell:ShellDriver
    """,
    "drivers_local/mine.py": DRIVER_FILE,
    "custom/pass/test.yaml": "driver: mine\ncmd: echo hello world\noptions:\n  expect: world\n",
    "custom/fail/test.yaml": "driver: mine\ncmd: echo hello world\noptions:\n  expect: planet\n",
    "custom/steps/test.yaml": "driver: mine\nsteps:\n  - cmd: echo a\n  - cmd: echo b\noptions:\n  expect: \"a\\nb\"\n",
    "custom/bad-type/test.yaml": "driver: mine\ncmd: echo hi\noptions:\n  expect: 5\n",
    "custom/missing-option/test.yaml": "driver: mine\ncmd: echo hi\n",
    "custom/extra-option/test.yaml": "driver: mine\ncmd: echo hi\noptions:\n  expect: hi\n  colour: red\n",
    "custom/test-error/test.yaml": "driver: mine\ncmd: echo hi\noptions:\n  expect: ''\n",
    "broken/fragments/test.yaml": "driver: broken-fragments\ncmd: echo hi\n",
    "broken/run/test.yaml": "driver: broken-run\ncmd: echo hi\n",
    "broken/check/test.yaml": "driver: broken-check\ncmd: echo hi\n",
    "broken/wrong-return/test.yaml": "driver: wrong-return\ncmd: echo hi\n",
    "broken/not-a-driver/test.yaml": "driver: not-a-driver\ncmd: echo hi\n",
    "broken/missing-file/test.yaml": "driver: missing-file\ncmd: echo hi\n",
    "broken/missing-class/test.yaml": "driver: missing-class\ncmd: echo hi\n",
    "alias/test.yaml": "driver: alias\ncmd: echo via alias\n",
    "plain/test.yaml": "cmd: echo plain\n",
    "zz-crash/test.yaml": "driver: crash\ncmd: echo hi\n",
    "zz-after-crash-1/test.yaml": "cmd: echo after\n",
    "zz-after-crash-2/test.yaml": "cmd: echo after\n",
}

DRIVER_STATUSES = {
    "alias": ("PASS", None),
    "broken/check": ("ERROR", "DRIVER"),
    "broken/fragments": ("ERROR", "DRIVER"),
    "broken/missing-class": ("ERROR", "SPEC"),
    "broken/missing-file": ("ERROR", "SPEC"),
    "broken/not-a-driver": ("ERROR", "SPEC"),
    "broken/run": ("ERROR", "DRIVER"),
    "broken/wrong-return": ("ERROR", "DRIVER"),
    "custom/bad-type": ("ERROR", "SPEC"),
    "custom/extra-option": ("ERROR", "SPEC"),
    "custom/fail": ("FAIL", "DIFF"),
    "custom/missing-option": ("ERROR", "SPEC"),
    "custom/pass": ("PASS", None),
    "custom/steps": ("PASS", None),
    "custom/test-error": ("ERROR", "SPEC"),
    "plain": ("PASS", None),
}


@pytest.fixture(scope="module", params=["processes", "inline"])
def driver_run(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"drivers-{request.param}")
    root, out = base / "suite", base / "out"
    write_suite(root, DRIVERS_SUITE)
    if request.param == "processes":
        run = run_cli(root, out, "-j", "2")
    else:
        # A driver calling os._exit would end an inline run: leave zz-* out.
        names = sorted({name.split("/")[0] for name in DRIVER_STATUSES})
        run = run_cli(root, out, "--no-multiprocessing", names=names)
    return SimpleNamespace(root=root, out=out, run=run, mode=request.param)


def driver_result(driver_run, name):
    return load_result(driver_run.out, name, driver_run.run.index)


def test_custom_driver_statuses(driver_run):
    expected = dict(DRIVER_STATUSES)
    if driver_run.mode == "processes":
        expected.update(
            {
                "zz-crash": ("ERROR", "CRASH"),
                "zz-after-crash-1": ("PASS", None),
                "zz-after-crash-2": ("PASS", None),
            }
        )
    assert statuses(driver_run.run.index) == expected
    assert driver_run.run.returncode == 1


def test_custom_driver_check_passes_and_fails(driver_run):
    res = driver_result(driver_run, "custom/pass")
    assert res["driver"] == "mine"
    assert res["output"] == "hello world\n"
    assert driver_result(driver_run, "custom/fail")["message"] == "'planet' not in the output"
    assert driver_result(driver_run, "custom/steps")["output"] == "[step1]\na\n[step2]\nb\n"


@pytest.mark.parametrize(
    "name, where, text",
    [
        ("custom/bad-type", "4:11", "expected a string, got 5 (at options.expect)"),
        ("custom/missing-option", "1:1", "options: missing; driver 'mine' needs expect"),
        # Located at the key that is wrong, worded as the spec's own keys are.
        ("custom/extra-option", "5:3", "unknown key 'colour' (at options)"),
        ("custom/test-error", "4:11", "options.expect must not be empty"),
    ],
)
def test_custom_driver_bad_options_are_spec_errors(driver_run, name, where, text):
    spec = driver_run.root / name / "test.yaml"
    assert driver_result(driver_run, name)["message"] == f"{spec}:{where}: {text}"


def test_driver_raising_in_fragments_is_a_driver_error_with_traceback(driver_run):
    res = driver_result(driver_run, "broken/fragments")
    assert res["message"] == "driver 'broken-fragments' failed to load the testcase: ValueError: boom in fragments"
    assert res["traceback"].startswith("Traceback (most recent call last):")
    assert "mine.py" in res["traceback"] and "in fragments" in res["traceback"]
    assert res["traceback"].rstrip().endswith("ValueError: boom in fragments")


def test_driver_raising_in_run_is_a_driver_error_with_traceback(driver_run):
    res = driver_result(driver_run, "broken/run")
    assert res["message"] == "driver raised RuntimeError: boom in run"
    assert "mine.py" in res["traceback"] and ", in run\n" in res["traceback"]
    assert res["traceback"].rstrip().endswith("RuntimeError: boom in run")
    # The terminal shows the traceback under the failure.
    details = driver_run.run.stdout.split("---- ERROR broken/run\n", 1)[1]
    assert details.startswith("driver raised RuntimeError: boom in run\nTraceback (most recent call last):")


def test_driver_raising_in_check_is_a_driver_error(driver_run):
    res = driver_result(driver_run, "broken/check")
    assert res["message"] == "driver raised KeyError: 'boom in check'"
    assert ", in check\n" in res["traceback"]
    # The command itself ran before check raised.
    assert [c["exit_code"] for c in res["commands"]] == [0]


def test_driver_returning_something_else_is_a_driver_error(driver_run):
    res = driver_result(driver_run, "broken/wrong-return")
    assert "returned str, not Outcome" in res["message"]
    assert res["message"].startswith("driver raised TypeError: ")


@pytest.mark.parametrize(
    "name, where, text",
    [
        ("broken/not-a-driver", "1:9", "is not a subclass of run_testsuite.api.Driver"),
        ("broken/missing-file", "1:9", "absent.py' does not exist"),
        ("broken/missing-class", "1:9", "has no attribute 'Nope'"),
    ],
)
def test_unloadable_driver_references_are_spec_errors(driver_run, name, where, text):
    spec = driver_run.root / name / "test.yaml"
    message = driver_result(driver_run, name)["message"]
    assert message.startswith(f"{spec}:{where}: ")
    assert text in message


def test_driver_alias_to_an_importable_module(driver_run):
    res = driver_result(driver_run, "alias")
    assert res["driver"] == "alias"
    assert res["output"] == "via alias\n"


def test_worker_crash_is_an_error_and_the_slot_carries_on(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": DRIVERS_SUITE["suite.yaml"],
            "drivers_local/mine.py": DRIVER_FILE,
            "a-crash/test.yaml": "driver: crash\ncmd: echo hi\n",
            "b/test.yaml": "cmd: echo b\n",
            "c/test.yaml": "cmd: echo c\n",
        },
    )
    run = run_cli(root, out, "-j", "1")
    assert statuses(run.index) == {"a-crash": ("ERROR", "CRASH"), "b": ("PASS", None), "c": ("PASS", None)}
    res = load_result(out, "a-crash", run.index)
    assert res["message"] == "the worker process exited unexpectedly with status 3"
    assert res["slot"] == 1
    assert load_result(out, "b", run.index)["slot"] == 1
    assert load_result(out, "c", run.index)["output"] == "c\n"
    assert run.returncode == 1


HELPER_DRIVER = """
import subprocess

from run_testsuite.api import Driver, Outcome, Reason, Status


class WithHelper(Driver):
    \"\"\"Starts a helper (say, a server) that its commands talk to.\"\"\"

    def run(self, fragment, ctx):
        helper = subprocess.Popen(["sleep", "30"])
        try:
            for command in fragment.commands:
                ctx.run(command)
                if helper.poll() is not None:
                    return Outcome(Status.FAIL, Reason.CRASH, f"helper gone after step {command.step}")
            return Outcome(Status.PASS)
        finally:
            helper.kill()
            helper.wait()
"""


@pytest.mark.parametrize("mode", [["-j", "1"], ["--no-multiprocessing"]], ids=["processes", "inline"])
def test_driver_helper_process_survives_its_commands(tmp_path, mode):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "suite.yaml": "drivers:\n  helper: drivers_local/helper.py:WithHelper\n",
            "drivers_local/helper.py": HELPER_DRIVER,
            "t/test.yaml": "driver: helper\ncmd: echo hi\n",
        },
    )
    run = run_cli(root, out, *mode)
    assert statuses(run.index) == {"t": ("PASS", None)}, load_result(out, "t", run.index)["message"]
