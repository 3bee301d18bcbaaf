"""What the run prints may be lost; its results may not.

A reader that goes away (`| head`), a closed descriptor (`>&-`, `2>&-`) or
a full device (`>/dev/full`) used to stop the run where the write failed:
`| head -3` on 90 testcases left one entry in the index."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import cli_argv, cli_env, load_index, statuses, write_suite

COUNT = 60


@pytest.fixture(name="suite")
def _suite(tmp_path):
    # Every other testcase fails: each prints a line, and details at the end.
    return write_suite(
        tmp_path / "suite",
        {f"t{n:02d}/test.yaml": f"cmd: echo {n}; exit {n % 2}\n" for n in range(COUNT)},
    )


def _every_result(out) -> None:
    index = load_index(out)
    assert index["complete"] is True
    found = statuses(index)
    assert len(found) == COUNT, sorted(found)
    assert all(status == ("FAIL" if int(name[1:]) % 2 else "PASS") for name, (status, _) in found.items())


def test_a_reader_that_goes_away_loses_no_result(suite, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*cli_argv(suite, out, "-j", "2", "-v")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    stderr = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(timeout=120) == 1, stderr  # failures, as ever
    assert b"Traceback" not in stderr, stderr
    _every_result(out)


@pytest.mark.parametrize("closed", ["stdout", "stderr", "both"])
def test_closed_descriptors_lose_no_result(suite, tmp_path, closed):
    out = tmp_path / "out"
    shell = {"stdout": ">&-", "stderr": "2>&-", "both": ">&- 2>&-"}[closed]
    argv = " ".join(f"'{word}'" for word in cli_argv(suite, out, "-j", "2"))
    run = subprocess.run(f"{argv} {shell}", shell=True, env=cli_env(), capture_output=True, timeout=120)
    assert run.returncode == 1, run
    _every_result(out)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_terminal_device_loses_no_result(suite, tmp_path):
    out = tmp_path / "out"
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            cli_argv(suite, out, "-j", "2", "-v"), stdout=full, stderr=subprocess.PIPE, env=cli_env(), timeout=120
        )
    assert run.returncode == 1 and b"Traceback" not in run.stderr, run.stderr
    _every_result(out)
