"""Durations that travel: ``report --export-durations FILE`` and a run's
``--durations FILE`` on a fresh output directory (a CI machine)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import cli_argv, cli_env, load_result, run_cli, statuses, write_suite


def report(out, *args) -> subprocess.CompletedProcess:
    argv = [*cli_argv("x", out)[:3], "report", str(out), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=60)


def test_a_fresh_output_directory_orders_by_the_exported_durations(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            # Named first, quick; named last, slow: with one slot and no
            # history the quick one goes first, with durations the slow one.
            "a-quick/test.yaml": "cmd: sleep 0.05\n",
            "z-slow/test.yaml": "cmd: sleep 0.3\n",
            "m-steps/test.yaml": "steps:\n  - cmd: 'true'\n  - cmd: 'true'\n",
        },
    )
    first = tmp_path / "ci-1"
    run = run_cli(root, first, "-j", "1")
    assert load_result(first, "a-quick", run.index)["start"] < load_result(first, "z-slow", run.index)["start"]
    exported = tmp_path / "durations.json"
    proc = report(first, "--export-durations", exported)
    assert proc.returncode == 0 and proc.stdout == f"durations of 4 fragments: {exported}\n"
    data = json.loads(exported.read_text())
    assert data["format"] == 1 and set(data["durations"]) == {"a-quick", "z-slow", "m-steps"}
    assert set(data["durations"]["m-steps"]) == {"step1", "step2"}
    assert data["durations"]["z-slow"]["run"] >= 0.3
    # Another machine: a fresh output directory, the file from the cache.
    second = tmp_path / "ci-2"
    run = run_cli(root, second, "-j", "1", "--durations", exported)
    assert statuses(run.index) == {"a-quick": ("PASS", None), "z-slow": ("PASS", None), "m-steps": ("PASS", None)}
    assert load_result(second, "z-slow", run.index)["start"] < load_result(second, "a-quick", run.index)["start"]


def test_bad_durations_files_are_usage_errors_naming_the_place(tmp_path):
    root = write_suite(tmp_path / "suite", {"t/test.yaml": "cmd: 'true'\n"})
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": 1,\n "durations": {')
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"format": 1, "durations": {"t": {"run": "fast"}}}')
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    for path, message in (
        (broken, f"{broken}:2:16: not a durations file"),
        (wrong, f"{wrong}: 't' fragment 'run': 'fast' is not a duration in seconds"),
        (other, f"{other}: not a durations file (expected"),
        (tmp_path, f"--durations {tmp_path}: Is a directory"),
    ):
        run = run_cli(root, tmp_path / "out", "--durations", path)
        assert run.returncode == 2 and message in run.stderr, run.stderr
        assert run.index is None  # nothing ran
    # A CI cache is empty on the first pipeline: the run goes on, and says so.
    missing = tmp_path / "missing.json"
    run = run_cli(root, tmp_path / "out", "--durations", missing)
    assert run.returncode == 0, run.stderr
    assert f"warning: --durations {missing}: no such file; planning without it" in run.stderr
    proc = report(tmp_path / "nowhere", "--export-durations", tmp_path / "d.json")
    assert proc.returncode == 2 and "no history in" in proc.stderr


@pytest.mark.parametrize("content", [b"\xff\xfe not text", None], ids=["not-utf8", "endless"])
def test_a_durations_file_that_is_no_such_thing_is_a_usage_error(tmp_path, content):
    path = tmp_path / "d.json"
    if content is None:
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path = Path("/dev/zero")
    else:
        path.write_bytes(content)
    root = write_suite(tmp_path / "s", {"a/test.yaml": "cmd: 'true'\n"})
    run = run_cli(root, tmp_path / "out", "--durations", path)
    assert run.returncode == 2 and "not a durations file" in run.stderr and "Traceback" not in run.stderr
