"""sandbox: true / --sandbox: commands under bubblewrap, writing nothing
but their own work directory and a private /tmp.

Real bwrap (Debian's bubblewrap, which .ci/run installs), real processes:
each test plants what a hostile or careless test would do and checks the
host afterwards, not only what the testcase said.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import threading
import uuid

import pytest

from conftest import PYTHON, REPO, load_result, run_cli, statuses, wait_for, write_suite

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install bubblewrap")


def output(out, name: str, run) -> str:
    return load_result(out, name, run.index).get("output", "")


def processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read().replace(b"\0", b" "):
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_a_sandboxed_testcase_writes_only_its_work_directory_and_a_private_tmp(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    scratch = f"/tmp/sandbox-scratch-{uuid.uuid4().hex}"
    attack = f"""
        for target in "$TEST_SOURCE_DIR/test.out" "$TEST_SUITE_ROOT/planted" "$OUT_DIR/planted" \\
                      "$OUT_DIR/new/_index.json" "$HOME/planted" "$TEST_WORK_DIR/../planted"; do
          if echo tampered >> "$target" 2>/dev/null; then echo "WROTE $target"; else echo "refused $target"; fi
        done
        echo mine > own.txt && echo scratch > {scratch} && cat own.txt {scratch}
    """
    root = write_suite(
        tmp_path / "suite",
        {
            "attacker/test.yaml": f"sandbox: true\ncmd: {json.dumps(attack)}\n",
            "attacker/test.out": "expected\n",
            "neighbour/test.yaml": "cmd: echo free > \"$TEST_SUITE_ROOT/neighbour-wrote\"\n",
        },
    )
    run = run_cli(root, out, "--cleanup", "none", env={"HOME": str(home), "OUT_DIR": str(out)})
    assert statuses(run.index) == {"attacker": ("PASS", None), "neighbour": ("PASS", None)}, run.stdout
    said = output(out, "attacker", run)
    assert "WROTE" not in said and said.count("refused") == 6, said
    assert "mine\nscratch\n" in said
    # The host after the run: nothing planted, the baseline intact.
    assert (root / "attacker" / "test.out").read_text() == "expected\n"
    assert not (root / "planted").exists() and not (out / "planted").exists() and not (home / "planted").exists()
    assert not (out / "new" / "work" / "planted").exists()
    assert (out / "new" / "work" / "attacker" / "own.txt").read_text() == "mine\n"
    assert not os.path.exists(scratch)  # its /tmp was its own
    # Sandboxing is per testcase: the neighbour wrote where it liked.
    assert (root / "neighbour-wrote").read_text() == "free\n"


def test_network_false_cannot_reach_a_server_outside_the_sandbox(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    connect = f"{PYTHON} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\""
    root = write_suite(
        tmp_path / "suite",
        {
            "offline/test.yaml": f"network: false\ncmd: {json.dumps(connect)}\n",
            "online/test.yaml": f"sandbox: true\ncmd: {json.dumps(connect)}\n",
        },
    )
    try:
        run = run_cli(root, tmp_path / "out")
    finally:
        server.close()
    assert statuses(run.index) == {"offline": ("FAIL", "EXIT_CODE"), "online": ("PASS", None)}, run.stdout
    assert "ConnectionRefusedError" in output(tmp_path / "out", "offline", run)
    assert "connected" in output(tmp_path / "out", "online", run)
    assert len(accepted) == 1  # the sandboxed one with its network, not the other


def test_timeouts_and_leftover_processes_are_killed_as_without_a_sandbox(tmp_path):
    number = random.randint(100, 999)  # in the sleeps' seconds, to find them after
    root = write_suite(
        tmp_path / "suite",
        {
            # Its time is up: the whole group goes, the background sleep too.
            "hangs/test.yaml": f"sandbox: true\ntimeout: 1\ncmd: 'sleep 300{number}1 & sleep 600{number}2'\n",
            # Passes, leaving one process in its group and one escaped with setsid.
            "leaves/test.yaml": f"sandbox: true\ncmd: 'sleep 300{number}3 & setsid sleep 300{number}4 & echo done'\n",
        },
    )
    run = run_cli(root, tmp_path / "out", "-j", "2")
    assert statuses(run.index) == {"hangs": ("FAIL", "TIMEOUT"), "leaves": ("PASS", None)}, run.stdout
    assert entry_duration(run.index, "hangs") < 15
    assert wait_for(lambda: not any(processes_with(f"sleep 300{number}{n}") for n in "134"), 10)
    assert not processes_with(f"sleep 600{number}2")


def entry_duration(index: dict, name: str) -> float:
    return next(e["duration"] for e in index["results"] if e["name"] == name)


def test_resources_cpu_pinning_and_tee_are_as_without_a_sandbox(tmp_path):
    show = (
        'echo "board=$RESOURCE_BOARDS slot_cpus=$SLOT_CPUS"; '
        "echo \"allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\""
    )
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": "resources:\n  boards: [board-a]\n",
            "pinned/test.yaml": f"sandbox: true\nresources: {{boards: 1}}\ncmd: {json.dumps(show)}\n",
        },
    )
    run = run_cli(root, tmp_path / "out", "-j", "1", "--cpus-per-slot", "1", "--tee")
    assert statuses(run.index) == {"pinned": ("PASS", None)}, run.stdout
    said = output(tmp_path / "out", "pinned", run)
    slot_cpus = said.split("slot_cpus=")[1].split()[0]
    assert "board=board-a" in said and f"allowed={slot_cpus}\n" in said, said
    assert "[pinned] board=board-a" in run.stdout  # --tee streamed it


def test_a_set_up_writes_its_own_directory_which_its_users_only_read(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "suite.yaml": (
                "defaults:\n  sandbox: true\n"
                "setup:\n  gen:\n"
                "    cmd: echo data > \"$SETUP_DIR/data\" && ! touch \"$TEST_SUITE_ROOT/from-setup\" 2>/dev/null\n"
            ),
            "user/test.yaml": (
                "needs: [gen]\n"
                "cmd: cat \"$SETUP_GEN_DIR/data\" && ! echo more >> \"$SETUP_GEN_DIR/data\" 2>/dev/null\n"
            ),
        },
    )
    out = tmp_path / "out"
    run = run_cli(root, out, "--cleanup", "none")
    assert statuses(run.index) == {"setup:gen": ("PASS", None), "user": ("PASS", None)}, run.stdout
    said = output(out, "user", run)
    assert said.startswith("data\n") and "setup_gen/data: Read-only file system" in said, said
    assert (out / "new" / "work" / "setup_gen" / "data").read_text() == "data\n"
    assert not (root / "from-setup").exists()


def test_sandbox_option_spec_opt_out_and_spec_errors(tmp_path):
    root = write_suite(
        tmp_path / "suite",
        {
            "confined/test.yaml": "cmd: touch \"$TEST_SOURCE_DIR/x\"\n",
            "opted-out/test.yaml": "sandbox: false\ncmd: touch \"$TEST_SOURCE_DIR/x\"\n",
            "contradicts/test.yaml": "sandbox: false\nnetwork: false\ncmd: 'true'\n",
            "no-program/test.yaml": "sandbox: true\ncmd: [no-such-program-here, arg]\n",
        },
    )
    run = run_cli(root, tmp_path / "out", "--sandbox")
    found = statuses(run.index)
    assert found["confined"] == ("FAIL", "EXIT_CODE") and found["opted-out"] == ("PASS", None), run.stdout
    assert found["contradicts"] == ("ERROR", "SPEC")
    message = load_result(tmp_path / "out", "contradicts", run.index)["message"]
    assert f"{root}/contradicts/test.yaml:2:10: network: false needs the sandbox" in message
    # A missing program fails as it does without a sandbox: status 127, named.
    missing = load_result(tmp_path / "out", "no-program", run.index)
    assert "exited with 127" in missing["message"] and "no-such-program-here" in missing.get("output", "")
    assert not (root / "confined" / "x").exists() and (root / "opted-out" / "x").exists()


def test_without_bubblewrap_a_sandboxed_run_is_a_usage_error_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    root = write_suite(tmp_path / "suite", {"t/test.yaml": f"sandbox: true\ncmd: [/bin/touch, {marker}]\n"})
    empty = tmp_path / "empty-path"
    empty.mkdir()
    run = run_cli(root, tmp_path / "out", env={"PATH": str(empty)})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "install the 'bubblewrap' package" in run.stderr and run.index is None
    assert not marker.exists()
    # --list needs no sandbox.
    assert run_cli(root, tmp_path / "out", "--list", env={"PATH": str(empty)}).returncode == 0


def test_the_example_suite_runs_green_in_the_sandbox(tmp_path):
    out = tmp_path / "out"
    run = run_cli(REPO / "testcases", out, "--sandbox", "-j", "4")
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(run.index)["sandbox/isolated"] == ("PASS", None)


def test_a_sandboxed_test_that_kills_everything_it_sees_kills_only_its_own(tmp_path):
    """`kill -KILL -1` from a test run as root would take the runner (and
    the machine's other processes) down; in the sandbox's PID namespace it
    reaches the test's own processes only, and the run goes on. The guard
    first makes sure that few processes are visible, so that a broken
    sandbox fails this test instead of killing the machine."""
    attack = (
        'visible=$(ls /proc | grep -c "^[0-9]"); echo "visible $visible"; '
        'test "$visible" -lt 10 && kill -KILL -1; echo "after kill"'
    )
    files = {"a-attacker/test.yaml": f"sandbox: true\ncmd: {json.dumps(attack)}\n"}
    files.update({f"b-bystander{n}/test.yaml": "cmd: 'sleep 0.3'\n" for n in range(4)})
    root = write_suite(tmp_path / "suite", files)
    run = run_cli(root, tmp_path / "out", "-j", "3")
    found = statuses(run.index)
    assert found.pop("a-attacker") == ("PASS", None), run.stdout
    assert set(found.values()) == {("PASS", None)}, run.stdout
    assert "after kill" in output(tmp_path / "out", "a-attacker", run)


def test_root_in_the_sandbox_has_no_capabilities_and_cannot_change_the_kernel(tmp_path):
    """Run as root, bwrap would keep every capability: a test could remount
    / read-write and write anywhere, or set sysctls through /proc/sys. The
    writes below put back what is there, so a broken sandbox changes
    nothing on the machine while this test fails."""
    attack = (
        'grep "^CapEff" /proc/self/status; '
        "if mount -o remount,rw / 2>/dev/null; then echo REMOUNTED; fi; "
        "if (cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname) 2>/dev/null; then echo SYSCTL-WRITTEN; fi; "
        'if echo x > "$TEST_SOURCE_DIR/planted" 2>/dev/null; then echo PLANTED; fi; echo tried'
    )
    root = write_suite(tmp_path / "suite", {"root/test.yaml": f"sandbox: true\ncmd: {json.dumps(attack)}\n"})
    run = run_cli(root, tmp_path / "out")
    said = output(tmp_path / "out", "root", run)
    assert "tried" in said and "CapEff:\t0000000000000000" in said, said
    assert not {"REMOUNTED", "SYSCTL-WRITTEN", "PLANTED"} & set(said.split()), said
    assert not (root / "root" / "planted").exists()


# -- what a review found ------------------------------------------------------------------
def test_tmpdir_is_private_and_writable_whatever_the_environment_says(tmp_path):
    """TMPDIR and TMP naming one existing directory under /tmp (Debian's
    libpam-tmpdir does) once made it read-only inside; a missing one made
    bwrap fail, so every command exited 1 and `exit_code: 1` passed."""
    shared = tmp_path / "tmp-of-the-user"
    shared.mkdir()
    cmd = 'f=$(mktemp) && echo ok > "$f" && echo "TMPDIR=$TMPDIR TMP=$TMP" && cat "$f"'
    root = write_suite(tmp_path / "suite", {
        "mktemp/test.yaml": f"sandbox: true\ncmd: {json.dumps(cmd)}\n",
        "expects-1/test.yaml": "sandbox: true\nexit_code: 1\ncmd: 'echo ran; exit 1'\n",
    })
    run = run_cli(root, tmp_path / "out", env={"TMPDIR": str(shared), "TMP": str(shared)})
    assert statuses(run.index) == {"mktemp": ("PASS", None), "expects-1": ("PASS", None)}, run.stdout
    assert output(tmp_path / "out", "mktemp", run) == "TMPDIR=/tmp TMP=/tmp\nok\n"
    missing = tmp_path / "workspace" / "tmp"
    run = run_cli(root, tmp_path / "out", env={"TMPDIR": str(missing), "WORKSPACE": str(missing.parent)})
    assert statuses(run.index)["expects-1"] == ("PASS", None)
    assert output(tmp_path / "out", "expects-1", run) == "ran\n"  # it ran: not bwrap's own exit 1
    assert list(shared.iterdir()) == []


def test_a_sandbox_that_cannot_be_set_up_is_an_error_not_the_commands_status(tmp_path):
    from run_testsuite.capture import OutputCapture
    from run_testsuite.commands import run_command
    from run_testsuite.fragment import Command
    from run_testsuite.sandbox import Sandbox, SandboxError

    capture = OutputCapture(str(tmp_path / "log"), False)
    gone = Sandbox(str(tmp_path / "no-such-work-dir"))
    with pytest.raises(SandboxError, match="no-such-work-dir"):
        run_command(Command(["sh", "-c", "exit 1"], 1, 30), str(tmp_path), dict(os.environ), capture, gone)
    # Through a run: ERROR (SYSTEM), whatever exit status the spec expects.
    # This bwrap passes the check before the run, then fails as a real one
    # does on a mount it cannot make.
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "bwrap").write_text(
        '#!/bin/sh\nfor last; do :; done\n[ "$last" = true ] && exit 0\n'
        'echo "bwrap: Can\'t mkdir /tmp/x: Read-only file system" >&2\nexit 1\n'
    )
    (fake / "bwrap").chmod(0o755)
    root = write_suite(tmp_path / "suite", {"t/test.yaml": "sandbox: true\nexit_code: 1\ncmd: 'exit 1'\n"})
    run = run_cli(root, tmp_path / "out", env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert statuses(run.index) == {"t": ("ERROR", "SYSTEM")}, run.stdout
    message = load_result(tmp_path / "out", "t", run.index)["message"]
    assert message == "the sandbox could not be set up: bwrap: Can't mkdir /tmp/x: Read-only file system"


def test_a_timed_out_sandboxed_command_gets_its_grace_to_clean_up(tmp_path):
    script = (
        "trap 'echo got TERM; sleep 0.5; echo cleaned > cleanup-done; exit 3' TERM; "
        "echo started; sleep 30 & wait"
    )
    root = write_suite(tmp_path / "suite", {
        "plain/test.yaml": f"timeout: 1\ncmd: {json.dumps(script)}\n",
        "boxed/test.yaml": f"sandbox: true\ntimeout: 1\ncmd: {json.dumps(script)}\n",
    })
    out = tmp_path / "out"
    run = run_cli(root, out, "-j", "2", "--cleanup", "none")
    assert statuses(run.index) == {"plain": ("FAIL", "TIMEOUT"), "boxed": ("FAIL", "TIMEOUT")}
    for name in ("plain", "boxed"):
        assert (out / "new" / "work" / name / "cleanup-done").read_text() == "cleaned\n", name
        assert "got TERM" in output(out, name, run)


def test_resources_and_path_lists_under_tmp_are_bound_back(tmp_path):
    board = tmp_path / "boards" / "b1"
    board.mkdir(parents=True)
    (board / "config").write_text("baud=115200\n")
    first, second = tmp_path / "py1", tmp_path / "py2"
    first.mkdir()
    second.mkdir()
    (second / "helper_mod.py").write_text("VALUE = 42\n")
    cmd = f'cat "$RESOURCE_BOARDS/config" && {PYTHON} -c "import helper_mod; print(helper_mod.VALUE)"'
    root = write_suite(tmp_path / "suite", {
        "suite.yaml": f"resources:\n  boards: [{board}]\n",
        "t/test.yaml": (
            f"sandbox: true\nresources: {{boards: 1}}\nenv: {{PYTHONPATH: '{first}:{second}'}}\ncmd: {json.dumps(cmd)}\n"
        ),
    })
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"t": ("PASS", None)}, run.stdout
    assert output(tmp_path / "out", "t", run) == "baud=115200\n42\n"


def test_without_network_the_hosts_services_in_run_are_out_of_reach(tmp_path):
    cmd = "ls /run | wc -l; ls -d /tmp/* 2>/dev/null | wc -l"
    root = write_suite(tmp_path / "suite", {
        "offline/test.yaml": f"network: false\ncmd: {json.dumps(cmd)}\n",
    })
    run = run_cli(root, tmp_path / "out")
    assert output(tmp_path / "out", "offline", run).split()[0] == "0"


def test_a_missing_program_with_a_path_is_127_as_without_a_sandbox(tmp_path):
    root = write_suite(tmp_path / "suite", {
        "boxed/test.yaml": "sandbox: true\nexit_code: 1\ncmd: [./missing-program]\n",
        "plain/test.yaml": "exit_code: 1\ncmd: [./missing-program]\n",
    })
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"boxed": ("FAIL", "EXIT_CODE"), "plain": ("FAIL", "EXIT_CODE")}
    for name in ("boxed", "plain"):
        result = load_result(tmp_path / "out", name, run.index)
        assert "exited with 127" in result["message"], result["message"]
        assert "cannot run './missing-program'" in result["output"]


def test_the_command_line_wins_over_the_suites_defaults_and_a_testcase_over_both(tmp_path):
    root = write_suite(tmp_path / "suite", {
        "suite.yaml": "defaults:\n  sandbox: false\n  network: false\n",
        "default/test.yaml": "sandbox: false\ncmd: touch \"$TEST_SOURCE_DIR/x\"\n",
        "silent/test.yaml": "cmd: touch \"$TEST_SOURCE_DIR/x\"\n",
    })
    # The defaults ask for no network, so the sandbox; a testcase's own sandbox: false opts out of both.
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"default": ("PASS", None), "silent": ("FAIL", "EXIT_CODE")}, run.stdout
    (root / "suite.yaml").write_text("defaults:\n  sandbox: false\n")
    (root / "default" / "x").unlink()
    run = run_cli(root, tmp_path / "out", "--sandbox")
    assert statuses(run.index) == {"default": ("PASS", None), "silent": ("FAIL", "EXIT_CODE")}, run.stdout
    assert not (root / "silent" / "x").exists()


def test_which_looks_on_the_testcases_path_and_a_hidden_parameter_is_warned_of(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "mytool").write_text("#!/bin/sh\necho mine\n")
    (tools / "mytool").chmod(0o755)
    root = write_suite(tmp_path / "suite", {
        "suite.yaml": "params:\n  which: fast\n",
        "t/test.yaml": (
            f"env: {{PATH: '{tools}:/usr/bin:/bin'}}\ncontrol:\n  - skip: not which.mytool\ncmd: mytool\n"
        ),
    })
    run = run_cli(root, tmp_path / "out")
    assert statuses(run.index) == {"t": ("PASS", None)}, run.stdout
    assert "parameter 'which' is hidden in conditions" in run.stderr and "params.which" in run.stderr


def test_the_work_directory_may_not_be_the_suite(tmp_path):
    root = write_suite(tmp_path / "s", {"a/test.yaml": "cmd: 'true'\n", "a/data.txt": "precious\n"})
    for option in (["--work-dir", str(root)], ["--work-dir", str(tmp_path)]):
        run = run_cli(root, tmp_path / "out", *option)
        assert run.returncode == 2 and ("holds the suite's own files" in run.stderr or "holds testcases" in run.stderr), option
    # A testcase's directory as the work directory hides it from discovery: nothing to run, nothing removed.
    assert run_cli(root, tmp_path / "out", "--work-dir", str(root / "a")).returncode == 5
    assert (root / "a" / "data.txt").read_text() == "precious\n"
    assert run_cli(root, root).returncode == 2  # -o the suite itself
    # Directories discovery never enters, holding testcases all the same.
    group = write_suite(root / "group", {"b/test.yaml": "cmd: 'true'\n", "b/data": "kept\n"})
    for option in (["--work-dir", str(group)], ["-o", str(group)]):
        args = option if option[0] == "--work-dir" else []
        target = tmp_path / "out" if option[0] == "--work-dir" else group
        run = run_cli(root, target, *args)
        assert run.returncode == 2 and "holds testcases" in run.stderr, (option, run.stderr)
    assert (group / "b" / "data").read_text() == "kept\n"
    # An output directory inside the suite that a run made before is its own.
    inside = root / "out"
    assert run_cli(root, inside).returncode == 0 and run_cli(root, inside).returncode == 0
