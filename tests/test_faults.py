"""Fault injection: real processes, real signals, hostile input.

Each test builds a suite whose testcases misbehave on purpose (processes
that ignore SIGTERM or escape with setsid, drivers that kill their worker,
huge and binary output, broken specs), runs the real command line in a
subprocess, signals it with os.kill where the scenario calls for it, and
then checks what is on disk and what is still running. Leftover processes
are found by a marker unique to the test (see faultlib), never by name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    PYTHON,
    cli_argv,
    cli_env,
    load_index,
    load_result,
    read_json,
    run_cli,
    statuses,
    validate_index,
    validate_result,
    write_suite,
)
from faultlib import (
    Launched,
    assert_one_result_each,
    helper_files,
    kill_marked,
    marked_processes,
    new_marker,
    pid_alive,
    proc_cmd,
    result_files,
    suite_root,
    survivors,
    talk_cmd,
    tree_state,
    wait_for,
)

# The grace between SIGTERM and SIGKILL (run_testsuite.commands.KILL_GRACE).
GRACE = 2.0


@pytest.fixture
def marker():
    """A marker unique to the test; whatever carries it is killed afterwards,
    so a failing test leaves nothing running."""
    marker = new_marker()
    yield marker
    kill_marked(marker)


@pytest.fixture
def pids(tmp_path) -> Path:
    """A directory for pid files, outside the suite."""
    path = tmp_path / "pids"
    path.mkdir()
    return path


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback (most recent call last)" not in text, text


# -- 1. timeouts kill the whole tree ---------------------------------------------------
@pytest.mark.parametrize("mode", [["-j", "4"], ["--no-multiprocessing"]], ids=["workers", "inline"])
def test_timeout_kills_the_whole_tree(tmp_path, marker, pids, mode):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    p = lambda name: pids / name  # noqa: E731
    write_suite(
        root,
        {
            **helper_files(marker, driver=False),
            # The leader obeys SIGTERM; its background child ignores it.
            "grandchild/test.yaml": f"""
                timeout: 0.5
                cmd: {proc_cmd(marker, '--spawn bg --child-ignore-term --child-pidfile', p('grandchild.child'), '--pidfile', p('grandchild'), '--sleep 60')}
            """,
            # The leader itself ignores SIGTERM: SIGKILL after the grace.
            "leader-ignores/test.yaml": f"""
                timeout: 0.5
                cmd: {proc_cmd(marker, '--ignore-term --pidfile', p('leader'), '--sleep 60')}
            """,
            # A daemon: double fork, setsid, ignores SIGTERM, leaves the group.
            "daemon/test.yaml": f"""
                timeout: 0.5
                cmd: {proc_cmd(marker, '--spawn daemon --child-ignore-term --child-pidfile', p('daemon.child'), '--sleep 60')}
            """,
            # Plain sh: a subshell ignoring SIGTERM in the background (only
            # the environment carries the marker here).
            "shell-bg/test.yaml": """
                timeout: 0.5
                cmd: "(trap '' TERM; sleep 61) & sleep 60"
            """,
            # Passing commands leave no one behind either, even a daemon
            # that keeps the output pipe open.
            "daemon-pass/test.yaml": f"""
                cmd: {proc_cmd(marker, '--spawn daemon --child-ignore-term --child-keep-stdio --child-pidfile', p('daemon-pass.child'))}
            """,
            "bg-pass/test.yaml": f"""
                cmd: {proc_cmd(marker, '--spawn bg --child-ignore-term --child-keep-stdio --child-pidfile', p('bg-pass.child'))}
            """,
        },
    )
    run = run_cli(root, out, *mode)
    assert run.returncode == 1, run.stdout + run.stderr
    got = statuses(run.index)
    for name in ("grandchild", "leader-ignores", "daemon", "shell-bg"):
        assert got[name] == ("FAIL", "TIMEOUT"), (name, got)
        assert "timed out after 0.5 s" in load_result(out, name, run.index)["message"]
    assert got["daemon-pass"] == ("PASS", None)
    assert got["bg-pass"] == ("PASS", None)
    # Every process really started (its pid file is there) and is gone.
    for name in ("grandchild", "grandchild.child", "leader", "daemon.child", "daemon-pass.child", "bg-pass.child"):
        assert (pids / name).exists(), f"{name} never started"
        assert not pid_alive(pids / name), f"{name} (pid {(pids / name).read_text()}) outlived the run"
    assert survivors(marker, within=2.0) == {}


def test_timeout_escalates_to_sigkill_only_after_the_grace(tmp_path, marker, pids):
    """A command that ignores SIGTERM is killed after the grace period, not
    before (its result's duration shows it) and not much later."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    write_suite(
        root,
        {
            **helper_files(marker, driver=False),
            "stubborn/test.yaml": f"""
                timeout: 0.3
                cmd: {proc_cmd(marker, '--ignore-term --sleep 60')}
            """,
            "polite/test.yaml": f"""
                timeout: 0.3
                cmd: {proc_cmd(marker, '--sleep 60')}
            """,
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert statuses(run.index) == {"stubborn": ("FAIL", "TIMEOUT"), "polite": ("FAIL", "TIMEOUT")}
    stubborn = load_result(out, "stubborn", run.index)["commands"][0]["duration"]
    polite = load_result(out, "polite", run.index)["commands"][0]["duration"]
    assert 0.3 + GRACE * 0.9 <= stubborn < 0.3 + GRACE * 3, stubborn
    assert polite < 0.3 + GRACE * 0.5, polite
    assert survivors(marker, within=2.0) == {}


# -- 2. worker death -------------------------------------------------------------------
CRASHES = {
    # how: (message fragment, text the result's output must hold)
    "exit": ("exited unexpectedly with status 3", None),
    "segv": ("died from signal SIGSEGV", "Fatal Python error: Segmentation fault"),
    "sigkill": ("died from signal SIGKILL", None),
}


def crash_suite(root, marker, crashers: int, passes: int, pids: Path | None = None) -> dict:
    """Crashing testcases interleaved (by name) with passing ones; returns
    {name: how} for the crashers."""
    files = helper_files(marker)
    kinds = list(CRASHES)
    crashing = {}
    for number in range(max(crashers, passes)):
        if number < crashers:
            how = kinds[number % len(kinds)]
            name = f"t{number:03d}-crash-{how}"
            crashing[name] = how
            files[f"{name}/test.yaml"] = f"driver: faulty\noptions: {{how: {how}}}\ncmd: 'true'\n"
        if number < passes:
            files[f"t{number:03d}-pass/test.yaml"] = "driver: faulty\ncmd: echo fine\n"
    write_suite(root, files)
    return crashing


@pytest.mark.parametrize("jobs", [1, 4])
def test_worker_death_is_a_crash_of_that_testcase_only(tmp_path, marker, jobs):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    crashing = crash_suite(root, marker, crashers=6, passes=30)
    run = run_cli(root, out, "-j", jobs)
    assert run.returncode == 1, run.stdout + run.stderr
    no_traceback(run.stdout, run.stderr)
    got = statuses(run.index)
    assert len(got) == 36
    for name, status in got.items():
        if name in crashing:
            message, last_words = CRASHES[crashing[name]]
            result = load_result(out, name, run.index)
            assert status == ("ERROR", "CRASH"), (name, status)
            assert message in result["message"], result["message"]
            if last_words:
                assert last_words in result["output"], result["output"]
                assert "faulty.py" in result["output"]  # the fault's place, from faulthandler
        else:
            assert status == ("PASS", None), (name, status, load_result(out, name, run.index)["message"])
    # The slot was refilled: passing testcases ran on every slot after crashes.
    slots = {entry["slot"] for entry in run.index["results"] if entry["status"] == "PASS"}
    assert slots <= set(range(1, jobs + 1))
    assert survivors(marker, within=3.0) == {}


def test_repeated_crashes_in_one_slot_do_not_stall(tmp_path, marker):
    """Twenty crashes in a row on one slot: each gets a new worker at once."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    crashing = crash_suite(root, marker, crashers=21, passes=21)
    began = time.monotonic()
    run = run_cli(root, out, "-j", "1")
    took = time.monotonic() - began
    got = statuses(run.index)
    assert sum(1 for s in got.values() if s == ("ERROR", "CRASH")) == len(crashing) == 21
    assert sum(1 for s in got.values() if s == ("PASS", None)) == 21
    assert {entry["slot"] for entry in run.index["results"]} == {1}
    # About 0.1 s per crash here; a stall would be the watchdog's 30 s.
    assert took < 20, f"42 testcases with 21 crashes took {took:.1f} s"
    assert survivors(marker, within=3.0) == {}


def test_worker_killed_while_its_command_runs(tmp_path, marker, pids):
    """The OOM killer takes the worker mid-command: the testcase is a CRASH,
    the command it was running is not left behind, the slot goes on."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    files = helper_files(marker)
    # sh is the worker's direct child: $PPID is the worker.
    files["a-victim/test.yaml"] = (
        f"cmd: {proc_cmd(marker, '--spawn daemon --child-ignore-term --child-pidfile', pids / 'daemon', '--sleep 0')}"
        f" ; kill -9 $PPID; exec sleep 60\n"
    ).replace("exec " + PYTHON, PYTHON, 1)
    for number in range(10):
        files[f"b-after-{number}/test.yaml"] = "cmd: echo fine\n"
    write_suite(root, files)
    run = run_cli(root, out, "-j", "1")
    got = statuses(run.index)
    assert got.pop("a-victim") == ("ERROR", "CRASH")
    assert "died from signal SIGKILL" in load_result(out, "a-victim", run.index)["message"]
    assert set(got.values()) == {("PASS", None)}
    assert (pids / "daemon").exists()
    assert survivors(marker, within=3.0) == {}


def test_hung_driver_is_stopped_by_the_watchdog(tmp_path, marker):
    """A driver stuck in run() (not in a command, where the timeout would
    act) is killed once its fragment's timeouts and the watchdog margin
    have passed; the margin is cut to 1 s here to keep the test short."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    write_suite(
        root,
        {
            **helper_files(marker),
            "hang/test.yaml": "driver: faulty\noptions: {how: hang}\ntimeout: 0.5\ncmd: 'true'\n",
            "ok/test.yaml": "cmd: echo fine\n",
        },
    )
    code = "import sys, run_testsuite.workers.base as base; base.WATCHDOG_MARGIN = 1.0; from run_testsuite.cli import main; sys.exit(main())"
    argv = [PYTHON, "-c", code, str(root), "-o", str(out), "-j", "2"]
    launched = Launched(root, out, argv=argv)
    assert launched.wait(60) == 1, launched.stdout + launched.stderr
    # 0.5 s timeout + one grace + 1 s margin, then a kill.
    assert launched.elapsed < 3 * (0.5 + GRACE + 1.0) + 5
    index = load_index(out)
    assert statuses(index) == {"hang": ("ERROR", "CRASH"), "ok": ("PASS", None)}
    assert "stopped answering" in load_result(out, "hang", index)["message"]
    assert survivors(marker, within=3.0) == {}


# -- 3. interrupts ---------------------------------------------------------------------
LONG = ["b-long-1", "b-long-2", "b-long-3", "b-long-4"]
DONE = ["a-done-1", "a-done-2", "a-done-3"]
LATER = [f"c-later-{n:02d}" for n in range(10)]


def interrupt_suite(root, marker, pids: Path) -> list[str]:
    """At -j 4: three quick testcases pass, then four long commands fill
    every slot (two ignore SIGTERM, one has a child that ignores it, one
    left a daemon), and ten more wait for a slot. Returns every name."""
    files = helper_files(marker, driver=False)
    for name in DONE:
        files[f"{name}/test.yaml"] = "cmd: echo done\n"
    long_args = {
        "b-long-1": "--sleep 60",
        "b-long-2": "--ignore-term --sleep 60",
        "b-long-3": f"--ignore-term --spawn bg --child-ignore-term --child-pidfile {pids / 'b-long-3.child'} --sleep 60",
        "b-long-4": f"--spawn daemon --child-ignore-term --child-pidfile {pids / 'b-long-4.child'} --sleep 60",
    }
    for name, args in long_args.items():
        files[f"{name}/test.yaml"] = f"cmd: {proc_cmd(marker, '--pidfile', pids / name, args)}\n"
    for name in LATER:
        files[f"{name}/test.yaml"] = "cmd: echo later\n"
    files["d-dependent/test.yaml"] = "depends: [b-long-1]\ncmd: echo dependent\n"
    write_suite(root, files)
    return [*DONE, *LONG, *LATER, "d-dependent"]


def start_and_wait_for_long_commands(root, out, pids: Path, marker: str, own_group=False) -> Launched:
    launched = Launched(root, out, "-j", "4", own_group=own_group)
    expected = [pids / name for name in LONG] + [pids / "b-long-3.child", pids / "b-long-4.child"]
    started = wait_for(lambda: all(p.exists() for p in expected), 30)
    if not started:
        launched.kill()
    assert started, f"the long commands never all started\n{launched.stdout}\n{launched.stderr}"
    # The quick ones finished before the long ones took their slots.
    assert wait_for(lambda: len(result_files(out)) >= len(DONE), 10)
    assert len(marked_processes(marker)) >= 6  # sanity: the scan sees them
    return launched


def check_interrupted_run(out, names, launched: Launched, code: int, marker: str) -> dict:
    assert code == launched.proc.returncode
    index = load_index(out)
    assert index["complete"] is True
    assert index["interrupted"] is True
    assert_one_result_each(index, out, names)
    got = statuses(index)
    for name in DONE:
        assert got[name] == ("PASS", None)
    for name in LONG:
        assert got[name] == ("ERROR", "INTERRUPTED"), (name, got[name])
    for name in LATER:
        assert got[name] == ("SKIP", "INTERRUPTED"), (name, got[name])
    assert got["d-dependent"] == ("SKIP", "DEPENDENCY")
    for name in names:  # every result file is valid
        load_result(out, name, index)
    no_traceback(launched.stdout, launched.stderr)
    assert survivors(marker, within=2.0) == {}
    return index


@pytest.mark.parametrize(
    "sig, own_group",
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-to-the-process-group"],
)
def test_interrupt_stops_gracefully_and_reports_everything(tmp_path, marker, pids, sig, own_group):
    """Ctrl-C (or SIGTERM): running commands get SIGTERM, those that ignore
    it SIGKILL after the grace; exit 128+signal; every testcase has one
    result. With own_group the signal goes to the run's whole process
    group, as a terminal's Ctrl-C does (workers included)."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    names = interrupt_suite(root, marker, pids)
    launched = start_and_wait_for_long_commands(root, out, pids, marker, own_group)
    signalled = time.monotonic()
    if own_group:
        os.killpg(launched.pid, sig)
    else:
        os.kill(launched.pid, sig)
    code = launched.wait(60)
    took = time.monotonic() - signalled
    print(f"interrupted by {signal.Signals(sig).name}: stopped {took:.2f} s after the signal")
    assert code == 128 + sig, launched.stdout + launched.stderr
    check_interrupted_run(out, names, launched, code, marker)
    # Commands ignoring SIGTERM are given the grace, then killed.
    assert GRACE * 0.75 <= took <= GRACE * 3, f"the interrupted run took {took:.2f} s to stop"
    assert "ERROR b-long-2 [INTERRUPTED]" in launched.stdout


def test_second_interrupt_kills_at_once(tmp_path, marker, pids):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    names = interrupt_suite(root, marker, pids)
    launched = start_and_wait_for_long_commands(root, out, pids, marker)
    signalled = time.monotonic()
    os.kill(launched.pid, signal.SIGINT)
    time.sleep(0.3)
    os.kill(launched.pid, signal.SIGINT)
    code = launched.wait(60)
    took = time.monotonic() - signalled
    print(f"two interrupts: stopped {took:.2f} s after the first, {took - 0.3:.2f} s after the second")
    assert code == 130, launched.stdout + launched.stderr
    assert "second interrupt" in launched.stderr
    check_interrupted_run(out, names, launched, code, marker)
    # The first interrupt alone takes the whole grace (see above).
    assert took < 0.3 + GRACE / 2, f"the run took {took:.2f} s to stop after two interrupts"


# -- 7. hostile input --------------------------------------------------------------------
BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
cmd: 'true'
"""

# name: (test.yaml content, reason, line or None, what the message says)
HOSTILE = {
    "bad-syntax": ("cmd: 'true'\ntags: [unclosed\n", "SPEC", None, "YAML syntax error"),
    "bad-types": ("cmd: 'true'\ntimeout: soon\n", "SPEC", 2, "timeout"),
    "bad-types-2": ("cmd: 42\n", "SPEC", 1, "expected a string or a list"),
    "bad-misspelt": ("cmd: 'true'\ndescripton: hello\n", "SPEC", 2, "unknown key 'descripton'; did you mean 'description'?"),
    "bad-driver": ("cmd: 'true'\ndriver: nosuch\n", "SPEC", 2, "unknown driver 'nosuch'"),
    "bad-no-baseline": ("driver: diff\ncmd: echo hi\n", "SPEC", None, "baseline 'test.out' does not exist"),
    "bad-escape": ("driver: diff\ncmd: cat /etc/passwd\nbaseline: ../../../etc/passwd\n", "SPEC", 3, "outside the suite directory"),
    "bad-depends": ("cmd: 'true'\ndepends: [no-such-test]\n", "SPEC", 2, "unknown testcase 'no-such-test'"),
    "bad-cycle-a": ("cmd: 'true'\ndepends: [bad-cycle-b]\n", "SPEC", 2, "dependency cycle"),
    "bad-cycle-b": ("cmd: 'true'\ndepends: [bad-cycle-a]\n", "SPEC", 2, "dependency cycle"),
    "bad-bomb": (BILLION_LAUGHS, "SPEC", None, "expands to more than"),
    "bad-binary": (bytes(range(256)) * 4 + b"\0cmd: true\n", "SPEC", None, "NUL"),
    "bad-utf8": (b"cmd: 'true'\ndescription: caf\xe9 \xff\n", "SPEC", 2, "not valid UTF-8"),
    "bad-duplicate": ("cmd: 'true'\ncmd: 'false'\n", "SPEC", 2, "duplicate key 'cmd'"),
    "bad-empty": ("", "SPEC", None, "nothing to run"),
    "bad-list": ("- cmd: 'true'\n", "SPEC", 1, "expected a mapping"),
}


def hostile_suite(root, marker) -> None:
    files = helper_files(marker)
    for name, (content, *_rest) in HOSTILE.items():
        files[f"{name}/test.yaml"] = content
    files.update(
        {
            "good-1/test.yaml": "cmd: echo one\n",
            "good-2/test.yaml": "cmd: [sh, -c, 'test -f data.txt']\n",
            "good-2/data.txt": "data\n",
            "good-diff/test.yaml": "driver: diff\ncmd: cat data.txt\n",
            "good-diff/data.txt": "same\n",
            "good-diff/test.out": "same\n",
            "good-after-bad/test.yaml": "cmd: 'true'\ndepends: [good-1]\n",
        }
    )
    write_suite(root, files)
    # Loops in the tree: a link to an ancestor, a link to itself, a ring.
    os.symlink("..", root / "good-1" / "up")
    os.symlink("..", root / "good-2" / "loop-to-root")
    os.symlink("self", root / "self")
    os.symlink("ring-b", root / "ring-a")
    os.symlink("ring-a", root / "ring-b")


def test_hostile_specs_are_each_an_error_of_their_own(tmp_path, marker):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    hostile_suite(root, marker)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = tree_state(root)
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    run = run_cli(root, out, "-j", "4", cwd=cwd, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert run.returncode == 1, run.stdout + run.stderr
    no_traceback(run.stdout, run.stderr)
    got = statuses(run.index)
    expected_names = set(HOSTILE) | {"good-1", "good-2", "good-diff", "good-after-bad"}
    assert_one_result_each(run.index, out, expected_names)
    for name in ("good-1", "good-2", "good-diff", "good-after-bad"):
        assert got[name] == ("PASS", None), (name, load_result(out, name, run.index))
    for name, (_, reason, line, text) in HOSTILE.items():
        result = load_result(out, name, run.index)
        message = result["message"]
        assert (result["status"], result["reason"]) == ("ERROR", reason), (name, message)
        spec = f"{root / name / 'test.yaml'}:"
        assert message.startswith(spec), (name, message)
        if line is not None:
            assert message.startswith(f"{spec}{line}:"), (name, message)
        assert re.match(rf"{re.escape(spec)}\d+:\d+: ", message), (name, message)
        assert text in message, (name, message)
        assert result.get("traceback") in (None, ""), (name, result["traceback"])
        assert f"ERROR {name} [{reason}]" in run.stdout
    # Nothing was written outside the output directory: not in the suite,
    # not in the current directory, not beside them.
    assert tree_state(root) == before
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*outside_before, "out"])
    assert survivors(marker, within=2.0) == {}


def test_driver_that_raises_is_an_error_with_its_traceback(tmp_path, marker):
    """A suite driver's bug, in fragments() (main process) or run() (a
    worker): ERROR reason DRIVER with the traceback in the result; the run
    itself does not crash and the other testcases pass."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    files = helper_files(marker)
    files["raise-fragments/test.yaml"] = "driver: faulty\noptions: {how: raise-fragments}\ncmd: 'true'\n"
    files["raise-run/test.yaml"] = "driver: faulty\noptions: {how: raise-run}\ncmd: 'true'\n"
    for number in range(6):
        files[f"ok-{number}/test.yaml"] = "driver: faulty\ncmd: echo fine\n"
    write_suite(root, files)
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.index["complete"] is True
    got = statuses(run.index)
    for name in ("raise-fragments", "raise-run"):
        result = load_result(out, name, run.index)
        assert got.pop(name) == ("ERROR", "DRIVER")
        assert f"injected fault in {name.split('-')[1]}()" in result["message"]
        assert "Traceback (most recent call last)" in result["traceback"]
        assert "faulty.py" in result["traceback"]
        assert "RuntimeError: injected fault" in result["traceback"]
    assert set(got.values()) == {("PASS", None)}
    assert "Traceback" not in run.stderr  # the run itself did not crash


def test_suite_directory_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-suite"
    run = run_cli(missing, tmp_path / "out")
    assert run.returncode == 2
    assert str(missing) in run.stderr
    assert "does not exist" in run.stderr
    no_traceback(run.stdout, run.stderr)
    assert run.index is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway: the baseline stays readable")
def test_unreadable_baseline(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "locked/test.yaml": "driver: diff\ncmd: echo hi\n",
            "locked/test.out": "hi\n",
            "ok/test.yaml": "cmd: 'true'\n",
        },
    )
    (root / "locked" / "test.out").chmod(0)
    try:
        run = run_cli(root, out)
    finally:
        (root / "locked" / "test.out").chmod(0o644)
    no_traceback(run.stdout, run.stderr)
    result = load_result(out, "locked", run.index)
    assert (result["status"], result["reason"]) == ("ERROR", "SPEC")
    assert str(root / "locked" / "test.yaml") in result["message"]
    assert "not readable" in result["message"]
    assert statuses(run.index)["ok"] == ("PASS", None)


def test_deeply_nested_spec_is_a_spec_error(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    depth = 1000
    write_suite(root, {"deep/test.yaml": "cmd: " + "[" * depth + "]" * depth + "\n", "ok/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, out)
    assert run.index is not None, f"exit {run.returncode}, no index: {run.stderr[-1000:]}"
    assert statuses(run.index) == {"deep": ("ERROR", "SPEC"), "ok": ("PASS", None)}
    assert load_result(out, "deep", run.index)["message"].startswith(f"{root / 'deep' / 'test.yaml'}:")
    no_traceback(run.stdout, run.stderr)


def test_very_deeply_nested_spec_does_not_crash_the_run(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    depth = 100_000
    write_suite(root, {"deep/test.yaml": "cmd: " + "[" * depth + "]" * depth + "\n", "ok/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, out)
    assert run.returncode == 1, f"exit {run.returncode}: {run.stderr[-500:]}"
    assert statuses(run.index) == {"deep": ("ERROR", "SPEC"), "ok": ("PASS", None)}
    no_traceback(run.stdout, run.stderr)


def test_custom_driver_import_writes_nothing_into_the_suite(tmp_path, marker):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    write_suite(root, {**helper_files(marker), "t/test.yaml": "driver: faulty\ncmd: echo fine\n"})
    before = tree_state(root)
    env = cli_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's ordinary environment
    proc = subprocess.run(cli_argv(root, out), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = tree_state(root)
    assert after == before, f"written into the suite: {sorted(set(after) - set(before))}"


# A Ctrl-C that arrives at a chosen moment of publishing results: the run's
# ReportIndex is wrapped to send SIGINT to its own process right after the
# result of testcase INJECT_AT is recorded (after-add) or right after its
# result file is written, before its index entry (mid-add).
INJECT_INTERRUPT = r"""
import os, signal, sys
import run_testsuite.index as index
trigger, where = os.environ["INJECT_AT"], os.environ["INJECT_WHERE"]
add, write_json = index.ReportIndex.add, index.write_new
def patched_add(self, result, safe_name, *rest):
    add(self, result, safe_name, *rest)
    if where == "after-add" and result.name == trigger:
        os.kill(os.getpid(), signal.SIGINT)
def patched_write_json(path, data):
    write_json(path, data)
    if where == "mid-add" and data.get("name") == trigger and os.sep + "results" + os.sep in path:
        os.kill(os.getpid(), signal.SIGINT)
index.ReportIndex.add, index.write_new = patched_add, patched_write_json
from run_testsuite.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize(
    "trigger, where", [("b-fail", "after-add"), ("b-fail", "mid-add"), ("a-bad1", "after-add")],
    ids=["after-add", "mid-add", "early"],
)
def test_interrupt_while_publishing_loses_no_result(tmp_path, trigger, where):
    root, out = tmp_path / "suite", tmp_path / "out"
    files = {"b-fail/test.yaml": "cmd: 'false'\n", "c-ok/test.yaml": "cmd: 'true'\n"}
    for number in range(1, 6):
        files[f"a-bad{number}/test.yaml"] = "cmdd: 'true'\n"
        files[f"d-dep{number}/test.yaml"] = "cmd: 'true'\ndepends: [b-fail]\n"
    write_suite(root, files)
    argv = [PYTHON, "-c", INJECT_INTERRUPT, str(root), "-o", str(out), "-j", "1"]
    launched = Launched(root, out, argv=argv, env={"INJECT_AT": trigger, "INJECT_WHERE": where})
    code = launched.wait(60)
    assert code == 130, launched.stdout + launched.stderr
    no_traceback(launched.stdout, launched.stderr)
    index = load_index(out)
    assert index["complete"] is True and index["interrupted"] is True
    assert_one_result_each(index, out, [name.split("/")[0] for name in files])


# -- 4. kill -9 of the main process --------------------------------------------------
FAILED_EARLY = ["a-fail-1", "a-fail-2"]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """The interrupt suite plus two quick failures, at -j 4; once the long
    commands run, the main process gets SIGKILL. Returns what is needed to
    judge the aftermath; every marked process is killed at the end."""
    tmp_path = tmp_path_factory.mktemp("killed")
    marker = new_marker()
    pids = tmp_path / "pids"
    pids.mkdir()
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    names = interrupt_suite(root, marker, pids)
    write_suite(root, {f"{name}/test.yaml": "cmd: echo failing; exit 1\n" for name in FAILED_EARLY})
    finished = [*DONE, *FAILED_EARLY]
    try:
        launched = Launched(root, out, "-j", "4")
        expected = [pids / name for name in LONG] + [pids / "b-long-3.child", pids / "b-long-4.child"]
        assert wait_for(lambda: all(p.exists() for p in expected), 30), launched.stdout + launched.stderr
        assert wait_for(lambda: len(result_files(out)) >= len(finished), 10)
        # The workers (forked: their argv is the main process's) and the commands.
        running = marked_processes(marker)
        workers = [pid for pid, cmd in running.items() if "run_testsuite" in cmd and pid != launched.pid]
        os.kill(launched.pid, signal.SIGKILL)
        killed = time.monotonic()
        launched.wait(10)
        left = survivors(marker, within=GRACE * 3 + 4)
        gone_after = time.monotonic() - killed
        print(f"kill -9: {len(running)} processes were running, {len(workers)} of them workers; "
              f"{len(left)} left; all gone {gone_after:.2f} s after the kill")
        yield {
            "out": out, "names": names + FAILED_EARLY, "finished": finished, "workers": workers,
            "running": running, "left": left, "gone_after": gone_after, "launched": launched,
        }
    finally:
        kill_marked(marker)


def test_kill_9_keeps_finished_results_on_disk(killed_run):
    out = killed_run["out"]
    files = {}
    for path in result_files(out):
        files[path.name] = validate_result(read_json(path), str(path))
    on_disk = {result["name"]: result for result in files.values()}
    for name in killed_run["finished"]:
        assert name in on_disk, f"the finished result of {name} is not on disk"
    assert {on_disk[name]["status"] for name in DONE} == {"PASS"}
    assert {on_disk[name]["status"] for name in FAILED_EARLY} == {"FAIL"}
    assert not set(on_disk) & set(LONG), "a running testcase got a result after the kill?"
    index = validate_index(read_json(out / "new" / "_index.json"))
    assert index["complete"] is False
    assert {entry["name"] for entry in index["results"]} <= set(on_disk)


def test_kill_9_leaves_no_process_behind(killed_run):
    assert len(killed_run["workers"]) == 4, killed_run["running"]
    assert len(killed_run["running"]) >= 4 + 6  # workers + the commands and their children
    assert killed_run["left"] == {}, f"still running after the main process was killed: {killed_run['left']}"
    # The workers stop their commands (SIGTERM, SIGKILL after the grace) and exit.
    assert killed_run["gone_after"] < GRACE * 3


def test_kill_9_report_rebuilds_the_index(killed_run):
    if not Path(__file__).resolve().parent.parent.joinpath("suite", "report_cmd.py").exists():
        pytest.skip("suite/report_cmd.py (run-testsuite report) is not there yet")
    out = killed_run["out"]
    proc = subprocess.run(
        [PYTHON, "-m", "run_testsuite", "report", str(out)], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    no_traceback(proc.stdout, proc.stderr)
    for name in FAILED_EARLY:
        assert f"FAIL  {name}" in proc.stdout or f"FAIL {name}" in proc.stdout, proc.stdout
    assert "did not finish" in proc.stdout
    assert re.search(r"^5 testcases: 3 passed, 2 failed", proc.stdout, re.M), proc.stdout
    index = validate_index(read_json(out / "new" / "_index.json"))
    assert {entry["name"] for entry in index["results"]} == set(killed_run["finished"])
    assert index["complete"] is False


# -- 5. output ------------------------------------------------------------------------
BIG = 200_000_000
HEAD, TAIL = 8 * 1024, 24 * 1024

# Runs argv and writes the peak resident set (KiB) of its process tree:
# RUSAGE_CHILDREN covers every descendant waited for, the run's main
# process, its workers and their commands alike.
PEAK_RSS = r"""
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as handle:
    handle.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def test_huge_output_in_bounded_memory(tmp_path, marker):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    write_suite(
        root,
        {
            **helper_files(marker, driver=False),
            "huge/test.yaml": f"cmd: head -c {BIG} /dev/zero | tr '\\0' x; echo; echo the-end\n",
            "small/test.yaml": "cmd: echo small\n",
        },
    )
    peak_file = tmp_path / "peak"
    argv = [PYTHON, "-c", PEAK_RSS, str(peak_file), *cli_argv(root, out, "-j", "2")]
    launched = Launched(root, out, argv=argv)
    assert launched.wait(120) == 0, launched.stdout + launched.stderr
    peak_mb = int(peak_file.read_text()) / 1024
    print(f"{BIG / 1e6:.0f} MB of output: peak RSS of the run {peak_mb:.1f} MB, {launched.elapsed:.2f} s")
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB for {BIG / 1e6:.0f} MB of output"
    index = load_index(out)
    assert statuses(index) == {"huge": ("PASS", None), "small": ("PASS", None)}
    result = load_result(out, "huge", index)
    total = BIG + len("\nthe-end\n")
    cut = total - HEAD - TAIL
    assert result["output"].startswith("x" * HEAD + f"\n[... {cut} bytes cut")
    assert result["output"].endswith("x" * (TAIL - 9) + "\nthe-end\n")
    assert len(result["output"]) < 64 * 1024
    [log] = result["log_files"]
    assert os.path.getsize(log) == total
    with open(log, "rb") as handle:
        chunk, xs = 1 << 20, b"x" * (1 << 20)
        for _ in range(BIG // chunk):
            assert handle.read(chunk) == xs
        assert handle.read() == b"x" * (BIG % chunk) + b"\nthe-end\n"


BINARY = b"\xff\xfe\x00abc\x80\n\xc3("


def test_binary_output_is_kept_byte_for_byte(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    octal = "".join(f"\\{byte:03o}" for byte in BINARY)
    write_suite(
        root,
        {
            "shell/test.yaml": f"cmd: printf '{octal}'\n",
            # diff: equal bytes pass; bytes that differ fail even where both
            # decode to the same replacement character (\xff vs \xfe).
            "diff-same/test.yaml": f"driver: diff\ncmd: printf '{octal}'\n",
            "diff-same/test.out": BINARY,
            "diff-other/test.yaml": f"driver: diff\ncmd: printf '{octal}'\n",
            "diff-other/test.out": BINARY.replace(b"\xff", b"\xfe", 1),
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert statuses(run.index) == {
        "shell": ("PASS", None),
        "diff-same": ("PASS", None),
        "diff-other": ("FAIL", "DIFF"),
    }
    result = load_result(out, "shell", run.index)
    assert result["output"] == BINARY.decode("utf-8", "replace")
    [log] = result["log_files"]
    assert Path(log).read_bytes() == BINARY
    no_traceback(run.stdout, run.stderr)


def test_binary_mismatch_says_what_differs(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    octal = "".join(f"\\{byte:03o}" for byte in BINARY)
    write_suite(
        root,
        {
            "diff-other/test.yaml": f"driver: diff\ncmd: printf '{octal}'\n",
            "diff-other/test.out": BINARY.replace(b"\xff", b"\xfe", 1),
        },
    )
    run = run_cli(root, out)
    result = load_result(out, "diff-other", run.index)
    assert (result["status"], result["reason"]) == ("FAIL", "DIFF")
    assert result["diff"].strip() or "byte" in result["message"], result


# -- 6. --tee ------------------------------------------------------------------------
TEE_LINE = re.compile(r"^\[(?P<name>[^\]]+)\] (?P<tag>[a-z-]+):(?P<i>\d{6}):(?P<pad>(?:abcdefghij)*):end$")
RUN_LINE = re.compile(r"^(|\d+ testcases?: .* in \d+\.\d\d s|report index: .*)$")


def test_tee_lines_are_never_mixed(tmp_path, marker):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    counts = {"fast-a": 4000, "fast-b": 4000, "pieces-a": 60, "pieces-b": 60}
    files = helper_files(marker, driver=False)
    for name, lines in counts.items():
        mode = "pieces" if name.startswith("pieces") else "fast"
        files[f"{name}/test.yaml"] = f"cmd: {talk_cmd(marker, name, lines, mode)}\n"
    files["unterminated/test.yaml"] = "cmd: printf 'first\\nno newline at the end'\n"
    write_suite(root, files)
    launched = Launched(root, out, "-j", "5", "--tee")
    assert launched.wait(60) == 0, launched.stdout + launched.stderr
    seen: dict[str, list[int]] = {name: [] for name in counts}
    other = []
    for line in launched.stdout.split("\n"):
        match = TEE_LINE.match(line)
        if match:
            name = match["name"]
            assert match["tag"] == name, f"a line of {match['tag']} shown as {name}'s: {line!r}"
            number = int(match["i"])
            assert len(match["pad"]) == 10 * (number % 13), f"a line cut or mixed: {line!r}"
            seen[name].append(number)
        elif line.startswith("[unterminated] "):
            other.append(line)
        else:
            assert RUN_LINE.match(line), f"neither a run-testsuite line nor an intact [name] line: {line!r}"
    for name, lines in counts.items():
        assert seen[name] == list(range(lines)), f"{name}: lines missing, repeated or out of order"
    assert other == ["[unterminated] first", "[unterminated] no newline at the end"]
    no_traceback(launched.stdout, launched.stderr)
    # The concurrent testcases really overlapped.
    index = load_index(out)
    spans = {e["name"]: (e["start"], e["start"] + e["duration"]) for e in index["results"]}
    assert spans["fast-a"][0] < spans["fast-b"][1] and spans["fast-b"][0] < spans["fast-a"][1]
    assert spans["pieces-a"][0] < spans["pieces-b"][1] and spans["pieces-b"][0] < spans["pieces-a"][1]


def test_a_command_that_writes_into_its_workers_pipes_is_its_own_crash(tmp_path):
    """Junk written into the worker's pipes (through /proc/$PPID/fd) used to
    leave the run waiting on that worker until its watchdog, and once blamed
    the next testcase; now it is the writer's ERROR (CRASH), at once."""
    attack = "for f in /proc/$PPID/fd/*; do case $(readlink $f) in pipe:*) echo junk > $f;; esac; done; exit 1"
    root = write_suite(tmp_path / "s", {"a-evil/test.yaml": f"cmd: '{attack}'\n", "b-innocent/test.yaml": "cmd: echo fine\n"})
    began = time.monotonic()
    run = run_cli(root, tmp_path / "out", "-j", "1", "--timeout", "60")
    assert time.monotonic() - began < 30  # not the watchdog's timeout + 30 s
    assert statuses(run.index) == {"a-evil": ("ERROR", "CRASH"), "b-innocent": ("PASS", None)}, run.stdout
    assert "the worker's channel to run-testsuite was corrupted" in run.stdout
