"""Terminal output: a line per non-passing result as it arrives, then the
details of each failure and a summary of counts and wall time."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from run_testsuite.plan import SETUP_PREFIX
from run_testsuite.results import WORDS, Reason, Result, Status, describe_exit, plural_s
from run_testsuite.subresults import NOTABLE, counts, describe_counts, one_line

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import TextIO

COLOURS = {
    Status.PASS: "32",
    Status.FAIL: "31",
    Status.ERROR: "31;1",
    Status.XFAIL: "33",
    Status.XPASS: "35",
    Status.SKIP: "36",
}
# SKIPs that say nothing of the testcase but that the run stopped before it:
# one line for them all (a -x on 10,000 testcases is not 9,999 lines).
NOT_RUN = (Reason.MAX_FAILURES, Reason.INTERRUPTED)
NOT_RUN_PREFIX = "not run: "  # those stopped while running say so apart
# Lines of output shown under a failure that has no diff.
TAIL_LINES = 30
# How many failures get their details printed at the end.
DETAILS_MAX = 50
# Sub-results named under their testcase's line, and detailed at the end.
SUBRESULTS_SHOWN = 10
SUB_TAIL_LINES = 15


def counted(testcases: int, noun: str = "testcase", setups: int = 0) -> str:
    """``1 testcase``, ``2 set-ups``, ``20 testcases, 2 set-ups``."""
    text = f"{testcases} {noun}{'' if testcases == 1 else 's'}"
    if setups:
        text += f", {setups} set-up{'' if setups == 1 else 's'}"
    return text


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


class TextReport:
    def __init__(self, stream: TextIO | None = None, verbose: bool = False, quiet: bool = False):
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.verbose = verbose
        self.quiet = quiet
        self.before_write: Callable[[], None] | None = None  # e.g. clear a live status line first
        self.colour = use_colour(self.stream)
        self.notable: list[Result] = []
        self.cached = 0
        self.setup_counts: dict[str, int] = {}  # status -> set-ups
        # Message -> [testcases, set-ups] not run for it (NOT_RUN).
        self.not_run: dict[str, list[int]] = {}
        self.sub_counts: dict[str, int] = {}  # status -> sub-results of every testcase
        self.quarantined: list[str] = []  # failing testcases whose failures do not count

    def paint(self, status: Status, text: str) -> str:
        return f"\033[{COLOURS[status]}m{text}\033[0m" if self.colour else text

    def result(self, result: Result, sub_counts: dict[str, int] | None = None) -> None:
        """``sub_counts``: the result's sub-results by status, where
        ``result.subresults`` holds only the notable ones (from an index)."""
        self.cached += bool(result.cached)
        if result.quarantined and result.status.is_failure:
            self.quarantined.append(result.name)
        for status, count in (sub_counts if sub_counts is not None else counts(result.subresults)).items():
            self.sub_counts[status] = self.sub_counts.get(status, 0) + count
        is_setup = result.name.startswith(SETUP_PREFIX)
        if is_setup:
            self.setup_counts[result.status.value] = self.setup_counts.get(result.status.value, 0) + 1
        if result.status is Status.SKIP and result.reason in NOT_RUN and result.message.startswith(NOT_RUN_PREFIX):
            self.not_run.setdefault(result.message.removeprefix(NOT_RUN_PREFIX), [0, 0])[is_setup] += 1
            return
        flaky = result.status is Status.PASS and result.attempts > 1
        # A passing testcase whose known failure passed: its xfail list is stale.
        unexpected = any(sub.status is Status.XPASS for sub in result.subresults)
        if result.status is Status.PASS and not self.verbose and not flaky and not unexpected:
            return
        if result.status in (Status.FAIL, Status.ERROR, Status.XPASS):
            self.notable.append(result)
        if self.quiet:
            return
        if self.before_write is not None:
            self.before_write()
        reason = f" [{result.reason.value}]" if result.reason else ""
        first = result.message.split("\n", 1)[0]
        line = f"{self.paint(result.status, f'{result.status.value:<5}')} {result.name}{reason}"
        if first:
            line += f": {first}"
        if result.quarantined and result.status.is_failure:
            line += f" (quarantined, not counted: {result.quarantined})"
        self.stream.write(line + "\n")
        if result.status is not Status.PASS or unexpected:
            self.stream.write(self._notable_subresults(result))
        self.stream.flush()

    def _notable_subresults(self, result: Result) -> str:
        """The sub-results that failed or passed unexpectedly, one line each,
        under their testcase."""
        notable = [sub for sub in result.subresults if sub.status in NOTABLE]
        lines = []
        for sub in notable[:SUBRESULTS_SHOWN]:
            reason = f" [{sub.reason.value}]" if sub.reason else ""
            message = one_line(sub.message.split("\n", 1)[0])
            lines.append(f"      {self.paint(sub.status, f'{sub.status.value:<5}')} {one_line(sub.name)}{reason}")
            if message:
                lines[-1] += f": {message}"
        if len(notable) > SUBRESULTS_SHOWN:
            lines.append(f"      ... and {len(notable) - SUBRESULTS_SHOWN} more")
        return "".join(line + "\n" for line in lines)

    def summary(self, counts: dict[str, int], wall: float, output_dir: str, changes: str | None = None) -> None:
        """The testcases not run, details of failures, the counts, and
        ``changes``: what changed since each testcase's latest earlier
        verdict."""
        write = self.stream.write
        self.write_not_run()
        shown_tracebacks: dict[str, str] = {}
        for result in [] if self.quiet else self.notable[:DETAILS_MAX]:
            write("\n" + self.paint(result.status, f"---- {result.status.value} {result.name}") + "\n")
            if result.message:
                write(result.message.rstrip("\n") + "\n")
            if result.commands:
                for command in result.commands:
                    cmd = command.cmd if isinstance(command.cmd, str) else " ".join(command.cmd)
                    ended = describe_exit(command.exit_code, command.timed_out, command.timeout)
                    write(f"  $ {cmd}    # {ended}\n")
            shown = [sub for sub in result.subresults if sub.status in NOTABLE and sub.output][:SUBRESULTS_SHOWN]
            for sub in shown:  # each failing test's own output says more than the log's tail
                write(
                    f"  -- {sub.status.value} {one_line(sub.name)}"
                    + (f": {one_line(sub.message.splitlines()[0])}" if sub.message else "")
                    + "\n"
                )
                for line in sub.output.rstrip("\n").split("\n")[-SUB_TAIL_LINES:]:
                    write(f"  | {line}\n")
            if shown:
                continue
            if result.diff:
                write(self._diff(result.diff))
            elif result.traceback:
                # The same traceback for many testcases (a driver that cannot
                # be imported): printed once, then named.
                first = shown_tracebacks.setdefault(result.traceback, result.name)
                write(result.traceback if first == result.name else f"  (the same traceback as {first})\n")
            elif result.output:
                lines = result.output.rstrip("\n").split("\n")
                if len(lines) > TAIL_LINES:
                    write(f"  [... {len(lines) - TAIL_LINES} earlier lines; full output in the result file ...]\n")
                for line in lines[-TAIL_LINES:]:
                    write(f"  | {line}\n")
        if len(self.notable) > DETAILS_MAX and not self.quiet:
            write(f"\n[{len(self.notable) - DETAILS_MAX} more failures: see {output_dir}]\n")
        write("\n" + self.counts_line(counts, self.setup_counts, wall, self.cached) + "\n")
        if self.sub_counts:
            write(describe_counts(self.sub_counts) + "\n")
        if self.quarantined:
            write(self.quarantine_line() + "\n")
        if changes:
            write(changes + "\n")
        write(f"report index: {os.path.join(output_dir, 'new', '_index.json')}\n")
        self.stream.flush()

    def quarantine_line(self) -> str:
        """``2 failures quarantined, not counted in the exit status: a, b``."""
        count = len(self.quarantined)
        named = ", ".join(self.quarantined[:5]) + (f" and {count - 5} more" if count > 5 else "")
        return f"{count} failure{'s' if count != 1 else ''} quarantined, not counted in the exit status: {named}"

    def write_not_run(self) -> None:
        """One line per reason the run stopped before testcases (NOT_RUN)."""
        if self.quiet:
            return
        for why, (testcases, setups) in self.not_run.items():
            what = counted(testcases, "testcase", setups)
            self.stream.write(f"{self.paint(Status.SKIP, 'SKIP ')} {what} not run: {why}\n")
        self.not_run.clear()

    def counts_line(self, counts: dict[str, int], setups: dict[str, int], wall: float, cached: int = 0) -> str:
        """``20 testcases: 19 passed, 1 failed; 2 set-ups passed in 0.61 s``:
        ``counts`` of every result, ``setups`` of the set-ups among them."""
        testcases = {status: count - setups.get(status, 0) for status, count in counts.items()}
        parts = []
        for status in Status:
            count = testcases.get(status.value, 0)
            if count or status in (Status.PASS, Status.FAIL):
                parts.append(self._count(status, count))
        from_cache = f" ({cached} from cache)" if cached else ""
        line = f"{counted(sum(testcases.values()))}: {', '.join(parts)}"
        if sum(setups.values()):
            shown = [self._count(status, setups[status.value]) for status in Status if setups.get(status.value)]
            line += f"; {counted(sum(setups.values()), 'set-up')}: {', '.join(shown)}"
        return f"{line}{from_cache} in {wall:.2f} s"

    def _count(self, status: Status, count: int) -> str:
        text = f"{count} {WORDS[status]}{plural_s(status, count)}"
        return self.paint(status, text) if count else text

    def _diff(self, diff: str) -> str:
        if not self.colour:
            return diff
        painted = []
        for line in diff.splitlines(keepends=True):
            if line.startswith("+") and not line.startswith("+++"):
                painted.append(f"\033[32m{line.rstrip(chr(10))}\033[0m\n")
            elif line.startswith("-") and not line.startswith("---"):
                painted.append(f"\033[31m{line.rstrip(chr(10))}\033[0m\n")
            else:
                painted.append(line)
        return "".join(painted)
