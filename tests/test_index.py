"""The report index: OUTPUT/new/_index.json, results/*.json, logs, rotation."""

from __future__ import annotations

import os
import socket
import sys
import time

from conftest import (
    PYTHON,
    entry,
    load_index,
    load_result,
    read_json,
    run_cli,
    start_cli,
    statuses,
    validate_index,
    validate_result,
    wait_for,
    write_suite,
)


def test_previous_run_moves_to_old(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"t/test.yaml": "cmd: echo run-$RUN_ID\n"})
    first = run_cli(root, out, "--cleanup", "none", env={"RUN_ID": "1"})
    assert not (out / "old").exists()
    second = run_cli(root, out, "--cleanup", "none", env={"RUN_ID": "2"})
    assert load_result(out, "t", second.index)["output"] == "run-2\n"
    old_index = validate_index(read_json(out / "old" / "_index.json"))
    assert old_index["start"] == first.index["start"] < second.index["start"]
    old_result = validate_result(read_json(out / "old" / "results" / "t.json"))
    assert old_result["output"] == "run-1\n"
    assert (out / "old" / "work" / "t").is_dir()
    # A third run replaces old/ with the second run.
    run_cli(root, out, "--cleanup", "none", env={"RUN_ID": "3"})
    assert validate_result(read_json(out / "old" / "results" / "t.json"))["output"] == "run-2\n"
    assert load_result(out, "t")["output"] == "run-3\n"
    # Only the two runs and the spec cache: no trash of older runs is left.
    assert sorted(os.listdir(out)) == [".lock", "history.sqlite", "new", "old", "spec-cache.json"]


def test_index_metadata_counts_and_entries(tmp_path):
    root, out = tmp_path / "mysuite", tmp_path / "out"
    write_suite(
        root,
        {
            "ok1/test.yaml": "cmd: echo ok\ntags: [fast, smoke]\n",
            "ok2/test.yaml": "cmd: echo ok\n",
            "bad/test.yaml": "cmd: echo oops; exit 2\n",
            "skipped/test.yaml": "depends: [bad]\ncmd: echo never\n",
            "broken/test.yaml": "cmd: echo\ntimout: 1\nexit_cod: 2\n",
        },
    )
    before = time.time()
    began = time.monotonic()
    run = run_cli(root, out, "-j", "2")
    wall = time.monotonic() - began
    index = run.index
    assert index["format"] == 1
    assert index["suite"] == "mysuite"
    assert index["root"] == str(root)
    assert index["command_line"] == ["run-testsuite", str(root), "-o", str(out), "-j", "2"]
    assert index["jobs"] == 2
    assert index["host"] == socket.gethostname()
    assert index["python"] == sys.version.split()[0]
    assert before <= index["start"] <= before + wall
    assert 0 < index["duration"] <= wall
    assert index["complete"] is True
    assert index["interrupted"] is False
    assert index["counts"] == {"PASS": 2, "FAIL": 1, "XFAIL": 0, "XPASS": 0, "SKIP": 1, "ERROR": 1}
    assert statuses(index) == {
        "bad": ("FAIL", "EXIT_CODE"),
        "broken": ("ERROR", "SPEC"),
        "ok1": ("PASS", None),
        "ok2": ("PASS", None),
        "skipped": ("SKIP", "DEPENDENCY"),
    }
    for e in index["results"]:
        assert set(e) >= {"name", "status", "reason", "message", "duration", "result", "start", "slot", "tags"}
        assert e["result"] == f"results/{e['name']}.json"
        res = load_result(out, e["name"], index)
        assert e["duration"] == round(res["duration"], 6)
        assert e["start"] == res["start"]
        assert e["slot"] == res["slot"]
        assert e["tags"] == res["tags"]
        assert e["message"] == res["message"].split("\n", 1)[0]
    assert entry(index, "ok1")["tags"] == ["fast", "smoke"]
    ok = load_result(out, "ok1", index)
    assert before <= ok["start"] <= before + wall
    assert 0 < ok["duration"] < wall
    assert ok["slot"] in (1, 2)
    assert ok["spec_file"] == str(root / "ok1" / "test.yaml")
    assert ok["attempts"] == 1
    assert ok["commands"] == [
        {
            "step": "run",
            "cmd": "echo ok",
            "exit_code": 0,
            "duration": ok["commands"][0]["duration"],
            "timed_out": False,
            "timeout": 300.0,
        }
    ]
    # Two problems: the index keeps the first line, the result file both.
    broken = load_result(out, "broken", index)
    spec = root / "broken" / "test.yaml"
    assert broken["message"] == (
        f"{spec}:2:1: unknown key 'timout'; did you mean 'timeout'?\n"
        f"{spec}:3:1: unknown key 'exit_cod'; did you mean 'exit_code'?"
    )
    assert entry(index, "broken")["message"] == f"{spec}:2:1: unknown key 'timout'; did you mean 'timeout'?"
    assert entry(index, "broken")["slot"] is None and entry(index, "broken")["start"] == 0


def test_log_files_hold_output_a_later_step_compares(tmp_path):
    # A diff testcase compares the output of all its steps at the last one:
    # earlier steps keep theirs on disk; small output is whole in the result.
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "t/test.yaml": "driver: diff\nsteps:\n  - name: one\n    cmd: echo 1; echo e1 >&2\n  - name: two\n    cmd: echo 2\n",
            "t/test.out": "1\ne1\n2\n",
            "s/test.yaml": "steps:\n  - name: one\n    cmd: echo 1\n  - name: two\n    cmd: echo 2\n",
        },
    )
    run = run_cli(root, out)
    assert run.returncode == 0, run.stdout
    res = load_result(out, "t", run.index)
    assert res["log_files"] == [str(out / "new" / "logs" / "t@one.log")]
    assert open(res["log_files"][0]).read() == "1\ne1\n"
    assert res["output"] == "[one]\n1\ne1\n[two]\n2\n"
    assert load_result(out, "s", run.index)["log_files"] == []
    assert not (out / "new" / "logs" / "s@one.log").exists()


def test_result_file_names_are_safe_and_unique(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "a/b/test.yaml": "cmd: echo slash\n",
            "a__b/test.yaml": "cmd: echo underscores\n",
            "with space/test.yaml": "cmd: echo space\n",
        },
    )
    run = run_cli(root, out)
    assert run.returncode == 0
    paths = {e["name"]: e["result"] for e in run.index["results"]}
    assert len(set(paths.values())) == 3
    assert paths["with space"] == "results/with_space.json"
    assert sorted([paths["a/b"], paths["a__b"]]) == ["results/a__b.json", "results/a__b~2.json"]
    assert load_result(out, "a/b", run.index)["output"] == "slash\n"
    assert load_result(out, "a__b", run.index)["output"] == "underscores\n"
    assert sorted(os.listdir(out / "new" / "results")) == sorted(p.split("/")[1] for p in paths.values())


def test_results_are_written_as_they_complete(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(root, {"quick/test.yaml": "cmd: echo quick\n", "slow/test.yaml": "cmd: sleep 3\n"})
    proc = start_cli(root, out, "-j", "2")
    try:
        quick = out / "new" / "results" / "quick.json"
        index_file = out / "new" / "_index.json"

        def index_has_quick():
            if not index_file.exists():
                return False
            return [e["name"] for e in read_json(index_file)["results"]] == ["quick"]

        assert wait_for(quick.exists, 20), "quick's result never appeared"
        assert wait_for(index_has_quick, 20), "the index never listed quick"
        still_running = proc.poll() is None
        partial = validate_index(read_json(index_file))
        early = validate_result(read_json(quick))
        slow_written = (out / "new" / "results" / "slow.json").exists()
    finally:
        stdout, stderr = proc.communicate(timeout=60)
    assert still_running, "the run ended before the check: the slow testcase did not hold it"
    assert not slow_written
    assert early["status"] == "PASS" and early["output"] == "quick\n"
    assert partial["complete"] is False
    assert partial["counts"]["PASS"] == 1
    assert proc.returncode == 0, stdout + stderr
    final = load_index(out)
    assert final["complete"] is True
    assert statuses(final) == {"quick": ("PASS", None), "slow": ("PASS", None)}


def test_large_output_keeps_head_and_tail(tmp_path):
    root, out = tmp_path / "suite", tmp_path / "out"
    size = 5_000_000
    write_suite(
        root,
        {
            "big/test.yaml": (
                f"cmd: [{PYTHON}, -c, \"import sys; sys.stdout.write('HEAD\\\\n' + 'x' * {size} + '\\\\nTAIL\\\\n')\"]\n"
            )
        },
    )
    run = run_cli(root, out)
    assert statuses(run.index) == {"big": ("PASS", None)}
    res = load_result(out, "big", run.index)
    log = out / "new" / "logs" / "big@run.log"
    total = size + len("HEAD\n\nTAIL\n")
    assert log.stat().st_size == total
    assert res["log_files"] == [str(log)]
    output = res["output"]
    assert output.startswith("HEAD\nxxxx")
    assert output.endswith("xxxx\nTAIL\n")
    cut = total - 8 * 1024 - 24 * 1024
    assert f"\n[... {cut} bytes cut; full output in {log} ...]\n" in output
    assert len(output) < 40_000
    with open(log, encoding="utf-8") as handle:
        full = handle.read()
    assert full.startswith("HEAD\n") and full.endswith("\nTAIL\n") and full.count("x") == size


def test_a_large_index_is_written_in_chunks_as_the_same_json(tmp_path):
    import json

    from run_testsuite.jsonio import CHUNK, dumps, write_atomic

    entries = [{"name": f"t{n}", "status": "PASS", "message": "caf\u00e9 \udcff"} for n in range(2 * CHUNK + 7)]
    for data in ({"format": 1, "results": entries, "complete": True}, {"results": entries}):
        path = tmp_path / "_index.json"
        write_atomic(str(path), data)
        text = path.read_text(encoding="utf-8")  # valid UTF-8, the lone surrogate escaped
        assert json.loads(text) == json.loads(dumps(data).encode("utf-8", "backslashreplace").decode("utf-8")) == data
        assert json.loads(text)["results"][-1]["name"] == f"t{2 * CHUNK + 6}"
