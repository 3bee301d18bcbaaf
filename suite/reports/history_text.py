"""``run-testsuite report --history``: what the last runs say, as text.

The summary lists flaky testcases (with their flips), those failing in
every run since some run, the slowest, those that grew slower, and each
run's totals; ``--history NAME`` lists one testcase's runs.
"""

from __future__ import annotations

import time

from run_testsuite.history_view import Window, same_key
from run_testsuite.plan import SETUP_PREFIX
from run_testsuite.results import Status

# Rows listed per section; more are counted.
LISTED = 20


def when(start: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(start))


def seconds(value: float | None) -> str:
    """As the HTML report says durations; ``-`` for none recorded."""
    from run_testsuite.reports.html import seconds as shown

    return "-" if value is None else shown(value)


def _counted_series(window: Window) -> str:
    """'20 testcases', or '19 testcases, 1 set-up'."""
    setups = sum(1 for name in window.series if name.startswith(SETUP_PREFIX))
    testcases = len(window.series) - setups
    text = f"{testcases} testcase{'s' if testcases != 1 else ''}"
    return text + (f", {setups} set-up{'s' if setups != 1 else ''}" if setups else "")


def render_summary(window: Window) -> str:
    runs = window.runs
    if not runs:
        return "no run recorded in this history\n"
    lines = [
        f"The last {len(runs)} run{'s' if len(runs) != 1 else ''} of {window.total_runs} "
        f"(runs {runs[0].id}-{runs[-1].id}, {when(runs[0].start)} to {when(runs[-1].start)}), "
        + _counted_series(window)
    ]
    flaky = window.flaky()
    lines += _section(
        f"Flaky ({len(flaky)}): their verdict changed while their key stayed the same, or they passed on a retry",
        [
            f"  {len(flips)} flip{'s' if len(flips) != 1 else ''} in {len(series.verdicts())} runs"
            f" (run{'s' if len(flips) != 1 else ''} {', '.join(map(str, flips))})  {series.name}"
            for series, flips in flaky
        ],
    )
    failing = window.failing()
    # A streak from the first run read may be older: runs not read, or
    # pruned (--history-keep) before it; run ids count from 1.
    earlier_runs = len(runs) < window.total_runs or runs[0].id > 1
    lines += _section(
        f"Failing in every run since ({len(failing)})",
        [
            f"  run {first.run} ({when(run.start) if (run := window.run(first.run)) else '?'}), "
            f"{streak} run{'s' if streak != 1 else ''}{' at least' if earlier_runs and first is series.verdicts()[0] else ''}: {series.name}"
            for series, first, streak in failing
        ],
    )
    lines += _section(
        "Slowest (median of their runs)",
        [f"  {seconds(median):>9}  {series.name}" for series, median in window.slowest()],
    )
    grew = window.grew()
    lines += _section(
        f"Grew slower ({len(grew)}): the median of their later runs against their earlier",
        [
            f"  {seconds(before):>9} -> {seconds(after):<9} ({f'+{(after / before - 1) * 100:.0f}%' if before else 'from 0'})  {series.name}"
            for series, before, after in grew
        ],
    )
    statuses = [status.value for status in Status]
    header = f"  {'run':>5}  {'started':<16}  {'took':>9}  " + "  ".join(f"{s:>5}" for s in statuses)
    rows = [
        f"  {run.id:>5}  {when(run.start):<16}  {seconds(run.duration):>9}  "
        + "  ".join(f"{run.counts.get(s, 0):>5}" for s in statuses)
        for run in runs
    ]
    lines += ["", "Runs:", header, *rows]
    if window.total_runs > len(runs):
        lines.append(f"  ({window.total_runs - len(runs)} earlier runs not shown)")
    return "\n".join(lines) + "\n"


def render_testcase(window: Window, name: str) -> str:
    series = window.series.get(name)
    if series is None:
        return ""
    lines = [f"{name}: {len(series.entries)} of the last {len(window.runs)} runs"]
    lines.append(f"  {'run':>5}  {'started':<16}  {'status':<6}  {'reason':<12}  {'took':>9}  key")
    key = None
    for entry in series.entries:
        run = window.run(entry.run)
        change = "" if key is None else ("same" if same_key(entry.key, key) else "changed")
        key = entry.key or key
        attempts = f" ({entry.attempts} attempts)" if entry.attempts > 1 else ""
        lines.append(
            f"  {entry.run:>5}  {when(run.start) if run else '?':<16}  {entry.status:<6}  {entry.reason or '':<12}"
            f"  {seconds(entry.duration):>9}  {change}{attempts}"
        )
    flips = series.flips()
    if series.flaky:
        plural = "s" if len(flips) != 1 else ""
        lines.append(f"flaky: {len(flips)} flip{plural} (run{plural} {', '.join(map(str, flips))})")
    return "\n".join(lines) + "\n"


def _section(title: str, rows: list[str]) -> list[str]:
    if not rows:
        return []
    shown = rows[:LISTED]
    more = [f"  ... and {len(rows) - LISTED} more"] if len(rows) > LISTED else []
    return ["", f"{title}:", *shown, *more]
