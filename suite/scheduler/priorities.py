"""The order of ready work: the critical path of recorded durations.

A fragment with a long chain of work behind it starts before one with
nothing behind it; what failed last time goes first, so a re-run answers
the open question soonest.
"""

from __future__ import annotations

from run_testsuite.plan import Plan


def expected_durations(plan: Plan, known: dict[tuple[str, str], float]) -> list[float]:
    """Seconds each fragment is expected to take, from history; a fragment
    never timed counts as the median of those that were (or 1 s)."""
    values = sorted(known.values())
    estimate = values[len(values) // 2] if values else 1.0
    return [known.get((f.testcase, f.name), estimate) for f in plan.fragments]


def priorities(plan: Plan, expected: list[float], failed_last_time: set[str]) -> list[float]:
    """Critical-path priority of each fragment: the longest chain of
    ``expected`` durations from it to the end of the graph."""
    longest = plan.graph.longest_paths(expected)
    # Ties go to the fragment deeper in a chain: with no history every
    # estimate is equal, and a chain's last link would otherwise wait
    # behind all the independent work named before it.
    for number, depth in enumerate(plan.graph.depths()):
        longest[number] += depth * 1e-6
    if failed_last_time:
        bonus = (sum(expected) or 1.0) * 2
        for number, fragment in enumerate(plan.fragments):
            if fragment.testcase in failed_last_time:
                longest[number] += bonus
    return longest
