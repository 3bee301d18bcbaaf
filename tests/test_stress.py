"""Stress: a generated suite of ~300 testcases at -j 16, full of faults.

The suite mixes passes, failures (exit codes, diffs, a failing step),
timeouts (some ignoring SIGTERM), worker crashes (exit, SIGSEGV, SIGKILL),
driver bugs, spec errors, commands that leave children in the background
or as setsid'ed daemons, and chains of dependencies with a fault inside.
The random generator is seeded: the suite is the same on every run. Each
testcase knows the verdict it was built for; the run must give exactly
that, once, and leave no process behind. `pytest -s` shows the figures.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from dataclasses import dataclass

import pytest

from conftest import load_index, load_result, statuses, write_suite
from faultlib import (
    Launched,
    assert_one_result_each,
    helper_files,
    kill_marked,
    marked_processes,
    new_marker,
    proc_cmd,
    result_files,
    suite_root,
    survivors,
    wait_for,
)

SEED = 20240611
JOBS = 16
SINGLES = 230
CHAINS = 16

PASS = ("PASS", None)
SKIP_DEPENDENCY = ("SKIP", "DEPENDENCY")


@dataclass
class Kind:
    name: str
    weight: float
    expected: tuple[str, str | None]
    fault: bool  # injected on purpose (anything but a plain pass)
    cap: int | None = None  # at most this many singles (slow kinds)


KINDS = [
    Kind("pass", 38, PASS, False),
    Kind("pass-diff", 10, PASS, False),
    Kind("pass-steps", 4, PASS, False),
    Kind("fail-exit", 7, ("FAIL", "EXIT_CODE"), True),
    Kind("fail-expected-code", 3, ("FAIL", "EXIT_CODE"), True),
    Kind("fail-diff", 5, ("FAIL", "DIFF"), True),
    Kind("fail-step", 3, ("FAIL", "EXIT_CODE"), True),
    Kind("timeout", 6, ("FAIL", "TIMEOUT"), True),
    Kind("timeout-stubborn", 2, ("FAIL", "TIMEOUT"), True, cap=5),
    Kind("crash-exit", 3, ("ERROR", "CRASH"), True),
    Kind("crash-segv", 3, ("ERROR", "CRASH"), True),
    Kind("crash-sigkill", 3, ("ERROR", "CRASH"), True),
    Kind("driver-raise", 2, ("ERROR", "DRIVER"), True),
    Kind("spec-error", 1, ("ERROR", "SPEC"), True),
    Kind("leave-bg-child", 4, PASS, True),
    Kind("leave-daemon", 3, PASS, True),
    Kind("leave-shell-bg", 3, PASS, True),
]
BY_NAME = {kind.name: kind for kind in KINDS}
# What may break a chain of dependencies (a fault that does not pass).
CHAIN_BREAKERS = ["fail-exit", "fail-diff", "timeout", "crash-exit", "crash-segv", "crash-sigkill", "spec-error"]


def files_for(kind: str, marker: str, name: str) -> dict:
    """The files of testcase ``name`` (relative to the suite) of ``kind``."""
    spec = f"{name}/test.yaml"
    if kind == "pass":
        return {spec: "cmd: 'true'\n"}
    if kind == "pass-diff":
        return {spec: f"driver: diff\ncmd: echo hello {name}\n", f"{name}/test.out": f"hello {name}\n"}
    if kind == "pass-steps":
        return {spec: "steps:\n  - cmd: echo one > f\n  - cmd: grep -q one f\n"}
    if kind == "fail-exit":
        return {spec: f"cmd: echo failing; exit {1 + len(name) % 5}\n"}
    if kind == "fail-expected-code":
        return {spec: "exit_code: 2\ncmd: 'true'\n"}
    if kind == "fail-diff":
        return {spec: f"driver: diff\ncmd: echo actual {name}\n", f"{name}/test.out": "expected\n"}
    if kind == "fail-step":
        return {spec: "steps:\n  - cmd: 'true'\n  - cmd: 'false'\n  - cmd: 'true'\n"}
    if kind == "timeout":
        return {spec: "timeout: 0.3\ncmd: sleep 5\n"}
    if kind == "timeout-stubborn":
        return {spec: f"timeout: 0.3\ncmd: {proc_cmd(marker, '--ignore-term --sleep 30')}\n"}
    if kind.startswith("crash-"):
        return {spec: f"driver: faulty\noptions: {{how: {kind.split('-')[1]}}}\ncmd: 'true'\n"}
    if kind == "driver-raise":
        return {spec: "driver: faulty\noptions: {how: raise-run}\ncmd: 'true'\n"}
    if kind == "spec-error":
        return {spec: "cmd: 'true'\ntimeuot: 3\n"}
    if kind == "leave-bg-child":
        return {spec: f"cmd: {proc_cmd(marker, '--spawn bg --child-ignore-term --child-sleep 60')}\n"}
    if kind == "leave-daemon":
        return {spec: f"cmd: {proc_cmd(marker, '--spawn daemon --child-ignore-term --child-sleep 60')}\n"}
    if kind == "leave-shell-bg":
        return {spec: "cmd: sleep 60 & echo started\n"}
    raise AssertionError(kind)


def generate(root, marker: str, extra: dict | None = None) -> tuple[dict, dict]:
    """Write the suite; return ({name: expected (status, reason)}, {name: kind})."""
    rng = random.Random(SEED)
    files = helper_files(marker)
    expected: dict[str, tuple] = {}
    kinds: dict[str, str] = {}
    used = Counter()
    weights = [kind.weight for kind in KINDS]
    for number in range(SINGLES):
        while True:
            kind = rng.choices(KINDS, weights)[0]
            if kind.cap is None or used[kind.name] < kind.cap:
                break
        used[kind.name] += 1
        name = f"s{number:03d}-{kind.name}"
        files.update(files_for(kind.name, marker, name))
        expected[name], kinds[name] = kind.expected, kind.name
    for chain in range(CHAINS):
        length = rng.randint(3, 6)
        # Two chains in three hold a fault at a random link.
        broken_at = rng.randrange(length) if rng.random() < 2 / 3 else None
        previous = None
        for link in range(length):
            if broken_at is None or link < broken_at:
                kind = rng.choice(["pass", "pass-diff", "pass-steps"])
            elif link == broken_at:
                kind = rng.choice(CHAIN_BREAKERS)
            else:
                kind = rng.choice(["pass", "pass-diff"])
            name = f"c{chain:02d}-{link}-{kind}"
            links = files_for(kind, marker, name)
            if previous is not None:
                links[f"{name}/test.yaml"] += f"depends: [{previous}]\n"
            files.update(links)
            kinds[name] = kind
            expected[name] = BY_NAME[kind].expected if broken_at is None or link <= broken_at else SKIP_DEPENDENCY
            previous = name
    files.update(extra or {})
    write_suite(root, files)
    return expected, kinds


def check_verdicts(out, index, expected: dict, kinds: dict) -> list[str]:
    """Mismatches between what each testcase was built for and its result."""
    got = statuses(index)
    wrong = []
    for name, want in expected.items():
        if got.get(name) != want:
            message = load_result(out, name, index)["message"] if name in got else "(no result)"
            wrong.append(f"{name}: expected {want}, got {got.get(name)}: {message[:200]}")
            continue
        if kinds.get(name, "").startswith("crash-"):
            message = load_result(out, name, index)["message"]
            signal_or_status = {"exit": "status 3", "segv": "SIGSEGV", "sigkill": "SIGKILL"}[kinds[name].split("-")[1]]
            if signal_or_status not in message:
                wrong.append(f"{name}: crash message does not name {signal_or_status}: {message}")
    return wrong


def figures(title: str, expected: dict, kinds: dict, index, lost: int, left: dict, wall: float) -> None:
    faults = Counter(kinds[name] for name in expected if name in kinds and BY_NAME[kinds[name]].fault)
    skips = sum(1 for want in expected.values() if want == SKIP_DEPENDENCY)
    print(
        f"\n{title}: {len(expected)} testcases at -j {JOBS} (seed {SEED}); "
        f"faults injected: {sum(faults.values())} ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))}); "
        f"skipped behind a broken dependency: {skips}; results lost: {lost}; "
        f"processes left: {len(left)}; wall time {wall:.2f} s; counts {index['counts'] if index else None}"
    )


@pytest.fixture
def marker():
    marker = new_marker()
    yield marker
    kill_marked(marker)


def test_stress_every_testcase_gets_the_verdict_it_was_built_for(tmp_path, marker):
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    expected, kinds = generate(root, marker)
    assert 280 <= len(expected) <= 340
    launched = Launched(root, out, "-j", JOBS)
    code = launched.wait(120)
    wall = launched.elapsed
    index = load_index(out)
    listed = [entry["name"] for entry in index["results"]]
    lost = len(set(expected) - set(listed))
    left = survivors(marker, within=3.0)
    figures("stress", expected, kinds, index, lost, left, wall)
    assert code == 1, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert index["complete"] is True and index["interrupted"] is False
    assert_one_result_each(index, out, expected)
    wrong = check_verdicts(out, index, expected, kinds)
    assert not wrong, f"{len(wrong)} wrong verdicts:\n" + "\n".join(wrong)
    assert left == {}, f"processes left behind: {left}"
    assert "Traceback" not in launched.stderr
    # Sanity of the figures: every kind of fault was in the mix.
    assert {k.name for k in KINDS} <= set(kinds.values())
    assert wall < 60, f"the stress run took {wall:.1f} s"


def test_stress_interrupted_once_every_slot_is_busy(tmp_path, marker):
    """The same suite, plus sixteen long testcases that end up holding every
    slot and twenty that then wait for one: a Ctrl-C at that moment stops
    the run; what finished keeps its verdict, the rest is accounted for,
    nothing is left running."""
    root, out = suite_root(tmp_path, marker), tmp_path / "out"
    pids = tmp_path / "pids"
    pids.mkdir()
    extra = {}
    longs = [f"z-long-{n:02d}" for n in range(JOBS)]
    waiting = [f"zz-waiting-{n:02d}" for n in range(20)]
    for name in longs:
        extra[f"{name}/test.yaml"] = f"cmd: {proc_cmd(marker, '--pidfile', pids / name, '--sleep 60')}\n"
    for name in waiting:
        extra[f"{name}/test.yaml"] = "cmd: 'true'\n"
    expected, kinds = generate(root, marker, extra)
    launched = Launched(root, out, "-j", JOBS)
    try:
        # Every long one runs: every slot holds one, everything before them is decided.
        assert wait_for(lambda: all((pids / name).exists() for name in longs), 90), launched.stdout[-2000:]
        assert wait_for(lambda: len(result_files(out)) >= len(expected), 30)
    except AssertionError:
        launched.kill()
        raise
    running = len(marked_processes(marker))
    os.kill(launched.pid, signal.SIGINT)
    code = launched.wait(60)
    wall = launched.elapsed
    index = load_index(out)
    all_names = [*expected, *longs, *waiting]
    listed = [entry["name"] for entry in index["results"]]
    lost = len(set(all_names) - set(listed))
    left = survivors(marker, within=3.0)
    figures(f"stress interrupted ({running} marked processes at the interrupt)", expected, kinds, index, lost, left, wall)
    assert code == 130, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert index["complete"] is True and index["interrupted"] is True
    assert_one_result_each(index, out, all_names)
    wrong = check_verdicts(out, index, expected, kinds)
    got = statuses(index)
    wrong += [f"{name}: {got[name]}" for name in longs if got[name] != ("ERROR", "INTERRUPTED")]
    wrong += [f"{name}: {got[name]}" for name in waiting if got[name] != ("SKIP", "INTERRUPTED")]
    assert not wrong, f"{len(wrong)} wrong verdicts:\n" + "\n".join(wrong)
    assert left == {}, f"processes left behind: {left}"
