"""Reading history for people: the last N runs of each testcase, and what
they show: flaky testcases, the slowest, those that grew slower, those
failing in every run since some run.

Read from ``OUTPUT/history.sqlite`` (see ``history``): the runs, then
their results one testcase at a time (``each_series``). A result
that says nothing of its testcase (skipped because the run stopped or a
dependency failed, a control skip) is no verdict: it neither flips nor
breaks a failing streak.

Flaky: a testcase whose verdict flipped between good (PASS, XFAIL) and
bad (FAIL, ERROR) from one run to the next while its key stayed the same
(nothing it depends on changed), and back again, or that passed only on a
retry. One turn alone is a change (something its key does not see broke
or fixed it): a testcase failing since is listed as that.
"""

from __future__ import annotations

import functools
import heapq
import json
import sqlite3
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from sys import intern

from run_testsuite.history import KEY_IN_RESULTS, NOT_VERDICTS, read_only

GOOD = frozenset({"PASS", "XFAIL"})
BAD = frozenset({"FAIL", "ERROR"})
# Durations compared for growth: at least this many runs on each side.
GROWTH_MIN_RUNS = 3


@dataclass
class Run:
    id: int
    start: float
    duration: float | None
    counts: dict[str, int]


@dataclass(slots=True)
class Entry:
    """One testcase in one run; ``verdict``: it says something of the
    testcase (not a skip the run or a dependency made)."""

    run: int
    status: str
    reason: str | None
    duration: float
    attempts: int
    key: str | None
    verdict: bool = True


@dataclass
class Series:
    """One testcase's results over the runs read, oldest first."""

    name: str
    entries: list[Entry] = field(default_factory=list)

    def verdicts(self) -> list[Entry]:
        return self._verdicts

    @functools.cached_property
    def _verdicts(self) -> list[Entry]:  # read once the entries are all in
        return [e for e in self.entries if e.verdict]

    def flips(self) -> list[int]:
        """The runs whose verdict flipped from the one before under the
        same key, and those that passed only on a retry."""
        return sorted(set(self._turns) | set(self.retried()))

    @functools.cached_property
    def _turns(self) -> list[int]:
        return self.turns()

    def turns(self) -> list[int]:
        """The runs whose verdict went from good to bad, or back, under the
        key of the run before."""
        runs = []
        before = None
        for entry in self.verdicts():
            if (
                before is not None
                and entry.key is not None
                and same_key(entry.key, before.key)
                and ((entry.status in GOOD and before.status in BAD) or (entry.status in BAD and before.status in GOOD))
            ):
                runs.append(entry.run)
            before = entry
        return runs

    def retried(self) -> list[int]:
        """The runs it passed only on a retry."""
        return [e.run for e in self.verdicts() if e.status == "PASS" and e.attempts > 1]

    @property
    def flaky(self) -> bool:
        """Flipped and flipped back (one turn alone is a change: it broke,
        or was fixed, by something its key does not see), or passed on a
        retry."""
        return len(self._turns) >= 2 or bool(self.retried())

    @functools.cached_property
    def _durations(self) -> list[float]:
        return [e.duration for e in self.entries if e.status in ("PASS", "FAIL") and e.verdict]

    def durations(self) -> list[float]:
        """Durations of the runs that ran it to an end (PASS or FAIL)."""
        return self._durations

    def failing_since(self) -> Entry | None:
        """The first run of the streak of bad verdicts it is in now, if it
        is failing now."""
        first = None
        for entry in reversed(self.verdicts()):
            if entry.status not in BAD:
                break
            first = entry
        return first


@dataclass
class Window:
    """The last runs of a history, and each testcase's results in them."""

    runs: list[Run]
    series: dict[str, Series]
    total_runs: int
    _by_id: dict[int, Run] = field(default_factory=dict)

    def run(self, number: int) -> Run | None:
        if len(self._by_id) != len(self.runs):
            self._by_id = {r.id: r for r in self.runs}
        return self._by_id.get(number)

    def flaky(self) -> list[tuple[Series, list[int]]]:
        """Flaky testcases, most flips first."""
        found = [(s, s.flips()) for s in self.series.values() if s.flaky]
        return sorted(found, key=lambda item: (-len(item[1]), item[0].name))

    def slowest(self, limit: int = 10) -> list[tuple[Series, float]]:
        timed = [(s, statistics.median(d)) for s in self.series.values() if (d := s.durations())]
        return sorted(timed, key=lambda item: (-item[1], item[0].name))[:limit]

    def grew(self, limit: int = 10) -> list[tuple[Series, float, float]]:
        """Testcases whose median duration in the later half of their runs
        exceeds the earlier half's by 20% and 50 ms at least: (series,
        earlier, later), the largest growth first."""
        found = []
        for series in self.series.values():
            durations = series.durations()
            if len(durations) < 2 * GROWTH_MIN_RUNS:
                continue
            half = len(durations) // 2
            earlier, later = statistics.median(durations[:half]), statistics.median(durations[half:])
            if later > earlier * 1.2 and later - earlier > 0.05:
                found.append((series, earlier, later))
        return sorted(found, key=lambda item: (-(item[2] - item[1]), item[0].name))[:limit]

    def failing(self) -> list[tuple[Series, Entry, int]]:
        """Testcases failing in every run since some run: (series, the
        streak's first entry, how many runs), the longest streak first."""
        found = []
        for series in self.series.values():
            first = series.failing_since()
            if first is not None:
                streak = sum(1 for e in series.verdicts() if e.run >= first.run)
                found.append((series, first, streak))
        return sorted(found, key=lambda item: (item[1].run, item[0].name))


def same_key(one: str | None, other: str | None) -> bool:
    """Keys compared as results keep them: their first KEY_IN_RESULTS digits
    (histories from before kept them whole)."""
    return one is not None and other is not None and one[:KEY_IN_RESULTS] == other[:KEY_IN_RESULTS]


def read_window(path: str, last: int, name: str | None = None, before: float | None = None) -> Window:
    """The last ``last`` runs of the history at ``path`` (those that started
    ``before`` a time, if given), of every testcase or of the one ``name``.
    Raises sqlite3.Error when it cannot be read."""
    with read_only(path) as db:
        runs, total = _runs(db, last, before)
        series = {found.name: found for found in each_series(db, runs, name)}
    return Window(runs, series, total)


def _runs(db: sqlite3.Connection, last: int, before: float | None) -> tuple[list[Run], int]:
    """The last ``last`` runs that ended ``before`` a time, oldest first,
    and how many runs the history holds."""
    rows = db.execute(
        # Runs that ended before ``before``: a run holding that moment
        # is the one reported (its index may start later, when rebuilt).
        "SELECT id, start, duration, counts FROM runs WHERE start + COALESCE(duration, 0) < ? ORDER BY id DESC LIMIT ?",
        (before if before is not None else float("inf"), last),
    ).fetchall()
    total = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    return [Run(i, start, duration, _counts(counts)) for i, start, duration, counts in reversed(rows)], total


def each_series(db: sqlite3.Connection, runs: list[Run], name: str | None = None) -> Iterator[Series]:
    """Each testcase's results in ``runs`` (of the one ``name``, if given),
    one testcase at a time, in name order. A run's rows come in name order
    (the table's key is (run, name)): merging one cursor per run keeps a
    single testcase in memory, where grouping all rows at once held
    100,000 testcases x 10 runs as objects (over 100 MB)."""
    query = "SELECT name, status, reason, duration, attempts, key FROM results WHERE run = ?"
    if name is not None:
        query += " AND name = ?"
    cursors = [
        _tagged(db.execute(query + " ORDER BY name", (run.id,) if name is None else (run.id, name)), run.id)
        for run in runs
    ]
    series: Series | None = None
    # Equal names come in the order of the cursors: oldest run first.
    for (testcase, status, reason, duration, attempts, key), run in heapq.merge(*cursors, key=_name_of):
        if series is None or series.name != testcase:
            if series is not None:
                yield series
            series = Series(testcase)
        series.entries.append(Entry(run, status, reason, duration, attempts, key, reason not in NOT_VERDICTS))
    if series is not None:
        yield series


def _tagged(rows: Iterator[tuple], run: int) -> Iterator[tuple[tuple, int]]:
    return ((row, run) for row in rows)


def _name_of(item: tuple[tuple, int]) -> str:
    return item[0][0]


def _counts(text: str | None) -> dict[str, int]:
    try:
        counts = json.loads(text or "{}")
    except ValueError:
        return {}
    return counts if isinstance(counts, dict) else {}


@dataclass
class Strips:
    """For the HTML report: each testcase's strip of its last runs, as the
    JSON text of its [status, seconds] pairs, oldest first (the page's
    data; as lists of lists they took 400 bytes a testcase), and the
    number of flips of those history finds flaky."""

    runs: dict[str, str] = field(default_factory=dict)
    flips: dict[str, int] = field(default_factory=dict)


def strips(output_dir: str, last: int, before: float | None = None) -> Strips:
    """Each testcase's last ``last`` runs that started ``before`` the one
    reported. Empty when the output directory has no history or it cannot
    be read."""
    import os

    from run_testsuite.history import HISTORY_FILE

    path = os.path.join(output_dir, HISTORY_FILE)
    found = Strips()
    if not os.path.isfile(path):
        return found
    try:
        with read_only(path) as db:
            runs, _ = _runs(db, last, before)
            for series in each_series(db, runs):
                name = intern(series.name)  # as the run's names are
                found.runs[name] = json.dumps(
                    [[e.status, round(e.duration, 4)] for e in series.entries], separators=(",", ":")
                )
                if series.flaky:
                    found.flips[name] = len(series.flips())
    except sqlite3.Error:
        return Strips()
    return found
