"""Nothing lost at the edges: names that are not UTF-8, result files that
cannot be written, a full disk. Each case was seen to lose results (or
crash the run) before; here every result is accounted for, what could not
be written is said, and the exit status is not 0."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import load_result, report, run_cli, statuses, write_suite

EXIT_UNRECORDED = 3


def test_names_that_are_not_utf8_survive(tmp_path):
    root = write_suite(tmp_path / "suite", {"ok/test.yaml": "cmd: 'true'\n", "zz/test.yaml": "cmd: 'false'\n"})
    odd = os.path.join(os.fsencode(root), b"a\xff")
    os.mkdir(odd)
    with open(os.path.join(odd, b"test.yaml"), "w") as handle:
        handle.write("cmd: 'false'\n")
    out = tmp_path / "out"
    run = run_cli(root, out, "-j", "2", "--junit-xml", tmp_path / "junit.xml")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    # The name shows the byte it could not decode; the directory is still found.
    assert statuses(run.index) == {"ok": ("PASS", None), "a\\xff": ("FAIL", "EXIT_CODE"), "zz": ("FAIL", "EXIT_CODE")}
    assert run.index["complete"] is True
    result = load_result(out, "a\\xff", run.index)
    assert os.fsencode(result["spec_file"]) == os.path.join(odd, b"test.yaml")
    assert "FAIL  a\\xff [EXIT_CODE]" in run.stdout
    assert (out / "new" / "report.html").stat().st_size > 0
    assert b"a\\xff" in (tmp_path / "junit.xml").read_bytes()
    later = report(out)
    assert later.returncode == 0 and "a\\xff" in later.stdout, later.stderr
    # The name selects it, as printed.
    again = run_cli(root, tmp_path / "out2", names=["a\\xff"])
    assert statuses(again.index) == {"a\\xff": ("FAIL", "EXIT_CODE")}


def test_a_result_file_that_cannot_be_written_is_said_and_fails_the_run(tmp_path):
    """A test that attacks its runner: it puts a directory where its own
    result file will go. Its verdict stays in the index, every other result
    is written, and the run says what it lost."""
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "attacker/test.yaml": f"cmd: mkdir {out}/new/results/attacker.json\n",
            "after/test.yaml": "cmd: 'true'\ndepends: [attacker]\n",
            **{f"t{n}/test.yaml": "cmd: 'true'\n" for n in range(5)},
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == EXIT_UNRECORDED, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "results/attacker.json (attacker): EISDIR" in run.stderr
    index = run.index
    assert index["complete"] is True
    assert statuses(index) == {name: ("PASS", None) for name in ["attacker", "after", *(f"t{n}" for n in range(5))]}
    (entry,) = [e for e in index["results"] if e["name"] == "attacker"]
    assert entry["unwritten"].startswith("EISDIR")
    assert any("attacker.json" in problem for problem in index["write_errors"])
    for name in ["after", "t0", "t4"]:
        load_result(out, name, index)


def mount_tmpfs(mount, size: str) -> None:
    """A tmpfs of ``size`` at ``mount`` (root only: the test is skipped otherwise)."""
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"rts-{uuid.uuid4().hex[:8]}", str(mount)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): this test needs root")


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs, mounted for the test (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mount_tmpfs(mount, "512k")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_a_full_disk_gives_errors_naming_it_and_no_traceback(tmp_path, small_disk):
    root = write_suite(
        tmp_path / "suite",
        {f"t{n:02}/test.yaml": "cmd: python3 -c \"print('x' * 40000)\"\n" for n in range(30)},
    )
    out = small_disk / "out"
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == EXIT_UNRECORDED, run.stdout + run.stderr
    text = run.stdout + run.stderr
    assert "Traceback" not in text and "exited unexpectedly" not in text
    assert "[SYSTEM]: the run could not go on here: no space left on device (ENOSPC)" in run.stdout
    assert "of the run's record could not be written" in run.stderr and "ENOSPC" in run.stderr
    if "the index is NOT written" in run.stderr:  # then first, with how to make it once there is room
        assert run.stderr.split("could not be written", 1)[1].split("\n")[1].startswith("  _index.json: ENOSPC")
        assert f"`run-testsuite report {out} --rebuild` makes the index" in run.stderr
    # Whatever result file exists is whole: none was left empty or cut.
    for path in (out / "new" / "results").glob("*.json"):
        assert path.stat().st_size > 0
        assert Path(path).read_text().endswith("}")


def test_a_testcase_that_cannot_be_copied_is_a_system_error_naming_the_work_directory(tmp_path, small_disk):
    root = write_suite(tmp_path / "suite", {"big/test.yaml": "cmd: 'true'\n", "small/test.yaml": "cmd: 'true'\n"})
    (root / "big" / "data.bin").write_bytes(b"x" * 2 * 2**20)  # more than the work directory's disk holds
    work = small_disk / "work"
    run = run_cli(root, tmp_path / "out", "--work-dir", work, "-j", "1")
    assert "Traceback" not in run.stdout + run.stderr
    assert statuses(run.index) == {"big": ("ERROR", "SYSTEM"), "small": ("PASS", None)}
    assert "the testcase could not be copied into its work directory: no space left on device (ENOSPC)" in run.stdout
    assert f"writing {work}/big" in run.stdout, run.stdout


def test_special_files_in_a_testcase_never_block(tmp_path):
    """A FIFO (reading it waits for a writer forever), a socket and a device
    node in a testcase directory: listed, validated, keyed and copied
    without opening them."""
    import socket
    import sys

    root = write_suite(tmp_path / "suite", {"t/test.yaml": "cmd: ls -l\n", "u/test.yaml": "cmd: 'true'\n"})
    os.mkfifo(root / "t" / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "t" / "sock"))
    if os.geteuid() == 0:
        os.mknod(root / "t" / "null", 0o666 | 0o020000, os.makedev(1, 3))
    try:
        out = tmp_path / "out"
        for args in (["--list"], ["--incremental"], ["--incremental"]):
            run = run_cli(root, out, *args, timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
        assert statuses(run.index) == {"t": ("PASS", "CACHED"), "u": ("PASS", "CACHED")}
        checked = subprocess.run([sys.executable, "-m", "run_testsuite", "validate", str(root)],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr
        # The run before the cached one listed its work directory: the FIFO
        # was made anew there; a socket is not copied.
        listing = (out / "old" / "results" / "t.json").read_text()
        assert "pipe" in listing and "sock" not in listing
    finally:
        listener.close()


@pytest.mark.parametrize("value", ["99999999999999999999", ".inf", ".nan", "-.inf"])
@pytest.mark.parametrize("where", ["testcase", "step", "suite"])
def test_a_timeout_the_clock_cannot_hold_is_a_spec_error(tmp_path, value, where):
    files = {"ok/test.yaml": "cmd: 'true'\n"}
    if where == "testcase":
        files["t/test.yaml"] = f"cmd: 'true'\ntimeout: {value}\n"
    elif where == "step":
        files["t/test.yaml"] = f"steps:\n  - cmd: 'true'\n    timeout: {value}\n"
    else:
        files["suite.yaml"] = f"defaults:\n  timeout: {value}\n"
        files["t/test.yaml"] = "cmd: 'true'\n"
    root = write_suite(tmp_path / "suite", files)
    run = run_cli(root, tmp_path / "out", timeout=60)
    assert "Traceback" not in run.stderr
    if where == "suite":  # an invalid suite.yaml is a usage error
        assert run.returncode == 2 and "suite.yaml:2:" in run.stderr, run.stderr
        return
    assert run.returncode == 1, run.stdout + run.stderr
    assert statuses(run.index) == {"ok": ("PASS", None), "t": ("ERROR", "SPEC")}


def test_the_longest_timeout_runs_and_a_drivers_infinite_one_is_held(tmp_path):
    """A year is allowed; a Command a driver makes with inf or NaN runs
    with the longest timeout instead of crashing the worker or the loop."""
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "drivers:\n  endless: d/endless.py:Endless\n",
            "d/endless.py": """
                from run_testsuite.api import Command, Driver

                class Endless(Driver):
                    def fragments(self, test):
                        fragments = super().fragments(test)
                        fragments[0].commands = [Command("true", 0, float("inf")), Command("true", 0, float("nan"))]
                        return fragments
            """,
            "year/test.yaml": "cmd: 'true'\ntimeout: 31536000\n",
            "endless/test.yaml": "driver: endless\ncmd: 'true'\n",
        },
    )
    for mode in ([], ["--no-multiprocessing"]):
        run = run_cli(root, tmp_path / "out", *mode, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert statuses(run.index) == {"year": ("PASS", None), "endless": ("PASS", None)}


@pytest.mark.parametrize("value", ["inf", "nan", "0", "1e10"])
def test_an_impossible_timeout_option_is_a_usage_error(tmp_path, value):
    root = write_suite(tmp_path / "suite", {"t/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, tmp_path / "out", "--timeout", value)
    assert run.returncode == 2 and "--timeout: must be more than 0 and at most 31536000" in run.stderr


# -- one output directory, one run; outputs checked before anything runs -----------
def test_a_second_run_on_a_busy_output_directory_is_refused(tmp_path):
    import time

    from conftest import read_json, start_cli, wait_for

    root = write_suite(tmp_path / "suite", {"slow/test.yaml": "cmd: sleep 3\n", "fails/test.yaml": "cmd: 'false'\n"})
    out = tmp_path / "out"
    first = start_cli(root, out, "-q")
    try:
        index_file = out / "new" / "_index.json"
        assert wait_for(lambda: index_file.exists() and "fails" in index_file.read_text(), 30)
        second = run_cli(root, out)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"{out} is in use by another run (pid {first.pid}, started " in second.stderr
        # report on the running directory reads it, and leaves its index alone.
        before = index_file.read_bytes()
        during = report(out)
        assert "a run is still going there" in during.stderr
        assert index_file.read_bytes() == before
    finally:
        stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 1, stdout + stderr
    final = read_json(out / "new" / "_index.json")
    assert final["complete"] and {e["name"]: e["status"] for e in final["results"]} == {"slow": "PASS", "fails": "FAIL"}
    # Free again once the first run is gone (the lock dies with its holder).
    started = time.monotonic()
    assert run_cli(root, out, "fails").returncode == 1 and time.monotonic() - started < 60


@pytest.mark.parametrize(
    "option, message",
    [
        (["--junit-xml", "/nonexistent/dir/j.xml"], "--junit-xml file /nonexistent/dir/j.xml: no directory /nonexistent/dir"),
        (["-o", "{file}"], "output directory {file} cannot be written"),
        (["--work-dir", "{file}/work"], "work directory {file}/work cannot be written"),
        (["--list-json", "/nonexistent/dir/l.json"], "--list-json file /nonexistent/dir/l.json: no directory"),
    ],
    ids=["junit", "output", "work", "list-json"],
)
def test_impossible_output_paths_are_usage_errors_before_anything_runs(tmp_path, option, message):
    marker = tmp_path / "ran"
    root = write_suite(tmp_path / "suite", {"t/test.yaml": f"cmd: touch {marker}\n"})
    a_file = tmp_path / "a-file"
    a_file.write_text("in the way\n")
    option = [part.replace("{file}", str(a_file)) for part in option]
    out = tmp_path / "out"
    args = [*option] if option[0] == "-o" else ["-o", str(out), *option]
    import sys

    proc = subprocess.run([sys.executable, "-m", "run_testsuite", str(root), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message.replace("{file}", str(a_file)) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (out / "new").exists()


def test_a_report_that_fails_at_the_end_keeps_the_rest(tmp_path):
    """The --junit-xml directory was there at the start; a test removes it."""
    reports = tmp_path / "reports"
    reports.mkdir()
    root = write_suite(tmp_path / "suite", {"vandal/test.yaml": f"cmd: rm -r {reports}\n", "t/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    run = run_cli(root, out, "--junit-xml", reports / "junit.xml")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "2 testcases: 2 passed" in run.stdout  # the summary is there
    assert f"{reports}/junit.xml (--junit-xml): ENOENT" in run.stderr
    assert run.index["complete"] and (out / "new" / "report.html").exists()


# -- what a test may leave in the output directory -------------------------------------
def test_a_pickle_left_in_the_output_directory_is_never_loaded(tmp_path):
    """The output directory is writable by tests: a spec cache there that
    unpickles into code would run it in the next run."""
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    root = write_suite(tmp_path / "suite", {"t/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "spec-cache.pickle").write_bytes(pickle.dumps(("key", Payload())))
    for _ in range(2):
        run = run_cli(root, out)
        assert run.returncode == 0, run.stdout + run.stderr
    assert not marker.exists()
    assert not (out / "spec-cache.pickle").exists()  # the legacy file is removed, unread


@pytest.mark.parametrize("name", ["history.sqlite", "spec-cache.json"])
def test_a_corrupt_history_or_spec_cache_is_set_aside_and_the_run_goes_on(tmp_path, name):
    root = write_suite(tmp_path / "suite", {"t/test.yaml": "cmd: 'true'\n", "f/test.yaml": "cmd: 'false'\n"})
    out = tmp_path / "out"
    assert run_cli(root, out).returncode == 1
    (out / name).write_bytes(os.urandom(4096))
    run = run_cli(root, out, "--failed")
    assert "Traceback" not in run.stderr
    assert f"warning: {out / name}: the " in run.stderr and "set aside as" in run.stderr
    assert list(out.glob(f"{name}.corrupt-*")), os.listdir(out)
    if name == "history.sqlite":  # a history set aside knows of no run: nothing is known to have failed
        assert run.returncode == 5 and "--failed: no earlier run is recorded" in run.stderr
    else:  # a spec cache set aside only costs time
        assert run.returncode == 1 and statuses(run.index) == {"f": ("FAIL", "EXIT_CODE")}
    again = run_cli(root, out)  # and the run after records anew, without a word
    assert again.returncode == 1 and "warning" not in again.stderr



@pytest.mark.parametrize(
    "args, names, said",
    [
        (["-k", "nothing"], [], "no testcase selected by -k 'nothing' (of 2 testcase directories in "),
        (["--tag", "zz"], [], "no testcase selected by --tag 'zz' (of 2 testcase directories in "),
        ([], ["nope*"], "no testcase selected by names 'nope*' (of 2 testcase directories in "),
        (["-k", "a", "--failed"], [], "--failed: no earlier run is recorded"),
    ],
    ids=["keyword", "tag", "names", "keyword-failed"],
)
def test_a_selection_of_nothing_exits_5_before_anything_runs(tmp_path, args, names, said):
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    run = run_cli(root, out, *args, names=names)
    assert run.returncode == 5, run.stdout + run.stderr
    assert said in run.stderr and "0 testcases" not in run.stdout
    assert not out.exists()


def test_an_empty_suite_says_so_and_failed_with_nothing_to_rerun_exits_0(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_cli(empty, tmp_path / "out")
    assert run.returncode == 5 and "no testcase in " in run.stderr
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n"})
    assert run_cli(root, tmp_path / "out").returncode == 0
    run = run_cli(root, tmp_path / "out", "--failed")
    assert run.returncode == 0 and "--failed: nothing to run again, nothing failed last time" in run.stdout


def test_a_matrix_past_the_limit_is_a_spec_error_not_an_exhausted_memory(tmp_path):
    hundred = ", ".join(str(n) for n in range(100))
    root = write_suite(
        tmp_path / "suite",
        {
            "big/test.yaml": f"cmd: 'true'\nmatrix:\n  a: [{hundred}]\n  b: [{hundred}]\n  c: [{hundred}]\n",
            "fits/test.yaml": "cmd: 'true'\nmatrix:\n  a: [1, 2, 3]\n",
            "ok/test.yaml": "cmd: 'true'\n",
        },
    )
    run = run_cli(root, tmp_path / "out", timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    found = statuses(run.index)
    assert found.pop("big") == ("ERROR", "SPEC") and len(found) == 4
    assert "makes 1000000 variants, more than max_variants (10000" in load_result(tmp_path / "out", "big", run.index)["message"]
    # The limit is the suite's to set; --repeat counts.
    write_suite(root, {"suite.yaml": "max_variants: 5\n"})
    again = run_cli(root, tmp_path / "out2", "--repeat", "2")
    assert {n for n, s in statuses(again.index).items() if s == ("ERROR", "SPEC")} == {"big", "fits"}


@pytest.mark.parametrize(
    "field, value",
    [("duration", "slow"), ("message", 5), ("start", [1]), ("slot", "one"), ("tags", "t"), ("attempts", 1.5),
     ("status", 7), ("commands", "x")],
)
def test_rebuild_skips_result_files_with_wrong_field_types(tmp_path, field, value):
    import json

    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    assert run_cli(root, out).returncode == 0
    path = out / "new" / "results" / "a.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    run = report(out, "--rebuild")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "skipped results/a.json: unreadable" in run.stderr
    assert "1 testcase: 1 passed" in run.stdout


def test_tee_stays_linear_and_bounded_on_a_line_without_end():
    """50 MB with no newline: shown in marked pieces, memory bounded (the
    whole line was held and concatenated before: quadratic, unbounded)."""
    import io
    import tracemalloc

    from run_testsuite.reports.tee import LINE_LIMIT, Tee

    out = io.StringIO()
    tee = Tee(out)
    tee.feed("a", b"one")
    tee.feed("b", b"x\ny")
    tee.feed("a", b" two\nthree")
    tee.flush("a")
    tee.flush("b")
    assert out.getvalue() == "[b] x\n[a] one two\n[a] three\n[b] y\n"
    out = io.StringIO()
    tee = Tee(out)
    tracemalloc.start()
    try:
        for _ in range(800):
            tee.feed("big", b"x" * 65536)
            shown = out.getvalue().count("[big]")
            out.seek(0)
            out.truncate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * LINE_LIMIT + (1 << 20)
    tee.feed("big", b"end\n")
    assert out.getvalue().endswith("end\n") and shown >= 1


# -- links a test plants ---------------------------------------------------------------
def test_a_spare_directory_replaced_by_a_link_is_never_followed(tmp_path):
    """The worker keeps empty directories (`../.spare-PID-N`) ready for the
    next testcase's work directory; a test replaces it with a link to a
    directory of its choosing. The next testcase must not be copied into,
    nor run in, what the link points to."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    attack = (
        "while :; do for s in ../.spare-$PPID-*; do [ -d $s ] && break 2; done; sleep 0.01; done; "
        f"rmdir $s && ln -s {elsewhere} $s"
    )
    files = {"a-attacker/test.yaml": f"cmd: '{attack}'\n"}
    files.update({f"b-victim{n}/test.yaml": "cmd: 'touch made-here; test ! -L $TEST_WORK_DIR'\n" for n in range(3)})
    files.update({f"b-victim{n}/data.txt": "data\n" for n in range(3)})
    root = write_suite(tmp_path / "suite", files)
    run = run_cli(root, tmp_path / "out", "-j", "1", "--cleanup", "none")
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(elsewhere.iterdir()) == []
    for n in range(3):
        work = tmp_path / "out" / "new" / "work" / f"b-victim{n}"
        assert not work.is_symlink() and (work / "made-here").exists() and (work / "data.txt").exists()


def test_a_baseline_linking_out_of_the_suite_is_refused(tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("hello\n")
    root = write_suite(tmp_path / "suite", {"t/test.yaml": "driver: diff\ncmd: echo hello\n"})
    (root / "t" / "test.out").symlink_to(outside)
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"t": ("ERROR", "SPEC")}
    assert f"baseline 'test.out' is a link out of the suite directory (to {outside})" in run.stdout


def test_rewrite_never_writes_through_a_link_out_of_the_suite(tmp_path):
    """A test replaces its own baseline with a link to a file outside the
    suite while it runs, and fails on its output: --rewrite must refuse."""
    outside = tmp_path / "precious"
    outside.write_text("keep me\n")
    root = write_suite(
        tmp_path / "suite",
        {
            "t/test.yaml": f"driver: diff\ncmd: ln -sf {outside} $TEST_SOURCE_DIR/test.out; echo changed\n",
            "t/test.out": "original\n",
            "u/test.yaml": "driver: diff\ncmd: echo new\n",
            "u/test.out": "old\n",
        },
    )
    run = run_cli(root, tmp_path / "out", "--rewrite")
    assert outside.read_text() == "keep me\n"
    assert "is a link out of the suite" in run.stderr and "not written through" in run.stderr
    assert (root / "u" / "test.out").read_text() == "new\n"  # the others are still rewritten
    assert "--rewrite: 1 baseline changed" in run.stdout


def test_ctrl_c_while_workers_start_prints_no_traceback(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group, workers being
    forked included. The run's index is written just before its workers
    are forked: interrupted from then on, at moments spread over their
    start, nothing prints a traceback."""
    import signal
    import time

    from conftest import cli_argv, cli_env

    root = write_suite(tmp_path / "suite", {f"t{n:02}/test.yaml": "cmd: sleep 1\n" for n in range(32)})
    for attempt in range(16):
        out = tmp_path / f"out{attempt}"
        proc = subprocess.Popen(cli_argv(root, out, "-j", "16"), env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        index = out / "new" / "_index.json"
        deadline = time.monotonic() + 30
        while not index.exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(attempt * 0.001)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, (attempt, stderr)
        assert proc.returncode == 130, (attempt, proc.returncode, stdout, stderr)


def test_failed_with_no_history_is_nothing_selected_not_a_silent_pass(tmp_path):
    root = write_suite(tmp_path / "s", {"a/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, tmp_path / "misspelt", "--failed")
    assert run.returncode == 5, run.stdout + run.stderr
    assert "--failed: no earlier run is recorded" in run.stderr
    assert run_cli(root, tmp_path / "out").returncode == 0
    run = run_cli(root, tmp_path / "out", "-k", "a", "--failed")  # recorded, and nothing failed
    assert run.returncode == 5 and "no testcase selected by -k 'a' and --failed" in run.stderr, run.stderr


def test_a_spec_by_another_name_is_named_not_lost_in_silence(tmp_path):
    root = write_suite(tmp_path / "s", {"a/test.yml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n",
                                        "b/data/Test.yaml": "not a spec: inside testcase b\n"})
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 0
    assert f"{root}/a/test.yml:1:1: warning: not read: a testcase's spec is named test.yaml" in run.stderr
    assert "Test.yaml" not in run.stderr  # a file inside a testcase is its own business
    (root / "b" / "test.yaml").unlink()
    (root / "b" / "data" / "Test.yaml").unlink()
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 5 and f"{root}/a/test.yml is not read: rename it test.yaml" in run.stderr


def test_a_testcase_whose_name_is_taken_is_an_error_not_dropped(tmp_path):
    root = tmp_path / "s"
    write_suite(root, {
        "suite.yaml": "setup:\n  build: {cmd: 'true'}\n",
        "m/test.yaml": "matrix: {opt: [O0, O2]}\ncmd: echo $opt\n",
        "m[opt=O2]/test.yaml": "cmd: exit 1\n",  # the name of m's second variant
        "setup:build/test.yaml": "cmd: exit 1\n",  # the name of the set-up
        "n/test.yaml": "cmd: 'true'\nneeds: [build]\n",
        "dep/test.yaml": "cmd: 'true'\ndepends: ['m[opt=O2]']\n",  # queues that name again
    })
    # Two directories whose names are alike once the byte that is not UTF-8 is escaped.
    for name in (b"a\xff", b"a\\xff"):
        directory = os.path.join(os.fsencode(root), name)
        os.mkdir(directory)
        with open(os.path.join(directory, b"test.yaml"), "w") as handle:
            handle.write("cmd: exit 1\n")
    run = run_cli(root, tmp_path / "out")
    assert run.returncode == 1, run.stdout + run.stderr
    found = statuses(run.index)
    assert found["m[opt=O0]"] == found["m[opt=O2]"] == found["n"] == found["setup:build"] == ("PASS", None)
    assert found["m[opt=O2] (2)"] == ("ERROR", "SPEC") and found["setup_build (2)"] == ("ERROR", "SPEC")
    assert found["a\\xff"] == ("FAIL", "EXIT_CODE") and found["a\\xff (2)"] == ("ERROR", "SPEC")
    assert len(run.index["results"]) == 9  # every directory has its verdict, once
    assert "the name 'm[opt=O2]' is also that of the testcase of" in run.stdout
    assert "the name 'setup:build' begins with 'setup:', which names the set-ups" in run.stdout


def test_long_names_have_file_names_a_file_system_takes(tmp_path):
    deep = "a" * 130 + "/" + "b" * 130
    root = write_suite(tmp_path / "s", {
        f"{deep}/test.yaml": "cmd: 'true'\n",
        "flags/test.yaml": "matrix: {cflags: ['" + " ".join(f"-Wflag-number-{n}" for n in range(20)) + "']}\n"
                           "steps:\n  - name: '" + "s" * 300 + "'\n    cmd: echo step\n",
    })
    run = run_cli(root, tmp_path / "out", "--cleanup", "none")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {status for status, _ in statuses(run.index).values()} == {"PASS"}
    for entry in run.index["results"]:
        assert (tmp_path / "out" / "new" / entry["result"]).is_file()


def test_a_spec_that_cannot_be_read_is_an_error_not_missing(tmp_path):
    root = write_suite(tmp_path / "s", {"ok/test.yaml": "cmd: 'true'\n"})
    (root / "dir" / "test.yaml").mkdir(parents=True)
    (root / "dangling").mkdir()
    (root / "dangling" / "test.yaml").symlink_to("/nonexistent/test.yaml")
    (root / "loop").mkdir()
    (root / "loop" / "test.yaml").symlink_to("test.yaml")  # itself
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "test.yaml")  # a read would wait for a writer for ever
    (root / "zero").mkdir()
    (root / "zero" / "test.yaml").symlink_to("/dev/zero")  # a read would never end
    run = run_cli(root, tmp_path / "out", timeout=60)
    assert "Traceback" not in run.stderr, run.stderr
    assert statuses(run.index) == {
        "ok": ("PASS", None), "dir": ("ERROR", "SPEC"), "dangling": ("ERROR", "SPEC"), "loop": ("ERROR", "SPEC"),
        "fifo": ("ERROR", "SPEC"), "zero": ("ERROR", "SPEC"),
    }
    assert f"{root}/fifo/test.yaml:1:1: not a regular file: a spec is a YAML file" in run.stdout
    assert f"{root}/loop/test.yaml:1:1: cannot read: Too many levels of symbolic links" in run.stdout


@pytest.mark.skipif(not os.access("/proc/kmsg", os.R_OK), reason="needs a readable /proc/kmsg (root)")
def test_a_pseudo_file_that_never_ends_a_read_does_not_hang_planning(tmp_path):
    # /proc/kmsg is a 'regular' file whose read waits for the next kernel message.
    root = write_suite(tmp_path / "s", {"t/test.yaml": "cmd: 'true'\n"})
    (root / "t" / "log").symlink_to("/proc/kmsg")
    run = run_cli(root, tmp_path / "out", "--incremental", timeout=60)
    assert statuses(run.index) == {"t": ("PASS", None)}


def test_a_second_run_on_a_busy_work_directory_is_refused(tmp_path):
    from conftest import start_cli, wait_for

    root = write_suite(tmp_path / "suite", {"slow/test.yaml": "cmd: sleep 3\n"})
    work = tmp_path / "work"
    first = start_cli(root, tmp_path / "out1", "--work-dir", work)
    try:
        assert wait_for(lambda: (work / "slow").is_dir(), 30)
        second = run_cli(root, tmp_path / "out2", "--work-dir", work)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"{work} is in use by another run (pid {first.pid}, started " in second.stderr
        assert "give each run its own --work-dir" in second.stderr
    finally:
        stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stdout + stderr
    assert run_cli(root, tmp_path / "out2", "--work-dir", work).returncode == 0  # free once it is gone
    # The output directory by another path is this run's own, not another's.
    (tmp_path / "link").symlink_to(tmp_path / "out3")
    (tmp_path / "out3").mkdir()
    assert run_cli(root, tmp_path / "out3", "--work-dir", tmp_path / "link").returncode == 0


def test_files_set_aside_in_one_second_are_all_kept(tmp_path):
    from run_testsuite.outputs import set_aside

    path = tmp_path / "history.sqlite"
    for n in range(3):
        path.write_text(str(n))
        set_aside(str(path), "damaged")
    kept = sorted(p.read_text() for p in tmp_path.glob("history.sqlite.corrupt-*"))
    assert kept == ["0", "1", "2"]  # none overwritten by the next


def test_control_characters_in_a_name_are_shown_escaped(tmp_path):
    root = write_suite(tmp_path / "s", {"ok/test.yaml": "cmd: 'true'\n"})
    for raw in ("two\nlines", "esc\x1b[2Jape", "no\xa0break"):
        (root / raw).mkdir()
        (root / raw / "test.yaml").write_text("cmd: exit 1\n")
    run = run_cli(root, tmp_path / "out")
    # A no-break space is no control character: that name stays as it is.
    assert set(statuses(run.index)) == {"ok", "two\\nlines", "esc\\x1b[2Jape", "no\xa0break"}
    assert "\x1b" not in run.stdout and "FAIL  two\\nlines [EXIT_CODE]" in run.stdout
    again = run_cli(root, tmp_path / "out2", names=["two\\nlines"])  # selected by the name shown
    assert set(statuses(again.index)) == {"two\\nlines"}


def test_an_earlier_run_that_cannot_be_removed_is_said_not_piled_up_in_silence(tmp_path):
    root = write_suite(tmp_path / "s", {"a/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    stuck = out / ".trash-1-1" / "mounted"
    stuck.mkdir(parents=True)
    mount_tmpfs(stuck, "64k")
    try:
        run = run_cli(root, out)
        assert run.returncode == 0
        assert f"warning: an earlier run's directory could not be removed ({out}/.trash-1-1): remove it by hand" \
            in run.stderr, run.stderr
    finally:
        subprocess.run(["umount", "-l", str(stuck)], capture_output=True, timeout=30)
    assert "could not be removed" not in run_cli(root, out).stderr  # gone, once it could go
