"""The options of ``run-testsuite ROOT``, in groups as ``--help`` shows them."""

from __future__ import annotations

import argparse

from run_testsuite import __version__
from run_testsuite.fragment import MAX_TIMEOUT

USAGE = """run-testsuite ROOT [NAMES ...] [options]
       run-testsuite report [OUTPUT] [--compare OLD NEW] [--html F] [--junit-xml F]
       run-testsuite validate ROOT [-D NAME=VALUE]
       run-testsuite new PATH [--driver NAME] [--cmd CMD] [--description TEXT]
       run-testsuite schema [ROOT]"""

EPILOG = """subcommands (each has --help):
  report    summarise, re-render or compare the results in an output directory
  validate  check every spec of a suite without running anything
  new       make a testcase directory with a test.yaml
  schema    write the JSON Schemas of test.yaml and suite.yaml into a suite,
            for editors; `new` references them

exit status:
  0    nothing FAILed or ERRORed (also: --list, --failed with nothing to do)
  1    some testcase FAILed or ERRORed
  2    bad usage: an unknown option, a suite that does not exist, an invalid
       suite.yaml, an output that cannot be written, no bubblewrap for --sandbox
  3    some result or index file could not be written
  5    the selection holds no testcase
  128+N  interrupted by signal N (130: Ctrl-C)"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run-testsuite",
        usage=USAGE,
        description="Run a declarative testsuite: every directory holding a test.yaml is a testcase.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", help="the suite directory (holding testcases and an optional suite.yaml)")
    p.add_argument(
        "names", nargs="*", help="run only testcases whose name starts with, or matches the glob of, one of these"
    )
    _selection(p.add_argument_group("selection"))
    _execution(p.add_argument_group("execution"))
    _output(p.add_argument_group("output"))
    p.add_argument("--version", action="version", version=f"run-testsuite {__version__}")
    return p


def _selection(group: argparse._ArgumentGroup) -> None:
    """What runs (see the README's *Selecting what runs*)."""
    group.add_argument("--list", action="store_true", help="print the selected testcases and exit")
    group.add_argument(
        "--list-json",
        metavar="FILE",
        help="write the selection as JSON (name, driver, tags, dependencies, set-ups, status if decided) and exit; '-' for stdout",
    )
    group.add_argument(
        "-k",
        dest="keyword",
        metavar="EXPR",
        help="select by name and tag: words match name substrings or tags, with and/or/not and parentheses",
    )
    group.add_argument(
        "--tag", action="append", metavar="TAG", help="select testcases with this tag (repeatable: any of them)"
    )
    group.add_argument(
        "--failed", action="store_true", help="run only what did not pass last time (and what it depends on)"
    )
    group.add_argument(
        "--shard",
        metavar="K/N",
        help="run part K of N of the selection (from 1), balanced by expected durations, testcases tied by "
        "depends kept together; 'auto' reads GitLab's CI_NODE_INDEX and CI_NODE_TOTAL",
    )
    group.add_argument(
        "--durations",
        metavar="FILE",
        help="expected durations from a file 'report --export-durations' wrote (committed or cached in CI), "
        "for what this output directory's history has not timed: ordering and the ETA",
    )
    group.add_argument(
        "--quarantine",
        action="store_true",
        help="testcases history finds flaky in its last 20 runs run and are reported, but their failures do "
        "not fail the run (as those in suite.yaml's quarantine)",
    )
    group.add_argument(
        "--incremental",
        action="store_true",
        help="do not run testcases whose key passed before (spec, own and shared files, inputs, executables, key_env, dependencies); report them as passed from cache",
    )
    group.add_argument(
        "--explain",
        action="store_true",
        help="say for each testcase whether it runs and which part of its key changed since it last passed (with --list, or before a run)",
    )
    group.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run the selection N times, results named NAME#1..NAME#N (hunting flaky tests)",
    )
    group.add_argument(
        "-D",
        dest="define",
        action="append",
        type=definition,
        metavar="NAME=VALUE",
        help="set a suite parameter declared in suite.yaml 'params'",
    )


def _execution(group: argparse._ArgumentGroup) -> None:
    """How it runs: slots, timeouts, where, and when to stop."""
    group.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        help="slots: fragments run in parallel (default: the number of CPUs; with --dask, twice the cluster's worker threads)",
    )
    group.add_argument(
        "-t",
        "--timeout",
        type=_positive_float,
        help="timeout in seconds for each command of testcases whose test.yaml and suite.yaml (defaults: timeout) set none (default: 300)",
    )
    group.add_argument(
        "--sandbox",
        action="store_true",
        help="run every testcase's commands under bubblewrap (bwrap), unless its spec says sandbox: false:"
        " nothing writable but its work directory and a private /tmp",
    )
    group.add_argument(
        "--no-multiprocessing",
        action="store_true",
        help="run fragments one at a time in this process, so a debugger can follow them",
    )
    group.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run fragments on a Dask cluster: its scheduler's address (tcp://host:8786), local:N to start N local worker processes, or slurm:N or pbs:N to submit N batch jobs of workers (suite.yaml 'cluster:' sets them); needs a file system shared at the same paths, and pip install 'run-testsuite[dask]' ('run-testsuite[slurm]' for slurm:N and pbs:N)",
    )
    group.add_argument(
        "--dask-option",
        action="append",
        type=definition,
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the batch jobs of --dask slurm:N or pbs:N, over suite.yaml 'cluster:' (queue=debug, walltime=02:00:00, cores=4)",
    )
    group.add_argument(
        "--cpus-per-slot",
        type=_positive_int,
        metavar="K",
        help="pin each slot, its worker and commands, to its own K CPUs (SLOT_CPUS)",
    )
    group.add_argument(
        "--max-failures",
        type=_positive_int,
        metavar="N",
        help="start nothing new once N testcases FAILed or ERRORed; the rest are SKIP",
    )
    group.add_argument(
        "-x", "--fail-fast", action="store_true", help="stop at the first failure, running fragments too"
    )


def _output(group: argparse._ArgumentGroup) -> None:
    """Where results go, and what the terminal shows."""
    group.add_argument(
        "-o", "--output-dir", default="out", help="where the report index, results and logs go (default: out)"
    )
    group.add_argument("--work-dir", help="where testcases run (default: OUTPUT/new/work)")
    group.add_argument(
        "--cleanup",
        choices=("passed", "all", "none"),
        default="passed",
        help="which work directories to remove: those of testcases that PASSed, as they pass (default); all of them; none",
    )
    group.add_argument(
        "--history-keep",
        type=_non_negative,
        default=200,
        metavar="N",
        help="keep the details of the last N runs in OUTPUT/history.sqlite, pruning older ones after the run "
        "(default 200; 0 keeps all)",
    )
    loudness = group.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="print every result, passing ones too")
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the summary (not with -v)")
    group.add_argument(
        "--tee",
        action="store_true",
        help="show the output of running fragments live, each line prefixed with [testcase]",
    )
    group.add_argument("--junit-xml", metavar="FILE", help="also write the results as JUnit XML, for CI test reporters")
    group.add_argument("--no-html", action="store_true", help="do not write OUTPUT/new/report.html")
    group.add_argument(
        "--rewrite",
        action="store_true",
        help="write the actual output into the baseline of every diff testcase that FAILed on its output (never an XFAIL), and say which files changed",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def definition(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT:  # also refuses inf and nan
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT:.0f} (a year)")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
