"""test.yaml and suite.yaml: commands, steps, exit codes, environment, work
directories, defaults, and invalid specs reported with file:line:col."""

from __future__ import annotations

import os
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import PYTHON, entry, load_result, run_cli, statuses, tree_snapshot, write_suite

SHOW_ENV = """
import json, os
keys = ["TEST_NAME", "TEST_WORK_DIR", "TEST_SOURCE_DIR", "TEST_SUITE_ROOT", "SLOT", "OUTER_VAR"]
info = {key: os.environ.get(key) for key in keys}
info["cwd"] = os.getcwd()
print(json.dumps(info))
"""

VALID = {
    "cmd/pipe/test.yaml": r"""
        cmd: printf 'b\na\nc\n' | sort | tr '\n' ' '
    """,
    "cmd/argv/test.yaml": """
        cmd: [printf, "%s|", "$HOME", "a b", "x|y", "*", 42]
    """,
    "cmd/missing-program/test.yaml": """
        cmd: [/nonexistent/program, arg]
    """,
    "steps/in-order/test.yaml": """
        steps:
          - name: write
            cmd: echo one > f.txt
          - name: append
            cmd: cat f.txt; echo two >> f.txt
          - name: read
            cmd: cat f.txt
    """,
    "steps/stop/test.yaml": """
        steps:
          - cmd: "true"
          - name: bad
            cmd: echo failing; exit 4
          - cmd: touch never1
          - cmd: touch never2
    """,
    "exit/expected/test.yaml": """
        cmd: echo bye; exit 3
        exit_code: 3
    """,
    "exit/unexpected-zero/test.yaml": """
        cmd: "true"
        exit_code: 3
    """,
    "exit/unexpected/test.yaml": """
        cmd: exit 5
    """,
    "exit/signal/test.yaml": """
        cmd: kill -TERM $$
    """,
    "exit/per-step/test.yaml": """
        exit_code: 1
        steps:
          - cmd: "false"
          - cmd: exit 2
            exit_code: 2
          - cmd: exit 0
            exit_code: 0
    """,
    "env/values/test.yaml": """
        env:
          GREETING: hello world
          NUM: 42
          FLOAT: 1.5
          FLAG: true
        cmd: echo "$GREETING|$NUM|$FLOAT|$FLAG"
    """,
    "env/builtins/test.yaml": f"""
        cmd: [{PYTHON}, show.py]
    """,
    "env/builtins/show.py": SHOW_ENV,
    "workdir/copy/test.yaml": """
        cmd: >-
          cat data.txt sub/nested.txt &&
          test ! -e .hidden &&
          echo changed > data.txt &&
          echo new > created.txt &&
          rm sub/nested.txt &&
          echo "cwd=$(pwd -P)"
    """,
    "workdir/copy/data.txt": "original\n",
    "workdir/copy/sub/nested.txt": "nested\n",
    "workdir/copy/.hidden": "not copied\n",
    "workdir/parent/test.yaml": """
        cmd: test ! -e child && test -f keep/me.txt && echo parent-ok
    """,
    "workdir/parent/keep/me.txt": "kept\n",
    "workdir/parent/child/test.yaml": """
        cmd: test -f mine.txt && echo child-ok
    """,
    "workdir/parent/child/mine.txt": "child data\n",
}


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("specs")
    root, out = base / "suite", base / "out"
    write_suite(root, VALID)
    before = tree_snapshot(root)
    run = run_cli(root, out, "-j", "2", "--cleanup", "none", env={"OUTER_VAR": "from-outside"})
    after = tree_snapshot(root)
    return SimpleNamespace(root=root, out=out, run=run, before=before, after=after)


def result(spec_run, name):
    return load_result(spec_run.out, name, spec_run.run.index)


def test_valid_suite_statuses(spec_run):
    assert statuses(spec_run.run.index) == {
        "cmd/argv": ("PASS", None),
        "cmd/missing-program": ("FAIL", "EXIT_CODE"),
        "cmd/pipe": ("PASS", None),
        "env/builtins": ("PASS", None),
        "env/values": ("PASS", None),
        "exit/expected": ("PASS", None),
        "exit/per-step": ("PASS", None),
        "exit/signal": ("FAIL", "EXIT_CODE"),
        "exit/unexpected": ("FAIL", "EXIT_CODE"),
        "exit/unexpected-zero": ("FAIL", "EXIT_CODE"),
        "steps/in-order": ("PASS", None),
        "steps/stop": ("FAIL", "EXIT_CODE"),
        "workdir/copy": ("PASS", None),
        "workdir/parent": ("PASS", None),
        "workdir/parent/child": ("PASS", None),
    }
    assert spec_run.run.returncode == 1


def test_string_cmd_runs_through_sh(spec_run):
    res = result(spec_run, "cmd/pipe")
    assert res["output"] == "a b c "
    assert res["commands"][0]["cmd"] == r"printf 'b\na\nc\n' | sort | tr '\n' ' '"
    assert res["commands"][0]["exit_code"] == 0


def test_list_cmd_is_an_argv_without_shell(spec_run):
    res = result(spec_run, "cmd/argv")
    # No expansion, no globbing, no pipe: every argument arrives verbatim.
    assert res["output"] == "$HOME|a b|x|y|*|42|"
    assert res["commands"][0]["cmd"] == ["printf", "%s|", "$HOME", "a b", "x|y", "*", "42"]


def test_list_cmd_with_a_missing_program_fails_with_127(spec_run):
    res = result(spec_run, "cmd/missing-program")
    assert res["message"] == "step 'run' exited with 127, expected 0"
    assert res["commands"][0]["exit_code"] == 127
    assert "cannot run '/nonexistent/program'" in res["output"]


def test_steps_run_in_order_in_one_work_dir(spec_run):
    res = result(spec_run, "steps/in-order")
    assert [c["step"] for c in res["commands"]] == ["write", "append", "read"]
    assert [c["exit_code"] for c in res["commands"]] == [0, 0, 0]
    assert res["output"] == "[write]\n\n[append]\none\n[read]\none\ntwo\n"
    work = spec_run.out / "new" / "work" / "steps__in-order"
    assert (work / "f.txt").read_text() == "one\ntwo\n"
    assert res["log_files"] == []  # small output lives whole in the result


def test_failing_step_stops_the_later_ones(spec_run):
    res = result(spec_run, "steps/stop")
    assert res["message"] == "step 'bad' exited with 4, expected 0 (2 later steps not run)"
    assert [c["step"] for c in res["commands"]] == ["step1", "bad"]
    assert res["output"] == "[step1]\n\n[bad]\nfailing\n"
    work = spec_run.out / "new" / "work" / "steps__stop"
    assert work.is_dir()
    assert not (work / "never1").exists() and not (work / "never2").exists()


def test_expected_non_zero_exit_code(spec_run):
    res = result(spec_run, "exit/expected")
    assert res["status"] == "PASS"
    assert res["commands"][0]["exit_code"] == 3
    assert result(spec_run, "exit/unexpected-zero")["message"] == "step 'run' exited with 0, expected 3"
    assert result(spec_run, "exit/unexpected")["message"] == "step 'run' exited with 5, expected 0"


def test_command_killed_by_a_signal(spec_run):
    res = result(spec_run, "exit/signal")
    assert res["message"] == "step 'run' exited with signal SIGTERM, expected 0"
    assert res["commands"][0]["exit_code"] == -15
    assert res["commands"][0]["timed_out"] is False


def test_step_exit_codes_default_to_the_testcase_one(spec_run):
    res = result(spec_run, "exit/per-step")
    assert [c["exit_code"] for c in res["commands"]] == [1, 2, 0]


def test_env_values_reach_the_command_as_strings(spec_run):
    assert result(spec_run, "env/values")["output"] == "hello world|42|1.5|true\n"


def test_builtin_variables_and_the_callers_environment(spec_run):
    import json

    res = result(spec_run, "env/builtins")
    info = json.loads(res["output"])
    work = spec_run.out / "new" / "work" / "env__builtins"
    assert info["TEST_NAME"] == "env/builtins"
    assert info["TEST_WORK_DIR"] == str(work)
    assert os.path.realpath(info["cwd"]) == os.path.realpath(work)
    assert info["TEST_SOURCE_DIR"] == str(spec_run.root / "env" / "builtins")
    assert info["TEST_SUITE_ROOT"] == str(spec_run.root)
    assert info["SLOT"] == str(res["slot"])
    assert info["SLOT"] in ("1", "2")
    assert info["OUTER_VAR"] == "from-outside"


def test_work_dir_is_a_fresh_copy_and_the_source_is_untouched(spec_run):
    res = result(spec_run, "workdir/copy")
    work = spec_run.out / "new" / "work" / "workdir__copy"
    assert res["output"] == f"original\nnested\ncwd={os.path.realpath(work)}\n"
    assert (work / "data.txt").read_text() == "changed\n"
    assert (work / "created.txt").read_text() == "new\n"
    assert not (work / ".hidden").exists()
    source = spec_run.root / "workdir" / "copy"
    assert (source / "data.txt").read_text() == "original\n"
    assert (source / "sub" / "nested.txt").read_text() == "nested\n"
    assert not (source / "created.txt").exists()


def test_source_tree_unchanged_after_the_run(spec_run):
    assert spec_run.after == spec_run.before


def test_nested_testcases_are_not_copied_into_their_parent(spec_run):
    assert result(spec_run, "workdir/parent")["output"] == "parent-ok\n"
    assert result(spec_run, "workdir/parent/child")["output"] == "child-ok\n"
    parent_work = spec_run.out / "new" / "work" / "workdir__parent"
    assert sorted(os.listdir(parent_work)) == ["keep"]


def test_work_dir_is_recreated_on_each_run(paths):
    root, out = paths
    work = root.parent / "work"
    write_suite(root, {"t/test.yaml": "cmd: test ! -e leftover && touch leftover\n"})
    for _ in range(2):
        run = run_cli(root, out, "--work-dir", work, "--cleanup", "none")
        assert statuses(run.index) == {"t": ("PASS", None)}
    assert (work / "t" / "leftover").is_file()


def test_symlinks_inside_the_testcase_are_kept(paths):
    root, out = paths
    write_suite(root, {"t/test.yaml": "cmd: cat alias.txt && test -L alias.txt\n", "t/data.txt": "data\n"})
    (root / "t" / "alias.txt").symlink_to("data.txt")
    run = run_cli(root, out)
    assert statuses(run.index) == {"t": ("PASS", None)}
    assert load_result(out, "t", run.index)["output"] == "data\n"


def test_relative_symlink_to_a_shared_file_still_resolves(paths):
    root, out = paths
    write_suite(root, {"common/input.txt": "shared\n", "t/test.yaml": "cmd: cat input.txt\n"})
    (root / "t" / "input.txt").symlink_to("../common/input.txt")
    assert (root / "t" / "input.txt").read_text() == "shared\n"
    run = run_cli(root, out)
    assert statuses(run.index) == {"t": ("PASS", None)}
    assert load_result(out, "t", run.index)["output"] == "shared\n"


@pytest.mark.parametrize("layout", ["root-is-the-testcase", "run-from-inside-a-testcase"])
def test_output_directory_inside_a_testcase_directory(tmp_path, layout):
    if layout == "root-is-the-testcase":
        root = write_suite(tmp_path / "single", {"test.yaml": "cmd: cat data.txt\n", "data.txt": "payload\n"})
        name, cwd = "single", root
    else:
        root = write_suite(
            tmp_path / "suite",
            {"t/test.yaml": "cmd: cat data.txt\n", "t/data.txt": "payload\n", "u/test.yaml": "cmd: 'true'\n"},
        )
        name, cwd = "t", root / "t"
    out = cwd / "out"  # what the default '-o out' gives
    run = run_cli(root, out, cwd=cwd)
    assert statuses(run.index)[name] == ("PASS", None)
    assert load_result(out, name, run.index)["output"] == "payload\n"


# -- suite.yaml defaults -------------------------------------------------------------
def test_suite_defaults_timeout_driver_env_tags(paths):
    root, out = paths
    write_suite(
        root,
        {
            "suite.yaml": """
                name: my-suite
                defaults:
                  timeout: 0.5
                  driver: diff
                  env: {A: from-suite, B: from-suite}
                  tags: [nightly]
            """,
            "uses-defaults/test.yaml": """
                cmd: echo "$A $B"
                env: {B: from-test}
                tags: [mine]
            """,
            "uses-defaults/test.out": "from-suite from-test\n",
            "suite-timeout/test.yaml": """
                driver: shell
                cmd: sleep 30
            """,
            "own-timeout/test.yaml": """
                driver: shell
                timeout: 20
                cmd: sleep 0.8
            """,
            "step-timeout/test.yaml": """
                driver: shell
                steps:
                  - cmd: sleep 0.8
                    timeout: 20
            """,
        },
    )
    run = run_cli(root, out, "-j", "4")
    assert statuses(run.index) == {
        "own-timeout": ("PASS", None),
        "step-timeout": ("PASS", None),
        "suite-timeout": ("FAIL", "TIMEOUT"),
        "uses-defaults": ("PASS", None),
    }
    assert run.index["suite"] == "my-suite"
    res = load_result(out, "uses-defaults", run.index)
    assert res["driver"] == "diff"
    assert res["tags"] == ["nightly", "mine"]
    assert entry(run.index, "uses-defaults")["tags"] == ["nightly", "mine"]
    assert load_result(out, "suite-timeout", run.index)["message"] == "step 'run' timed out after 0.5 s"
    assert load_result(out, "suite-timeout", run.index)["tags"] == ["nightly"]


# -- invalid specs -----------------------------------------------------------------------
INVALID = {
    "bad/syntax/test.yaml": "cmd: echo hi\nenv: [a\n",
    "bad/type/test.yaml": "cmd: echo hi\ntimeout: abc\n",
    "bad/misspelt/test.yaml": "description: x\ncmdd: echo hi\n",
    "bad/both/test.yaml": "cmd: echo hi\nsteps:\n  - cmd: echo x\n",
    "bad/driver/test.yaml": "cmd: echo hi\ndriver: nope\n",
    "bad/baseline/test.yaml": "driver: diff\ncmd: echo hi\n",
    "bad/baseline-named/test.yaml": "driver: diff\ncmd: echo hi\nbaseline: expected.txt\n",
    "bad/step-key/test.yaml": "steps:\n  - cmd: echo x\n    timout: 3\n",
    "bad/cmd-type/test.yaml": "cmd: 5\n",
    "bad/empty/test.yaml": "",
    "bad/dup-step/test.yaml": "steps:\n  - name: a\n    cmd: 'true'\n  - name: a\n    cmd: 'true'\n",
    "bad/not-mapping/test.yaml": "- cmd: echo hi\n",
    "bad/env-name/test.yaml": "cmd: echo hi\nenv:\n  1BAD: x\n",
    "bad/duplicate-key/test.yaml": "cmd: echo a\ntimeout: 5\ncmd: echo b\n",
    "bad/not-utf8/test.yaml": b"cmd: echo caf\xe9\n",
    "bad/nul/test.yaml": b"cmd: echo\0\n",
    "bad/alias-bomb/test.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
    "good/one/test.yaml": "cmd: echo one\n",
    "good/two/test.yaml": "steps:\n  - cmd: echo two\n",
}

# name -> (line, column, text the message holds after "path:line:col: ")
EXPECTED_ERRORS = {
    "bad/syntax": (3, 1, "YAML syntax error: "),
    "bad/type": (2, 10, "expected a number, got 'abc' (at timeout)"),
    "bad/misspelt": (2, 1, "unknown key 'cmdd'; did you mean 'cmd'?"),
    "bad/both": (1, 1, "'cmd' and 'steps' exclude each other"),
    "bad/driver": (2, 9, "unknown driver 'nope' (known: diff, gtest, junit, shell, tap)"),
    "bad/baseline": (1, 1, "baseline 'test.out' does not exist"),
    "bad/baseline-named": (3, 11, "baseline 'expected.txt' does not exist"),
    "bad/step-key": (3, 5, "unknown key 'timout'; did you mean 'timeout'? (at steps[0])"),
    "bad/cmd-type": (1, 6, "expected a string or a list, got 5 (at cmd)"),
    "bad/empty": (1, 1, "nothing to run: give 'cmd' or 'steps'"),
    "bad/dup-step": (4, 11, "duplicate step name 'a'"),
    "bad/not-mapping": (1, 1, "expected a mapping of keys to values at the top level, found list"),
    "bad/env-name": (3, 3, "'1BAD' does not match"),
    "bad/duplicate-key": (3, 1, "duplicate key 'cmd' (first at line 1)"),
    "bad/not-utf8": (1, 14, "not valid UTF-8 (byte 0xe9)"),
    "bad/nul": (1, 1, "not a text file: it holds NUL bytes"),
    "bad/alias-bomb": (1, 1, "the document expands to more than 100000 values through aliases"),
}


@pytest.fixture(scope="module")
def invalid_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("invalid")
    root, out = base / "suite", base / "out"
    write_suite(root, INVALID)
    return SimpleNamespace(root=root, out=out, run=run_cli(root, out, "-j", "2"))


def test_invalid_specs_are_spec_errors_and_the_rest_still_runs(invalid_run):
    run = invalid_run.run
    expected = {name: ("ERROR", "SPEC") for name in EXPECTED_ERRORS}
    expected.update({"good/one": ("PASS", None), "good/two": ("PASS", None)})
    assert statuses(run.index) == expected
    assert run.returncode == 1
    assert run.index["counts"]["ERROR"] == len(EXPECTED_ERRORS)
    assert run.index["counts"]["PASS"] == 2
    assert load_result(invalid_run.out, "good/one", run.index)["output"] == "one\n"
    assert load_result(invalid_run.out, "good/two", run.index)["output"] == "two\n"


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_invalid_spec_message_names_file_line_and_column(invalid_run, name):
    line, col, text = EXPECTED_ERRORS[name]
    spec_file = invalid_run.root / name / "test.yaml"
    res = load_result(invalid_run.out, name, invalid_run.run.index)
    assert res["status"] == "ERROR" and res["reason"] == "SPEC"
    first = res["message"].splitlines()[0]
    prefix = f"{spec_file}:{line}:{col}: "
    assert first.startswith(prefix), first
    assert text in first
    assert res["commands"] == [] and res["output"] == ""
    assert res["spec_file"] == str(spec_file)
    # The terminal names it too, with its reason.
    assert f"ERROR {name} [SPEC]: {prefix}" in invalid_run.run.stdout


def test_invalid_suite_yaml_is_a_usage_error(paths):
    root, out = paths
    write_suite(root, {"suite.yaml": "defaults:\n  timout: 5\n", "t/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, out)
    assert run.returncode == 2
    assert run.index is None and not out.exists()
    assert "invalid suite configuration" in run.stderr
    assert f"{root / 'suite.yaml'}:2:3: unknown key 'timout'; did you mean 'timeout'?" in run.stderr


def test_work_directory_holds_the_test_files_but_not_the_spec_or_baseline(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "d/test.yaml": "driver: diff\ncmd: ls\nbaseline: expected.txt\n",
            "d/expected.txt": "input.txt\nsub\n",
            "d/input.txt": "data\n",
            "d/sub/more.txt": "more\n",
        },
    )
    run = run_cli(root, out, "--cleanup", "none")
    assert run.returncode == 0, run.stdout
    work = out / "new" / "work" / "d"
    assert sorted(p.name for p in work.iterdir()) == ["input.txt", "sub"]
    assert (work / "sub" / "more.txt").read_text() == "more\n"


def test_spec_cache_notices_an_edited_spec(tmp_path):
    # The second run takes the spec from the cache; an edit must be seen.
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"t/test.yaml": "cmd: echo one\n"})
    assert load_result(out, "t", run_cli(root, out).index)["output"] == "one\n"
    assert (out / "spec-cache.json").is_file()
    assert load_result(out, "t", run_cli(root, out).index)["output"] == "one\n"
    (root / "t" / "test.yaml").write_text("cmd: echo two; exit 3\nexit_code: 3\n")
    assert load_result(out, "t", run_cli(root, out).index)["output"] == "two\n"
    (root / "t" / "test.yaml").write_text("cmd: [unterminated\n")
    run = run_cli(root, out)
    assert statuses(run.index) == {"t": ("ERROR", "SPEC")}


def test_spec_cache_holds_suite_yaml_and_notices_its_edits(tmp_path):
    # suite.yaml is cached like the specs: a re-run parses no YAML at all.
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"suite.yaml": "defaults:\n  env:\n    WORD: one\n", "t/test.yaml": "cmd: printenv WORD\n"})
    assert load_result(out, "t", run_cli(root, out).index)["output"] == "one\n"
    entries = json.loads((out / "spec-cache.json").read_text())["entries"]
    assert str(root / "suite.yaml") in entries
    assert load_result(out, "t", run_cli(root, out).index)["output"] == "one\n"
    (root / "suite.yaml").write_text("defaults:\n  env:\n    WORD: two\n")
    assert load_result(out, "t", run_cli(root, out).index)["output"] == "two\n"
    (root / "suite.yaml").write_text("defaults:\n  envv: {}\n")
    run = run_cli(root, out)
    assert run.returncode == 2 and "suite.yaml:2:3" in run.stderr, run.stderr


def test_plain_commands_run_without_a_shell_with_the_same_meaning(tmp_path):
    # `exit`, assignments and expansions need sh; plain words do not, and a
    # missing program is status 127 either way.
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "plain/test.yaml": "cmd: echo a  b\n",
            "exit/test.yaml": "cmd: exit 3\nexit_code: 3\n",
            "assign/test.yaml": "cmd: X=1 printenv X\n",
            "missing/test.yaml": "cmd: no-such-program-here arg\nexit_code: 127\n",
            "tilde/test.yaml": "cmd: echo ~\n",
        },
    )
    run = run_cli(root, out)
    assert run.returncode == 0, run.stdout
    assert load_result(out, "plain", run.index)["output"] == "a b\n"
    assert load_result(out, "assign", run.index)["output"] == "1\n"
    assert load_result(out, "tilde", run.index)["output"] == os.path.expanduser("~") + "\n"


def test_commands_see_the_test_variables_and_a_spec_does_not_change_them(tmp_path):
    # The plan keeps in a fragment's env only what differs from the TEST_*
    # variables its fields give; the commands see all of them either way,
    # and a spec's env does not change them.
    root, out = tmp_path / "suite", tmp_path / "out"
    show = "cmd: env | grep -E '^(TEST_|SETUP_DIR)' | sort\n"
    write_suite(
        root,
        {
            "suite.yaml": "setup:\n  build:\n    " + show.replace("\n", "") + "\n",
            "plain/test.yaml": show + "needs: [build]\n",
            "renamed/test.yaml": show + "env:\n  TEST_NAME: chosen\n",
        },
    )
    run = run_cli(root, out)
    assert run.returncode == 0, run.stderr
    work, real = out / "new" / "work", str(root)
    assert load_result(out, "plain", run.index)["output"].splitlines() == [
        "TEST_NAME=plain",
        f"TEST_SOURCE_DIR={real}/plain",
        f"TEST_SUITE_ROOT={real}",
        f"TEST_WORK_DIR={work}/plain",
    ]
    assert load_result(out, "renamed", run.index)["output"].splitlines()[0] == "TEST_NAME=renamed"
    setup = load_result(out, "setup:build", run.index)["output"].splitlines()
    assert setup == [
        f"SETUP_DIR={work}/setup_build",
        "TEST_NAME=setup:build",
        f"TEST_SUITE_ROOT={real}",
        f"TEST_WORK_DIR={work}/setup_build",
    ]
