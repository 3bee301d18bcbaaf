"""Where each result goes the moment it is decided: the report index
(result files and ``_index.json``), the terminal, live progress
(``status.json`` and the status line), ``--tee`` and the HTML report.

The scheduler knows only this object; what each report does with a result
is the report's own business.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from run_testsuite.index import ReportIndex
from run_testsuite.jsonio import dumps
from run_testsuite.reports.progress import Progress, StatusLine
from run_testsuite.reports.tee import Tee
from run_testsuite.reports.text import TextReport
from run_testsuite.results import Result, Verdict

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType
    from typing import TextIO

    from run_testsuite.cleanup import WorkCleaner
    from run_testsuite.history_view import Strips
    from run_testsuite.jsonio import Index, IndexEntry, Previous
    from run_testsuite.scheduler.dispatch import MultiprocessScheduler


class Reporters:
    """The reports fed while the run goes on."""

    def __init__(
        self,
        index: ReportIndex,
        text: TextReport,
        progress: Progress,
        safe_names: dict[str, str],
        line: StatusLine | None = None,
        tee: Tee | None = None,
        cleaner: WorkCleaner | None = None,
        previous: dict[str, Previous] | None = None,
    ):
        self.index = index
        self.text = text
        self.progress = progress
        self.safe_names = safe_names
        self.line = line
        self.tee = tee
        self.cleaner = cleaner  # --cleanup: passing testcases' work directories go
        self.previous = previous or {}  # each testcase's latest earlier verdict
        self.results: list[Verdict] = []
        if line is not None:
            text.before_write = line.clear

    def result(self, result: Result) -> None:
        """A testcase was decided."""
        self.index.add(result, self.safe_names[result.name], self.previous.get(result.name))
        self.progress.result(result)
        if self.tee is not None:
            self.tee.flush(result.name)
        self.text.result(result)
        if self.cleaner is not None:
            self.cleaner.result(result)
        self.results.append(result.slim())

    def output(self, testcase: str, data: bytes) -> None:
        """A running testcase printed (--tee)."""
        if self.tee is not None:
            self.tee.feed(testcase, data)

    def scheduler_state(self, scheduler: MultiprocessScheduler) -> None:
        """After each wake-up of the scheduler: live progress, throttled."""
        if self.progress.update(scheduler) and self.line is not None:
            self.line.draw(self.progress)

    def finish_live(self) -> None:
        """The run is over: the status line goes, status.json says so."""
        if self.line is not None:
            self.line.clear()
        self.progress.write(complete=True)


DETAILS_SPOOL = ".html-details.jsonl"


class DetailsSpool:
    """Each result's details for the HTML report, made as its file is
    written and kept as a line of JSON in a file beside the index, in the
    order of the index; read back in that order as the page is written.
    Kept in memory, even as text, they took 100,000 results 40 MB at the
    end of the run. A line that cannot be made or written (a full disk) is
    only missing: the page then reads that result's file."""

    def __init__(self, path: str):
        self.path = path
        self.handle: TextIO | None = None
        self.broken = False

    def add(self, rel: str, details: dict) -> None:
        if self.broken:
            return
        try:
            line = dumps([rel, details]) + "\n"
        except ValueError:  # this one result's details: its line is missing
            return
        try:
            if self.handle is None:
                # Output that was not UTF-8 holds lone surrogates: written as
                # the result files write them (\udcXX), read back the same.
                self.handle = open(self.path, "w", encoding="utf-8", errors="backslashreplace")
            self.handle.write(line)
        except OSError:  # a full disk: what was written is kept, the rest read from the files
            self.broken = True

    def in_order(self) -> SpooledDetails:
        """The details, for results asked for in the order they were added
        (a line torn by a full disk ends them: the rest are read from the
        result files)."""
        self._close()
        return SpooledDetails(self.path)

    def _close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                pass
            self.handle = None

    def remove(self) -> None:
        self._close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class SpooledDetails:
    """``get(rel)`` of a ``DetailsSpool``'s lines, asked in their order; a
    result whose line is missing gets None, and the next one its own."""

    def __init__(self, path: str | None):
        self.handle: TextIO | None = None
        if path is not None:
            try:
                self.handle = open(path, encoding="utf-8")
            except OSError:
                pass
        self.pending: list | None = None

    def get(self, rel: str, default: dict | None = None) -> dict | None:
        if self.pending is None and self.handle is not None:
            try:
                line = self.handle.readline()
                self.pending = json.loads(line) if line else None
            except (OSError, ValueError):  # a torn last line: the rest from the files
                self.pending = None
            if self.pending is None:
                self.handle.close()
                self.handle = None
        if self.pending is not None and self.pending[0] == rel:
            found, self.pending = self.pending[1], None
            return found
        return default


class HtmlReport:
    """OUTPUT/new/report.html, which every run leaves: prepared while the
    tests run (its module and Jinja2 imported, the template compiled, each
    result's details taken as its file is written), so that writing it at
    the end costs little, and nothing of it delays the first fragments. A
    report that cannot be made is a warning, never a lost run."""

    def __init__(self, new_dir: str, old_dir: str):
        self.new_dir = new_dir
        self.old_dir = old_dir
        self.details = DetailsSpool(os.path.join(new_dir, DETAILS_SPOOL))
        self.preparing: threading.Thread | None = None
        self.loading = threading.Lock()
        self.loaded = False
        self.module: ModuleType | None = None
        self.problem: Exception | None = None
        self.history: Strips | None = None  # the runs before, read while the tests run

    def _load(self) -> ModuleType | None:
        """The report's module, imported by whichever thread needs it first."""
        with self.loading:
            if not self.loaded:
                self.loaded = True
                try:
                    from run_testsuite.reports import html

                    self.module = html
                except Exception as exc:
                    self.problem = exc
        return self.module

    def result_written(self, rel: str, data: dict) -> None:
        """Called by the index's writer thread as each result file is written."""
        module = self._load()
        if module is not None:
            self.details.add(rel, module.details(data))

    def prepare_in_background(self) -> None:
        self.preparing = threading.Thread(target=self._prepare, name="html-prepare", daemon=True)
        self.preparing.start()

    def _prepare(self) -> None:
        try:
            module = self._load()
            if module is not None:
                module.prepare()
                from run_testsuite.history_view import strips

                # Before this run records itself: what the strips show is the runs before it.
                self.history = strips(os.path.dirname(self.new_dir), module.STRIP_RUNS)
        except Exception:  # write() will meet the problem again, and say it
            pass

    def write(self, index: Index | None = None, earlier: dict[str, IndexEntry] | None = None) -> None:
        """``index``: the run's final index, as written (else it is read);
        ``earlier``: the old run, as ``compare.read_earlier`` read it (else
        it is read)."""
        if self.preparing is not None:
            self.preparing.join()
        try:
            module = self._load()
            if module is None:
                raise self.problem or ImportError("run_testsuite.reports.html")
            module.write_html(
                self.new_dir,
                os.path.join(self.new_dir, "report.html"),
                self.old_dir,
                self.details.in_order(),
                self.history,
                index=index,
                earlier=earlier,
            )
        except Exception as exc:
            print(f"run-testsuite: warning: could not write the HTML report: {exc}", file=sys.stderr)
        finally:
            self.details.remove()

    def discard(self) -> None:
        """The run ended without its report (an error): its spool goes."""
        self.details.remove()
