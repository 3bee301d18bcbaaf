"""What a command finds when it starts, whichever way it was started.

Forked workers start commands with ``posix_spawn`` (they change directory
for the moment of the call); the main process (``--no-multiprocessing``)
and Dask workers use ``subprocess.Popen``. Both must give a command the
same world: its work directory, its environment and PATH, default signal
dispositions, only the standard descriptors, a session of its own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, cli_argv, cli_env, load_result, read_json, write_suite

MODES = {"processes": ["-j", "2"], "inline": ["--no-multiprocessing"]}

SIGINT, SIGPIPE = 2, 13

# A driver whose result says where its worker process stands once its
# commands ran: commands move nothing but themselves.
CWD_DRIVER = """
import os

from run_testsuite.api import Driver, Outcome, Status


class WhereAmI(Driver):
    def check(self, fragment, ctx):
        return Outcome(Status.PASS, message=os.getcwd())
"""


def _suite(root: Path, tools: Path) -> None:
    write_suite(
        root,
        {
            "suite.yaml": "drivers:\n  where: _drivers/where.py:WhereAmI\n",
            "_drivers/where.py": CWD_DRIVER,
            "signals/test.yaml": "cmd: grep -E '^Sig(Ign|Blk)' /proc/self/status\n",
            "signals-sh/test.yaml": "cmd: grep -E '^Sig(Ign|Blk)' /proc/self/status | cat\n",
            "fds/test.yaml": "cmd: ls /proc/self/fd\n",
            "session/test.yaml": f"cmd: [{PYTHON!r}, -c, 'import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())']\n",
            "stdin/test.yaml": "cmd: cat\n",
            "cwd/test.yaml": "cmd: pwd\n",
            "cwd/data.txt": "copied\n",
            "relative/test.yaml": "cmd: cat data.txt\n",
            "relative/data.txt": "copied\n",
            "own-path/test.yaml": f"cmd: my-tool one\nenv:\n  PATH: {tools}\n",
            "own-path-missing/test.yaml": f"cmd: grep x /dev/null\nexit_code: 127\nenv:\n  PATH: {tools}\n",
            "where/test.yaml": "driver: where\ncmd: echo here\n",
        },
    )


@pytest.fixture(scope="module", params=sorted(MODES))
def started(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"start-{request.param}")
    root, out, tools = base / "suite", base / "out", base / "tools"
    tools.mkdir()
    tool = tools / "my-tool"
    tool.write_text("#!/bin/sh\necho my-tool says $1\n")
    tool.chmod(0o755)
    _suite(root, tools)
    # A descriptor run-testsuite inherits (as from make's jobserver) must
    # not reach the commands, as with Popen's close_fds.
    read_end, write_end = os.pipe()
    os.dup2(write_end, 57)
    try:
        proc = subprocess.run(
            cli_argv(root, out, *MODES[request.param]),
            cwd=base,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(57,),
        )
    finally:
        for fd in (read_end, write_end, 57):
            os.close(fd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = read_json(out / "new" / "_index.json")
    return lambda name: load_result(out, name, index), base, out


def _mask(output: str, field: str) -> int:
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value.strip(), 16)
    raise AssertionError(f"no {field} in {output!r}")


@pytest.mark.parametrize("name", ["signals", "signals-sh"])
def test_commands_start_with_default_signal_dispositions(started, name):
    result, _, _ = started
    output = result(name)["output"]
    ignored = _mask(output, "SigIgn")
    assert not ignored & (1 << (SIGPIPE - 1)), "SIGPIPE ignored, as Python leaves it"
    assert not ignored & (1 << (SIGINT - 1)), "SIGINT ignored, as workers leave it"
    assert not ignored & ((1 << 31) - 1), f"a standard signal ignored: SigIgn {ignored:x}"  # SIGHUP, say
    assert _mask(output, "SigBlk") == 0


def test_only_the_standard_descriptors_reach_a_command(started):
    result, _, _ = started
    fds = set(result("fds")["output"].split())
    assert "57" not in fds
    # 0, 1, 2 and the descriptor ls reads the directory with.
    assert {"0", "1", "2"} <= fds and len(fds) <= 4, fds


def test_a_command_leads_its_own_session_and_reads_nothing(started):
    result, _, _ = started
    assert result("session")["output"] == "True True\n"
    assert result("stdin")["output"] == ""


def test_a_command_runs_in_its_work_directory(started):
    result, _, out = started
    assert result("cwd")["output"].strip() == str(out / "new" / "work" / "cwd")
    assert result("relative")["output"] == "copied\n"


def test_a_testcase_path_is_searched_for_its_programs(started):
    result, _, _ = started
    assert result("own-path")["output"] == "my-tool says one\n"
    # grep is on the run's PATH, not on the testcase's own.
    missing = result("own-path-missing")
    assert missing["commands"][0]["exit_code"] == 127
    assert "cannot run 'grep'" in missing["output"]


def test_the_worker_stays_where_the_run_started(started):
    result, base, _ = started
    assert result("where")["message"] == str(base)


# -- fresh work directories ------------------------------------------------------
FRESH = 'test -z "$(ls -A)" && touch made'


def spares(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root) if name.startswith(".spare-"))


def test_work_directories_are_fresh_and_no_spare_is_left(tmp_path):
    """Workers keep an empty directory ready and rename it into place; a
    stale tree from an earlier run is still replaced by an empty one, and
    the spares are gone at the end, a dead worker's too."""
    files = {f"t{n}/test.yaml": f"cmd: '{FRESH}'\n" for n in range(8)}
    files["zz-dies/test.yaml"] = "cmd: 'touch made && kill -KILL $PPID'\n"
    root, work = write_suite(tmp_path / "suite", files), tmp_path / "work"
    for attempt in (1, 2):  # the second run meets the first one's trees
        run = subprocess.run(
            cli_argv(root, tmp_path / "out", "-j", "2", "--work-dir", str(work), "--cleanup", "none"),
            env=cli_env(), capture_output=True, text=True, timeout=120,
        )
        index = read_json(tmp_path / "out" / "new" / "_index.json")
        found = {e["name"]: e["status"] for e in index["results"]}
        assert found.pop("zz-dies") == "ERROR", run.stdout
        assert set(found.values()) == {"PASS"}, (attempt, run.stdout)
        assert spares(work) == [], attempt
        assert all((work / f"t{n}" / "made").exists() for n in range(8))


def test_spare_directory_becomes_the_work_directory(tmp_path, monkeypatch):
    from run_testsuite import workdir
    from run_testsuite.runner import STATE

    monkeypatch.setattr(STATE, "spares", [])
    root = tmp_path / "work"
    root.mkdir()
    workdir.make_spare(str(root))
    (spare,) = spares(root)
    inode = (root / spare).stat().st_ino
    workdir.prepare_work_dir(None, str(root / "a"))
    assert spares(root) == [] and (root / "a").stat().st_ino == inode
    # A stale tree in the way: the spare is dropped, the tree replaced.
    (root / "b").mkdir()
    (root / "b" / "old").write_text("stale")
    workdir.make_spare(str(root))
    workdir.prepare_work_dir(None, str(root / "b"))
    assert spares(root) == [] and os.listdir(root / "b") == []
    # A spare elsewhere is not used for another directory's children.
    workdir.make_spare(str(root))
    (tmp_path / "other").mkdir()
    workdir.prepare_work_dir(None, str(tmp_path / "other" / "c"))
    assert spares(root) == [] and (tmp_path / "other" / "c").is_dir()
