"""Authoring features end to end: control conditions, selection, matrix,
retries, --repeat, --rewrite, validate and new, parameters."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import PYTHON, REPO, cli_env, load_result, run_cli, statuses, write_suite


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "run_testsuite", *map(str, args)],
        cwd=cwd or REPO, env=cli_env(), capture_output=True, text=True, timeout=120,
    )


def test_control_skip_and_xfail_decide_by_the_first_matching_entry(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {
        "suite.yaml": "params:\n  level: '1'\n",
        "skipped/test.yaml": "cmd: touch /nonexistent/should-not-run\ntags: [slow]\ncontrol:\n  - skip: \"'slow' in tags\"\n    reason: too slow\n  - xfail: 'True'\n",
        "xfailed/test.yaml": "cmd: exit 1\ncontrol:\n  - xfail: os == 'linux' or os != 'linux'\n    reason: known bug\n",
        "xpassed/test.yaml": "cmd: 'true'\ncontrol:\n  - xfail: level == '1'\n",
        "plain/test.yaml": "cmd: 'true'\ncontrol:\n  - skip: env.NO_SUCH_VARIABLE_SET\n",
    })
    run = run_cli(root, out)
    assert statuses(run.index) == {
        "skipped": ("SKIP", "CONTROL"),
        "xfailed": ("XFAIL", "EXIT_CODE"),
        "xpassed": ("XPASS", None),
        "plain": ("PASS", None),
    }
    assert "too slow" in load_result(out, "skipped", run.index)["message"]
    assert load_result(out, "skipped", run.index)["commands"] == []
    assert "known bug" in load_result(out, "xfailed", run.index)["message"]
    assert run.returncode == 0  # XPASS is shown as a surprise, not an error
    assert "XPASS" in run.stdout
    # -D flips the parameter, and the xfail no longer applies.
    run = run_cli(root, out, "-D", "level=2", names=["xpassed"])
    assert statuses(run.index) == {"xpassed": ("PASS", None)}
    assert run_cli(root, out, "-D", "nope=1").returncode == 2


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('touch {marker}')",
        "open('{marker}', 'w')",
        "().__class__.__bases__[0].__subclasses__()",
        "env.__class__",
        "[x for x in ()]",
        "os ==",
    ],
)
def test_hostile_or_broken_conditions_are_errors_and_run_nothing(tmp_path, condition):
    root, out = tmp_path / "s", tmp_path / "out"
    marker = tmp_path / "pwned"
    text = condition.format(marker=marker).replace('"', '\\"')
    write_suite(root, {
        "bad/test.yaml": f'cmd: touch {marker}\ncontrol:\n  - skip: "{text}"\n',
        "good/test.yaml": "cmd: 'true'\n",
    })
    run = run_cli(root, out)
    assert statuses(run.index) == {"bad": ("ERROR", "SPEC"), "good": ("PASS", None)}
    message = load_result(out, "bad", run.index)["message"]
    assert f"{root / 'bad' / 'test.yaml'}:3:" in message and "control:" in message
    assert not marker.exists()
    assert "Traceback" not in run.stdout + run.stderr


def test_matrix_names_values_env_and_dependencies(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {
        "build/test.yaml": "matrix:\n  opt: [O0, O2]\n  target: [x86, arm]\ncmd: echo $opt-$target\n"
                            "control:\n  - skip: opt == 'O0' and target == 'arm'\n",
        "use/test.yaml": "depends: [build]\ncmd: 'true'\n",
    })
    run = run_cli(root, out, "-j", "4")
    assert statuses(run.index) == {
        "build[opt=O0,target=x86]": ("PASS", None),
        "build[opt=O0,target=arm]": ("SKIP", "CONTROL"),
        "build[opt=O2,target=x86]": ("PASS", None),
        "build[opt=O2,target=arm]": ("PASS", None),
        # a SKIP of one variant is not a pass: the dependent does not run
        "use": ("SKIP", "DEPENDENCY"),
    }
    assert load_result(out, "build[opt=O2,target=arm]", run.index)["output"] == "O2-arm\n"
    run = run_cli(root, out, "-k", "O2 and arm")
    assert list(statuses(run.index)) == ["build[opt=O2,target=arm]"]


def test_selection_by_keyword_tag_and_list_json(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {
        "lib/test.yaml": "cmd: 'true'\n",
        "a/fast/test.yaml": "cmd: 'true'\ntags: [fast]\ndepends: [lib]\n",
        "a/slow/test.yaml": "cmd: 'true'\ntags: [slow]\n",
        "b/fast/test.yaml": "cmd: 'true'\ntags: [fast, net]\n",
    })
    assert sorted(statuses(run_cli(root, out, "-k", "a/ and not slow").index)) == ["a/fast", "lib"]
    assert sorted(statuses(run_cli(root, out, "--tag", "net", "--tag", "slow").index)) == ["a/slow", "b/fast"]
    listing = tmp_path / "list.json"
    run = run_cli(root, out, "--list-json", listing, "-k", "fast")
    assert run.returncode == 0
    data = json.loads(listing.read_text())
    by_name = {t["name"]: t for t in data["testcases"]}
    assert sorted(by_name) == ["a/fast", "b/fast", "lib"]
    assert by_name["a/fast"]["depends"] == ["lib"] and by_name["a/fast"]["tags"] == ["fast"]
    assert by_name["b/fast"]["driver"] == "shell"
    assert run_cli(root, out, "-k", "(fast").returncode == 2


def test_retries_report_flaky_passes_and_attempts(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    counter = tmp_path / "count"
    write_suite(root, {
        "flaky/test.yaml": f"retries: 3\ncmd: |\n  n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n  test $n -ge 2\n",
        "broken/test.yaml": "retries: 1\ncmd: exit 4\n",
    })
    run = run_cli(root, out)
    flaky = load_result(out, "flaky", run.index)
    assert flaky["status"] == "PASS" and flaky["attempts"] == 3
    assert "passed on attempt 3 of 4" in flaky["message"] and "flaky" in flaky["message"]
    assert "flaky" in run.stdout  # shown without -v
    broken = load_result(out, "broken", run.index)
    assert broken["status"] == "FAIL" and broken["attempts"] == 2
    assert {e["name"]: e["attempts"] for e in run.index["results"]} == {"flaky": 3, "broken": 2}


def test_repeat_runs_each_testcase_n_times(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {"t/test.yaml": "cmd: echo $TEST_NAME\n", "u/test.yaml": "cmd: 'true'\ndepends: [t]\n"})
    run = run_cli(root, out, "--repeat", "3")
    assert sorted(statuses(run.index)) == ["t#1", "t#2", "t#3", "u#1", "u#2", "u#3"]
    assert load_result(out, "t#2", run.index)["output"] == "t#2\n"


def test_rewrite_round_trip(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {
        "changed/test.yaml": "driver: diff\ncmd: echo new; echo at $PWD\n",
        "changed/test.out": "old\n",
        "expected-bug/test.yaml": "driver: diff\ncmd: echo wrong\ncontrol:\n  - xfail: 'True'\n",
        "expected-bug/test.out": "right\n",
    })
    run = run_cli(root, out, "--rewrite")
    assert run.returncode == 1
    assert "rewrote" in run.stdout and "changed/test.out" in run.stdout
    assert (root / "changed" / "test.out").read_text() == "new\nat <WORK_DIR>\n"
    assert (root / "expected-bug" / "test.out").read_text() == "right\n"  # never for XFAIL
    again = run_cli(root, tmp_path / "elsewhere")
    assert statuses(again.index) == {"changed": ("PASS", None), "expected-bug": ("XFAIL", "DIFF")}


def test_rewrite_of_a_regex_baseline_keeps_what_matched_and_escapes_the_rest(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {
        "re/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: echo 'pid 4711'; echo 'f(x) = [1+2]'; echo 'a.b'\n",
        "re/test.out": "pid \\d+\nold line\n",
        "new/test.yaml": "driver: diff\nbaseline_mode: regex\ncmd: echo '*? (x)'\n",  # no baseline yet
    })
    run = run_cli(root, out, "--rewrite")
    assert run.returncode == 1
    assert "--rewrite: 2 baselines changed" in run.stdout, run.stdout
    # The pattern that matched stays; the other lines match themselves only.
    written = (root / "re" / "test.out").read_text()
    assert written == "pid \\d+\nf\\(x\\) = \\[1\\+2\\]\na\\.b\n", written
    assert (root / "new" / "test.out").read_text().startswith("\\*\\?")
    again = run_cli(root, tmp_path / "elsewhere")
    assert statuses(again.index) == {"re": ("PASS", None), "new": ("PASS", None)}, again.stdout


def test_validate_reports_every_problem_without_running(tmp_path):
    root = tmp_path / "s"
    marker = tmp_path / "ran"
    write_suite(root, {
        "ok/test.yaml": f"cmd: touch {marker}\n",
        "typo/test.yaml": "cmd: 'true'\ndepnds: [ok]\n",
        "cond/test.yaml": "cmd: 'true'\ncontrol:\n  - skip: 'False'\n  - xfail: \"open('x')\"\n",
        "nobase/test.yaml": "driver: diff\ncmd: 'true'\n",
        "cycle-a/test.yaml": "cmd: 'true'\ndepends: [cycle-b]\n",
        "cycle-b/test.yaml": "cmd: 'true'\ndepends: [cycle-a]\n",
    })
    proc = cli("validate", root)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(l.startswith(f"{root}/typo/test.yaml:2:1: unknown key 'depnds'; did you mean 'depends'?") for l in lines)
    assert any(l.startswith(f"{root}/cond/test.yaml:4:") and "control:" in l for l in lines)
    assert any(l.startswith(f"{root}/nobase/test.yaml:") and "baseline" in l for l in lines)
    assert any("cycle-a" in l and "cycle" in l for l in lines)
    assert not marker.exists()
    assert cli("validate", tmp_path / "missing").returncode == 2
    write_suite(tmp_path / "clean", {"t/test.yaml": "cmd: 'true'\n"})
    assert cli("validate", tmp_path / "clean").returncode == 0


def test_new_scaffolds_a_testcase_that_validates_and_runs(tmp_path):
    root = tmp_path / "s"
    proc = cli("new", root / "greeting", "--driver", "diff", "--cmd", "echo 'hi: there'")
    assert proc.returncode == 0, proc.stderr
    spec = (root / "greeting" / "test.yaml").read_text()
    assert spec.startswith("# yaml-language-server: $schema=")
    # A reference into the suite's own copy (made now), relative: it works
    # wherever the suite is checked out, not only on this machine.
    schema_ref = spec.splitlines()[0].split("=", 1)[1]
    assert schema_ref == "../.schemas/testcase.schema.json"
    copy = root / ".schemas" / "testcase.schema.json"
    assert copy.read_text() == (REPO / "schemas" / "testcase.schema.json").read_text()
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    assert (moved / "greeting" / schema_ref).is_file()
    moved.rename(root)
    assert (root / "greeting" / "test.out").read_text() == ""
    assert "--rewrite` records the command's output" in proc.stdout
    assert cli("validate", root).returncode == 0
    run = run_cli(root, tmp_path / "out", "--rewrite")
    assert (root / "greeting" / "test.out").read_text() == "hi: there\n"
    assert run_cli(root, tmp_path / "out2").returncode == 0
    assert cli("new", root / "greeting").returncode == 2  # never overwrites
    # The default command's output is known: the new testcase passes at once.
    assert cli("new", root / "hello", "--driver", "diff").returncode == 0
    assert statuses(run_cli(root, tmp_path / "out3", names=["hello"]).index) == {"hello": ("PASS", None)}


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        ("gtest", "driver: gtest\noptions:  # the driver needs binary\n  binary: TODO\n"),
        ("tap", "driver: tap\ncmd: echo hello\n"),
        ("junit", "driver: junit\ncmd: echo hello\noptions:  # the driver needs junit\n  junit: TODO\n"),
    ],
)
def test_new_scaffolds_the_drivers_with_subresults(tmp_path, driver, expected):
    root = tmp_path / "s"
    assert cli("new", root / "t", "--driver", driver).returncode == 0
    spec = (root / "t" / "test.yaml").read_text()
    assert spec.split("\n", 2)[2] == expected  # after the schema comment and description
    # gtest makes its own commands: a cmd would be refused.
    problems = cli("validate", root)
    assert ("'cmd' is not used" in problems.stdout) is False


def test_new_refuses_an_unknown_driver_and_finds_the_suites_own(tmp_path):
    root = write_suite(tmp_path / "s", {
        "suite.yaml": "drivers:\n  mine: drivers_here/mine.py:Mine\n",
        "drivers_here/mine.py": "from run_testsuite.api import Driver\nclass Mine(Driver):\n    pass\n",
    })
    proc = cli("new", root / "sub" / "t", "--driver", "nosuch")
    assert proc.returncode == 2 and "unknown driver 'nosuch'" in proc.stderr and "mine" in proc.stderr
    assert not (root / "sub").exists()
    proc = cli("new", root / "sub" / "t", "--driver", "mine")
    assert proc.returncode == 0, proc.stderr
    spec = (root / "sub" / "t" / "test.yaml").read_text()
    assert "driver: mine" in spec and spec.startswith("# yaml-language-server: $schema=../../.schemas/")


def test_schema_writes_the_schemas_into_the_suite(tmp_path):
    root = write_suite(tmp_path / "s", {"t/test.yaml": "cmd: 'true'\n"})
    proc = cli("schema", root)
    assert proc.returncode == 0, proc.stderr
    for name in ("testcase", "suite"):
        assert (root / ".schemas" / f"{name}.schema.json").read_text() == (
            REPO / "schemas" / f"{name}.schema.json"
        ).read_text()
    # Hidden: neither a testcase nor part of a key, and the suite still runs.
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"t": ("PASS", None)}


def test_help_names_subcommands_and_exit_statuses_and_usage_errors(tmp_path):
    shown = cli("--help")
    assert shown.returncode == 0
    for word in ("report", "validate", "new", "schema", "exit status", "128+N"):
        assert word in shown.stdout, word
    assert "``" not in cli("validate", "--help").stdout
    new_help = cli("new", "--help").stdout
    for option, said in (("--driver", "a driver of the suite"), ("--cmd", "the command"), ("--description", "shown in reports")):
        assert option in new_help and said in new_help, option
    bare = cli()
    assert bare.returncode == 2 and "ROOT is missing" in bare.stderr and "names" not in bare.stderr
    both = cli(tmp_path, "-v", "-q")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_rewrite_creates_a_missing_baseline_and_validate_suggests_it(tmp_path):
    root = write_suite(tmp_path / "s", {"fresh/test.yaml": "driver: diff\ncmd: echo first output\n"})
    validated = cli("validate", root)
    assert validated.returncode == 1
    assert "baseline 'test.out' does not exist" in validated.stdout
    assert f"`run-testsuite {root} fresh --rewrite` creates it from a run" in validated.stdout
    run = run_cli(root, tmp_path / "out", "--rewrite")
    assert statuses(run.index) == {"fresh": ("FAIL", "DIFF")}
    assert "baseline 'test.out' does not exist yet: --rewrite creates it" in run.stdout
    assert "--rewrite: 1 baseline changed" in run.stdout
    assert (root / "fresh" / "test.out").read_text() == "first output\n"
    assert run_cli(root, tmp_path / "out").returncode == 0


def test_a_matrix_testcase_keeps_one_baseline_per_variant(tmp_path):
    root = write_suite(tmp_path / "s", {
        "suite.yaml": "params:\n  target: x86\n",
        "build/test.yaml": (
            "driver: diff\nmatrix: {opt: [O0, O2]}\nbaseline: 'expected-${opt}-$target.out'\n"
            "cmd: echo \"built $opt for $PARAM_TARGET\"\n"
        ),
        "build/expected-O0-x86.out": "built O0 for x86\n",
        "build/expected-O2-x86.out": "built O2 for x86\n",
        "typo/test.yaml": "driver: diff\nbaseline: 'expected-${nosuch}.out'\ncmd: 'true'\n",
    })
    run = run_cli(root, tmp_path / "out")
    found = statuses(run.index)
    assert found["build[opt=O0]"] == ("PASS", None) and found["build[opt=O2]"] == ("PASS", None), run.stdout
    assert found["typo"] == ("ERROR", "SPEC")
    assert "no matrix value or parameter 'nosuch' (known: opt, target)" not in run.stdout  # typo has no matrix
    assert "no matrix value or parameter 'nosuch' (known: target; $$ is a literal $)" in run.stdout
    # Another parameter value: its baselines are missing, each named with its variant.
    other = run_cli(root, tmp_path / "out", "-D", "target=arm", names=["build"])
    message = load_result(tmp_path / "out", "build[opt=O2]", other.index)["message"]
    assert "baseline 'expected-O2-arm.out' (from 'expected-${opt}-$target.out', for opt=O2) does not exist" in message
    # The command it suggests selects that variant, with the value that named the file, and makes it.
    suggested = message.split("`")[1]
    assert suggested == f"run-testsuite {root} 'build[opt=O2]' -D target=arm --rewrite"
    import shlex

    made = subprocess.run(
        [PYTHON, "-m", "run_testsuite", *shlex.split(suggested)[1:], "-o", str(tmp_path / "out-made")],
        env=cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert "--rewrite: 1 baseline changed" in made.stdout, made.stdout + made.stderr
    assert (root / "build" / "expected-O2-arm.out").read_text() == "built O2 for arm\n"
    assert cli("validate", root, "-D", "target=x86").returncode == 1  # typo/ still broken
    assert "expected-O0-arm.out" in cli("validate", root, "-D", "target=arm").stdout
    # The baselines stay private: commands never see them in their work directory.
    listing = run_cli(root, tmp_path / "out3", "--cleanup", "none", names=["build"])
    assert listing.returncode == 0
    assert not list((tmp_path / "out3" / "new" / "work").glob("*/expected-*"))


def test_a_condition_that_can_never_hold_is_warned_of_in_validate_and_the_run(tmp_path):
    root = write_suite(tmp_path / "s", {
        "t/test.yaml": "control:\n  - skip: os == 'Linux'\n    reason: not there\ncmd: 'true'\n",
        "m/test.yaml": "matrix: {os: [Linux]}\ncontrol:\n  - skip: os == 'Linux'\ncmd: 'true'\n",
    })
    warning = f"{root}/t/test.yaml:2:11: warning: control: os is never 'Linux'"
    validated = cli("validate", root)
    assert validated.returncode == 0 and warning in validated.stdout, validated.stdout
    assert "m/test.yaml" not in validated.stdout  # a matrix key named os is the variant's
    run = run_cli(root, tmp_path / "out", "-j", "1")
    assert run.stderr.count(warning) == 1, run.stderr
    assert statuses(run.index) == {"t": ("PASS", None), "m[os=Linux]": ("SKIP", "CONTROL")}


def test_validate_reports_every_problem_of_a_testcase_and_of_set_ups_no_one_needs(tmp_path):
    root = write_suite(tmp_path / "s", {
        "suite.yaml": "setup:\n  unused:\n    cmd: x\n    needs: [zz]\n    resources: {gpus: 1}\n",
        "t/test.yaml": "needs: [nosuch]\ndepends: [zzz]\ncmd: 'true'\n",
    })
    proc = cli("validate", root)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{root}/t/test.yaml:2:11: depends on unknown testcase 'zzz'",
        f"{root}/t/test.yaml:1:9: needs unknown set-up 'nosuch' (suite.yaml declares: unused)",
        f"{root}/suite.yaml:4:12: needs unknown set-up 'zz' (suite.yaml declares: unused)",
        f"{root}/suite.yaml:5:23: unknown resource pool 'gpus' (pools: none declared in suite.yaml)",
    ]
    assert "4 problems in 1 testcase" in proc.stderr


def test_new_with_a_driver_that_needs_options_writes_them_and_a_missing_one_is_named(tmp_path):
    root = write_suite(tmp_path / "s", {
        "suite.yaml": "drivers:\n  expect: _drivers/expect.py:ExpectDriver\n",
        "_drivers/expect.py": (REPO / "testcases" / "_drivers" / "expect.py").read_text(),
        "bare/test.yaml": "driver: expect\ncmd: echo hi\n",
    })
    assert cli("new", root / "t", "--driver", "expect").returncode == 0
    spec = (root / "t" / "test.yaml").read_text()
    assert "options:  # the driver needs expect or reject\n  expect: []\n" in spec
    proc = cli("validate", root)
    assert proc.stdout.splitlines() == [f"{root}/bare/test.yaml:1:1: options: missing; driver 'expect' needs expect or reject"]


def test_variant_baselines_hide_exactly_their_files_and_a_dollar_is_written_twice(tmp_path):
    root = write_suite(tmp_path / "s", {
        "t/test.yaml": "driver: diff\nmatrix: {opt: [O0, O2]}\nbaseline: '${opt}.txt'\ncmd: cat data.txt; ls\n",
        "t/data.txt": "D\n",
        "t/O0.txt": "D\ndata.txt\n",
        "t/O2.txt": "D\ndata.txt\n",
        "b/test.yaml": "driver: diff\nmatrix: {debug: [true, false]}\nbaseline: 'cost$$usd-${debug}.out'\ncmd: echo $debug\n",
        "b/cost$usd-true.out": "true\n",
        "b/cost$usd-false.out": "false\n",
        "r/test.yaml": "driver: diff\ncmd: echo r\n",
    })
    run = run_cli(root, tmp_path / "out", "--repeat", "2")
    found = statuses(run.index)
    assert all(found[f"t[opt={o}]#{n}"] == ("PASS", None) for o in ("O0", "O2") for n in (1, 2)), run.stdout
    assert all(found[f"b[debug={d}]#{n}"] == ("PASS", None) for d in ("true", "false") for n in (1, 2)), run.stdout
    message = load_result(tmp_path / "out", "r#2", run.index)["message"]
    assert f"`run-testsuite {root} r --rewrite`" in message  # the testcase's name, not the repetition's


def test_validate_names_a_driver_that_cannot_load_once_with_its_line(tmp_path):
    root = tmp_path / "s"
    write_suite(root, {
        "suite.yaml": "drivers:\n  broken: drivers/broken.py:Broken\n",
        "drivers/broken.py": "import os\nraise RuntimeError('no board attached')\n",
        "b1/test.yaml": "driver: broken\ncmd: 'true'\n",
    })
    proc = cli("validate", root)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{root}/b1/test.yaml:1:9: driver 'broken': cannot load '{root}/drivers/broken.py' (line 2): "
        f"RuntimeError: no board attached; loaded as a module of its own, with {root}/drivers first on sys.path"
    ], proc.stdout


def _validate_lines(root, files: dict[str, str]) -> list[str]:
    """What ``validate`` prints of the suite ``files`` make at ``root``."""
    write_suite(root, files)
    return cli("validate", root).stdout.splitlines()


def test_spec_errors_speak_the_spec_authors_words(tmp_path):
    root = tmp_path / "s"
    lines = _validate_lines(root, {
        "tab/test.yaml": "cmd: 'true'\nenv:\n\tX: 1\n",
        "zero/test.yaml": "cmd: 'true'\ntimeout: 0\n",
        "off/test.yaml": "cmd: 'true'\ncontrol: [{skip: 'True', reason: off}]\n",
    })
    assert f"{root}/off/test.yaml:2:34: expected a string, got false (YAML reads an unquoted yes, no, on, off, " \
        "true or false as true or false: quote it) (at control[0].reason)" in lines, lines
    assert any(line.startswith(f"{root}/tab/test.yaml:3:1: YAML syntax error: ")
               and line.endswith("it is a tab: YAML indents with spaces") for line in lines), lines
    assert f"{root}/zero/test.yaml:2:10: must be more than 0, got 0 (at timeout)" in lines, lines


def test_an_unknown_dependency_is_located_at_its_entry(tmp_path):
    root = tmp_path / "s"
    lines = _validate_lines(root, {
        "a/test.yaml": "cmd: 'true'\ndepends:\n  - b\n  - zz\n",
        "b/test.yaml": "cmd: 'true'\n",
        "c/test.yaml": "cmd: 'true'\ndepends: [../b]\n",
    })
    assert f"{root}/a/test.yaml:4:5: depends on unknown testcase 'zz'" in lines, lines
    assert f"{root}/c/test.yaml:2:11: depends on unknown testcase '../b' (names are the testcases' paths " \
        "from the suite's root, without '..')" in lines, lines


def test_a_nul_in_a_spec_is_a_spec_error_at_its_place(tmp_path):
    root = tmp_path / "s"
    lines = _validate_lines(root, {
        "cmd/test.yaml": 'cmd: "echo a\\0b"\n',
        "env/test.yaml": "cmd: 'true'\nenv: {X: \"a\\x00b\"}\n",
        "sed/test.yaml": "cmd: 'echo ab | sed s/a/\\0/'\n",  # a backslash and a zero: no NUL
    })
    assert lines == [
        f"{root}/cmd/test.yaml:1:6: a NUL character (\\0): no command, argument or variable can hold one",
        f"{root}/env/test.yaml:2:10: a NUL character (\\0): no command, argument or variable can hold one",
    ], lines


def test_validate_checks_the_drivers_of_suite_yaml_no_testcase_uses(tmp_path):
    root = tmp_path / "s"
    lines = _validate_lines(root, {
        "suite.yaml": "drivers:\n  good: drivers/good.py:Good\n  unused: drivers/nosuch.py:X\n",
        "drivers/good.py": "from run_testsuite.api import Driver\nclass Good(Driver):\n    pass\n",
        "a/test.yaml": "cmd: 'true'\ndriver: good\n",
    })
    assert lines == [
        f"{root}/suite.yaml:3:11: driver 'unused': driver file '{root}/drivers/nosuch.py' does not exist "
        "(reference 'drivers/nosuch.py:X')"
    ], lines


def test_validate_names_the_links_of_a_testcase_that_did_not_load(tmp_path):
    root = tmp_path / "s"
    lines = _validate_lines(root, {
        "suite.yaml": "setup:\n  build: {cmd: 'true'}\nresources:\n  boards: 1\n",
        "a/test.yaml": "cmd: 'true'\nneeds: [bild]\ntimeout: x\ndepends: [b, nosuch]\n",
        "b/test.yaml": "cmd: 'true'\n",
        "c/test.yaml": "cmd: 'true'\nresources: {boards: 2}\nneeds: [bild]\n",
        "m/test.yaml": "matrix: {o: [1, 2]}\ncmd: 'true'\ntimeout: x\ndepends: [b]\n",  # known: nothing more
    })
    assert sorted(lines) == sorted([
        f"{root}/a/test.yaml:3:10: expected a number, got 'x' (at timeout)",
        f"{root}/a/test.yaml:4:14: depends on unknown testcase 'nosuch'",
        f"{root}/a/test.yaml:2:9: needs unknown set-up 'bild' (suite.yaml declares: build)",
        f"{root}/c/test.yaml:2:21: asks for 2 of 'boards' but the pool has only 1",
        f"{root}/c/test.yaml:3:9: needs unknown set-up 'bild' (suite.yaml declares: build)",
        f"{root}/m/test.yaml:3:10: expected a number, got 'x' (at timeout)",
    ]), lines
