"""--cleanup passed|all|none: which work directories a run leaves behind."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import children_of, process_alive, run_cli, start_cli, statuses, wait_for, write_suite

SUITE = {
    "suite.yaml": "setup:\n  build:\n    cmd: echo built > product\n",
    "pass/test.yaml": "cmd: echo data > made.txt\n",
    "pass/input.txt": "x\n",
    "uses-build/test.yaml": 'needs: [build]\ncmd: grep built "$SETUP_BUILD_DIR/product"\n',
    "fail/test.yaml": "cmd: echo evidence > left.txt; exit 1\n",
    "known/test.yaml": "cmd: exit 1\ncontrol:\n  - xfail: cpus > 0\n    reason: known bug\n",
    "readonly/test.yaml": "cmd: mkdir -p locked/deeper && touch locked/deeper/f && chmod 500 locked/deeper locked\n",
}


def left(work: Path) -> set[str]:
    return {p.name for p in work.iterdir() if not p.name.startswith(".")} if work.exists() else set()


def test_passed_work_directories_go_and_the_others_stay(tmp_path):
    root = write_suite(tmp_path / "suite", SUITE)
    out = tmp_path / "out"
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == 1
    results = statuses(run.index)
    assert results["uses-build"] == ("PASS", None)  # the set-up's directory was there while it ran
    assert results["readonly"] == ("PASS", None)
    work = out / "new" / "work"
    assert left(work) == {"fail", "known"}
    assert (work / "fail" / "left.txt").read_text() == "evidence\n"
    assert not run.stderr.strip(), run.stderr  # read-only directories were no obstacle
    assert (out / "new" / "results" / "pass.json").is_file()  # results stay


def test_cleanup_all_and_none(tmp_path):
    root = write_suite(tmp_path / "suite", SUITE)
    out = tmp_path / "out"
    run_cli(root, out, "-j", "2", "--cleanup", "all")
    assert left(out / "new" / "work") == set()
    run = run_cli(root, out, "-j", "2", "--cleanup", "none")
    assert left(out / "new" / "work") == {"pass", "uses-build", "fail", "known", "readonly", "setup_build"}
    assert statuses(run.index)["pass"] == ("PASS", None)


def test_a_retried_testcase_keeps_its_directory_until_it_passes(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "flaky/test.yaml": "retries: 2\ncmd: 'n=$(cat ../count 2>/dev/null || echo 0); echo $((n+1)) > ../count; test $n -ge 1'\n"
        },
    )
    out = tmp_path / "out"
    run = run_cli(root, out)
    assert statuses(run.index)["flaky"] == ("PASS", None)
    assert left(out / "new" / "work") == {"count"}


def test_a_work_directory_replaced_by_a_link_is_not_followed(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine\n")
    root = write_suite(
        tmp_path / "suite",
        {"sly/test.yaml": f"cmd: cd .. && rm -rf sly && ln -s {precious} sly\n"},
    )
    out = tmp_path / "out"
    run = run_cli(root, out, "--cleanup", "all")
    assert statuses(run.index)["sly"] == ("PASS", None)
    assert (precious / "keep.txt").read_text() == "mine\n"
    assert os.path.islink(out / "new" / "work" / "sly")
    assert "could not remove 1 work directory" in run.stderr and "a test replaced it" in run.stderr
    assert run.returncode == 0  # a warning, never a failure


def test_cached_and_skipped_testcases_have_nothing_to_remove(tmp_path):
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n"})
    out = tmp_path / "out"
    run_cli(root, out, "--incremental")
    run = run_cli(root, out, "--incremental")
    assert {s for s, _ in statuses(run.index).values()} == {"PASS"}
    assert run.returncode == 0 and not run.stderr.strip()


def test_the_cleanup_helper_ends_with_a_killed_run(tmp_path):
    root = write_suite(
        tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: touch started; sleep 30\n"}
    )
    out = tmp_path / "out"
    proc = start_cli(root, out, "-j", "2")
    try:
        assert wait_for(lambda: (out / "new" / "work" / "b" / "started").exists(), 20)
        helpers = [
            pid
            for pid in children_of(proc.pid)
            if b"run_testsuite.cleanup" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(helpers) == 1
        assert wait_for(lambda: not (out / "new" / "work" / "a").exists(), 10)  # removed while b runs
        proc.kill()
        proc.communicate(timeout=30)
        assert wait_for(lambda: not process_alive(helpers[0]), 10), "the cleanup helper outlived the run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
