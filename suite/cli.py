"""``run-testsuite``: the command line front door."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from suite import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run-testsuite",
        description="Run a declarative testsuite: every directory holding a test.yaml is a testcase.",
    )
    p.add_argument("root", help="the suite directory (holding testcases and an optional suite.yaml)")
    p.add_argument("names", nargs="*", help="run only testcases whose name starts with, or matches the glob of, one of these")
    p.add_argument("-j", "--jobs", type=_positive_int, default=os.cpu_count() or 1, help="slots: fragments run in parallel (default: the number of CPUs)")
    p.add_argument("-o", "--output-dir", default="out", help="where the report index, results and logs go (default: out)")
    p.add_argument("--work-dir", help="where testcases run (default: OUTPUT/new/work)")
    p.add_argument("-t", "--timeout", type=_positive_float, help="default timeout in seconds for each command (default: 300)")
    p.add_argument("--no-multiprocessing", action="store_true", help="run fragments one at a time in this process, so a debugger can follow them")
    p.add_argument("--list", action="store_true", help="print the selected testcases and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="print every result, passing ones too")
    p.add_argument("--version", action="version", version=f"run-testsuite {__version__}")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


class Terminated(Exception):
    """SIGTERM, handled like Ctrl-C but with its own exit status."""


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader of our output went away (`| head`): finish quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Intermixed: names may follow options (`ROOT -j 4 NAME`).
    args = parser().parse_intermixed_args(argv)
    from suite.loader import UsageError, build_plan

    output_dir = os.path.abspath(args.output_dir)
    work_dir = os.path.abspath(args.work_dir) if args.work_dir else os.path.join(output_dir, "new", "work")
    try:
        plan = build_plan(args.root, args.names, output_dir, work_dir, args.timeout)
    except UsageError as exc:
        print(f"run-testsuite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        for planned in plan.testcases:
            extra = f"  [{planned.driver}]" if planned.driver else ""
            if planned.depends:
                extra += f"  depends: {', '.join(planned.depends)}"
            if planned.result is not None:
                extra += f"  ({planned.result.status.value}: {planned.result.message.splitlines()[0]})"
            print(f"{planned.name}{extra}")
        return EXIT_OK
    return run(plan, args, argv, output_dir, work_dir)


def run(plan, args, argv: list[str], output_dir: str, work_dir: str) -> int:
    from suite.index import ReportIndex, finish_rotation, rotate, run_metadata
    from suite.reports.text import TextReport
    from suite.scheduler import MultiprocessScheduler
    from suite.workers import InlineWorker, ProcessWorker

    began = time.monotonic()
    new_dir = rotate(output_dir)
    if plan.spec_cache is not None:
        plan.spec_cache.save()
    os.makedirs(work_dir, exist_ok=True)
    index = ReportIndex(new_dir, run_metadata(["run-testsuite", *argv], args.root, plan.suite.name, args.jobs))
    text = TextReport(verbose=args.verbose)
    safe_names = {planned.name: planned.safe_name for planned in plan.testcases}

    def on_result(result) -> None:
        index.add(result, safe_names[result.name])
        text.result(result)

    worker = InlineWorker if args.no_multiprocessing else ProcessWorker
    scheduler = MultiprocessScheduler(plan, args.jobs, on_result, worker)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        scheduler.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    final = index.finish(interrupted=scheduler.interrupted)
    text.summary(final["counts"], time.monotonic() - began, output_dir)
    finish_rotation()
    if scheduler.interrupted:
        return 128 + (_signal_received or signal.SIGINT)
    failed = final["counts"]["FAIL"] + final["counts"]["ERROR"]
    return EXIT_FAILED if failed else EXIT_OK


_signal_received = 0


def _raise_interrupt(signum, frame) -> None:
    global _signal_received
    _signal_received = signum
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
