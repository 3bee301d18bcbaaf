"""Live progress: ``status.json`` for other tools, a status line for people.

Both are fed by the scheduler after every wake-up and throttled, so a run of
many tiny testcases does not spend its time reporting on itself.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter

from run_testsuite.jsonio import INDEX_FILE, read_json, write_atomic
from run_testsuite.reports.text import WORDS, plural_s
from run_testsuite.results import Result, Status

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import TextIO

STATUS_FILE = "status.json"


class Progress:
    """Counts kept as results arrive, and the views made from them."""

    def __init__(self, total: int, new_dir: str, expected: dict[str, float] | None = None, jobs: int = 1):
        self.total = total
        self.path = os.path.join(new_dir, STATUS_FILE)
        self.counts: Counter = Counter()
        self.started = time.monotonic()
        self.expected = expected or {}  # seconds per testcase, from the last run
        self.jobs = max(1, jobs)
        self.remaining_expected = sum(self.expected.values())
        self.ready = self.running = 0
        self.running_names: list[str] = []
        self._last_write = 0.0

    def result(self, result: Result) -> None:
        self.counts[result.status.value] += 1
        self.remaining_expected -= self.expected.get(result.name, 0.0)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def eta(self) -> float | None:
        """Seconds left, from the last run's durations of what is left."""
        if not self.expected:
            return None
        return max(0.0, self.remaining_expected) / self.jobs

    def update(self, scheduler, force: bool = False) -> bool:
        """Take the scheduler's state; True when views should be redrawn."""
        now = time.monotonic()
        if not force and now - self._last_write < 0.25:
            return False
        self._last_write = now
        self.ready = scheduler.ready_count()
        self.running = scheduler.running
        self.running_names = scheduler.running_testcases()
        self.write(complete=False)
        return True

    def write(self, complete: bool) -> None:
        if complete:
            self.ready = self.running = 0
            self.running_names = []
        eta = self.eta()
        data = {
            "total": self.total,
            "done": self.done,
            "ready": self.ready,
            "running": self.running,
            "running_testcases": self.running_names,
            "passed": self.counts.get("PASS", 0) + self.counts.get("XFAIL", 0),
            "failed": self.counts.get("FAIL", 0) + self.counts.get("ERROR", 0) + self.counts.get("XPASS", 0),
            "counts": {s.value: self.counts.get(s.value, 0) for s in Status},
            "elapsed": round(time.monotonic() - self.started, 3),
            "eta": None if eta is None else round(eta, 1),
            "complete": complete,
        }
        try:
            write_atomic(self.path, data)
        except OSError:  # live progress is a help: the index says what matters
            pass


def live_display_wanted(stream: TextIO) -> bool:
    """A redrawn status line only on a terminal, and never under CI."""
    return (
        hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"
    )


class StatusLine:
    """One line at the bottom of the terminal, redrawn in place."""

    def __init__(self, stream: TextIO | None = None):
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.shown = False

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.shown = False

    def draw(self, progress: Progress) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        counts = progress.counts
        parts = [f"[{progress.done}/{progress.total}]"]
        for status in Status:
            if counts.get(status.value):
                parts.append(f"{counts[status.value]} {WORDS[status]}{plural_s(status, counts[status.value])}")
        eta = progress.eta()
        if eta is not None:
            parts.append(f"ETA {eta:.0f}s")
        if progress.running_names:
            parts.append("running: " + ", ".join(progress.running_names))
        line = "  ".join(parts)
        if len(line) > width - 1:
            line = line[: width - 2] + "…"
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self.shown = True


def expected_durations(
    names: list[str],
    durations: dict[tuple[str, str], float],
    old_dir: str,
    fragments: set[tuple[str, str]] | None = None,
) -> dict[str, float]:
    """Seconds each of ``names`` is expected to take: the sum of its
    fragments' recorded ``durations`` (history's; of this run's
    ``fragments`` (testcase, fragment) alone, where given: history keeps
    shards of an earlier count), else from the previous run's index
    (parsing it cost a 10,000-testcase run 30 ms at its start)."""
    wanted = set(names)
    expected: dict[str, float] = {}
    if durations:
        for (name, fragment), seconds in durations.items():
            if name in wanted and (fragments is None or (name, fragment) in fragments):
                expected[name] = expected.get(name, 0.0) + seconds
        return expected
    try:
        index = read_json(os.path.join(old_dir, INDEX_FILE))
        for entry in index.get("results", []):
            if entry["name"] in wanted:
                expected[entry["name"]] = float(entry.get("duration") or 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return expected
