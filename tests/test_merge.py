"""`run-testsuite report --merge OUT1 OUT2 ... -o MERGED`: the shards of one
suite, run as separate CI jobs, made into one run again; what is missing or
doubled is said, never hidden."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import (
    PYTHON,
    cli_env,
    read_json,
    run_cli,
    start_cli,
    statuses,
    validate_index,
    validate_result,
    wait_for,
    write_suite,
)

SUITE = {
    "suite.yaml": "setup:\n  build:\n    cmd: 'true'\n",
    "chain/a/test.yaml": "cmd: 'true'\n",
    "chain/b/test.yaml": "depends: [chain/a]\ncmd: 'true'\n",
    "built/x1/test.yaml": "needs: [build]\ncmd: 'true'\n",
    "built/x2/test.yaml": "needs: [build]\ncmd: 'true'\n",
    "built/x3/test.yaml": "needs: [build]\ncmd: 'true'\n",
    "matrix/m/test.yaml": "matrix: {opt: [O0, O1]}\ncmd: 'true'\n",
    "broken/test.yaml": "cmd: 'exit 3'\n",
    **{f"single/s{n}/test.yaml": "cmd: 'true'\n" for n in range(5)},
}


def report(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "run_testsuite", "report", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def merged_index(path) -> dict:
    index = validate_index(read_json(Path(path) / "_index.json"), str(path))
    for entry in index["results"]:
        validate_result(read_json(Path(path) / entry["result"]), entry["result"])
    return index


def run_shards(root, tmp_path, total: int, *extra) -> list[Path]:
    outs = []
    for k in range(1, total + 1):
        out = tmp_path / f"out-{k}"
        run = run_cli(root, out, "-j", 2, "--shard", f"{k}/{total}", "-q", *extra)
        assert run.returncode in (0, 1), run.stderr
        outs.append(out)
    return outs


class Sharded(NamedTuple):
    root: Path
    dir: Path  # where the whole run (whole/) and the shards' (out-K/) are
    whole: dict  # the whole run's index
    outs: list[Path]  # the shards' output directories, by K


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The suite run whole, and in three shards."""
    tmp_path = tmp_path_factory.mktemp("merge")
    root = write_suite(tmp_path / "suite", SUITE)
    whole = run_cli(root, tmp_path / "whole", "-j", 2, "-q")
    assert whole.returncode == 1, whole.stderr  # broken fails
    return Sharded(root, tmp_path, whole.index, run_shards(root, tmp_path, 3))


def test_a_merge_of_every_shard_is_the_whole_run(sharded, tmp_path):
    proc = report("--merge", *sharded.outs, "-o", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "merged 3 runs (1/3, 2/3, 3/3)" in proc.stdout
    assert "FAIL  broken" in proc.stdout
    index = merged_index(tmp_path / "merged")
    assert index["complete"] is True and index["partial"] is False and index["merge_problems"] == []
    assert statuses(index) == statuses(sharded.whole)
    assert index["counts"] == sharded.whole["counts"]
    assert [part["shard"] for part in index["merged"]] == [1, 2, 3]
    assert index["jobs"] == 6
    # Each shard's files are kept apart: no result file of one overwrites another's.
    for part in index["merged"]:
        assert (tmp_path / "merged" / part["files"] / "results").is_dir()
        assert part["from"] == str(sharded.outs[part["shard"] - 1] / "new")
    # The set-up ran in every shard that needed it, and is listed once, naming them.
    setup = next(e for e in index["results"] if e["name"] == "setup:build")
    ran_setup = [
        k for k, out in enumerate(sharded.outs, 1) if "setup:build" in statuses(read_json(out / "new/_index.json"))
    ]
    assert setup.get("shards", [setup["shard"]]) == ran_setup
    # Reports read the merged run as any other: a summary, and no change from the whole run.
    again = report(tmp_path / "merged", cwd=tmp_path)
    assert again.returncode == 0 and "shard 2/3: " in again.stdout, again.stderr
    compared = report("--compare", sharded.dir / "whole", tmp_path / "merged", cwd=tmp_path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "0 regressions, 0 fixes, 1 still failing, 0 other changes, 0 new, 0 removed" in compared.stdout


def test_merged_junit_and_html_cover_every_shard(sharded, tmp_path):
    merged = tmp_path / "merged"
    proc = report(
        "--merge",
        *sharded.outs,
        "-o",
        merged,
        "--junit-xml",
        merged / "junit.xml",
        "--html",
        merged / "report.html",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert report(sharded.dir / "whole", "--junit-xml", tmp_path / "whole.xml", cwd=tmp_path).returncode == 0

    def cases(path) -> list[tuple]:
        found = ET.parse(path).getroot().iter("testcase")
        return sorted((c.get("classname"), c.get("name"), [x.tag for x in c]) for c in found)

    assert cases(merged / "junit.xml") == cases(tmp_path / "whole.xml")
    page = (merged / "report.html").read_text()
    data = json.loads(page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0])
    groups = sorted({lane["group"] for lane in data["lanes"]})
    assert groups == [1, 2, 3]
    assert [lane["label"] for lane in data["lanes"]][:2] == ["1/3 · 1", "1/3 · 2"]
    lanes = {lane["key"] for lane in data["lanes"]}
    for row in data["results"]:
        if row["t"] is not None:
            assert row["lane"] in lanes and row["lane"].startswith(f"{row['shard']}:")
            # Each shard's timeline starts at its own start.
            assert row["t"] < 30
        # Links to result files reach the shard's copy.
        assert (merged / row["file"]).is_file(), row["file"]


def test_a_missing_shard_is_reported_and_the_merge_is_incomplete(sharded, tmp_path):
    proc = report(
        "--merge",
        sharded.outs[0],
        sharded.outs[2],
        "-o",
        tmp_path / "merged",
        "--html",
        tmp_path / "r.html",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "shard 2/3 is missing: no run of it was given" in proc.stderr
    index = merged_index(tmp_path / "merged")
    assert index["complete"] is False and index["partial"] is True
    assert index["merge_problems"] == ["shard 2/3 is missing: no run of it was given"]
    assert "shard 2/3 is missing" in (tmp_path / "r.html").read_text()
    summary = report(tmp_path / "merged", cwd=tmp_path)  # not rebuilt: its problems say why
    assert "merge: shard 2/3 is missing" in summary.stdout and "rebuilt" not in summary.stderr
    assert "the merged run is incomplete" in summary.stdout


def test_a_shard_that_did_not_finish_is_reported(tmp_path):
    files = {"slow/test.yaml": "cmd: sleep 30\n", "quick/test.yaml": "cmd: 'true'\n"}
    root = write_suite(tmp_path / "suite", files)
    first = run_cli(root, tmp_path / "out-1", "--shard", "1/2", "-q")
    assert first.returncode == 0, first.stderr
    proc = start_cli(root, tmp_path / "out-2", "--shard", "2/2")
    assert wait_for(lambda: (tmp_path / "out-2/new/status.json").exists(), 30)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    merged = report("--merge", tmp_path / "out-1", tmp_path / "out-2", "-o", tmp_path / "merged", cwd=tmp_path)
    assert merged.returncode == 1
    assert "shard 2/2 (" in merged.stderr and "was interrupted" in merged.stderr
    index = merged_index(tmp_path / "merged")
    assert index["complete"] is False and index["interrupted"] is True


def test_a_testcase_in_two_shards_is_reported_and_its_worse_result_kept(tmp_path):
    # Two jobs that planned from different durations cut the suite differently.
    files = {f"{n}/test.yaml": "cmd: 'true'\n" for n in "abc"}
    files["d/test.yaml"] = "cmd: 'exit 1'\n"
    root = write_suite(tmp_path / "suite", files)
    durations = tmp_path / "durations.json"
    durations.write_text(
        json.dumps(
            {"format": 1, "durations": {"a": {"run": 0.1}, "b": {"run": 0.1}, "c": {"run": 0.1}, "d": {"run": 10.0}}}
        )
    )
    run_cli(root, tmp_path / "out-1", "--shard", "1/2", "--durations", durations, "-q")
    run_cli(root, tmp_path / "out-2", "--shard", "2/2", "-q")
    one = statuses(read_json(tmp_path / "out-1/new/_index.json"))
    two = statuses(read_json(tmp_path / "out-2/new/_index.json"))
    assert set(one) & set(two) == {"d"}  # the premise: d was planned by both
    proc = report("--merge", tmp_path / "out-1", tmp_path / "out-2", "-o", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 1
    assert "'d' ran in shard 1/2 and shard 2/2: the worse result is kept (FAIL from shard 1/2)" in proc.stderr
    index = merged_index(tmp_path / "merged")
    assert index["complete"] is True  # every shard is there; the overlap is a problem of its own
    assert [e["name"] for e in index["results"]].count("d") == 1
    assert index["counts"]["FAIL"] == 1


def test_runs_that_cannot_be_merged_are_refused(sharded, tmp_path):
    import shutil

    shutil.copytree(sharded.outs[0], tmp_path / "copy")  # a retried job's artifact beside the first
    twice = report("--merge", sharded.outs[0], tmp_path / "copy", "-o", tmp_path / "m", cwd=tmp_path)
    assert twice.returncode == 2 and "shard 1/3 is given twice" in twice.stderr
    other = run_shards(sharded.root, tmp_path, 2)
    mixed = report("--merge", sharded.outs[0], other[1], "-o", tmp_path / "m", cwd=tmp_path)
    assert mixed.returncode == 2 and "shards of different splits" in mixed.stderr
    assert "is 1/3" in mixed.stderr and "is 2/2" in mixed.stderr
    plain = run_cli(sharded.root, tmp_path / "plain", "-q")
    lone = report("--merge", sharded.outs[0], tmp_path / "plain", "-o", tmp_path / "m", cwd=tmp_path)
    assert lone.returncode == 2 and "was not run with --shard" in lone.stderr
    assert plain.index is not None
    # Nothing of a directory that is not a merge is overwritten.
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious/notes.txt").write_text("mine")
    taken = report("--merge", *sharded.outs, "-o", tmp_path / "precious", cwd=tmp_path)
    assert taken.returncode == 2 and "holds something other than a merged run" in taken.stderr
    assert (tmp_path / "precious/notes.txt").read_text() == "mine"
    inside = report("--merge", *sharded.outs, "-o", sharded.outs[0] / "new" / "merged", cwd=tmp_path)
    assert inside.returncode == 2 and "overlaps" in inside.stderr
    usage = report("--merge", *sharded.outs, cwd=tmp_path)
    assert usage.returncode == 2 and "go together" in usage.stderr
    assert not (tmp_path / "m").exists()


def test_merging_again_replaces_the_previous_merge(sharded, tmp_path):
    merged = tmp_path / "merged"
    assert report("--merge", *sharded.outs, "-o", merged, cwd=tmp_path).returncode == 0
    assert report("--merge", sharded.outs[0], sharded.outs[1], "-o", merged, cwd=tmp_path).returncode == 1
    assert not (merged / "shard-3").exists()
    index = merged_index(merged)
    assert {e["shard"] for e in index["results"]} == {1, 2}


def test_the_merge_carries_every_shards_durations_for_the_next_pipeline(sharded, tmp_path):
    merged = tmp_path / "merged"
    assert report("--merge", *sharded.outs, "-o", merged, cwd=tmp_path).returncode == 0
    exported = report(merged, "--export-durations", tmp_path / "durations.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    durations = read_json(tmp_path / "durations.json")["durations"]
    expected = set()
    for out in sharded.outs:
        with sqlite3.connect(out / "history.sqlite") as db:
            expected |= {row[0] for row in db.execute("SELECT testcase FROM fragment_durations")}
    assert set(durations) == expected
    assert {"chain/a", "single/s0", "matrix/m[opt=O1]", "setup:build"} <= set(durations)
    # The next pipeline's shards plan from it, on machines with no history.
    fresh = run_cli(
        sharded.root, tmp_path / "fresh", "--shard", "1/3", "--durations", tmp_path / "durations.json", "--list"
    )
    assert fresh.returncode == 0 and "s of work expected" in fresh.stdout


def test_runs_without_shards_merge_in_the_order_given(tmp_path):
    root = write_suite(tmp_path / "suite", SUITE)
    run_cli(root, tmp_path / "a", "-q", names=["chain"])
    run_cli(root, tmp_path / "b", "-q", names=["single"])
    proc = report("--merge", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    index = merged_index(tmp_path / "merged")
    assert index["complete"] is True and index["partial"] is True  # each run was narrowed to names
    assert {e["name"]: e["shard"] for e in index["results"]} == {
        "chain/a": 1,
        "chain/b": 1,
        **{f"single/s{n}": 2 for n in range(5)},
    }
    assert os.path.isfile(tmp_path / "merged" / "shard-2" / index["results"][-1]["result"].split("/", 1)[1])


def test_an_empty_shard_leaves_a_run_so_that_the_merge_is_whole(tmp_path):
    # Two testcases tied by depends make one group: of three shards, two are empty.
    files = {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "depends: [a]\ncmd: 'true'\n"}
    root = write_suite(tmp_path / "suite", files)
    outs = []
    for k in (1, 2, 3):
        run = run_cli(root, tmp_path / f"out-{k}", "--shard", f"{k}/3")
        assert run.returncode == 0, run.stderr
        assert run.index is not None and run.index["shard"] == {"index": k, "total": 3, "narrowed": False}
        outs.append(tmp_path / f"out-{k}")
    empty = [out for out in outs if not read_json(out / "new/_index.json")["results"]]
    assert len(empty) == 2
    assert all(read_json(out / "new/_index.json")["complete"] for out in empty)
    listed = subprocess.run(
        [PYTHON, "-m", "run_testsuite", str(root), "-o", str(tmp_path / "listed"), "--shard", "3/3", "--list"],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0 and not (tmp_path / "listed").exists()  # --list writes nothing
    proc = report("--merge", *outs, "-o", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    index = merged_index(tmp_path / "merged")
    assert index["complete"] is True and set(statuses(index)) == {"a", "b"}


def test_a_merged_run_or_one_run_twice_is_not_merged_again(sharded, tmp_path):
    merged = tmp_path / "merged"
    assert report("--merge", *sharded.outs, "-o", merged, cwd=tmp_path).returncode == 0
    again = report("--merge", merged, "-o", tmp_path / "again", cwd=tmp_path)
    assert again.returncode == 2 and "is a merged run: give the runs it was merged from" in again.stderr
    whole = sharded.dir / "whole"
    twice = report("--merge", whole, whole / "new", "-o", tmp_path / "again", cwd=tmp_path)
    assert twice.returncode == 2 and "is given twice" in twice.stderr
    assert not (tmp_path / "again").exists()


def test_a_shard_whose_index_was_lost_is_named_as_such(sharded, tmp_path):
    import shutil

    lost = tmp_path / "out-1"
    shutil.copytree(sharded.outs[0], lost)
    (lost / "new" / "_index.json").unlink()  # killed before it wrote one
    proc = report("--merge", lost, *sharded.outs[1:], "-o", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 2
    assert "its index was rebuilt from its result files" in proc.stderr
    assert "does not say which shard it was" in proc.stderr


def test_a_merge_that_stopped_part_way_can_be_made_again(sharded, tmp_path):
    merged = tmp_path / "merged"
    assert report("--merge", *sharded.outs, "-o", merged, cwd=tmp_path).returncode == 0
    (merged / "_index.json").unlink()  # killed before writing its index
    proc = report("--merge", *sharded.outs, "-o", merged, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert merged_index(merged)["complete"] is True
