"""Discovery: which directories are testcases, and what they are called."""

from __future__ import annotations

import os

import pytest

from conftest import load_result, run_cli, statuses, write_suite
from run_testsuite.discovery import discover

PASS = 'cmd: "true"\n'


def names_of(root, **kwargs) -> list[str]:
    return [found.name for found in discover(str(root), **kwargs)]


def listed(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.strip()]


def test_nested_testcases_are_named_relative_with_slashes_in_sorted_order(paths):
    root, out = paths
    write_suite(
        root,
        {
            "zeta/test.yaml": PASS,
            "b/test.yaml": PASS,
            "a/test.yaml": PASS,
            "a/x/y/z/test.yaml": PASS,
            "a/x/test.yaml": PASS,
            "a-b/test.yaml": PASS,
            "a/data/input.txt": "not a testcase\n",
            "empty/dir/readme": "nothing\n",
        },
    )
    expected = ["a", "a-b", "a/x", "a/x/y/z", "b", "zeta"]
    assert names_of(root) == expected == sorted(expected)
    found = {f.name: f for f in discover(str(root))}
    assert found["a/x/y/z"].directory == str(root / "a" / "x" / "y" / "z")
    assert found["a/x/y/z"].spec_file == str(root / "a" / "x" / "y" / "z" / "test.yaml")

    listing = run_cli(root, out, "--list")
    assert listing.returncode == 0
    assert listed(listing.stdout) == expected

    run = run_cli(root, out, "-j", "2")
    assert run.returncode == 0
    assert sorted(statuses(run.index)) == expected
    assert set(statuses(run.index).values()) == {("PASS", None)}


def test_order_is_deterministic_whatever_the_creation_order(tmp_path):
    names = ["m", "c", "x/b", "x/a", "a", "q/z/y"]
    roots = []
    for number, order in enumerate([names, list(reversed(names))]):
        root = tmp_path / f"suite{number}"
        write_suite(root, {f"{name}/test.yaml": PASS for name in order})
        roots.append(root)
    first, second = names_of(roots[0]), names_of(roots[1])
    assert first == second == ["a", "c", "m", "q/z/y", "x/a", "x/b"]


def test_hidden_version_control_and_cache_directories_are_skipped(paths):
    root, out = paths
    write_suite(
        root,
        {
            "ok/test.yaml": PASS,
            ".hidden/t/test.yaml": PASS,
            ".git/test.yaml": PASS,
            ".git/objects/t/test.yaml": PASS,
            "CVS/t/test.yaml": PASS,
            "__pycache__/t/test.yaml": PASS,
            "node_modules/pkg/test.yaml": PASS,
            "ok/.cache/t/test.yaml": PASS,
            "deep/er/.svn/test.yaml": PASS,
        },
    )
    assert names_of(root) == ["ok"]
    listing = run_cli(root, out, "--list")
    assert listed(listing.stdout) == ["ok"]


def test_symlinked_directory_is_followed(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(tmp_path / "elsewhere", {"t/test.yaml": 'cmd: echo "name=$TEST_NAME"\n'})
    write_suite(root, {"a/test.yaml": PASS})
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert names_of(root) == ["a", "linked/t"]
    run = run_cli(root, out)
    assert run.returncode == 0, run.stdout
    assert statuses(run.index) == {"a": ("PASS", None), "linked/t": ("PASS", None)}
    assert load_result(out, "linked/t", run.index)["output"] == "name=linked/t\n"


def test_a_directory_reached_twice_is_visited_once(paths):
    root, _ = paths
    write_suite(root, {"a/test.yaml": PASS, "a/sub/test.yaml": PASS})
    (root / "z-alias").symlink_to(root / "a", target_is_directory=True)
    # The first name in sorted order wins: 'a' before 'z-alias'.
    assert names_of(root) == ["a", "a/sub"]


def test_symlink_loops_do_not_hang(paths):
    root, out = paths
    write_suite(root, {"a/test.yaml": PASS, "b/c/test.yaml": PASS})
    (root / "a" / "up").symlink_to("..", target_is_directory=True)  # a/up -> root
    (root / "b" / "c" / "self").symlink_to(".", target_is_directory=True)  # b/c/self -> b/c
    (root / "b" / "c" / "sibling").symlink_to("../../a", target_is_directory=True)
    assert names_of(root) == ["a", "b/c"]
    run = run_cli(root, out, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(run.index) == {"a": ("PASS", None), "b/c": ("PASS", None)}


def test_symlink_to_itself_is_ignored(paths):
    root, out = paths
    write_suite(root, {"a/test.yaml": PASS})
    (root / "self").symlink_to("self")  # dangling: resolving it loops
    (root / "ring1").symlink_to("ring2")
    (root / "ring2").symlink_to("ring1")
    run = run_cli(root, out, timeout=60)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 0
    assert statuses(run.index) == {"a": ("PASS", None)}


def test_output_directory_inside_the_suite_is_not_rediscovered(paths):
    root, _ = paths
    out = root / "out"
    # The command leaves a test.yaml in its work copy: a careless walk of
    # the suite would find it there as a testcase.
    write_suite(root, {"t/test.yaml": "cmd: |\n  echo 'cmd: \"true\"' > test.yaml\n", "u/v/test.yaml": PASS})
    first = run_cli(root, out, "--cleanup", "none")
    assert first.returncode == 0
    assert sorted(statuses(first.index)) == ["t", "u/v"]
    assert (out / "new" / "work" / "t" / "test.yaml").is_file()
    second = run_cli(root, out, "--cleanup", "none")
    assert second.returncode == 0
    assert sorted(statuses(second.index)) == ["t", "u/v"]
    assert (out / "old" / "work" / "t" / "test.yaml").is_file()
    listing = run_cli(root, out, "--list")
    assert listed(listing.stdout) == ["t", "u/v"]


def test_work_directory_inside_the_suite_is_not_rediscovered(paths):
    root, out = paths
    work = root / "scratch"
    write_suite(root, {"t/test.yaml": "cmd: |\n  echo 'cmd: \"true\"' > test.yaml\n"})
    for _ in range(2):
        run = run_cli(root, out, "--work-dir", work, "--cleanup", "none")
        assert run.returncode == 0
        assert list(statuses(run.index)) == ["t"]
    assert (work / "t" / "test.yaml").is_file()


def test_exclude_takes_real_paths(tmp_path):
    root = write_suite(tmp_path / "suite", {"t/test.yaml": PASS, "gen/x/test.yaml": PASS})
    (tmp_path / "alias").symlink_to(root / "gen", target_is_directory=True)
    assert names_of(root, exclude=(str(tmp_path / "alias"),)) == ["t"]


def test_spec_in_root_makes_the_root_a_single_testcase(tmp_path):
    root = write_suite(tmp_path / "single", {"test.yaml": 'cmd: echo "I am $TEST_NAME"\n', "data.txt": "x\n"})
    out = tmp_path / "out"
    assert names_of(root) == ["single"]
    run = run_cli(root, out)
    assert run.returncode == 0, run.stdout
    assert statuses(run.index) == {"single": ("PASS", None)}
    assert load_result(out, "single", run.index)["output"] == "I am single\n"


def test_a_directory_named_like_a_spec_is_a_testcase_that_cannot_be_read(paths):
    # Found, so that it is an ERROR naming it (see test_edges), never a
    # testcase gone without a word; nothing below it is searched.
    root, _ = paths
    write_suite(root, {"real/test.yaml": PASS, "odd/test.yaml/inner/test.yaml": PASS})
    assert names_of(root) == ["odd", "real"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable directories")
def test_unreadable_directory_is_skipped(paths):
    root, _ = paths
    write_suite(root, {"a/test.yaml": PASS, "locked/t/test.yaml": PASS})
    os.chmod(root / "locked", 0)
    try:
        assert names_of(root) == ["a"]
    finally:
        os.chmod(root / "locked", 0o755)


def test_a_dangling_test_yaml_in_the_root_is_the_roots_testcase(paths):
    root, _ = paths
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.yaml").symlink_to("/nonexistent/test.yaml")
    assert names_of(root) == [root.name]  # found, so that it is an error naming it
