"""Incremental keys that never give a false PASS, and --explain.

Each test changes one thing a verdict depends on (a shared program, a
declared input, an executable on PATH, an outer variable, a parameter)
and checks that ``--incremental`` runs the testcase again, where the key
of a testcase's own directory alone said "cached". The file hash cache is
tested for what it must not miss (a file restored with its old mtime, a
file changed within the clock's tick) and for reading nothing on a
no-change re-run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from conftest import REPO, run_cli, statuses, write_suite

from run_testsuite import file_hashes
from run_testsuite.file_hashes import CACHE_FILE, FileHashes
from run_testsuite.keys import command_word


def cached(run) -> set[str]:
    return {name for name, (status, reason) in statuses(run.index).items() if reason == "CACHED"}


def incremental(root, out, *args, env=None):
    return run_cli(root, out, "-j", "2", "--incremental", *args, env=env)


def age(*paths: Path, seconds: float = 10) -> None:
    """Date files back, past the hash cache's racy window."""
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


# -- the case: the program under test lives outside the testcases ----
def test_breaking_the_shared_program_reruns_the_example_suite(tmp_path):
    root = tmp_path / "suite"
    shutil.copytree(REPO / "testcases", root)
    out = tmp_path / "out"
    first = incremental(root, out)
    assert first.returncode == 0, first.stdout + first.stderr
    again = incremental(root, out)
    assert again.returncode == 0
    assert len(cached(again)) >= 10  # a no-change re-run is taken from the cache
    calc = root / "program" / "calc.py"
    calc.write_text(
        calc.read_text().replace("#!/usr/bin/env python3\n", "#!/usr/bin/env python3\nraise SystemExit(3)\n")
    )
    broken = incremental(root, out)
    plain = run_cli(root, tmp_path / "plain", "-j", "2")
    assert broken.returncode == plain.returncode == 1
    failed = {n for n, (s, _) in statuses(plain.index).items() if s == "FAIL"}
    assert failed and failed == {n for n, (s, _) in statuses(broken.index).items() if s == "FAIL"}
    assert not cached(broken) & failed


SIMPLE = {
    "suite.yaml": "name: keys\n",
    "tools/check.sh": "#!/bin/sh\nexit 0\n",
    "t/test.yaml": "cmd: sh ../../../../suite/tools/check.sh\n",
}


def test_a_shared_file_a_driver_source_and_suite_yaml_are_in_the_key(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "drivers:\n  mine: _drivers/mine.py:Mine\n",
            "_drivers/mine.py": "from run_testsuite.drivers.shell import ShellDriver as Mine\n",
            "data/table.txt": "1\n",
            "a/test.yaml": "driver: mine\ncmd: 'true'\n",
            "a/.hidden-notes": "x\n",
        },
    )
    out = tmp_path / "out"
    incremental(root, out)
    assert cached(incremental(root, out)) == {"a"}
    for change in ("data/table.txt", "_drivers/mine.py", "suite.yaml"):
        with open(root / change, "a") as handle:
            # suite.yaml counts by what it says (less its quarantine), not its comments.
            handle.write("max_variants: 99\n" if change == "suite.yaml" else "# changed\n")
        run = incremental(root, out, "--explain")
        assert cached(run) == set(), change
        assert f"shared file {change} changed" in run.stdout, run.stdout
        assert cached(incremental(root, out)) == {"a"}
    with open(root / "suite.yaml", "a") as handle:
        handle.write("# a comment\nquarantine: [a]\n")
    assert cached(incremental(root, out)) == {"a"}  # neither says what a does
    (root / "a" / ".hidden-notes").write_text("y\n")  # hidden: never copied, never keyed
    (root / "new-notes.txt").write_text("notes\n")
    run = incremental(root, out, "--explain")
    assert "shared file new-notes.txt is new" in run.stdout


def test_key_ignore_and_the_output_directory_inside_the_suite(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {"suite.yaml": "key_ignore: [logs, '*.tmp']\n", "a/test.yaml": "cmd: 'true'\n", "logs/x.log": "1\n"},
    )
    out = root / "out"  # inside the suite: its results are not shared files
    incremental(root, out)
    (root / "logs" / "x.log").write_text("2\n")
    (root / "scratch.tmp").write_text("2\n")
    assert cached(incremental(root, out)) == {"a"}


# -- inputs -----------------------------------------------------------------------
def test_declared_inputs_files_globs_directories_and_variables(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "lib").mkdir(parents=True)
    (elsewhere / "lib" / "one.h").write_text("1\n")
    (elsewhere / "golden.txt").write_text("g\n")
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "defaults:\n  inputs: ['$ELSEWHERE/golden.txt']\n",
            "a/test.yaml": "cmd: 'true'\ninputs: ['${ELSEWHERE}/lib/**/*.h']\n",
            "b/test.yaml": "cmd: 'true'\ninputs: ['$ELSEWHERE/lib']\n",
        },
    )
    out = tmp_path / "out"
    env = {"ELSEWHERE": str(elsewhere)}
    incremental(root, out, env=env)
    assert cached(incremental(root, out, env=env)) == {"a", "b"}
    (elsewhere / "lib" / "one.h").write_text("2\n")
    run = incremental(root, out, "--explain", env=env)
    assert cached(run) == set()
    assert f"input {elsewhere}/lib/one.h changed" in run.stdout
    (elsewhere / "lib" / "sub").mkdir()
    (elsewhere / "lib" / "sub" / "two.h").write_text("2\n")
    run = incremental(root, out, "--explain", env=env)
    assert cached(run) == set()  # a new match of the glob, and a new file of the directory
    assert f"input {elsewhere}/lib/sub/two.h is new" in run.stdout
    (elsewhere / "golden.txt").write_text("h\n")  # the defaults' input: everyone's
    assert cached(incremental(root, out, env=env)) == set()
    assert cached(incremental(root, out, env=env)) == {"a", "b"}


def test_an_input_naming_an_unset_variable_is_a_spec_error(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "a/test.yaml": "cmd: 'true'\ninputs:\n  - data.txt\n  - $NOT_SET_ANYWHERE/x\n",
            "b/test.yaml": "cmd: 'true'\n",
        },
    )
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"a": ("ERROR", "SPEC"), "b": ("PASS", None)}
    message = next(e for e in run.index["results"] if e["name"] == "a")["message"]
    assert "test.yaml:4:" in message and "$NOT_SET_ANYWHERE is not set" in message


def test_set_up_inputs_rerun_the_set_up_and_what_needs_it(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "setup:\n  build:\n    cmd: 'true'\n    inputs: [src/*.c]\n",
            "src/main.c": "int main;\n",
            "a/test.yaml": "needs: [build]\ncmd: 'true'\n",
            "b/test.yaml": "cmd: 'true'\n",
        },
    )
    out = tmp_path / "out"
    incremental(root, out)
    assert cached(incremental(root, out)) == {"a", "b"}
    # src/ is shared too, so b re-runs as well: the set-up's input is in a's key twice
    (root / "src" / "util.c").write_text("int x;\n")
    run = incremental(root, out, "--explain")
    assert "a: runs: since it passed in run" in run.stdout and "upstream key of setup:build changed" in run.stdout
    assert statuses(run.index)["setup:build"] == ("PASS", None)


# -- executables ---------------------------------------------------------------------
def test_rebuilding_a_program_on_path_reruns_what_uses_it(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    tool = tools / "mytool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    age(tool)
    root = write_suite(
        tmp_path / "suite",
        {
            "argv/test.yaml": "cmd: [mytool, --check]\n",
            "shell/test.yaml": "cmd: mytool --check && echo ok\n",
            "other/test.yaml": "cmd: 'true'\n",
        },
    )
    out = tmp_path / "out"
    env = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    incremental(root, out, env=env)
    assert cached(incremental(root, out, env=env)) == {"argv", "shell", "other"}
    tool.write_text("#!/bin/sh\nexit 1\n")  # rebuilt: same path, other contents
    run = incremental(root, out, "--explain", env=env)
    assert statuses(run.index)["argv"] == ("FAIL", "EXIT_CODE")
    assert statuses(run.index)["shell"] == ("FAIL", "EXIT_CODE")
    assert statuses(run.index)["other"] == ("PASS", "CACHED")
    assert f"executable mytool ({tool}) changed" in run.stdout


def test_a_testcase_path_is_where_its_programs_are_looked_up(tmp_path):
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cc").write_text(f"#!/bin/sh\necho {name}\n")
        (tmp_path / name / "cc").chmod(0o755)
    root = write_suite(tmp_path / "suite", {"a/test.yaml": f"cmd: cc\nenv:\n  PATH: {tmp_path}/v1:/usr/bin:/bin\n"})
    out = tmp_path / "out"
    incremental(root, out)
    (tmp_path / "v1" / "cc").unlink()
    (tmp_path / "v2" / "cc").rename(tmp_path / "v1" / "cc")  # same path, other program
    assert cached(incremental(root, out)) == set()


def test_command_words():
    assert command_word(["/usr/bin/jq", "."]) == "/usr/bin/jq"
    assert command_word("jq -r .x in.json") == "jq"
    assert command_word("./run.sh") == "./run.sh"
    assert command_word("set -e; make") is None  # the shell's own
    assert command_word("$CC -o x x.c") is None  # not a plain word
    assert command_word("FOO=1 prog") is None


# -- the environment --------------------------------------------------------------------
def test_key_env_variables_and_parameters_are_in_the_key(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "params:\n  level: '1'\ndefaults:\n  key_env: [CC]\n",
            "a/test.yaml": "cmd: 'true'\nkey_env: [OPT_LEVEL]\n",
            "b/test.yaml": "cmd: 'true'\n",
        },
    )
    out = tmp_path / "out"
    secret = "s3cr3t-value-1234"
    incremental(root, out, env={"CC": "gcc", "OPT_LEVEL": secret})
    assert cached(incremental(root, out, env={"CC": "gcc", "OPT_LEVEL": secret})) == {"a", "b"}
    run = incremental(root, out, "--explain", env={"CC": "gcc", "OPT_LEVEL": "2"})
    assert cached(run) == {"b"}
    assert "outer variable OPT_LEVEL (key_env) changed" in run.stdout
    assert cached(incremental(root, out, env={"CC": "clang", "OPT_LEVEL": "2"})) == set()
    assert cached(incremental(root, out, env={"OPT_LEVEL": "2"})) == set()  # unset is a value too
    assert cached(incremental(root, out, "-D", "level=2", env={"OPT_LEVEL": "2"})) == set()
    for path in out.iterdir():  # values are hashed, never kept
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_the_environment_a_testcase_sets_is_in_its_key(tmp_path):
    root = write_suite(
        tmp_path / "suite", {"suite.yaml": "defaults:\n  env:\n    MODE: fast\n", "a/test.yaml": "cmd: 'true'\n"}
    )
    out = tmp_path / "out"
    incremental(root, out)
    (root / "suite.yaml").write_text("defaults:\n  env:\n    MODE: slow\n")
    run = incremental(root, out, "--explain")
    assert cached(run) == set()
    assert "its spec changed" in run.stdout


# -- --explain --------------------------------------------------------------------------
def test_explain_with_list_says_what_would_run_and_why(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "up/test.yaml": "cmd: 'true'\n",
            "up/data.txt": "1\n",
            "down/test.yaml": "cmd: 'true'\ndepends: [up]\n",
            "same/test.yaml": "cmd: 'true'\n",
            "bad/test.yaml": "cmd: exit 1\n",
        },
    )
    out = tmp_path / "out"
    incremental(root, out)
    (root / "up" / "data.txt").write_text("2\n")
    listed = run_cli(root, out, "--incremental", "--list", "--explain")
    assert listed.returncode == 0
    lines = dict(line.split(": ", 1) for line in listed.stdout.splitlines())
    assert lines["same"].startswith("cached: passed in run 1")
    assert (
        lines["up"].startswith("runs: since it passed in run 1")
        and "file data.txt in its directory changed" in lines["up"]
    )
    assert "upstream key of up changed" in lines["down"]
    assert lines["bad"] == "runs: it never passed in this output directory"
    plain = run_cli(root, out, "--list", "--explain")
    assert "runs (no --incremental): since it passed in run 1" in plain.stdout


# -- the file hash cache --------------------------------------------------------------------
def test_hash_cache_reads_nothing_on_a_no_change_rerun(tmp_path, monkeypatch):
    files = [tmp_path / f"f{n}" for n in range(20)]
    for path in files:
        path.write_text(str(path))
    # The change time cannot be dated back: shrink the racy window instead.
    monkeypatch.setattr(file_hashes, "RACY_SECONDS", -1.0)
    first = FileHashes(str(tmp_path))
    digests = [first.digest(str(p)) for p in files]
    assert first.read_count == 20
    first.save()
    again = FileHashes(str(tmp_path))
    assert [again.digest(str(p)) for p in files] == digests
    assert again.read_count == 0


def test_hash_cache_sees_a_file_restored_with_its_old_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(file_hashes, "RACY_SECONDS", -1.0)
    path = tmp_path / "prog"
    path.write_text("version 1\n")
    age(path, seconds=100)
    before = os.stat(path)
    first = FileHashes(str(tmp_path))
    old = first.digest(str(path))
    first.save()
    path.write_text("version 2\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    assert FileHashes(str(tmp_path)).digest(str(path)) != old  # the ctime moved


def test_hash_cache_does_not_remember_a_file_changed_within_the_tick(tmp_path):
    path = tmp_path / "fresh"
    path.write_text("a\n")
    first = FileHashes(str(tmp_path))
    first.digest(str(path))
    first.save()
    again = FileHashes(str(tmp_path))
    again.digest(str(path))
    assert again.read_count == 1  # too fresh to trust its stat: read again


def test_hash_cache_never_opens_special_files_and_survives_damage(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    hashes = FileHashes(str(tmp_path))
    assert hashes.digest(str(fifo)) == "fifo"
    assert hashes.digest(str(tmp_path / "none")) == "missing"
    (tmp_path / CACHE_FILE).write_text("{not json")
    FileHashes(str(tmp_path))  # set aside, no exception
    assert not (tmp_path / CACHE_FILE).exists()
    (tmp_path / CACHE_FILE).write_text('{"version": 2, "entries": {"x": 5}}')
    FileHashes(str(tmp_path))
    assert not (tmp_path / CACHE_FILE).exists()


def test_history_keeps_key_parts_only_when_a_key_is_new(tmp_path):
    root = write_suite(tmp_path / "suite", {f"t{n}/test.yaml": "cmd: 'true'\n" for n in range(5)})
    out = tmp_path / "out"
    run_cli(root, out)
    run_cli(root, out)
    with sqlite3.connect(out / "history.sqlite") as db:
        runs = {run for (run,) in db.execute("SELECT run FROM passed_parts")}
        manifests = db.execute("SELECT count(*) FROM manifests").fetchone()[0]
    assert runs == {1}  # the second run's keys were the same: nothing rewritten
    assert manifests == 1


# -- found in review: loops, copies, a run's own output, secrets ---------------------
def test_links_to_directories_never_loop(tmp_path):
    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "a/data/x.txt": "1\n"})
    os.symlink(".", root / "a" / "self1")
    os.symlink(".", root / "a" / "self2")
    os.symlink("data", root / "a" / "alias")
    out = tmp_path / "out"
    first = run_cli(root, out, "--incremental", timeout=60)
    assert statuses(first.index) == {"a": ("PASS", None)}
    assert cached(incremental(root, out)) == {"a"}
    (root / "a" / "data" / "x.txt").write_text("2\n")
    assert cached(incremental(root, out)) == set()


def test_a_copy_of_a_testcase_is_not_its_original(tmp_path):
    root = write_suite(tmp_path / "suite", {"ok/test.yaml": 'cmd: test "$TEST_NAME" = ok\n'})
    out = tmp_path / "out"
    incremental(root, out)
    shutil.copytree(root / "ok", root / "copy")
    run = incremental(root, out)
    assert statuses(run.index) == {"ok": ("PASS", "CACHED"), "copy": ("FAIL", "EXIT_CODE")}


def test_the_runs_own_output_is_never_an_input(tmp_path):
    root = write_suite(tmp_path / "one", {"test.yaml": "cmd: 'true'\n", "data.txt": "1\n"})  # the root is the testcase
    out = root / "out"
    junit = root / "junit.xml"
    for _ in range(2):
        run_cli(root, out, "--incremental", "--junit-xml", junit, cwd=root)
    other = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n"})
    run_cli(other, other / "elsewhere-out")  # another run's output directory inside the suite
    incremental(other, tmp_path / "out2")
    run_cli(other, other / "elsewhere-out")
    assert cached(incremental(other, tmp_path / "out2")) == {"a"}
    again = run_cli(root, out, "--incremental", "--junit-xml", junit, "--explain", cwd=root)
    assert cached(again) == {"one"}, again.stdout


def test_key_env_hashes_are_salted_per_output_directory(tmp_path):
    import hashlib

    root = write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\nkey_env: [PIN]\n"})
    out = tmp_path / "out"
    incremental(root, out, env={"PIN": "1234"})
    plain = hashlib.blake2b(b"1234", digest_size=20).hexdigest()
    assert plain.encode() not in (out / "history.sqlite").read_bytes()
    assert len((out / "key-salt").read_bytes()) == 32
    assert cached(incremental(root, out, env={"PIN": "1234"})) == {"a"}


def test_a_hash_cache_nested_too_deep_is_set_aside(tmp_path):
    (tmp_path / CACHE_FILE).write_text("[" * 200_000)
    FileHashes(str(tmp_path))
    assert not (tmp_path / CACHE_FILE).exists()


def test_key_parts_are_kept_in_a_nameless_file_and_in_memory_where_it_cannot_be_written(tmp_path, monkeypatch):
    import json

    from run_testsuite.parts_spool import PartsSpool

    spool = PartsSpool()
    texts = [json.dumps({"n": n, "name": "é" * (n % 7)}) for n in range(500)]
    refs = [spool.keep(text) for text in texts]
    assert all(ref >= 0 for ref in refs)  # in the file
    assert [spool.get(ref) for ref in reversed(refs)] == list(reversed(texts))
    # A temporary directory that cannot be written: the parts stay in memory.
    import errno
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    other = PartsSpool()
    ref = other.keep('{"a": 1}')
    assert ref < 0 and other.get(ref) == '{"a": 1}'
    spool.close()
    assert spool.get(refs[0]) is None  # gone: history skips it, nothing fails


def test_key_parts_the_temporary_file_cannot_take_stay_in_memory(monkeypatch):
    import errno
    import os

    from run_testsuite import parts_spool

    spool = parts_spool.PartsSpool()
    first = spool.keep("one")
    real = os.pwrite

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(parts_spool.os, "pwrite", full)
    second = spool.keep("two")
    monkeypatch.setattr(parts_spool.os, "pwrite", real)
    third = spool.keep("three")  # the file is not trusted again
    assert first >= 0 and second < 0 and third < 0
    assert [spool.get(first), spool.get(second), spool.get(third)] == ["one", "two", "three"]
