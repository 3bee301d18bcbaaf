"""``run-testsuite``: the command line front door.

It turns arguments into a plan and ``RunOptions``, hands them to a
``RunSession`` (``session``), and the outcome into an exit status. The
subcommands (``report``, ``validate``, ``new``, ``schema``) are modules of their own.
"""

from __future__ import annotations

import gc
import os
import signal
import sys

from run_testsuite import safe_streams
from run_testsuite.options import parser

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
    # What is printed may be lost (`| head`, `>&-`, a full disk); the run is not.
    safe_streams.install()
    # Paths, names and output that are not UTF-8 are shown escaped, never a
    # UnicodeEncodeError in the middle of a run.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
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
    "schema": "run_testsuite.schema_cmd",
}


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    # Intermixed: names may follow options (`ROOT -j 4 NAME`).
    p = parser()
    if not argv:  # argparse would call the optional NAMES required too
        p.print_usage(sys.stderr)
        print("run-testsuite: error: the suite directory ROOT is missing (see run-testsuite --help)", file=sys.stderr)
        return EXIT_USAGE
    args = p.parse_intermixed_args(argv)
    if args.dask and args.no_multiprocessing:
        p.error("--dask and --no-multiprocessing exclude each other")
    if args.dask and args.cpus_per_slot:
        p.error("--cpus-per-slot pins this host's CPUs; it does not apply with --dask")
    if args.dask_option and not (args.dask or "").strip().startswith(("slurm:", "pbs:")):
        p.error("--dask-option sets the batch jobs of --dask slurm:N or pbs:N")
    from run_testsuite.plan import NothingSelected, UsageError

    try:
        cluster = _cluster(args.dask) if args.dask else None
        if cluster is None and args.jobs is None:
            args.jobs = os.cpu_count() or 1
        plan, history, options, earlier = _prepare(args, argv, with_dask=cluster is not None)
        # The plan lives as long as the run: the garbage collector's full
        # passes need not walk its millions of objects again and again.
        gc.freeze()
    except UsageError as exc:
        print(f"run-testsuite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NothingSelected as exc:  # said before anything runs or is written
        print(f"run-testsuite: {exc}", file=sys.stderr if exc.exit_status else sys.stdout)
        if exc.empty_shard is not None and not (args.list or args.list_json):
            _record_empty_shard(args, argv, *exc.empty_shard)
        return exc.exit_status
    if args.explain:
        _explain(plan, args.incremental)
    if args.list or args.list_json:
        from run_testsuite.listing import print_list, write_list_json

        if args.list_json:
            write_list_json(plan, args.list_json)
        if args.list and not args.explain:  # the explanation listed them
            print_list(plan)
        if args.list and plan.shard is not None:
            index, total, mine, everything = plan.shard
            count = sum(1 for p in plan.testcases if p.kind != "setup")
            known = history is not None and bool(history.durations)
            print(
                f"shard {index}/{total}: {count} testcase{'s' if count != 1 else ''}, "
                + (
                    f"{mine:.1f} s of work expected (all shards: {everything:.1f} s)"
                    if known
                    else "split by count (no durations recorded yet in this output directory)"
                )
            )
        return EXIT_OK
    if cluster is not None:
        return _run_on_dask(cluster, plan, options, history, earlier, args.dask_option)
    from run_testsuite.session import RunSession
    from run_testsuite.workers import local

    worker_class = local.InlineWorker if args.no_multiprocessing else local.ProcessWorker
    return RunSession(plan, options, history, worker_class, earlier).run()


def _explain(plan, incremental: bool) -> None:
    from run_testsuite.explain import Explainer

    explainer = Explainer(plan, incremental)
    try:
        for line in explainer.lines():
            print(line)
    finally:
        explainer.close()
    sys.stdout.flush()


def _cluster(address: str):
    """The Dask cluster of --dask: is Dask installed, is the address well
    formed (no connection yet)."""
    from run_testsuite.plan import UsageError
    from run_testsuite.workers.dask_cluster import DaskCluster, DaskError

    try:
        return DaskCluster(address)
    except DaskError as exc:
        raise UsageError(str(exc)) from None


def _split_slots(jobs: int | None, with_dask: bool) -> int:
    """How many fragments of one testcase may usefully run at once
    (``Testcase.slots``): -j, on one machine no more than its CPUs; with
    --dask, -j, or this host's CPUs where the cluster sizes the run."""
    if with_dask:
        return max(1, jobs or os.cpu_count() or 1)
    return max(1, min(jobs or 1, len(os.sched_getaffinity(0))))


def _prepare(args, argv: list[str], with_dask: bool):
    """The plan, what history knows, the options of the run, and the run
    before it as its changes are measured from (``compare.read_earlier``)."""
    from run_testsuite.history import read_history
    from run_testsuite.loader import build_plan
    from run_testsuite.reports.compare import read_earlier_of
    from run_testsuite.runner import slot_cpu_sets
    from run_testsuite.selection import Selection

    output_dir = os.path.abspath(args.output_dir)
    work_dir = os.path.abspath(args.work_dir) if args.work_dir else os.path.join(output_dir, "new", "work")
    history = read_history(output_dir)
    # Read before planning, not while the tests run: its text (22 MB at
    # 100,000 results) then takes memory planning uses next, where it came
    # on top of the run's largest moment.
    earlier = None if args.list or args.list_json else read_earlier_of(output_dir)
    if args.durations:
        history = _with_durations(history, args.durations)
    selection = Selection(
        keyword=args.keyword,
        tags=args.tag or [],
        failed_only=args.failed,
        incremental=args.incremental,
        repeat=args.repeat,
        params=dict(args.define or []),
        sandbox=args.sandbox,
        rewrite=args.rewrite,
        slots=_split_slots(args.jobs, with_dask),
        keys=not (args.list or args.list_json) or args.incremental or args.explain,
    )
    written = tuple(p for p in (args.junit_xml, args.list_json) if p and p != "-")
    keys, selection.keys = selection.keys, selection.keys and not args.shard  # a shard's keys are made with it
    plan = build_plan(args.root, args.names, output_dir, work_dir, args.timeout, history, selection, written)
    selection.keys = keys
    if args.shard:
        plan = _shard(plan, args, history, selection, written, output_dir, work_dir)
    _quarantine(plan, output_dir, args.quarantine)
    for warning in plan.warnings:
        print(warning, file=sys.stderr)
    if not (args.list or args.list_json):
        _check_places(plan, output_dir, work_dir)
        _check_sandbox(plan)
    # Planning made nothing on disk; from here on, the run's outputs are its own.
    _claim_outputs(args, output_dir, work_dir)
    slot_cpus = {} if with_dask else slot_cpu_sets(args.jobs, args.cpus_per_slot or plan.suite.cpus_per_slot)
    shard = plan.shard[:2] if plan.shard else None
    return plan, history, _run_options(args, argv, output_dir, work_dir, slot_cpus, shard), earlier


def _shard(plan, args, history, selection, written, output_dir: str, work_dir: str):
    """--shard K/N: plan again with this shard's testcases alone (see
    ``sharding``); the plan says which shard it is, for --list."""
    from run_testsuite import sharding
    from run_testsuite.loader import build_plan
    from run_testsuite.plan import NothingSelected

    index, total = sharding.parse(args.shard)
    durations = history.durations if history is not None else {}
    shards = sharding.partition(plan, durations, total)
    mine = shards[index - 1]
    if not mine:
        groups = sum(1 for s in shards if s)
        empty = NothingSelected(
            f"--shard {index}/{total}: no testcase falls in this shard "
            f"(the selection makes {groups} group{'s' if groups != 1 else ''} of testcases tied by depends)",
            exit_status=0,
        )
        empty.empty_shard = (plan.suite.name, index, total)
        raise empty
    everything = sharding.predicted(plan, durations, [n for s in shards for n in s])
    selection.only = set(mine)
    sharded = build_plan(args.root, args.names, output_dir, work_dir, args.timeout, history, selection, written)
    sharded.shard = (index, total, sharding.predicted(plan, durations, mine), everything)
    return sharded


def _narrowed(args) -> bool:
    """The selection is narrowed besides --shard: a testcase not in the run
    was not removed from the suite (the index says ``partial``)."""
    return bool(args.names or args.keyword or args.tag or args.failed or args.repeat > 1)


def _record_empty_shard(args, argv: list[str], suite: str, index: int, total: int) -> None:
    """A shard with no testcase still leaves its run (an index with no
    result, complete), so that merging every shard finds each of them."""
    from run_testsuite.index import ReportIndex, rotate, run_metadata

    meta = run_metadata(
        ["run-testsuite", *argv], args.root, suite, max(1, args.jobs or 1), True, (index, total, _narrowed(args))
    )
    try:
        ReportIndex(rotate(os.path.abspath(args.output_dir)), meta).finish()
    except OSError as exc:
        print(f"run-testsuite: warning: could not record the empty shard's run: {exc}", file=sys.stderr)


def _quarantine(plan, output_dir: str, from_history: bool) -> None:
    """Mark the testcases whose failures do not fail the run: suite.yaml's
    ``quarantine``, and with --quarantine those history finds flaky."""
    reasons = dict(plan.suite.quarantine)
    if from_history:
        from run_testsuite.history import HISTORY_FILE
        from run_testsuite.history_view import read_window

        path = os.path.join(output_dir, HISTORY_FILE)
        if os.path.isfile(path):
            import sqlite3

            try:
                window = read_window(path, QUARANTINE_RUNS)
            except sqlite3.Error as exc:
                print(f"run-testsuite: warning: --quarantine: the history cannot be read ({exc})", file=sys.stderr)
            else:
                for series, flips in window.flaky():
                    runs = len(series.verdicts())
                    reasons.setdefault(
                        series.name,
                        f"flaky: {len(flips)} flip{'s' if len(flips) != 1 else ''} in its last "
                        f"{runs} run{'s' if runs != 1 else ''}",
                    )
    if not reasons:
        return
    from run_testsuite.variants import base_name

    for planned in plan.testcases:
        reason = reasons.get(planned.name) or reasons.get(base_name(planned.name))
        if reason:  # not a spec error decided already: quarantine excuses flakiness, not mistakes
            planned.quarantine = reason


# The runs --quarantine reads for flaky testcases (as report --history does).
QUARANTINE_RUNS = 20


def _check_places(plan, output_dir: str, work_dir: str) -> None:
    """The output and work directories are the run's own: neither may be
    the suite, a directory above it, or a testcase's directory (work
    directories are made, emptied and removed by name: --work-dir at the
    suite root once removed the testcases themselves)."""
    from run_testsuite.plan import UsageError

    root = plan.suite.root
    kept_dirs = (root, os.path.realpath(root), *(p.source_dir for p in plan.testcases if p.source_dir))
    for what, path in (("output directory", output_dir), ("work directory", work_dir)):
        # Discovery never looks inside these: a testcase there is not in the
        # plan, and the run would remove it with the directories it makes.
        found = _spec_inside(path, output_dir)
        if found:
            raise UsageError(
                f"the {what} {path} holds testcases ({found}): the run makes and removes directories"
                " there; give it a directory of its own"
            )
        for form in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
            inside = form.rstrip(os.sep) + os.sep
            for kept in kept_dirs:
                if kept == form or kept.startswith(inside):
                    raise UsageError(
                        f"the {what} {path} holds the suite's own files ({kept}): the run makes and removes"
                        " directories there; give it a directory of its own"
                    )


def _spec_inside(path: str, output_dir: str) -> str | None:
    """A test.yaml below ``path``, if any. An output directory a run made
    (its lock file is there) is trusted without a walk: work copies never
    hold a spec, and its logs may be many."""
    from run_testsuite.discovery import SPEC_FILE, SUITE_FILE
    from run_testsuite.outputs import LOCK_FILE, WORK_MARK

    mine = os.path.join(output_dir, LOCK_FILE)
    if os.path.exists(mine) and (path == output_dir or path.startswith(output_dir.rstrip(os.sep) + os.sep)):
        return None
    if os.path.exists(os.path.join(path, WORK_MARK)):  # a work directory a run made (what its tests wrote)
        return None
    for here, _dirs, files in os.walk(path):
        for name in (SPEC_FILE, SUITE_FILE):
            if name in files:
                return os.path.join(here, name)
    return None


def _check_sandbox(plan) -> None:
    """Sandboxed testcases to run and no working bubblewrap: a usage error
    before anything runs (on a Dask cluster, each node needs it too)."""
    from run_testsuite.plan import UsageError
    from run_testsuite.sandbox import SandboxUnavailable, check_available

    sandboxes = [fragment.sandbox for fragment in plan.fragments if fragment.sandbox is not None]
    if sandboxes:
        try:
            check_available(network=all(sandbox.network for sandbox in sandboxes))
        except SandboxUnavailable as exc:
            raise UsageError(str(exc)) from None


def _claim_outputs(args, output_dir: str, work_dir: str) -> None:
    """Before anything runs: the run's output directory is its own, and
    every file it will write can be written (a usage error otherwise)."""
    from run_testsuite.outputs import OutputBusy, check_writable_file, claim_outputs
    from run_testsuite.plan import UsageError

    try:
        if args.list or args.list_json:  # nothing is written but the list
            if args.list_json and args.list_json != "-":
                check_writable_file(args.list_json, "--list-json file")
            return
        claim_outputs(output_dir, work_dir, {"--junit-xml file": args.junit_xml})
    except (OutputBusy, OSError) as exc:
        raise UsageError(str(exc)) from None


def _run_options(args, argv: list[str], output_dir: str, work_dir: str, slot_cpus: dict[int, list[int]], shard):
    from run_testsuite.session import RunOptions

    narrowed = _narrowed(args)
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
        cleanup=args.cleanup,
        history_keep=args.history_keep,
        partial=narrowed or bool(args.shard),
        shard=(*shard, narrowed) if shard else None,
    )


def _run_on_dask(cluster, plan, options, history, earlier, batch_options: list[tuple[str, str]]) -> int:
    """--dask: the same run, each fragment a task on the cluster."""
    from run_testsuite.session import RunSession
    from run_testsuite.workers.dask_cluster import DaskError

    try:
        if cluster.batch_spec is not None:
            origin = " and ".join(
                what
                for what, given in (
                    (f"{plan.suite.path}'s cluster:", plan.suite.cluster),
                    ("--dask-option", batch_options),
                )
                if given
            )
            cluster.configure_batch(plan.suite.cluster, batch_options, options.output_dir, origin or "defaults")
        cluster.connect()  # before the run: a cluster that cannot be used is a usage error
        if not options.jobs:  # twice the workers' threads: each has its next fragment queued
            options.jobs = 2 * cluster.total_threads() or os.cpu_count() or 1
    except DaskError as exc:
        print(f"run-testsuite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from run_testsuite.workers.dask_worker import worker_class

    with cluster:
        return RunSession(plan, options, history, worker_class(cluster), earlier).run()


def _with_durations(history, path: str):
    """--durations FILE: fragments' durations where local history has none."""
    from run_testsuite.durations_file import DurationsError, load, merged
    from run_testsuite.history import HistoryView
    from run_testsuite.plan import UsageError

    if not os.path.lexists(path):
        # A CI cache is empty on the first pipeline (and after it expires):
        # the run goes on, planned by what local history knows.
        print(
            f"run-testsuite: warning: --durations {path}: no such file; planning without it "
            "('run-testsuite report OUTPUT --export-durations FILE' writes one)",
            file=sys.stderr,
        )
        return history
    try:
        travelled = load(path)
    except DurationsError as exc:
        raise UsageError(str(exc)) from None
    history = history if history is not None else HistoryView()
    history.durations = merged(history.durations, travelled)
    return history


if __name__ == "__main__":  # pragma: no cover
    entry()
