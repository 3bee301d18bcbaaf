"""depends: ordering, skips, unknown names, cycles, and selection."""

from __future__ import annotations

import pytest

from conftest import load_result, run_cli, statuses, write_suite


def test_dependency_runs_first_and_dependent_sees_its_effect(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    marker = tmp_path / "marker"
    write_suite(
        root,
        {
            # Without the dependency, 'b' would start at once beside 'a' (-j 2)
            # and find no marker.
            "a/test.yaml": f"cmd: sleep 0.4 && echo from-a > {marker}\n",
            "b/test.yaml": f"depends: [a]\ncmd: cat {marker}\n",
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert statuses(run.index) == {"a": ("PASS", None), "b": ("PASS", None)}
    a, b = load_result(out, "a", run.index), load_result(out, "b", run.index)
    assert b["output"] == "from-a\n"
    assert b["start"] >= a["start"] + a["duration"] - 0.01
    assert [e["name"] for e in run.index["results"]] == ["a", "b"]


def test_dependent_starts_after_the_last_step_of_a_multi_step_dependency(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    log = tmp_path / "log"
    write_suite(
        root,
        {
            "a/test.yaml": f"""
                steps:
                  - cmd: echo a1 >> {log}
                  - cmd: sleep 0.3 && echo a2 >> {log}
                  - cmd: echo a3 >> {log}
            """,
            "b/test.yaml": f"depends: [a]\ncmd: echo b >> {log}\n",
            "c/test.yaml": f"depends: [b]\ncmd: echo c >> {log}\n",
        },
    )
    run = run_cli(root, out, "-j", "3")
    assert set(statuses(run.index).values()) == {("PASS", None)}
    assert log.read_text().split() == ["a1", "a2", "a3", "b", "c"]


def test_failed_dependency_skips_dependents_transitively(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    ran = tmp_path / "ran"
    write_suite(
        root,
        {
            "a/test.yaml": "cmd: exit 1\n",
            "b/test.yaml": f"depends: [a]\ncmd: touch {ran}-b\n",
            "c/test.yaml": f"depends: [b]\ncmd: touch {ran}-c\n",
            "d/test.yaml": f"depends: [c, e]\ncmd: touch {ran}-d\n",
            "e/test.yaml": "cmd: echo independent\n",
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert statuses(run.index) == {
        "a": ("FAIL", "EXIT_CODE"),
        "b": ("SKIP", "DEPENDENCY"),
        "c": ("SKIP", "DEPENDENCY"),
        "d": ("SKIP", "DEPENDENCY"),
        "e": ("PASS", None),
    }
    assert load_result(out, "b", run.index)["message"] == "not run: dependency 'a' did not pass (FAIL)"
    assert load_result(out, "c", run.index)["message"] == "not run: dependency 'b' did not pass (SKIP)"
    assert load_result(out, "d", run.index)["message"] == "not run: dependency 'c' did not pass (SKIP)"
    for name in "bcd":
        res = load_result(out, name, run.index)
        assert res["commands"] == [] and res["output"] == "" and res["start"] == 0
        assert not (tmp_path / f"ran-{name}").exists()
    assert run.index["counts"] == {"PASS": 1, "FAIL": 1, "XFAIL": 0, "XPASS": 0, "SKIP": 3, "ERROR": 0}
    assert run.returncode == 1
    assert "SKIP  b [DEPENDENCY]: not run: dependency 'a' did not pass (FAIL)\n" in run.stdout


def test_dependency_with_a_spec_error_skips_its_dependent(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"a/test.yaml": "cmd: [\n", "b/test.yaml": "depends: [a]\ncmd: 'true'\n"})
    run = run_cli(root, out)
    assert statuses(run.index) == {"a": ("ERROR", "SPEC"), "b": ("SKIP", "DEPENDENCY")}
    assert load_result(out, "b", run.index)["message"] == "not run: dependency 'a' did not pass (ERROR)"


def test_unknown_dependency_is_a_spec_error(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "a/test.yaml": "cmd: 'true'\n",
            "b/test.yaml": "cmd: 'true'\ndepends: [a, zzz, a/nope]\n",
        },
    )
    run = run_cli(root, out)
    assert statuses(run.index) == {"a": ("PASS", None), "b": ("ERROR", "SPEC")}
    spec = root / "b" / "test.yaml"
    assert load_result(out, "b", run.index)["message"] == (
        f"{spec}:2:10: depends on unknown testcase 'zzz', 'a/nope'"
    )
    assert run.returncode == 1


CYCLES = {
    "two/a/test.yaml": "cmd: touch ran\ndepends: [two/b]\n",
    "two/b/test.yaml": "cmd: touch ran\ndepends: [two/a]\n",
    "three/a/test.yaml": "cmd: touch ran\ndepends: [three/b]\n",
    "three/b/test.yaml": "cmd: touch ran\ndepends: [three/c]\n",
    "three/c/test.yaml": "cmd: touch ran\ndepends: [three/a]\n",
    "self/test.yaml": "cmd: touch ran\ndepends: [self]\n",
    "behind/test.yaml": "cmd: touch ran\ndepends: [two/a]\n",
    "free/test.yaml": "cmd: echo free\n",
}
CYCLE_TEXT = {
    "two/a": "dependency cycle: two/a -> two/b -> two/a",
    "two/b": "dependency cycle: two/a -> two/b -> two/a",
    "three/a": "dependency cycle: three/a -> three/b -> three/c -> three/a",
    "three/b": "dependency cycle: three/a -> three/b -> three/c -> three/a",
    "three/c": "dependency cycle: three/a -> three/b -> three/c -> three/a",
}


@pytest.fixture(scope="module")
def cycle_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cycles")
    root, out = base / "suite", base / "out"
    write_suite(root, CYCLES)
    return root, out, run_cli(root, out, "-j", "2")


def test_cycles_never_run_and_are_reported(cycle_run):
    root, out, run = cycle_run
    found = statuses(run.index)
    assert found["free"] == ("PASS", None)
    assert found["behind"] == ("SKIP", "DEPENDENCY")
    assert run.returncode == 1
    for name in ["two/a", "two/b", "three/a", "three/b", "three/c", "self", "behind"]:
        assert found[name][0] in ("ERROR", "SKIP")
        assert load_result(out, name, run.index)["commands"] == []
        assert not (out / "new" / "work" / name.replace("/", "__") / "ran").exists()
    # Each cycle is named, in full, at least once, with the position of 'depends'.
    for first, text in [("two/a", CYCLE_TEXT["two/a"]), ("three/a", CYCLE_TEXT["three/a"])]:
        spec = root / first / "test.yaml"
        assert found[first] == ("ERROR", "SPEC")
        assert load_result(out, first, run.index)["message"] == f"{spec}:2:10: {text}"


def test_self_dependency_is_a_cycle(cycle_run):
    root, out, run = cycle_run
    assert statuses(run.index)["self"] == ("ERROR", "SPEC")
    spec = root / "self" / "test.yaml"
    assert load_result(out, "self", run.index)["message"] == f"{spec}:2:10: dependency cycle: self -> self"


@pytest.mark.parametrize("name", ["two/b", "three/b", "three/c"])
def test_every_member_of_a_cycle_is_an_error_naming_the_cycle(cycle_run, name):
    root, out, run = cycle_run
    spec = root / name / "test.yaml"
    assert statuses(run.index)[name] == ("ERROR", "SPEC")
    assert load_result(out, name, run.index)["message"] == f"{spec}:2:10: {CYCLE_TEXT[name]}"


def test_selecting_a_testcase_runs_its_dependencies(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "base/test.yaml": "cmd: echo base\n",
            "mid/test.yaml": "depends: [base]\ncmd: echo mid\n",
            "top/test.yaml": "depends: [mid]\ncmd: echo top\n",
            "other/test.yaml": "cmd: echo other\n",
            "unrelated/test.yaml": "depends: [base]\ncmd: echo unrelated\n",
        },
    )
    run = run_cli(root, out, names=["top"])
    assert run.returncode == 0, run.stdout
    assert statuses(run.index) == {"base": ("PASS", None), "mid": ("PASS", None), "top": ("PASS", None)}
    assert run.index["counts"]["PASS"] == 3
    listing = run_cli(root, out, "--list", names=["top"])
    assert sorted(listing.stdout.splitlines()) == ["base  [shell]", "mid  [shell]  depends: base", "top  [shell]  depends: mid"]


def test_selected_testcase_is_skipped_when_an_unselected_dependency_fails(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "dep/test.yaml": "cmd: exit 2\n",
            "want/test.yaml": "depends: [dep]\ncmd: echo want\n",
        },
    )
    run = run_cli(root, out, names=["want"])
    assert statuses(run.index) == {"dep": ("FAIL", "EXIT_CODE"), "want": ("SKIP", "DEPENDENCY")}
    assert run.returncode == 1
