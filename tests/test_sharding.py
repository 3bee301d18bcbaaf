"""--shard K/N: deterministic, disjoint parts whose union is the selection,
with dependency chains kept together, set-ups wherever needed, and balance
by expected durations."""

from __future__ import annotations

import subprocess

import pytest
from conftest import cli_argv, cli_env, run_cli, statuses, write_suite

SUITE = {
    "suite.yaml": "setup:\n  build:\n    cmd: 'true'\nresources:\n  boards: 1\n",
    "chain/a/test.yaml": "cmd: 'true'\n",
    "chain/b/test.yaml": "depends: [chain/a]\ncmd: 'true'\n",
    "chain/c/test.yaml": "depends: [chain/b]\ncmd: 'true'\n",
    "built/x1/test.yaml": "needs: [build]\ncmd: 'true'\n",
    "built/x2/test.yaml": "needs: [build]\ncmd: 'true'\n",
    "matrix/m/test.yaml": "matrix: {opt: [O0, O1, O2]}\ncmd: 'true'\n",
    "board/r/test.yaml": "resources: {boards: 1}\ncmd: 'true'\n",
    **{f"single/s{n}/test.yaml": "cmd: 'true'\n" for n in range(8)},
}
SELECTION = {
    "chain/a",
    "chain/b",
    "chain/c",
    "built/x1",
    "built/x2",
    "matrix/m[opt=O0]",
    "matrix/m[opt=O1]",
    "matrix/m[opt=O2]",
    "board/r",
    *(f"single/s{n}" for n in range(8)),
}


def listed(root, out, *args, env=None) -> tuple[list[str], str, subprocess.CompletedProcess]:
    proc = subprocess.run(
        [*cli_argv(root, out)[:3], str(root), "-o", str(out), "--list", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    names = [line.split()[0] for line in lines if line and not line.startswith("shard ")]
    summary = next((line for line in lines if line.startswith("shard ")), "")
    return names, summary, proc


@pytest.mark.parametrize("total", [1, 2, 3, 5])
def test_shards_are_disjoint_their_union_is_the_selection_and_chains_stay_together(tmp_path, total):
    root = write_suite(tmp_path / "suite", SUITE)
    parts = []
    for index in range(1, total + 1):
        names, summary, proc = listed(root, tmp_path / "out", "--shard", f"{index}/{total}")
        assert proc.returncode == 0, proc.stderr
        assert summary.startswith(f"shard {index}/{total}: "), proc.stdout
        testcases = {n for n in names if not n.startswith("setup:")}
        # A set-up is planned in every shard that has a testcase needing it, and only there.
        assert ("setup:build" in names) == bool(testcases & {"built/x1", "built/x2"})
        parts.append(testcases)
    assert set().union(*parts) == SELECTION
    assert sum(len(p) for p in parts) == len(SELECTION)  # pairwise disjoint
    chain = {"chain/a", "chain/b", "chain/c"}
    assert sum(1 for p in parts if p & chain) == 1 and any(chain <= p for p in parts)
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] - sizes[0] <= 3  # by count (no history), the chain of 3 being one group
    # The same parts every time: every CI job computes the same split.
    again = [
        {n for n in listed(root, tmp_path / "out", "--shard", f"{k}/{total}")[0] if not n.startswith("setup:")}
        for k in range(1, total + 1)
    ]
    assert again == parts


def test_shards_balance_by_recorded_durations(tmp_path):
    files = {f"t{n}/test.yaml": "cmd: 'true'\n" for n in range(6)}
    files["slow/test.yaml"] = "cmd: sleep 0.6\n"
    root, out = write_suite(tmp_path / "suite", files), tmp_path / "out"
    run_cli(root, out)  # history: slow takes 0.6 s, the others next to nothing
    first, _, _ = listed(root, out, "--shard", "1/2")
    second, _, _ = listed(root, out, "--shard", "2/2")
    assert {"slow"} in ({n for n in first}, {n for n in second})  # alone in its shard, the rest together
    assert len(first) + len(second) == 7


def test_a_sharded_run_is_partial_and_an_empty_shard_is_no_failure(tmp_path):
    root, out = (
        write_suite(tmp_path / "suite", {"a/test.yaml": "cmd: 'true'\n", "b/test.yaml": "cmd: 'true'\n"}),
        tmp_path / "out",
    )
    run = run_cli(root, out, "--shard", "2/2")
    assert run.returncode == 0 and len(statuses(run.index)) == 1 and run.index["partial"] is True
    run = run_cli(root, out, "--shard", "3/3")
    assert run.returncode == 0 and "no testcase falls in this shard" in run.stdout + run.stderr


def test_shard_auto_reads_gitlabs_variables_and_bad_values_are_usage_errors(tmp_path):
    root = write_suite(tmp_path / "suite", SUITE)
    names, summary, _ = listed(
        root, tmp_path / "out", "--shard", "auto", env={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}
    )
    explicit, _, _ = listed(root, tmp_path / "out", "--shard", "2/3")
    assert names == explicit and summary.startswith("shard 2/3:")
    for value, message in (
        ("auto", "CI_NODE_INDEX and CI_NODE_TOTAL are not set"),
        ("0/3", "K must be from 1 to 3"),
        ("4/3", "K must be from 1 to 3"),
        ("half", "expected K/N"),
    ):
        _, _, proc = listed(root, tmp_path / "out", "--shard", value, env={"CI_NODE_INDEX": "", "CI_NODE_TOTAL": ""})
        assert proc.returncode == 2 and message in proc.stderr, (value, proc.stderr)
