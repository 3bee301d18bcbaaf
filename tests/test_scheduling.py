"""End to end: set-up fragments, resource pools, CPU pinning, the failure
policy (--max-failures, -x), history (--failed, --incremental) and
critical-path ordering.

Every test runs the real command line on a small suite. Commands leave
marker files and time stamps in directories passed to them through the
environment of the run (not the spec, so keys stay put); the assertions are
about orders, overlaps and counts, never tight timings.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import PYTHON, entry, load_result, run_cli, statuses, write_suite


# -- helpers -------------------------------------------------------------------
def by_name(index: dict) -> dict[str, dict]:
    names = [e["name"] for e in index["results"]]
    assert len(names) == len(set(names)), f"a testcase has several results: {sorted(names)}"
    return {e["name"]: e for e in index["results"]}


def end_of(item: dict) -> float:
    return item["start"] + item["duration"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def marks_env(tmp_path: Path, *names: str) -> dict[str, str]:
    """Fresh directories for the commands, as environment variables."""
    env = {}
    for name in names:
        directory = tmp_path / name.lower()
        directory.mkdir(exist_ok=True)
        env[name] = str(directory)
    return env


def spec_cmd(cmd: str) -> str:
    """A 'cmd:' line; JSON strings are valid YAML double-quoted scalars."""
    return "cmd: " + json.dumps(cmd) + "\n"


def touch_cmd(extra: str = "") -> str:
    """A command that records that it ran in $MARKS/<test name>."""
    return f'echo ran >> "$MARKS/$(echo "$TEST_NAME" | tr / _)"{extra}'


def ran(marks: Path, name: str) -> int:
    return len(lines(marks / name.replace("/", "_")))


def spec_line_of(text: str, needle: str) -> int:
    """1-based line of ``needle`` in a spec as write_suite writes it."""
    import textwrap

    for number, line in enumerate(textwrap.dedent(text).lstrip("\n").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in spec")


# ==============================================================================
# 1. Set-up fragments
# ==============================================================================
SETUP_SUITE_YAML = """
    name: setups
    setup:
      base:
        description: the base set-up
        cmd: echo run >> "$MARKS/base" && echo base-data > base.txt && echo "base dir=$SETUP_DIR" && echo base says hi
      gen:
        description: needs base, and takes a while
        needs: [base]
        cmd: >-
          echo run >> "$MARKS/gen" &&
          echo "gen dir=$SETUP_DIR cwd=$(pwd)" &&
          echo "gen sees base=$SETUP_BASE_DIR" &&
          cat "$SETUP_BASE_DIR/base.txt" > gen.txt && echo generated >> gen.txt &&
          sleep 0.3 && echo gen says hello
      unused:
        cmd: echo run >> "$MARKS/unused"
      broken:
        cmd: echo run >> "$MARKS/broken"; echo broken says no; exit 3
"""

USE_SPEC = """
    needs: [gen]
    cmd: >-
      echo "dir=$SETUP_GEN_DIR" && grep -qx base-data "$SETUP_GEN_DIR/gen.txt" &&
      grep -qx generated "$SETUP_GEN_DIR/gen.txt" && echo ran >> "$MARKS/users"
"""

BAD_NEEDS_SPEC = """
    description: needs a set-up nobody declared
    needs: [gen, nosuch]
    cmd: "true"
"""


def setup_suite_files() -> dict:
    files = {"suite.yaml": SETUP_SUITE_YAML}
    for number in range(1, 7):
        files[f"use/{number}/test.yaml"] = USE_SPEC
    files["plain/test.yaml"] = spec_cmd(touch_cmd())
    files["needs-broken/one/test.yaml"] = "needs: [broken]\n" + spec_cmd(touch_cmd())
    files["needs-broken/two/test.yaml"] = "needs: [gen, broken]\n" + spec_cmd(touch_cmd())
    files["bad-needs/test.yaml"] = BAD_NEEDS_SPEC
    return files


@pytest.fixture(scope="module")
def setup_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("setups")
    root = write_suite(tmp / "suite", setup_suite_files())
    out = tmp / "out"
    env = marks_env(tmp, "MARKS")
    run = run_cli(root, out, "-j", "2", "--cleanup", "none", env=env)
    return root, out, Path(env["MARKS"]), env, run


def test_setup_runs_once_before_every_testcase_that_needs_it(setup_run):
    root, out, marks, env, run = setup_run
    assert run.returncode == 1, run.stdout + run.stderr  # setup:broken fails
    results = by_name(run.index)
    # Six users, one run of each set-up they need (directly or not).
    assert lines(marks / "gen") == ["run"]
    assert lines(marks / "base") == ["run"]
    assert lines(marks / "users") == ["ran"] * 6
    gen, base = results["setup:gen"], results["setup:base"]
    assert (gen["status"], base["status"]) == ("PASS", "PASS")
    # A set-up needing another starts after it ended; users after both.
    assert gen["start"] >= end_of(base) - 0.01
    for number in range(1, 7):
        use = results[f"use/{number}"]
        assert use["status"] == "PASS", load_result(out, use["name"], run.index)
        assert use["start"] >= end_of(gen) - 0.01, (use, gen)


def test_setup_output_and_directory_are_seen_by_needing_testcases(setup_run):
    root, out, marks, env, run = setup_run
    gen = load_result(out, "setup:gen", run.index)
    base = load_result(out, "setup:base", run.index)
    assert gen["kind"] == "setup" and gen["status"] == "PASS"
    assert "gen says hello" in gen["output"], gen
    assert "base says hi" in base["output"], base
    assert [c["exit_code"] for c in gen["commands"]] == [0]
    assert gen["description"] == "needs base, and takes a while"
    gen_dir = re.search(r"gen dir=(\S+) cwd=(\S+)", gen["output"])
    base_dir = re.search(r"base dir=(\S+)", base["output"]).group(1)
    # SETUP_DIR is where the set-up runs; it is SETUP_<NAME>_DIR for others.
    assert os.path.realpath(gen_dir.group(1)) == os.path.realpath(gen_dir.group(2))
    assert re.search(r"gen sees base=(\S+)", gen["output"]).group(1) == base_dir
    for number in range(1, 7):
        use = load_result(out, f"use/{number}", run.index)
        assert f"dir={gen_dir.group(1)}" in use["output"], use["output"]
    assert Path(gen_dir.group(1), "gen.txt").read_text() == "base-data\ngenerated\n"


def test_failed_setup_skips_its_users_only(setup_run):
    root, out, marks, env, run = setup_run
    results = statuses(run.index)
    assert results["setup:broken"] == ("FAIL", "EXIT_CODE")
    broken = load_result(out, "setup:broken", run.index)
    assert "broken says no" in broken["output"]
    for name in ("needs-broken/one", "needs-broken/two"):
        assert results[name] == ("SKIP", "DEPENDENCY")
        message = load_result(out, name, run.index)["message"]
        assert "setup:broken" in message, message
        assert ran(marks, name) == 0
    assert lines(marks / "broken") == ["run"]
    assert results["plain"] == ("PASS", None)
    # Set-ups nobody selected needs never run.
    assert "setup:unused" not in results
    assert not (marks / "unused").exists()


def test_unknown_setup_in_needs_is_a_spec_error_with_its_line(setup_run):
    root, out, marks, env, run = setup_run
    assert statuses(run.index)["bad-needs"] == ("ERROR", "SPEC")
    message = load_result(out, "bad-needs", run.index)["message"]
    spec = root / "bad-needs" / "test.yaml"
    line = spec_line_of(BAD_NEEDS_SPEC, "needs:")
    assert re.match(rf"{re.escape(str(spec))}:{line}:\d+: ", message), message
    assert "'nosuch'" in message
    assert "'gen'" not in message.split("declares")[0]


def test_setups_run_only_for_the_selection(setup_run, tmp_path):
    root, _, _, _, _ = setup_run
    env = marks_env(tmp_path, "MARKS")
    marks = Path(env["MARKS"])
    # A testcase that needs nothing: no set-up at all.
    run = run_cli(root, tmp_path / "out1", "-j", "2", names=["plain"], env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(run.index) == {"plain": ("PASS", None)}
    assert not any((marks / n).exists() for n in ("base", "gen", "unused", "broken"))
    # One user of gen: gen and what gen needs, nothing else.
    run = run_cli(root, tmp_path / "out2", "-j", "2", names=["use/1"], env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(run.index) == {
        "use/1": ("PASS", None),
        "setup:gen": ("PASS", None),
        "setup:base": ("PASS", None),
    }
    assert lines(marks / "gen") == ["run"] and lines(marks / "base") == ["run"]
    assert not (marks / "broken").exists() and not (marks / "unused").exists()


# ==============================================================================
# 2. Resources
# ==============================================================================
RESOURCE_SUITE_YAML = """
    resources:
      boards: [board-a, board-b]
      licenses: 1
"""

# Each step logs "<name> <step> <board> <time>"; the board's lock directory
# (mkdir is atomic) proves no other testcase holds it, in every step.
BOARD_SPEC = """
    resources: {boards: 1}
    steps:
      - name: claim
        cmd: >-
          mkdir "$LOCKS/$RESOURCE_BOARDS" && echo "$TEST_NAME" > "$LOCKS/$RESOURCE_BOARDS/owner" &&
          echo "$TEST_NAME start $RESOURCE_BOARDS $(date +%s.%N)" >> "$LOGS/$TEST_NAME"
      - name: use
        cmd: >-
          sleep 0.1 && test "$(cat "$LOCKS/$RESOURCE_BOARDS/owner")" = "$TEST_NAME" &&
          echo "$TEST_NAME use $RESOURCE_BOARDS $(date +%s.%N)" >> "$LOGS/$TEST_NAME"
      - name: release
        cmd: >-
          echo "$TEST_NAME end $RESOURCE_BOARDS $(date +%s.%N)" >> "$LOGS/$TEST_NAME" &&
          rm "$LOCKS/$RESOURCE_BOARDS/owner" && rmdir "$LOCKS/$RESOURCE_BOARDS"
"""

LICENSE_SPEC = """
    resources: {licenses: 1}
    cmd: >-
      mkdir "$LOCKS/license" &&
      echo "$TEST_NAME start $RESOURCE_LICENSES $(date +%s.%N)" >> "$LOGS/$TEST_NAME" &&
      sleep 0.2 &&
      echo "$TEST_NAME end $RESOURCE_LICENSES $(date +%s.%N)" >> "$LOGS/$TEST_NAME" &&
      rmdir "$LOCKS/license"
"""


def intervals(logs: Path) -> dict[str, tuple[str, float, float, list[str]]]:
    """{testcase: (member, start, end, members seen in every step)}"""
    found = {}
    for path in logs.iterdir():
        records = [line.split() for line in lines(path)]
        members = [r[2] for r in records]
        stamps = {r[1]: float(r[3]) for r in records}
        found[path.name] = (members[0], stamps["start"], stamps["end"], members)
    return found


def assert_exclusive(spans: list[tuple[float, float, str]]) -> None:
    spans = sorted(spans)
    for (start_a, end_a, a), (start_b, end_b, b) in zip(spans, spans[1:]):
        assert start_b >= end_a, f"{a} ({start_a}..{end_a}) overlaps {b} ({start_b}..{end_b})"


@pytest.fixture(scope="module")
def resource_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resources")
    files = {"suite.yaml": RESOURCE_SUITE_YAML}
    for number in range(1, 9):
        files[f"board-{number}/test.yaml"] = BOARD_SPEC
    for number in range(1, 4):
        files[f"license-{number}/test.yaml"] = LICENSE_SPEC
    root = write_suite(tmp / "suite", files)
    env = marks_env(tmp, "LOCKS", "LOGS")
    run = run_cli(root, tmp / "out", "-j", "4", env=env)
    return run, tmp / "out", Path(env["LOGS"])


def test_board_pool_gives_each_board_to_one_testcase_at_a_time(resource_run):
    run, out, logs = resource_run
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(statuses(run.index).values()) == {("PASS", None)}
    spans = {n: s for n, s in intervals(logs).items() if n.startswith("board-")}
    assert sorted(spans) == [f"board-{n}" for n in range(1, 9)]
    per_board: dict[str, list] = {}
    for name, (board, start, end, members) in spans.items():
        # The same board in every step of a testcase.
        assert members == [board] * 3, (name, members)
        per_board.setdefault(board, []).append((start, end, name))
    assert sorted(per_board) == ["board-a", "board-b"], per_board
    for board, used in per_board.items():
        assert_exclusive(used)


def test_count_pool_serialises_its_users(resource_run):
    run, out, logs = resource_run
    spans = {n: s for n, s in intervals(logs).items() if n.startswith("license-")}
    assert len(spans) == 3
    for name, (member, start, end, members) in spans.items():
        assert members == ["licenses-1", "licenses-1"], (name, members)
    assert_exclusive([(start, end, name) for name, (_, start, end, _) in spans.items()])


BAD_RESOURCES = {
    "suite.yaml": """
        resources:
          boards: [board-a, board-b]
          licenses: 1
        setup:
          rig:
            resources: {licenses: 2}
            cmd: "true"
    """,
    "too-many/test.yaml": """
        description: asks for more boards than there are
        resources:
          boards: 3
        cmd: echo ran >> "$MARKS/too-many"
    """,
    "unknown-pool/test.yaml": """
        resources:
          boards: 1
          gpus: 1
        cmd: echo ran >> "$MARKS/unknown-pool"
    """,
    "needs-rig/test.yaml": """
        needs: [rig]
        cmd: echo ran >> "$MARKS/needs-rig"
    """,
    "fine/test.yaml": """
        resources: {boards: 2}
        cmd: echo "$RESOURCE_BOARDS" >> "$MARKS/fine"
    """,
}


def test_impossible_or_unknown_resources_are_spec_errors_not_hangs(tmp_path):
    root = write_suite(tmp_path / "suite", BAD_RESOURCES)
    env = marks_env(tmp_path, "MARKS")
    marks = Path(env["MARKS"])
    began = time.monotonic()
    run = run_cli(root, tmp_path / "out", "-j", "2", env=env, timeout=60)
    assert time.monotonic() - began < 30
    assert run.returncode == 1
    results = statuses(run.index)
    assert results["too-many"] == ("ERROR", "SPEC")
    assert results["unknown-pool"] == ("ERROR", "SPEC")
    assert results["setup:rig"] == ("ERROR", "SPEC")
    assert results["needs-rig"] == ("SKIP", "DEPENDENCY")
    assert results["fine"] == ("PASS", None)
    assert lines(marks / "fine") == ["board-a,board-b"]
    assert not any((marks / n).exists() for n in ("too-many", "unknown-pool", "needs-rig"))

    too_many = load_result(tmp_path / "out", "too-many", run.index)["message"]
    spec = root / "too-many" / "test.yaml"
    line = spec_line_of(BAD_RESOURCES["too-many/test.yaml"], "boards: 3")
    assert re.match(rf"{re.escape(str(spec))}:{line}:\d+: ", too_many), too_many
    assert "3" in too_many and "'boards'" in too_many and "only 2" in too_many

    unknown = load_result(tmp_path / "out", "unknown-pool", run.index)["message"]
    spec = root / "unknown-pool" / "test.yaml"
    line = spec_line_of(BAD_RESOURCES["unknown-pool/test.yaml"], "gpus")
    assert re.match(rf"{re.escape(str(spec))}:{line}:\d+: ", unknown), unknown
    assert "'gpus'" in unknown and "boards" in unknown

    rig = load_result(tmp_path / "out", "setup:rig", run.index)["message"]
    line = spec_line_of(BAD_RESOURCES["suite.yaml"], "licenses: 2")
    assert re.match(rf"{re.escape(str(root / 'suite.yaml'))}:{line}:\d+: ", rig), rig
    assert "'licenses'" in rig and "only 1" in rig


# ==============================================================================
# 3. CPU pinning
# ==============================================================================
PROBE = """
    import os, sys, time
    cpus = sorted(os.sched_getaffinity(0))
    print(f"slot={os.environ['SLOT']} slot_cpus={os.environ.get('SLOT_CPUS', '')} "
          f"affinity={','.join(map(str, cpus))}")
    time.sleep(0.15)
"""


def cpu_suite(root: Path, suite_yaml: str = "") -> Path:
    files = {"probe.py": PROBE}
    if suite_yaml:
        files["suite.yaml"] = suite_yaml
    step = f'{PYTHON} "$TEST_SUITE_ROOT/probe.py"'
    for number in range(1, 5):
        files[f"cpu-{number}/test.yaml"] = f"""
            steps:
              - {{name: first, cmd: '{step}'}}
              - {{name: second, cmd: '{step}'}}
        """
    return write_suite(root, files)


def check_pinning(run, out) -> None:
    assert run.returncode == 0, run.stdout + run.stderr
    per_slot: dict[str, set[str]] = {}
    for item in run.index["results"]:
        output = load_result(out, item["name"], run.index)["output"]
        probes = re.findall(r"slot=(\d+) slot_cpus=(\S*) affinity=(\S+)", output)
        assert len(probes) == 2, output
        for slot, slot_cpus, affinity in probes:
            assert slot_cpus, f"SLOT_CPUS is not set: {output}"
            assert affinity == slot_cpus, output
            assert len(affinity.split(",")) == 1, output
            per_slot.setdefault(slot, set()).add(affinity)
    assert sorted(per_slot) == ["1", "2"], per_slot
    # Each slot always on the same CPU, and the slots on different ones.
    assert all(len(cpus) == 1 for cpus in per_slot.values()), per_slot
    assert per_slot["1"].isdisjoint(per_slot["2"]), per_slot


needs_two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="needs at least 2 CPUs in this process's affinity"
)


@needs_two_cpus
def test_cpus_per_slot_pins_each_slot_to_its_own_cpu(tmp_path):
    root = cpu_suite(tmp_path / "suite")
    run = run_cli(root, tmp_path / "out", "-j", "2", "--cpus-per-slot", "1")
    check_pinning(run, tmp_path / "out")


@needs_two_cpus
def test_cpus_per_slot_from_suite_yaml(tmp_path):
    root = cpu_suite(tmp_path / "suite", "cpus_per_slot: 1\n")
    run = run_cli(root, tmp_path / "out", "-j", "2")
    check_pinning(run, tmp_path / "out")


def test_more_pinned_slots_than_cpus_is_a_usage_error(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    jobs = str(cpus + 1)
    root = cpu_suite(tmp_path / "suite")
    run = run_cli(root, tmp_path / "out", "-j", jobs, "--cpus-per-slot", "1")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert f"-j {jobs}" in run.stderr and "CPU" in run.stderr, run.stderr
    assert run.index is None
    root2 = cpu_suite(tmp_path / "suite2", "cpus_per_slot: 1\n")
    run = run_cli(root2, tmp_path / "out2", "-j", jobs)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"-j {jobs}" in run.stderr and "CPU" in run.stderr, run.stderr


# ==============================================================================
# 4. Failure policy
# ==============================================================================
def test_max_failures_stops_starting_new_testcases(tmp_path):
    files = {}
    for name in ("a-pass", "f-1", "f-2", "f-3", "f-4", "f-5", "z-pass"):
        files[f"{name}/test.yaml"] = spec_cmd(touch_cmd(' && ' + ('exit 1' if name.startswith('f') else 'true')))
    root = write_suite(tmp_path / "suite", files)
    env = marks_env(tmp_path, "MARKS")
    marks = Path(env["MARKS"])
    run = run_cli(root, tmp_path / "out", "-j", "1", "--max-failures", "2", env=env)
    assert run.returncode == 1
    by_name(run.index)  # exactly one result each
    results = statuses(run.index)
    assert sorted(results) == sorted(n.split("/")[0] for n in files)  # one result each
    failed = [n for n, (s, _) in results.items() if s in ("FAIL", "ERROR")]
    assert len(failed) == 2, results
    skipped = [n for n, (s, _) in results.items() if s == "SKIP"]
    assert skipped, results
    for name in skipped:
        assert results[name] == ("SKIP", "MAX_FAILURES")
        message = load_result(tmp_path / "out", name, run.index)["message"]
        assert "--max-failures 2" in message and "2 failures" in message, message
        assert ran(marks, name) == 0, name
    for name in results:
        if name not in skipped:
            assert ran(marks, name) == 1, name
    # At -j 1 nothing runs after the second failure.
    last_failure = max(entry(run.index, n)["start"] for n in failed)
    assert all(entry(run.index, n)["start"] <= last_failure for n in results if n not in skipped)


def test_max_failures_lets_running_testcases_finish(tmp_path):
    """A testcase already running when the limit is reached finishes and
    gets its real verdict."""
    files = {
        # Never-timed testcases weigh the same: the slow one sorts first.
        "a-slow/test.yaml": spec_cmd(touch_cmd(' && sleep 1.5 && echo slept >> "$MARKS/a-slow"')),
    }
    for number in range(1, 5):
        files[f"f-{number}/test.yaml"] = spec_cmd(touch_cmd(' && sleep 0.1 && exit 1'))
    root = write_suite(tmp_path / "suite", files)
    env = marks_env(tmp_path, "MARKS")
    run = run_cli(root, tmp_path / "out", "-j", "2", "--max-failures", "2", env=env)
    assert run.returncode == 1
    results = statuses(run.index)
    assert results["a-slow"] == ("PASS", None), results
    assert lines(Path(env["MARKS"]) / "a-slow") == ["ran", "slept"]
    assert sum(s == "FAIL" for s, _ in results.values()) == 2
    assert sum(r == ("SKIP", "MAX_FAILURES") for r in results.values()) == 2


def test_max_failures_lets_running_multi_step_testcases_finish(tmp_path):
    files = {
        "a-slow/test.yaml": f"""
            steps:
              - {{name: one, cmd: 'sleep 1 && echo one >> "$MARKS/a-slow"'}}
              - {{name: two, cmd: 'echo two >> "$MARKS/a-slow"'}}
        """,
    }
    for number in range(1, 5):
        files[f"f-{number}/test.yaml"] = "cmd: sleep 0.1 && exit 1\n"
    root = write_suite(tmp_path / "suite", files)
    env = marks_env(tmp_path, "MARKS")
    run = run_cli(root, tmp_path / "out", "-j", "2", "--max-failures", "2", env=env)
    results = statuses(run.index)
    assert lines(Path(env["MARKS"]) / "a-slow")[:1] == ["one"]  # it had started
    assert sum(s == "FAIL" for s, _ in results.values()) == 2
    assert results["a-slow"] == ("PASS", None), load_result(tmp_path / "out", "a-slow", run.index)["message"]
    assert lines(Path(env["MARKS"]) / "a-slow") == ["one", "two"]


def test_max_failures_skips_dependents_of_unstarted_testcases_for_the_same_reason(tmp_path):
    root = write_suite(tmp_path / "suite", {
        # Three steps weigh most: it runs first at -j 1, and fails at once.
        "fail/test.yaml": """
            steps:
              - {name: one, cmd: exit 1}
              - {name: two, cmd: 'true'}
              - {name: three, cmd: 'true'}
        """,
        "lib/test.yaml": "cmd: 'true'\n",
        "a-user/test.yaml": "depends: [lib]\ncmd: 'true'\n",
        "z-user/test.yaml": "depends: [lib]\ncmd: 'true'\n",
    })
    run = run_cli(root, tmp_path / "out", "-j", "1", "--max-failures", "1")
    results = statuses(run.index)
    assert results["fail"] == ("FAIL", "EXIT_CODE")
    assert results["lib"] == ("SKIP", "MAX_FAILURES")
    # Neither user ran because of the limit; both should say so.
    assert results["a-user"] == results["z-user"] == ("SKIP", "MAX_FAILURES"), results


def test_fail_fast_stops_running_fragments_too(tmp_path):
    token = "27.4031"  # a sleep nobody else runs: find leftovers by it
    sleeper = f"""
        steps:
          - {{name: wait, cmd: 'sleep {token} && echo ran >> "$MARKS/$TEST_NAME"'}}
          - {{name: after, cmd: 'echo after >> "$MARKS/$TEST_NAME"'}}
    """
    files = {f"b-sleep-{n}/test.yaml": sleeper for n in range(1, 4)}
    # Two steps weigh more than one: the sleepers and then a-fail (first
    # by name among single steps) fill the 4 slots; the c-* wait.
    files["a-fail/test.yaml"] = "cmd: sleep 0.5 && exit 1\n"
    files["c-later-1/test.yaml"] = spec_cmd(touch_cmd())
    files["c-later-2/test.yaml"] = spec_cmd(touch_cmd())
    root = write_suite(tmp_path / "suite", files)
    env = marks_env(tmp_path, "MARKS")
    began = time.monotonic()
    run = run_cli(root, tmp_path / "out", "-j", "4", "-x", env=env, timeout=90)
    elapsed = time.monotonic() - began
    assert run.returncode == 1, run.stdout + run.stderr
    assert elapsed < 15, f"-x waited for running fragments ({elapsed:.1f} s)"
    by_name(run.index)  # exactly one result each
    results = statuses(run.index)
    assert sorted(results) == sorted(name.split("/")[0] for name in files)
    assert results["a-fail"] == ("FAIL", "EXIT_CODE")
    for name in ("b-sleep-1", "b-sleep-2", "b-sleep-3", "c-later-1", "c-later-2"):
        assert results[name] == ("SKIP", "MAX_FAILURES"), results
        message = load_result(tmp_path / "out", name, run.index)["message"]
        assert "failure" in message, message
    assert list(Path(env["MARKS"]).iterdir()) == []
    leftovers = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and token.encode() in (proc / "cmdline").read_bytes():
                leftovers.append(proc.name)
        except OSError:
            pass
    assert not leftovers, f"commands survived -x: {leftovers}"


# ==============================================================================
# 5. History, --failed and --incremental
# ==============================================================================
def test_history_records_every_testcase(tmp_path):
    files = {
        "lib/test.yaml": "cmd: 'true'\n",
        "pass/test.yaml": "cmd: sleep 0.05\n",
        "fail/test.yaml": "depends: [lib]\ncmd: exit 1\n",
        "after-fail/test.yaml": "depends: [fail]\ncmd: 'true'\n",
    }
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == 1
    database = out / "history.sqlite"
    assert database.is_file()
    with sqlite3.connect(database) as db:
        (last,) = db.execute("SELECT max(id) FROM runs").fetchone()
        rows = {
            name: (status, duration, attempts, key)
            for name, status, duration, attempts, key in db.execute(
                "SELECT name, status, duration, attempts, key FROM results WHERE run = ?", (last,)
            )
        }
    assert sorted(rows) == sorted(statuses(run.index))
    for name, (status, duration, attempts, key) in rows.items():
        assert status == entry(run.index, name)["status"]
        assert attempts == 1
        assert re.fullmatch(r"[0-9a-f]{16,}", key or ""), (name, key)
    assert rows["pass"][1] >= 0.05
    assert rows["after-fail"][0] == "SKIP"
    assert len({key for _, _, _, key in rows.values()}) == len(rows)


def test_failed_reruns_what_did_not_pass_and_its_dependencies(tmp_path):
    files = {
        "lib/test.yaml": spec_cmd(touch_cmd()),
        "other/test.yaml": spec_cmd(touch_cmd()),
        "flaky/test.yaml": "depends: [lib]\n" + spec_cmd(touch_cmd(' && test ! -e "$FLAGS/broken"')),
        "after/test.yaml": "depends: [flaky]\n" + spec_cmd(touch_cmd()),
    }
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    env = marks_env(tmp_path, "MARKS", "FLAGS")
    marks, flag = Path(env["MARKS"]), Path(env["FLAGS"]) / "broken"
    flag.touch()
    run = run_cli(root, out, "-j", "2", env=env)
    assert statuses(run.index) == {
        "lib": ("PASS", None), "other": ("PASS", None),
        "flaky": ("FAIL", "EXIT_CODE"), "after": ("SKIP", "DEPENDENCY"),
    }
    # Still broken: flaky and what it stopped, with the dependency that passed.
    run = run_cli(root, out, "-j", "2", "--failed", env=env)
    assert statuses(run.index) == {
        "lib": ("PASS", None), "flaky": ("FAIL", "EXIT_CODE"), "after": ("SKIP", "DEPENDENCY"),
    }
    assert (ran(marks, "lib"), ran(marks, "other"), ran(marks, "flaky"), ran(marks, "after")) == (2, 1, 2, 0)
    # Fixed: they pass.
    flag.unlink()
    run = run_cli(root, out, "-j", "2", "--failed", env=env)
    assert run.returncode == 0
    assert statuses(run.index) == {"lib": ("PASS", None), "flaky": ("PASS", None), "after": ("PASS", None)}
    assert (ran(marks, "lib"), ran(marks, "other"), ran(marks, "flaky"), ran(marks, "after")) == (3, 1, 3, 1)
    # Nothing left that did not pass: nothing runs, the last run stays, and it is said.
    before = run.index
    run = run_cli(root, out, "-j", "2", "--failed", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "--failed: nothing to run again, nothing failed last time" in run.stdout
    assert run.index == before
    assert (ran(marks, "lib"), ran(marks, "other"), ran(marks, "flaky"), ran(marks, "after")) == (3, 1, 3, 1)


INCREMENTAL_SUITE = {
    "suite.yaml": """
        setup:
          prep:
            cmd: echo ran >> "$MARKS/prep"
    """,
    "a/test.yaml": """
        cmd: echo ran >> "$MARKS/a" && cat data.txt
    """,
    "a/data.txt": "one\n",
    "b/test.yaml": """
        depends: [a]
        cmd: echo ran >> "$MARKS/b"
    """,
    "c/test.yaml": """
        cmd: echo ran >> "$MARKS/c" && sh helper.sh
    """,
    "c/helper.sh": "echo helper one\n",
    "d/test.yaml": """
        cmd: echo ran >> "$MARKS/d" && test ! -e "$FLAGS/d-broken"
    """,
    "e/test.yaml": """
        needs: [prep]
        cmd: echo ran >> "$MARKS/e"
    """,
}


def test_incremental_runs_only_what_changed(tmp_path):
    root = write_suite(tmp_path / "suite", INCREMENTAL_SUITE)
    out = tmp_path / "out"
    env = marks_env(tmp_path, "MARKS", "FLAGS")
    marks = Path(env["MARKS"])
    (Path(env["FLAGS"]) / "d-broken").touch()
    names = ["a", "b", "c", "d", "e", "prep"]

    def counts():
        return {name: len(lines(marks / name)) for name in names}

    def incremental():
        run = run_cli(root, out, "-j", "2", "--incremental", env=env)
        return run, statuses(run.index)

    run, results = incremental()  # no history yet: everything runs
    assert results["d"] == ("FAIL", "EXIT_CODE")
    assert counts() == dict.fromkeys(names, 1)

    run, results = incremental()
    for name in "abce":
        assert results[name] == ("PASS", "CACHED"), results
        result = load_result(out, name, run.index)
        assert result["cached"] is True
    assert "setup:prep" not in results  # nobody that runs needs it
    assert results["d"] == ("FAIL", "EXIT_CODE")  # a failure is never cached
    assert counts() == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 1, "prep": 1}
    assert run.returncode == 1

    # A file that is not test.yaml changes: only its testcase runs.
    (root / "c" / "helper.sh").write_text("echo helper two\n")
    run, results = incremental()
    assert results["c"] == ("PASS", None)
    assert [results[n] for n in "abe"] == [("PASS", "CACHED")] * 3
    assert counts() == {"a": 1, "b": 1, "c": 2, "d": 3, "e": 1, "prep": 1}

    # A dependency's file changes: it and its dependent run.
    (root / "a" / "data.txt").write_text("two\n")
    run, results = incremental()
    assert (results["a"], results["b"]) == (("PASS", None), ("PASS", None))
    assert [results[n] for n in "ce"] == [("PASS", "CACHED")] * 2
    assert counts() == {"a": 2, "b": 2, "c": 2, "d": 4, "e": 1, "prep": 1}

    # test.yaml changes (a description): that testcase runs, with its set-up.
    spec = root / "e" / "test.yaml"
    spec.write_text("description: now described\n" + spec.read_text())
    run, results = incremental()
    assert (results["e"], results["setup:prep"]) == (("PASS", None), ("PASS", None))
    assert [results[n] for n in "abc"] == [("PASS", "CACHED")] * 3
    assert counts() == {"a": 2, "b": 2, "c": 2, "d": 5, "e": 2, "prep": 2}

    # Fixed, d passes once, and is cached from then on.
    (Path(env["FLAGS"]) / "d-broken").unlink()
    run, results = incremental()
    assert results["d"] == ("PASS", None)
    run, results = incremental()
    assert run.returncode == 0
    assert set(results.values()) == {("PASS", "CACHED")}
    assert counts() == {"a": 2, "b": 2, "c": 2, "d": 6, "e": 2, "prep": 2}


def incremental_rerun_after_setup_edit(tmp_path, suite_yaml: str, need: str):
    """Run testcase t (needing set-up ``need``) with --incremental, change
    v1 to v2 in suite.yaml, run again; the second run, and t's marks."""
    root = write_suite(tmp_path / "suite", {
        "suite.yaml": suite_yaml,
        "t/test.yaml": f'needs: [{need}]\ncmd: echo ran >> "$MARKS/t"\n',
    })
    env = marks_env(tmp_path, "MARKS")
    out = tmp_path / "out"
    run_cli(root, out, "--incremental", env=env)
    (root / "suite.yaml").write_text((root / "suite.yaml").read_text().replace("v1", "v2"))
    return run_cli(root, out, "--incremental", env=env), lines(Path(env["MARKS"]) / "t")


def test_incremental_reruns_when_a_needed_setup_changes(tmp_path):
    suite_yaml = """
        setup:
          tool:
            cmd: echo v1 > version
    """
    run, marks = incremental_rerun_after_setup_edit(tmp_path, suite_yaml, "tool")
    assert statuses(run.index) == {"t": ("PASS", None), "setup:tool": ("PASS", None)}
    assert marks == ["ran", "ran"]


def test_incremental_reruns_when_a_setup_of_a_needed_setup_changes(tmp_path):
    suite_yaml = """
        setup:
          inner:
            cmd: echo v1 > version
          outer:
            needs: [inner]
            cmd: cp "$SETUP_INNER_DIR/version" .
    """
    run, marks = incremental_rerun_after_setup_edit(tmp_path, suite_yaml, "outer")
    assert statuses(run.index)["t"] == ("PASS", None)
    assert marks == ["ran", "ran"]


def test_incremental_never_caches_what_failed_last_time(tmp_path):
    root = write_suite(tmp_path / "suite", {
        "t/test.yaml": 'cmd: echo ran >> "$MARKS/t" && test ! -e "$FLAGS/broken"\n',
    })
    env = marks_env(tmp_path, "MARKS", "FLAGS")
    out = tmp_path / "out"
    assert run_cli(root, out, env=env).returncode == 0  # passes: its key is recorded
    (Path(env["FLAGS"]) / "broken").touch()
    assert run_cli(root, out, env=env).returncode == 1  # the same key fails now
    run = run_cli(root, out, "--incremental", env=env)
    assert lines(Path(env["MARKS"]) / "t") == ["ran"] * 3, statuses(run.index)
    assert statuses(run.index) == {"t": ("FAIL", "EXIT_CODE")}


# ==============================================================================
# 6. Critical-path ordering
# ==============================================================================
def starts(index: dict) -> dict[str, float]:
    return {e["name"]: e["start"] for e in index["results"]}


def test_long_testcases_start_first_once_their_durations_are_known(tmp_path):
    files = {f"a-short-{n:02}/test.yaml": "cmd: sleep 0.05\n" for n in range(1, 11)}
    files["z-long-1/test.yaml"] = "cmd: sleep 1.0\n"
    files["z-long-2/test.yaml"] = "cmd: sleep 1.0\n"
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    longs = ["z-long-1", "z-long-2"]

    first = run_cli(root, out, "-j", "2")
    assert first.returncode == 0
    started = starts(first.index)
    shorts = [n for n in started if n not in longs]
    # Nothing known yet: all weigh the same and go in name order.
    order = sorted(started, key=started.get)
    assert not set(order[:2]) & set(longs), order

    second = run_cli(root, out, "-j", "2")
    assert second.returncode == 0
    started = starts(second.index)
    assert max(started[n] for n in longs) < min(started[n] for n in shorts), sorted(started, key=started.get)
    # And both long ones ran side by side, on different slots.
    assert {entry(second.index, n)["slot"] for n in longs} == {1, 2}


def test_what_failed_last_time_starts_first(tmp_path):
    files = {f"a-{n}/test.yaml": "cmd: sleep 0.05\n" for n in range(1, 5)}
    files["z-flaky/test.yaml"] = 'cmd: sleep 0.05 && test ! -e "$FLAGS/broken"\n'
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    env = marks_env(tmp_path, "FLAGS")
    (Path(env["FLAGS"]) / "broken").touch()
    first = run_cli(root, out, "-j", "1", env=env)
    assert statuses(first.index)["z-flaky"] == ("FAIL", "EXIT_CODE")
    order = sorted(starts(first.index), key=starts(first.index).get)
    assert order[-1] == "z-flaky"
    (Path(env["FLAGS"]) / "broken").unlink()
    second = run_cli(root, out, "-j", "1", env=env)
    assert second.returncode == 0
    order = sorted(starts(second.index), key=starts(second.index).get)
    assert order[0] == "z-flaky", order


def test_dependency_chain_head_starts_before_independent_work(tmp_path):
    files = {f"a-{n}/test.yaml": "cmd: sleep 0.05\n" for n in range(1, 4)}
    files["z-chain-1/test.yaml"] = "cmd: sleep 0.05\n"
    files["z-chain-2/test.yaml"] = "depends: [z-chain-1]\ncmd: sleep 0.05\n"
    files["z-chain-3/test.yaml"] = "depends: [z-chain-2]\ncmd: sleep 0.05\n"
    root = write_suite(tmp_path / "suite", files)
    out = tmp_path / "out"
    for attempt in ("without history", "with history"):
        run = run_cli(root, out, "-j", "1")
        assert run.returncode == 0
        started = starts(run.index)
        order = sorted(started, key=started.get)
        assert order[0] == "z-chain-1", (attempt, order)
        assert order.index("z-chain-2") < order.index("z-chain-3")
