"""One run's life, from a Plan to an exit status.

Rotate the output directory, build the reporters, run the scheduler,
finish the index, write the reports, record history, rewrite baselines.
The command line (``cli``) only turns arguments into ``RunOptions`` and
the outcome into an exit status.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from run_testsuite.cleanup import WorkCleaner
from run_testsuite.history import (
    HISTORY_FILE,
    History,
    HistoryView,
    KeyRecord,
    finish_pruning,
    start_pruning,
    stop_pruning,
)
from run_testsuite.index import ReportIndex, describe_error, finish_rotation, rotate, run_metadata
from run_testsuite.jsonio import INDEX_FILE
from run_testsuite.outputs import mark_work_dir
from run_testsuite.plan import Plan
from run_testsuite.processes import INTERRUPTS
from run_testsuite.reporters import HtmlReport, Reporters
from run_testsuite.reports.progress import Progress, StatusLine, expected_durations, live_display_wanted
from run_testsuite.reports.tee import Tee
from run_testsuite.reports.text import TextReport
from run_testsuite.results import Reason, Status, Verdict
from run_testsuite.scheduler.dispatch import MultiprocessScheduler
from run_testsuite.scheduler.verdicts import Policy
from run_testsuite.workdir import remove_spares
from run_testsuite.workers.base import Worker

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from types import FrameType

    from run_testsuite.jsonio import Index, IndexEntry, Previous

EXIT_OK, EXIT_FAILED = 0, 1
# Some result or index file could not be written (a full disk, say): the
# verdicts were reported, but the record of the run is not whole.
EXIT_UNRECORDED = 3


class RunOptions:
    """What the command line asks of a run, once the plan is made.

    A plain class, not a dataclass: generating a dataclass of 14 fields
    cost 1 ms of every run's start on the 2-core machine of bench/.
    """

    def __init__(
        self,
        root: str,
        output_dir: str,
        work_dir: str,
        jobs: int,
        command_line: list[str] | None = None,
        verbose: bool = False,
        quiet: bool = False,
        tee: bool = False,
        html: bool = True,
        junit_xml: str | None = None,
        rewrite: bool = False,
        max_failures: int = 0,
        fail_fast: bool = False,
        slot_cpus: dict[int, list[int]] | None = None,
        cleanup: str = "passed",
        partial: bool = False,
        history_keep: int = 200,
        shard: tuple[int, int, bool] | None = None,
    ):
        self.root = root
        self.output_dir = output_dir
        self.work_dir = work_dir
        self.jobs = jobs
        self.command_line = command_line or []
        self.verbose = verbose
        self.quiet = quiet
        self.tee = tee
        self.html = html
        self.junit_xml = junit_xml
        self.rewrite = rewrite
        self.max_failures = max_failures
        self.fail_fast = fail_fast
        self.slot_cpus = slot_cpus or {}
        self.cleanup = cleanup
        self.partial = partial
        self.history_keep = history_keep
        # --shard K/N, and whether the selection was narrowed besides it
        # (names, -k, --tag...): a merge of every shard is then partial too.
        self.shard = shard


class RunSession:
    """Runs a plan once and reports it; ``run()`` returns the exit status."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        history: HistoryView | None,
        worker_class: type[Worker],
        earlier: dict[str, IndexEntry] | None = None,
    ):
        """``earlier``: the run that will be OUTPUT/old, as
        ``compare.read_earlier_of`` read it before planning."""
        self.plan = plan
        self.options = options
        self.history = history
        self.worker_class = worker_class
        self.earlier = earlier

    def run(self) -> int:
        options, plan = self.options, self.plan
        began = time.monotonic()
        new_dir = rotate(options.output_dir)
        # Each cache is let go as soon as it is saved: the memory it held
        # takes the next one's text (the main process is at its largest here).
        if plan.spec_cache is not None:
            plan.spec_cache.save()
            plan.spec_cache = None
        if plan.file_hashes is not None:
            plan.file_hashes.save()
        plan.let_go()
        os.makedirs(options.work_dir, exist_ok=True)
        mark_work_dir(options.work_dir)
        html = HtmlReport(new_dir, os.path.join(options.output_dir, "old")) if options.html else None
        reporters = self._reporters(new_dir, html)
        cleaner = reporters.cleaner
        scheduler = self._scheduler(new_dir, reporters, html)
        interrupts = Interrupts(scheduler)
        index = reporters.index
        try:
            with interrupts:
                scheduler.run()
                # Still under the handler: a Ctrl-C now must not cut the index short.
                final = index.finish(interrupted=lambda: scheduler.interrupted)
            reporters.finish_live()
            lost = list(index.errors)
            if options.junit_xml:
                from run_testsuite.reports.junit import write_junit

                try:
                    write_junit(final, new_dir, os.path.abspath(options.junit_xml))
                except OSError as exc:  # checked at the start; gone since (a test removed it?)
                    lost.append(f"{options.junit_xml} (--junit-xml): {describe_error(exc)}")
            if html is not None:
                html.write(final, self.earlier)
            self._record_history(index.started, scheduler, reporters.results, final["counts"])
        finally:
            if html is not None:  # its spool, were the report not written
                html.discard()
            scheduler.close()
            remove_spares(options.work_dir)  # of workers that died
            if cleaner is not None:
                cleaner.finish()
        try:
            if options.history_keep:  # after the sweep of the run's leftover processes, which would take it
                start_pruning(os.path.join(options.output_dir, HISTORY_FILE), options.history_keep)
            reporters.text.summary(
                final["counts"], time.monotonic() - began, options.output_dir, self._changes(final, self.earlier)
            )
            if options.rewrite:
                rewrite_baselines(plan, reporters.results)
            finish_rotation()
        except BaseException:  # a Ctrl-C now: the prune stops with the run, nothing outlives it
            stop_pruning()
            raise
        finish_pruning()
        if lost:
            _say_unrecorded(lost, options.output_dir)
        if scheduler.interrupted:
            return 128 + (interrupts.signum or signal.SIGINT)
        if lost:
            return EXIT_UNRECORDED
        failed = sum(1 for r in reporters.results if r.status.is_failure and not r.quarantined)
        return EXIT_FAILED if failed else EXIT_OK

    def _changes(self, final: Index, earlier: dict[str, IndexEntry] | None) -> str | None:
        """The terminal's line of changes since each testcase's latest
        earlier verdict in history, and of the sub-results broken since
        the run before (OUTPUT/old, ``earlier`` as ``read_earlier`` reads it)."""
        if not self.history or not self.history.verdicts:  # a first run
            return None
        from run_testsuite.reports.compare import changes_line, compare, sub_regressions_since

        comparison = compare({}, final)
        output_dir = self.options.output_dir
        if earlier is not None:
            comparison.sub_regressions = sub_regressions_since(
                os.path.join(output_dir, "old"), os.path.join(output_dir, "new"), final, earlier
            )
        return changes_line(comparison)

    def _reporters(self, new_dir: str, html: HtmlReport | None) -> Reporters:
        options, plan, history = self.options, self.plan, self.history
        index = ReportIndex(
            new_dir,
            run_metadata(
                options.command_line, options.root, plan.suite.name, options.jobs, options.partial, options.shard
            ),
            on_written=html.result_written if html else None,
        )
        names = [planned.name for planned in plan.testcases]
        durations = history.durations if history else {}
        progress = Progress(
            len(names),
            new_dir,
            expected_durations(
                names,
                durations,
                os.path.join(options.output_dir, "old"),
                {(fragment.testcase, fragment.name) for fragment in plan.fragments},
            ),
            options.jobs,
        )
        line = StatusLine(sys.stdout) if live_display_wanted(sys.stdout) and not options.quiet else None
        tee = Tee(sys.stdout, before_write=line.clear if line else None) if options.tee else None
        return Reporters(
            index,
            TextReport(verbose=options.verbose, quiet=options.quiet),
            progress,
            {planned.name: planned.safe_name for planned in plan.testcases},
            line,
            tee,
            self._cleaner(),
            _previous_verdicts(history),
        )

    def _cleaner(self) -> WorkCleaner | None:
        if self.options.cleanup == "none":
            return None
        plan = self.plan
        work_dirs: dict[str, list[str]] = {}
        for number, fragment in enumerate(plan.fragments):
            dirs = work_dirs.setdefault(plan.testcases[plan.owner[number]].name, [])
            if fragment.work_dir not in dirs:
                dirs.append(fragment.work_dir)
        setups = {planned.name for planned in plan.testcases if planned.kind == "setup"}
        return WorkCleaner(self.options.cleanup, work_dirs, setups)

    def _scheduler(self, new_dir: str, reporters: Reporters, html: HtmlReport | None) -> MultiprocessScheduler:
        options, history = self.options, self.history
        return MultiprocessScheduler(
            self.plan,
            options.jobs,
            reporters.result,
            self.worker_class,
            on_output=reporters.output if options.tee else None,
            on_progress=reporters.scheduler_state,
            stderr_dir=new_dir,
            policy=Policy(
                max_failures=1 if options.fail_fast else options.max_failures,
                fail_fast=options.fail_fast,
                durations=history.durations if history else {},
                failed_last_time=history.failed if history else set(),
            ),
            slot_cpus=options.slot_cpus,
            on_started=html.prepare_in_background if html else None,
            defer_close=True,  # workers wind down while the reports are written
            discards=reporters.cleaner.take if reporters.cleaner is not None else None,
            spend_plan=True,
            has_room=reporters.index.has_room,
        )

    def _record_history(
        self, start: float, scheduler: MultiprocessScheduler, results: list[Verdict], counts: dict[str, int]
    ) -> None:
        keys = {planned.name: planned.key for planned in self.plan.testcases}
        try:
            history = History(os.path.join(self.options.output_dir, HISTORY_FILE))
            try:
                history.record(
                    start,
                    self.options.command_line,
                    results,
                    keys,
                    scheduler.fragment_outcomes(),
                    counts,
                    key_record(self.plan),
                )
            finally:
                history.close()
        except Exception as exc:  # history is a help, never a reason to fail a run
            print(f"run-testsuite: warning: could not record history: {exc}", file=sys.stderr)


def _previous_verdicts(history: HistoryView | None) -> dict[str, Previous]:
    """Each testcase's latest earlier verdict, for its index entry. Most
    are alike (PASS in the last run): one dict stands for all that are,
    where one each cost 100,000 testcases 25 MB."""
    shared: dict[tuple[str, str | None, int], Previous] = {}
    found: dict[str, Previous] = {}
    for name, verdict in history.verdicts.items() if history else ():
        same = shared.get(verdict)
        if same is None:
            status, reason, run = verdict
            same = shared[verdict] = {"status": status, "reason": reason, "run": run}
        found[name] = same
    return found


def key_record(plan: Plan) -> KeyRecord | None:
    """What history keeps of the plan's keys, for a later --explain."""
    maker = plan.keys
    if maker is None:
        return None
    by_name = {planned.name: planned for planned in plan.testcases}

    def parts(name: str) -> str | None:
        planned = by_name.get(name)
        return maker.parts_of(planned) if planned else None

    return KeyRecord(parts, maker.shared_digest(), lambda: json.dumps(maker.shared_manifest(), sort_keys=True))


def _say_unrecorded(errors: list[str], output_dir: str) -> None:
    """What of the run's record could not be written, on stderr: the index
    first, and how to make it, for without it the index on disk is the
    empty one the run began with."""
    index_lost = [error for error in errors if INDEX_FILE in error]
    errors = index_lost + [error for error in errors if INDEX_FILE not in error]
    shown = errors[:20]
    more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
    listed = "the index is NOT written" if index_lost else "the index lists those it could"
    print(
        f"run-testsuite: error: {len(errors)} file{'s' if len(errors) != 1 else ''} of the run's record "
        f"could not be written (the verdicts above stand; {listed}):\n  " + "\n  ".join(shown) + more,
        file=sys.stderr,
    )
    if index_lost:
        print(
            f"run-testsuite: once there is room, `run-testsuite report {output_dir} --rebuild` makes the index "
            "from the result files that were written",
            file=sys.stderr,
        )


def rewrite_baselines(plan: Plan, results: list[Verdict]) -> None:
    """--rewrite: each testcase that FAILed on its output asks its driver
    to make that output the expected one; the files changed are listed."""
    from run_testsuite.drivers.registry import load_reference

    owner = {planned.name: planned for planned in plan.testcases}
    changed = []
    for result in results:
        if result.status is not Status.FAIL or result.reason is not Reason.DIFF:
            continue
        planned = owner.get(result.name)
        if not planned or not planned.fragments:
            continue
        last = plan.fragments[planned.fragments[-1]]
        try:
            path = load_reference(last.driver, last.driver_path)().rewrite(last)
        except Exception as exc:  # a driver's bug: said, and the other baselines are still rewritten
            print(
                f"run-testsuite: warning: --rewrite: {result.name}: {last.driver} raised {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            continue
        if path:
            changed.append(path)
    for path in changed:
        print(f"rewrote {os.path.relpath(path)}")
    print(f"--rewrite: {len(changed)} baseline{'s' if len(changed) != 1 else ''} changed")


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal or ssh session closed)
    during a run.

    The first stops the run gracefully: nothing new starts, running
    fragments get SIGTERM then SIGKILL after a grace period, and every
    result is reported (exit 130, 143 for SIGTERM, 129 for SIGHUP). A second one kills
    everything at once; what had finished is still reported.
    """

    def __init__(self, scheduler: MultiprocessScheduler):
        self.scheduler = scheduler
        self.signum = 0
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        for signum in INTERRUPTS:
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # under nohup: a hang-up is not to stop the run
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.signum:
            self.signum = signum
            if self.scheduler.interrupt_requested():
                raise KeyboardInterrupt
            return
        print("\nrun-testsuite: second interrupt: killing everything now", file=sys.stderr)
        self.scheduler.kill_now()
