"""The command line: terminal report, exit statuses, --list, selection."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

from conftest import (
    PYTHON,
    cli_argv,
    cli_env,
    load_index,
    load_result,
    process_alive,
    run_cli,
    start_cli,
    statuses,
    wait_for,
    write_suite,
)

SUMMARY = re.compile(r"^(\d+) testcases?: (.*) in \d+\.\d\d s$")


def summary_of(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if SUMMARY.match(line)]
    assert len(lines) == 1, stdout
    return SUMMARY.match(lines[0]).group(0).rsplit(" in ", 1)[0]


def test_all_pass_exits_0_with_only_a_summary(paths):
    root, out = paths
    write_suite(root, {"a/test.yaml": "cmd: echo a\n", "b/test.yaml": "cmd: echo b\n"})
    run = run_cli(root, out)
    assert run.returncode == 0
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert lines[0] == ""
    assert SUMMARY.match(lines[1]) and lines[1].startswith("2 testcases: 2 passed, 0 failed in ")
    assert lines[2] == f"report index: {out / 'new' / '_index.json'}"
    assert len(lines) == 3


def test_counts_speak_plainly(paths):
    """Set-ups are counted apart, singular and plural agree, a timeout says
    which signal ended the command and after what, and the testcases that
    -x kept from running are one line, not one each."""
    root, out = paths
    files = {
        "suite.yaml": "setup:\n  prep:\n    cmd: 'true'\n",
        "a-slow/test.yaml": "timeout: 1\ncmd: sleep 30\n",
        "b-crash/test.yaml": "cmd: ['sh', '-c', 'kill -SEGV $$']\n",
        "c-broken/test.yaml": "cmd: [\n",
    }
    files.update({f"later{n}/test.yaml": "needs: [prep]\ncmd: 'true'\n" for n in range(5)})
    write_suite(root, files)
    run = run_cli(root, out, "-j", "1")
    assert summary_of(run.stdout) == "8 testcases: 5 passed, 2 failed, 1 error; 1 set-up: 1 passed"
    assert "  $ sleep 30    # killed by SIGTERM after the 1 s timeout\n" in run.stdout
    assert "    # killed by SIGSEGV\n" in run.stdout
    stopped = run_cli(root, out, "-j", "1", "-x", names=["a-slow", "later"])
    skips = [line for line in stopped.stdout.splitlines() if line.startswith("SKIP")]
    assert skips == ["SKIP  5 testcases, 1 set-up not run: 1 failure reached -x"], stopped.stdout
    assert summary_of(stopped.stdout) == "6 testcases: 0 passed, 1 failed, 5 skipped; 1 set-up: 1 skipped"
    single = run_cli(root, out, names=["later0"])
    assert summary_of(single.stdout) == "1 testcase: 1 passed, 0 failed; 1 set-up: 1 passed"


def test_a_line_per_non_passing_result_and_exit_1(paths):
    root, out = paths
    write_suite(
        root,
        {
            "good/test.yaml": "cmd: echo fine\n",
            "failing/test.yaml": "cmd: echo some output; exit 1\n",
            "invalid/test.yaml": "cmd: [\n",
            "skipped/test.yaml": "depends: [failing]\ncmd: 'true'\n",
        },
    )
    run = run_cli(root, out, "-j", "1")
    assert run.returncode == 1
    result_lines = [line for line in run.stdout.splitlines() if re.match(r"^(PASS|FAIL|ERROR|SKIP)\b", line)]
    spec = root / "invalid" / "test.yaml"
    assert sorted(result_lines) == sorted(
        [
            "FAIL  failing [EXIT_CODE]: step 'run' exited with 1, expected 0",
            f"ERROR invalid [SPEC]: {spec}:2:1: YAML syntax error: did not find expected node content (while parsing a flow node)",
            "SKIP  skipped [DEPENDENCY]: not run: dependency 'failing' did not pass (FAIL)",
        ]
    )
    assert summary_of(run.stdout) == "4 testcases: 1 passed, 1 failed, 1 skipped, 1 error"
    details = run.stdout.split("---- FAIL failing\n", 1)[1]
    assert details.startswith("step 'run' exited with 1, expected 0\n  $ echo some output; exit 1    # exit 1\n  | some output\n")
    assert "---- ERROR invalid\n" in run.stdout
    assert "---- SKIP" not in run.stdout


def test_verbose_prints_passing_results_too(paths):
    root, out = paths
    write_suite(root, {"good/test.yaml": "cmd: echo fine\n"})
    run = run_cli(root, out, "-v")
    assert run.returncode == 0
    assert "PASS  good\n" in run.stdout


def test_failure_details_show_the_tail_of_long_output(paths):
    root, out = paths
    write_suite(root, {"noisy/test.yaml": "cmd: for i in $(seq 1 100); do echo line $i; done; exit 3\n"})
    run = run_cli(root, out)
    assert run.returncode == 1
    assert "  [... 70 earlier lines; full output in the result file ...]\n" in run.stdout
    assert "  | line 71\n" in run.stdout and "  | line 100\n" in run.stdout
    assert "  | line 70\n" not in run.stdout
    assert load_result(out, "noisy", run.index)["output"].count("\n") == 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["-j", "0"], "argument -j/--jobs: must be at least 1"),
        (["-j", "abc"], "argument -j/--jobs: expected a whole number, got 'abc'"),
        (["--timeout", "abc"], "argument -t/--timeout: expected a number of seconds, got 'abc'"),
        (["--timeout", "0"], "argument -t/--timeout: must be more than 0"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_exit_2(paths, args, message):
    root, out = paths
    write_suite(root, {"a/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, out, *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert not out.exists()


def test_missing_suite_directory_exits_2(tmp_path):
    out = tmp_path / "out"
    run = run_cli(tmp_path / "nowhere", out)
    assert run.returncode == 2
    assert f"run-testsuite: error: suite directory '{tmp_path / 'nowhere'}' does not exist" in run.stderr
    assert not out.exists()
    (tmp_path / "file").write_text("not a directory\n")
    assert run_cli(tmp_path / "file", out).returncode == 2


def test_name_matching_nothing_exits_2(paths):
    root, out = paths
    write_suite(root, {"a/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, out, names=["a", "zz", "q*"])
    assert run.returncode == 2
    assert "run-testsuite: error: no testcase matches 'q*', 'zz'" in run.stderr
    assert not out.exists()


def test_list_prints_the_selection_and_runs_nothing(paths):
    root, out = paths
    marker = root.parent / "ran"
    write_suite(
        root,
        {
            "suite.yaml": "defaults:\n  driver: shell\n",
            "a/test.yaml": f"cmd: touch {marker}\n",
            "b/test.yaml": f"driver: diff\ndepends: [a]\ncmd: touch {marker}\n",
            "b/test.out": "",
            "c/test.yaml": "cmd: [\n",
        },
    )
    run = run_cli(root, out, "--list")
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert lines[:2] == ["a  [shell]", "b  [diff]  depends: a"]
    assert lines[2].startswith(f"c  (ERROR: {root / 'c' / 'test.yaml'}:2:1: YAML syntax error")
    assert len(lines) == 3
    assert not marker.exists()
    assert not out.exists()


def test_list_shows_needs_resources_sandbox_and_expected_failures(paths):
    root, out = paths
    write_suite(
        root,
        {
            "suite.yaml": "resources:\n  boards: [b1, b2]\nsetup:\n  prep:\n    cmd: 'true'\n",
            "flash/test.yaml": "needs: [prep]\nresources: {boards: 2}\ncmd: 'true'\n",
            "known/test.yaml": "control:\n  - xfail: 'True'\n    reason: bug 12\ncmd: 'false'\n",
            "closed/test.yaml": "network: false\ncmd: 'true'\n",
        },
    )
    lines = run_cli(root, out, "--list").stdout.splitlines()
    assert "closed  [shell]  sandbox, no network" in lines
    assert "flash  [shell]  needs: prep  resources: boards=2" in lines
    assert "known  [shell]  xfail: bug 12" in lines
    listing = out.parent / "list.json"
    run_cli(root, out, "--list-json", listing)
    entries = {e["name"]: e for e in json.loads(listing.read_text())["testcases"]}
    assert entries["flash"]["resources"] == {"boards": 2} and entries["flash"]["needs"] == ["prep"]
    assert entries["known"]["xfail"] == "bug 12" and entries["closed"]["sandbox"] == {"network": False}
    assert entries["flash"]["sandbox"] is None


def test_selection_by_prefix_and_glob(paths):
    root, out = paths
    write_suite(root, {f"{name}/test.yaml": "cmd: 'true'\n" for name in ["a", "a/x", "a/y/z", "ab", "b", "c/x"]})
    assert sorted(statuses(run_cli(root, out, names=["a"]).index)) == ["a", "a/x", "a/y/z", "ab"]
    assert sorted(statuses(run_cli(root, out, names=["a/*"]).index)) == ["a/x", "a/y/z"]
    assert sorted(statuses(run_cli(root, out, names=["*/x"]).index)) == ["a/x", "c/x"]
    assert sorted(statuses(run_cli(root, out, names=["b", "c"]).index)) == ["b", "c/x"]


def test_a_variant_and_a_name_with_brackets_are_selected_by_the_names_shown(paths):
    root, out = paths
    write_suite(root, {
        "m/test.yaml": "matrix: {opt: [O0, O2]}\ncmd: 'true'\n",
        "br[1]/test.yaml": "cmd: 'true'\n",
        "br2/test.yaml": "cmd: 'true'\n",
    })
    assert sorted(statuses(run_cli(root, out, names=["m[opt=O2]"]).index)) == ["m[opt=O2]"]
    assert sorted(statuses(run_cli(root, out, names=["m[opt=O2]", "m"]).index)) == ["m[opt=O0]", "m[opt=O2]"]
    assert sorted(statuses(run_cli(root, out, names=["br[1]"]).index)) == ["br[1]"]
    repeated = run_cli(root, out, "--repeat", "2", names=["m[opt=O0]"])
    assert sorted(statuses(repeated.index)) == ["m[opt=O0]#1", "m[opt=O0]#2"]
    assert run_cli(root, out, names=["m[opt=O9]"]).returncode == 5
    typo = run_cli(root, out, names=["br2", "m[opt=O9]"])  # beside a good name: a usage error
    assert typo.returncode == 2 and "no variant matches 'm[opt=O9]'" in typo.stderr
    many = run_cli(root, out, "--repeat", "11", names=["br2#1"])
    assert sorted(statuses(many.index)) == ["br2#1"]  # not #10, #11


def test_a_variant_name_is_not_also_a_glob_and_a_bracketed_directory_is_literal(paths):
    root, out = paths
    write_suite(root, {
        "m/test.yaml": "matrix: {n: [1, 2]}\ncmd: 'true'\n",
        "m1/test.yaml": "cmd: 'true'\n",
        "br[1]/x/test.yaml": "cmd: 'true'\n",
        "br[1]/y/test.yaml": "cmd: 'true'\n",
        "br1/test.yaml": "cmd: 'true'\n",
    })
    assert sorted(statuses(run_cli(root, out, names=["m[n=1]"]).index)) == ["m[n=1]"]
    for name in ("br[1]", "br[1]/"):
        assert sorted(statuses(run_cli(root, out, names=[name]).index)) == ["br[1]/x", "br[1]/y"], name
    assert sorted(statuses(run_cli(root, out, names=["b*"]).index)) == ["br1", "br[1]/x", "br[1]/y"]


def test_overlapping_names_are_all_matched(paths):
    root, out = paths
    write_suite(root, {f"{name}/test.yaml": "cmd: 'true'\n" for name in ["a", "ab", "b"]})
    assert sorted(statuses(run_cli(root, out, names=["ab", "a"]).index)) == ["a", "ab"]  # works
    run = run_cli(root, out, names=["a", "ab"])
    assert run.returncode == 0, run.stderr
    assert sorted(statuses(run.index)) == ["a", "ab"]


def test_selection_with_a_trailing_slash_stays_in_the_directory(paths):
    root, out = paths
    write_suite(root, {f"{name}/test.yaml": "cmd: 'true'\n" for name in ["a", "a/x", "ab"]})
    assert sorted(statuses(run_cli(root, out, names=["a/"]).index)) == ["a", "a/x"]


def test_names_after_options_are_accepted(paths):
    root, out = paths
    write_suite(root, {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n"})
    proc = subprocess.run(
        [PYTHON, "-m", "run_testsuite", str(root), "-o", str(out), "-j", "2", "b"],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=root.parent,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert statuses(load_index(out)) == {"b": ("PASS", None)}


def test_version(paths):
    root, out = paths
    proc = subprocess.run(
        [PYTHON, "-m", "run_testsuite", "--version"], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == "run-testsuite 0.1.0"


def test_relative_output_dir_is_relative_to_the_current_directory(tmp_path):
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n"})
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = subprocess.run(
        [PYTHON, "-m", "run_testsuite", str(root)], capture_output=True, text=True, env=cli_env(), cwd=cwd, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (cwd / "out" / "new" / "_index.json").is_file()
    assert f"report index: {cwd / 'out' / 'new' / '_index.json'}" in proc.stdout


def _interrupt(tmp_path, sig, *args):
    """Start a run whose first testcase sleeps, signal the run once the
    command is up, and return (returncode, stdout, index, command pid)."""
    root, out = tmp_path / "suite", tmp_path / "out"
    pid_file = tmp_path / "pid"
    write_suite(
        root,
        {
            "a-slow/test.yaml": f"cmd: echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 30\n",
            "b-after/test.yaml": "cmd: echo after\n",
            "c-dependent/test.yaml": "depends: [a-slow]\ncmd: echo dependent\n",
        },
    )
    proc = start_cli(root, out, "-j", "1", *args)
    try:
        assert wait_for(pid_file.exists, 20), "the slow command never started"
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    pid = int(pid_file.read_text())
    # The command is killed before the run exits; allow a little slack.
    alive = wait_for(lambda: not process_alive(pid), 2) is False
    if alive:  # do not leave it behind whatever the verdict
        os.kill(pid, signal.SIGKILL)
    return proc.returncode, stdout, load_index(out), alive


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_interrupted_run_reports_everything_and_stops_the_command(tmp_path, sig):
    returncode, stdout, index, alive = _interrupt(tmp_path, sig)
    assert returncode == 128 + sig
    assert statuses(index) == {
        "a-slow": ("ERROR", "INTERRUPTED"),
        "b-after": ("SKIP", "INTERRUPTED"),
        "c-dependent": ("SKIP", "DEPENDENCY"),
    }
    assert index["interrupted"] is True
    assert "ERROR a-slow [INTERRUPTED]: interrupted while running" in stdout
    assert not alive, "the interrupted command is still running"


def test_interrupted_inline_run_stops_the_command(tmp_path):
    returncode, _, index, alive = _interrupt(tmp_path, signal.SIGTERM, "--no-multiprocessing")
    assert returncode == 128 + signal.SIGTERM
    assert statuses(index)["a-slow"] == ("ERROR", "INTERRUPTED")
    assert not alive, "the interrupted command is still running"


def test_a_terminal_hang_up_to_the_whole_group_is_an_interrupt(tmp_path):
    """A closed terminal or ssh session sends SIGHUP to the whole foreground
    process group: workers leave it to the main process, which stops the
    run as on SIGTERM, every result reported (it was a kill -9 before)."""
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {f"t{n}/test.yaml": "cmd: sleep 1\n" for n in range(8)})
    proc = subprocess.Popen(
        cli_argv(root, out, "-j", "2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    try:
        work = out / "new" / "work"
        assert wait_for(lambda: work.is_dir() and len(list(work.iterdir())) >= 2, 20)
        os.killpg(proc.pid, signal.SIGHUP)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGHUP, stderr
    index = load_index(out)
    assert index["interrupted"] is True and len(index["results"]) == 8
    assert "CRASH" not in {reason for _, reason in statuses(index).values()}, statuses(index)


def test_a_ctrl_c_while_the_command_loads_ends_it_quietly():
    """The command's modules load inside run_testsuite.command.main, where a Ctrl-C
    in those first milliseconds is caught: exit 130, no traceback."""
    code = (
        "import builtins\n"
        "real = builtins.__import__\n"
        "def refusing(name, *args, **kwargs):\n"
        "    if name == 'run_testsuite.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = refusing\n"
        "from run_testsuite.command import main\n"
        "main()\n"
    )
    run = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert (run.returncode, run.stderr) == (130, "run-testsuite: interrupted\n")
