"""--cleanup passed|all|none: which work directories a run leaves behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import run_cli, start_cli, statuses, wait_for, write_suite

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


def test_passed_directories_go_while_the_run_goes_on(tmp_path):
    """Workers remove passed testcases' directories as they take new work,
    not only at the end."""
    quick = {f"q{n}/test.yaml": "cmd: 'true'\n" for n in range(12)}
    go = tmp_path / "go"
    slow = f"touch started; n=0; while [ ! -e {go} ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n"
    root = write_suite(tmp_path / "suite", {**quick, "slow/test.yaml": f"cmd: {json.dumps(slow)}\n"})
    out = tmp_path / "out"
    proc = start_cli(root, out, "-j", "2")
    work = out / "new" / "work"
    try:
        assert wait_for(lambda: (work / "slow" / "started").exists(), 30)
        # The quick ones pass on the other slot; most are removed while slow
        # waits. Each fragment sent carries one, so the last few passes wait
        # (for fragments sent before they were known) until the end.
        results = out / "new" / "results"
        assert wait_for(lambda: len(list(results.glob("q*.json"))) == 12, 25)
        assert wait_for(lambda: len(left(work) & {f"q{n}" for n in range(12)}) <= 4, 10), left(work)
        assert proc.poll() is None
        go.touch()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert left(work) == set()


def test_empty_passed_directories_become_spares_up_to_the_pool(tmp_path, monkeypatch):
    """An empty passed directory is renamed to be a spare (no rmdir now, no
    mkdir later), up to SPARE_POOL of them; the rest, and any directory
    with something in it, are removed."""
    from run_testsuite import workdir
    from run_testsuite.runner import STATE

    root = tmp_path / "work"
    (root / "passed-full" / "sub").mkdir(parents=True)
    (root / "passed-full" / "sub" / "f").write_text("x")
    empties = [root / f"passed-empty-{n}" for n in range(workdir.SPARE_POOL + 2)]
    for path in empties:
        path.mkdir()
    inodes = {path.stat().st_ino for path in empties}
    # A test made its directory read-only: removed, never the next testcase's.
    (root / "passed-read-only").mkdir()
    (root / "passed-read-only").chmod(0o555)
    monkeypatch.setattr(STATE, "spares", [])
    # (taken from the end: the read-only one comes first, while the pool has room)
    discard = [str(root / "passed-full")] + [str(path) for path in empties] + [str(root / "passed-read-only")]
    monkeypatch.setattr(STATE, "discard", discard)
    workdir.make_spare(str(root))
    assert len(STATE.spares) == workdir.SPARE_POOL
    assert {os.stat(spare).st_ino for spare in STATE.spares} <= inodes  # renamed, not made
    assert sorted(os.listdir(root)) == sorted(os.path.basename(spare) for spare in STATE.spares)
    # Each is taken in turn as a work directory; then one is made anew.
    for n in range(workdir.SPARE_POOL):
        workdir.prepare_work_dir(None, str(root / f"t{n}"))
        assert (root / f"t{n}").stat().st_ino in inodes
    assert STATE.spares == []
    workdir.make_spare(str(root))
    # Made anew: not one of those taken (the removed ones' inodes may be reused).
    taken = {(root / f"t{n}").stat().st_ino for n in range(workdir.SPARE_POOL)}
    assert len(STATE.spares) == 1 and os.stat(STATE.spares[0]).st_ino not in taken
    workdir.discard_spare()
    assert STATE.spares == [] and not any(name.startswith(".spare-") for name in os.listdir(root))


def test_a_spare_a_test_planted_files_in_is_not_the_next_work_directory(tmp_path):
    """Spares wait in the work root, where a test can write: the next
    testcase must still start in an empty directory."""
    plant = "for d in ../.spare-*; do [ -d \"$d\" ] && echo planted > \"$d/planted\"; done; true"
    files = {"a-planter/test.yaml": f"cmd: {json.dumps(plant)}\n"}
    files.update({f"b-next{n}/test.yaml": "cmd: 'test -z \"$(ls -A)\"'\n" for n in range(4)})
    root = write_suite(tmp_path / "suite", files)
    run = run_cli(root, tmp_path / "out", "-j", "1")
    assert set(statuses(run.index).values()) == {("PASS", None)}, run.stdout
