"""What a person sees: the live status line on a terminal, plain lines
elsewhere, -v and -q, and status.json for other tools."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

from conftest import cli_argv, cli_env, run_cli, start_cli, wait_for, write_suite

SLOW = {f"t{i}/test.yaml": "cmd: sleep 0.4\n" for i in range(6)}


def run_in_terminal(root, out, *args, env=None) -> str:
    """Run the CLI with its output on a pseudo-terminal; return all it drew."""
    master, slave = pty.openpty()
    environment = cli_env()
    environment.pop("CI", None)  # CI's own setting must not hide the line
    environment["TERM"] = "xterm"
    environment.update(env or {})
    proc = subprocess.Popen(cli_argv(root, out, *args), stdout=slave, stderr=slave, env=environment)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def test_terminal_gets_a_live_status_line(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {**SLOW, "bad/test.yaml": "cmd: exit 2\n"})
    text = run_in_terminal(root, out, "-j", "2")
    assert "\r\x1b[K[" in text  # the line is redrawn in place
    assert "running: " in text
    assert "/7]" in text  # done/total
    assert "FAIL" in text and "7 testcases:" in text
    # A second run knows the durations: an estimate of the time left.
    assert "ETA " in run_in_terminal(root, out, "-j", "2")


def test_plain_lines_without_a_terminal_or_under_ci(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, SLOW)
    run = run_cli(root, out, "-j", "3")
    assert "\r" not in run.stdout and "running:" not in run.stdout
    text = run_in_terminal(root, out, "-j", "3", env={"CI": "true"})
    assert "running:" not in text


def test_verbose_prints_every_result_and_quiet_only_the_summary(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {"ok/test.yaml": "cmd: 'true'\n", "bad/test.yaml": "cmd: echo oops; exit 3\n"})
    verbose = run_cli(root, out, "-v")
    assert "PASS  ok" in verbose.stdout and "FAIL  bad" in verbose.stdout
    default = run_cli(root, out)
    assert "PASS  ok" not in default.stdout and "FAIL  bad" in default.stdout and "| oops" in default.stdout
    quiet = run_cli(root, out, "-q")
    assert "FAIL  bad" not in quiet.stdout and "oops" not in quiet.stdout
    assert "2 testcases: 1 passed, 1 failed" in quiet.stdout
    assert quiet.returncode == 1


def test_status_json_is_live_and_final(tmp_path):
    root, out = tmp_path / "s", tmp_path / "out"
    write_suite(root, {
        "quick/test.yaml": "cmd: 'true'\n",
        **{f"slow{i}/test.yaml": "cmd: sleep 2\n" for i in range(2)},
        "later/test.yaml": "cmd: 'true'\ndepends: [slow0]\n",
    })
    proc = start_cli(root, out, "-j", "2")
    status = out / "new" / "status.json"
    seen = []

    def running_seen() -> bool:
        try:
            data = json.loads(status.read_text())
        except (OSError, ValueError):
            return False
        seen.append(data)
        return data["running"] >= 1 and not data["complete"]

    assert wait_for(running_seen, timeout=20)
    live = seen[-1]
    assert live["total"] == 4 and live["done"] < 4 and live["running_testcases"]
    assert set(live["counts"]) == {"PASS", "FAIL", "XFAIL", "XPASS", "SKIP", "ERROR"}
    assert proc.wait(timeout=60) == 0
    final = json.loads(status.read_text())
    assert final["complete"] and final["done"] == 4 and final["passed"] == 4
    assert final["running"] == 0 and final["ready"] == 0 and final["failed"] == 0


def test_expected_durations_come_from_history_for_the_selected_testcases(tmp_path):
    from run_testsuite.reports.progress import expected_durations

    history = {("a", "build"): 2.0, ("a", "check"): 0.5, ("b", "run"): 1.0, ("gone", "run"): 9.0}
    assert expected_durations(["a", "b", "new"], history, str(tmp_path)) == {"a": 2.5, "b": 1.0}
    # No history: the previous run's index, for the selection only.
    (tmp_path / "_index.json").write_text(json.dumps({"results": [
        {"name": "a", "duration": 3.0}, {"name": "other", "duration": 7.0},
    ]}))
    assert expected_durations(["a", "b"], {}, str(tmp_path)) == {"a": 3.0}
    assert expected_durations(["a"], {}, str(tmp_path / "missing")) == {}
