"""``run-testsuite``: the command line front door.

It turns arguments into a plan and ``RunOptions``, hands them to a
``RunSession`` (``session``), and the outcome into an exit status. The
subcommands (``report``, ``validate``, ``new``) are modules of their own.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from run_testsuite import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run-testsuite",
        description="Run a declarative testsuite: every directory holding a test.yaml is a testcase.",
    )
    p.add_argument("root", help="the suite directory (holding testcases and an optional suite.yaml)")
    p.add_argument(
        "names", nargs="*", help="run only testcases whose name starts with, or matches the glob of, one of these"
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        help="slots: fragments run in parallel (default: the number of CPUs; with --dask, twice the cluster's worker threads)",
    )
    p.add_argument(
        "-o", "--output-dir", default="out", help="where the report index, results and logs go (default: out)"
    )
    p.add_argument("--work-dir", help="where testcases run (default: OUTPUT/new/work)")
    p.add_argument(
        "-t", "--timeout", type=_positive_float, help="default timeout in seconds for each command (default: 300)"
    )
    p.add_argument(
        "--no-multiprocessing",
        action="store_true",
        help="run fragments one at a time in this process, so a debugger can follow them",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run fragments on a Dask cluster: its scheduler's address (tcp://host:8786), or local:N to start N local worker processes; needs a file system shared at the same paths, and pip install 'run-testsuite[dask]'",
    )
    p.add_argument("--list", action="store_true", help="print the selected testcases and exit")
    p.add_argument(
        "--list-json",
        metavar="FILE",
        help="write the selection as JSON (name, driver, tags, dependencies, set-ups, status if decided) and exit; '-' for stdout",
    )
    p.add_argument(
        "-k",
        dest="keyword",
        metavar="EXPR",
        help="select by name and tag: words match name substrings or tags, with and/or/not and parentheses",
    )
    p.add_argument(
        "--tag", action="append", metavar="TAG", help="select testcases with this tag (repeatable: any of them)"
    )
    p.add_argument(
        "-D",
        dest="define",
        action="append",
        type=_definition,
        metavar="NAME=VALUE",
        help="set a suite parameter declared in suite.yaml 'params'",
    )
    p.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run the selection N times, results named NAME#1..NAME#N (hunting flaky tests)",
    )
    p.add_argument(
        "--max-failures",
        type=_positive_int,
        metavar="N",
        help="start nothing new once N testcases FAILed or ERRORed; the rest are SKIP",
    )
    p.add_argument("-x", "--fail-fast", action="store_true", help="stop at the first failure, running fragments too")
    p.add_argument(
        "--failed", action="store_true", help="run only what did not pass last time (and what it depends on)"
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="do not run testcases whose key (spec, files, dependencies) passed before; report them as passed from cache",
    )
    p.add_argument(
        "--cpus-per-slot",
        type=_positive_int,
        metavar="K",
        help="pin each slot, its worker and commands, to its own K CPUs (SLOT_CPUS)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every result, passing ones too")
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="write the actual output into the baseline of every diff testcase that FAILed on its output (never an XFAIL), and say which files changed",
    )
    p.add_argument("--no-html", action="store_true", help="do not write OUTPUT/new/report.html")
    p.add_argument("--junit-xml", metavar="FILE", help="also write the results as JUnit XML, for CI test reporters")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    p.add_argument(
        "--tee",
        action="store_true",
        help="show the output of running fragments live, each line prefixed with [testcase]",
    )
    p.add_argument("--version", action="version", version=f"run-testsuite {__version__}")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _definition(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def entry() -> None:
    """The ``run-testsuite`` command: ``main``, then a quick exit."""
    exit_quickly(main())


def exit_quickly(code: int) -> None:
    """Exit without tearing the interpreter down. Freeing every module and
    object took 15-20 ms at the end of each run, for nothing: by now files
    are closed and workers gone. Exit handlers still run, and the standard
    streams are flushed. Where more may be under way (threads that are not
    daemons, a Dask client), the usual exit waits for it."""
    import atexit
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if others or "distributed" in sys.modules or not isinstance(code, int):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away, or it is closed
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before the run started: nothing to report
        print("run-testsuite: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader of our output went away (`| head`): finish quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


# Subcommands, each a module with main(argv) -> int. A suite directory of the
# same name can still be run as `run-testsuite ./report`.
SUBCOMMANDS = {
    "report": "run_testsuite.report_cmd",
    "validate": "run_testsuite.validate_cmd",
    "new": "run_testsuite.new_cmd",
}


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    # Intermixed: names may follow options (`ROOT -j 4 NAME`).
    p = parser()
    args = p.parse_intermixed_args(argv)
    cluster = None
    if args.dask:
        if args.no_multiprocessing:
            p.error("--dask and --no-multiprocessing exclude each other")
        if args.cpus_per_slot:
            p.error("--cpus-per-slot pins this host's CPUs; it does not apply with --dask")
        from run_testsuite.workers.dask_cluster import DaskCluster, DaskError

        try:  # is Dask installed, is the address well formed; no connection yet
            cluster = DaskCluster(args.dask)
        except DaskError as exc:
            print(f"run-testsuite: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    elif args.jobs is None:
        args.jobs = os.cpu_count() or 1
    from run_testsuite.loader import build_plan
    from run_testsuite.plan import UsageError
    from run_testsuite.selection import Selection

    output_dir = os.path.abspath(args.output_dir)
    work_dir = os.path.abspath(args.work_dir) if args.work_dir else os.path.join(output_dir, "new", "work")
    history = _read_history(output_dir)
    selection = Selection(
        keyword=args.keyword,
        tags=args.tag or [],
        failed_only=args.failed,
        incremental=args.incremental,
        repeat=args.repeat,
        params=dict(args.define or []),
    )
    try:
        plan = build_plan(args.root, args.names, output_dir, work_dir, args.timeout, history, selection)
        slot_cpus = {} if cluster is not None else _slot_cpus(args, plan.suite.cpus_per_slot)
    except UsageError as exc:
        print(f"run-testsuite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.list_json:
        _write_list_json(plan, args.list_json)
    if args.list:
        for planned in plan.testcases:
            extra = f"  [{planned.driver}]" if planned.driver else ""
            if planned.depends:
                extra += f"  depends: {', '.join(planned.depends)}"
            if planned.result is not None:
                extra += f"  ({planned.result.status.value}: {planned.result.message.splitlines()[0]})"
            print(f"{planned.name}{extra}")
    if args.list or args.list_json:
        return EXIT_OK
    options = _run_options(args, argv, output_dir, work_dir, slot_cpus)
    if cluster is not None:
        return _run_on_dask(cluster, plan, options, history)
    from run_testsuite.session import RunSession
    from run_testsuite.workers import local

    worker_class = local.InlineWorker if args.no_multiprocessing else local.ProcessWorker
    return RunSession(plan, options, history, worker_class).run()


def _run_options(args, argv: list[str], output_dir: str, work_dir: str, slot_cpus: dict[int, list[int]]):
    from run_testsuite.session import RunOptions

    return RunOptions(
        root=args.root,
        output_dir=output_dir,
        work_dir=work_dir,
        jobs=args.jobs or 0,
        command_line=["run-testsuite", *argv],
        verbose=args.verbose,
        quiet=args.quiet,
        tee=args.tee,
        html=not args.no_html,
        junit_xml=args.junit_xml,
        rewrite=args.rewrite,
        max_failures=args.max_failures or 0,
        fail_fast=args.fail_fast,
        slot_cpus=slot_cpus,
    )


def _run_on_dask(cluster, plan, options, history) -> int:
    """--dask: the same run, each fragment a task on the cluster."""
    from run_testsuite.session import RunSession
    from run_testsuite.workers.dask_cluster import DaskError

    try:
        cluster.connect()  # before the run: a cluster that cannot be used is a usage error
        if not options.jobs:  # twice the workers' threads: each has its next fragment queued
            options.jobs = 2 * cluster.total_threads() or os.cpu_count() or 1
    except DaskError as exc:
        print(f"run-testsuite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from run_testsuite.workers.dask_worker import worker_class

    with cluster:
        return RunSession(plan, options, history, worker_class(cluster)).run()


def _write_list_json(plan, path: str) -> None:
    import json

    entries = [
        {
            "name": p.name,
            "kind": p.kind,
            "driver": p.driver,
            "description": p.description,
            "tags": p.tags,
            "depends": p.depends,
            "needs": p.needs,
            "spec_file": p.spec_file,
            "fragments": [plan.fragments[f].name for f in p.fragments],
            "status": p.result.status.value if p.result else None,
            "message": p.result.message if p.result else None,
        }
        for p in plan.testcases
    ]
    text = json.dumps({"suite": plan.suite.name, "testcases": entries}, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


def _read_history(output_dir: str):
    """What earlier runs in this output directory recorded, if any."""
    from run_testsuite.history import HISTORY_FILE, History

    path = os.path.join(output_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return None
    history = History(path)
    try:
        return history.view()
    finally:
        history.close()


def _slot_cpus(args, suite_default: int | None) -> dict[int, list[int]]:
    """Disjoint CPU sets, one per slot, for --cpus-per-slot."""
    from run_testsuite.plan import UsageError

    per_slot = args.cpus_per_slot or suite_default
    if not per_slot:
        return {}
    cpus = sorted(os.sched_getaffinity(0))
    sets = len(cpus) // per_slot
    if args.jobs > sets:
        raise UsageError(
            f"-j {args.jobs} slots with {per_slot} CPU{'s' if per_slot > 1 else ''} each need "
            f"{args.jobs * per_slot} CPUs; this process may use {len(cpus)} ({','.join(map(str, cpus))})"
        )
    return {slot: cpus[(slot - 1) * per_slot : slot * per_slot] for slot in range(1, args.jobs + 1)}


if __name__ == "__main__":  # pragma: no cover
    entry()
