"""``--shard K/N``: one of N deterministic parts of the selection, for CI
jobs that split a suite between them.

Testcases tied by ``depends`` (transitively, either way) form one group
and stay in one shard, so no dependency is run twice or cut off; a set-up
runs in every shard that has a testcase needing it. Groups go, heaviest
first, to the shard with the least expected time so far (longest
processing time first), weighed by the fragments' expected durations from
history (or ``--durations``); with nothing known every testcase weighs
the same, so shards are balanced by count. Ties go by name, so every job
computes the same parts from the same suite and history.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Mapping

from run_testsuite.plan import SETUP_PREFIX, Plan, UsageError


def parse(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` (1-based), or ``auto``: GitLab's ``CI_NODE_INDEX`` and
    ``CI_NODE_TOTAL`` (``parallel:`` jobs)."""
    variables: Mapping[str, str] = os.environ if environ is None else environ
    if text == "auto":
        node, nodes = variables.get("CI_NODE_INDEX"), variables.get("CI_NODE_TOTAL")
        if not node or not nodes:
            raise UsageError(
                "--shard auto: CI_NODE_INDEX and CI_NODE_TOTAL are not set (GitLab sets them for parallel: jobs)"
            )
        text = f"{node}/{nodes}"
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not found:
        raise UsageError(f"--shard: expected K/N (this job's part K of N, from 1) or auto, got {text!r}")
    index, total = int(found.group(1)), int(found.group(2))
    if not 1 <= index <= total:
        raise UsageError(f"--shard {index}/{total}: K must be from 1 to {total}")
    return index, total


def partition(plan: Plan, durations: dict[tuple[str, str], float], total: int) -> list[list[str]]:
    """The names of the plan's testcases in each of ``total`` shards, and
    (see ``predicted``) what each is expected to take."""
    testcases = [p for p in plan.testcases if p.kind != "setup"]
    number = {p.name: n for n, p in enumerate(plan.testcases)}
    parent = list(range(len(plan.testcases)))

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n, dependents in enumerate(plan.dependents):
        if plan.testcases[n].kind == "setup":
            continue  # a set-up joins no group: it runs wherever it is needed
        for m in dependents:
            parent[root(m)] = root(n)
    weights = _weights(plan, durations)
    groups: dict[int, list[str]] = {}
    for planned in testcases:
        groups.setdefault(root(number[planned.name]), []).append(planned.name)
    ordered = sorted(groups.values(), key=lambda names: (-sum(weights[n] for n in names), min(names)))
    shards: list[list[str]] = [[] for _ in range(total)]
    loads = [(0.0, k) for k in range(total)]
    heapq.heapify(loads)
    for names in ordered:
        load, k = heapq.heappop(loads)
        shards[k].extend(names)
        heapq.heappush(loads, (load + sum(weights[n] for n in names), k))
    return shards


def predicted(plan: Plan, durations: dict[tuple[str, str], float], names: list[str]) -> float:
    """Seconds of work the testcases ``names`` are expected to take."""
    weights = _weights(plan, durations)
    return sum(weights[n] for n in names)


def _weights(plan: Plan, durations: dict[tuple[str, str], float]) -> dict[str, float]:
    """Each testcase's expected seconds: its fragments' known durations;
    one unknown counts as the median of the known (1 s with none), so a
    suite without history is split by count."""
    known = sorted(durations.values())
    estimate = known[len(known) // 2] if known else 1.0
    weights = {}
    for planned in plan.testcases:
        if planned.name.startswith(SETUP_PREFIX):
            continue
        fragments = [plan.fragments[f] for f in planned.fragments]
        weights[planned.name] = sum(durations.get((f.testcase, f.name), estimate) for f in fragments) or estimate
    return weights
