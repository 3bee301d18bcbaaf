"""Time run-testsuite against its peers (lit, e3-testsuite) on generated suites.

    python bench/bench_core.py [--peers-python PATH] [--repeat N] [-j N]
                               [--only WORKLOAD] [--count N] [--json FILE]

Each workload is generated in a temporary directory, once per tool, in the
tool's own layout (see workloads.py), then every tool runs it ``--repeat``
times and its best wall time is kept: the best is the run least disturbed by
the rest of the machine, which is what a comparison of tools wants. A tool
that is not installed is skipped with a note; a run that does not pass every
testcase is reported loudly and gets no time.

The peers are run by ``--peers-python`` (default: $BENCH_PEERS_PYTHON, else
this interpreter), an interpreter whose environment has lit and e3-testsuite,
so that they need not be installed next to run-testsuite.

Standard library only. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

# Sibling modules: this file is run as a script, so bench/ is on sys.path.
from tools import E3Testsuite, Floor, Lit, RunTestsuite, Tool, log, scratch_dir
from workloads import Workload, make_workloads

REFERENCE = RunTestsuite.name


@dataclass
class Result:
    """Best-of-N figures for one tool on one workload."""

    workload: str
    tool: str
    times_s: List[float] = field(default_factory=list)
    error: Optional[str] = None
    ratio: Optional[float] = None
    """This tool's best time / run-testsuite's best time."""
    vs_ref: Optional[float] = None
    """This tool's best time / the workload's floor or ideal time."""
    ref_kind: Optional[str] = None

    @property
    def best_s(self) -> Optional[float]:
        return min(self.times_s) if self.times_s and not self.error else None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark run-testsuite against lit and e3-testsuite."
    )
    p.add_argument(
        "--peers-python",
        default=os.environ.get("BENCH_PEERS_PYTHON", sys.executable),
        help="Python whose environment has lit and e3-testsuite"
        " (default: $BENCH_PEERS_PYTHON, else this interpreter)",
    )
    p.add_argument(
        "--run-testsuite",
        metavar="CMD",
        help="command to run run-testsuite with (default: the run-testsuite"
        " console script, else `python -m run_testsuite` where it is installed)",
    )
    p.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    p.add_argument("--only", choices=["trivial", "sleep"], help="run one workload")
    p.add_argument("-j", "--jobs", type=int, default=16, help="parallelism (default 16)")
    p.add_argument(
        "--count", type=int, default=1000, help="testcases in the trivial workload (default 1000)"
    )
    p.add_argument(
        "--rerun",
        action="store_true",
        help="time run-testsuite's re-runs: its output directory, with the durations"
        " it recorded, is kept from an untimed first run on",
    )
    p.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    p.add_argument(
        "--keep", action="store_true", help="keep the generated suites and print where"
    )
    args = p.parse_args(argv)
    if args.repeat < 1 or args.jobs < 1 or args.count < 1:
        p.error("--repeat, -j and --count must be at least 1")
    return args


def available_tools(args: argparse.Namespace) -> Tuple[List[Tool], Dict[str, str]]:
    """The tools that can run here, and a note for each one that cannot."""
    tools: List[Tool] = [
        RunTestsuite(args.run_testsuite, rerun=args.rerun),
        Lit(args.peers_python),
        E3Testsuite(args.peers_python),
        Floor(),
    ]
    usable: List[Tool] = []
    skipped: Dict[str, str] = {}
    for tool in tools:
        note = tool.unavailable()
        if note:
            skipped[tool.name] = note
            log(f"note: skipping {tool.name}: {note}")
        else:
            usable.append(tool)
    return usable, skipped


def bench_workload(
    w: Workload, tools: List[Tool], base: str, jobs: int, repeat: int
) -> List[Result]:
    """Run every tool ``repeat`` times on ``w``; return one Result per tool."""
    dirs = {}
    for i, tool in enumerate(tools):
        dirs[tool.name] = os.path.join(base, w.name, f"{i}-{tool.name.split()[0]}")
        os.makedirs(dirs[tool.name])
        tool.prepare(w, dirs[tool.name])

    results = {tool.name: Result(w.name, tool.name) for tool in tools}
    for tool in tools:
        if getattr(tool, "rerun", False):  # the untimed first run
            outcome = tool.run(w, dirs[tool.name], jobs)
            if outcome.error:
                results[tool.name].error = outcome.error
    # Round-robin over tools within each repeat, rather than all repeats of
    # one tool in a row, so that a slow spell of the machine is shared.
    for rep in range(1, repeat + 1):
        for tool in tools:
            r = results[tool.name]
            if r.error:
                continue  # a failed tool is not retried: its time means nothing
            outcome = tool.run(w, dirs[tool.name], jobs)
            if outcome.error:
                r.error = outcome.error
                log(f"\n!!! {w.name} / {tool.name} FAILED (run {rep}):\n{outcome.error}\n")
            else:
                r.times_s.append(outcome.seconds)
                log(f"{w.name:<8} {tool.name:<14} run {rep}/{repeat}: {outcome.seconds:.2f} s")

    # Ratios against run-testsuite, and against the floor (measured) or the
    # ideal (computed) of the workload.
    ordered = [results[t.name] for t in tools]
    ref = results.get(REFERENCE)
    ref_best = ref.best_s if ref else None
    floor = results.get(Floor.name)
    if w.ideal_s is not None:
        base_s, kind = w.ideal_s, "ideal"
    else:
        base_s, kind = (floor.best_s if floor else None), "floor"
    for r in ordered:
        best = r.best_s
        if best is None:
            continue
        if ref_best:
            r.ratio = best / ref_best
        if base_s:
            r.vs_ref, r.ref_kind = best / base_s, kind
    return ordered


def fmt_ratio(r: Result) -> str:
    """The ratio column: > 1 means slower than run-testsuite."""
    if r.error:
        return ""
    if r.tool == REFERENCE:
        return "1.00"
    if r.ratio is None:
        return "n/a"
    return f"{r.ratio:.2f}x " + ("slower" if r.ratio >= 1 else "(faster)")


def print_table(results: List[Result], ideals: Dict[str, float]) -> None:
    """Print the figures; ratio = tool time / run-testsuite time."""
    header = f"{'workload':<10} {'tool':<15} {'wall(s)':>8}  {'ratio':<16} {'vs floor/ideal'}"
    print(header)
    print("-" * len(header))
    last = None
    for r in results:
        if last is not None and r.workload != last:
            print()
        if r.workload != last and r.workload in ideals:
            print(f"{r.workload:<10} {'ideal':<15} {ideals[r.workload]:>8.2f}")
        last = r.workload
        wall = "FAILED" if r.error else f"{r.best_s:.2f}"
        vs = f"{r.vs_ref:.2f}x {r.ref_kind}" if r.vs_ref is not None else ""
        print(f"{r.workload:<10} {r.tool:<15} {wall:>8}  {fmt_ratio(r):<16} {vs}".rstrip())
    print("\nratio = tool wall time / run-testsuite wall time (best of each)")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    all_workloads = make_workloads(args.count, args.jobs)
    workloads = [w for n, w in all_workloads.items() if args.only in (None, n)]

    log(
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}; -j {args.jobs},"
        f" best of {args.repeat}; peers python: {args.peers_python}"
    )
    tools, skipped = available_tools(args)
    for t in tools:
        if t.version:
            log(f"{t.name} {t.version}")

    results: List[Result] = []
    with scratch_dir("bench-core-", args.keep) as tmp:
        for w in workloads:
            log(f"\n== {w.name}: {w.count} x `{w.cmd}` ==")
            results += bench_workload(w, tools, tmp, args.jobs, args.repeat)

    print()
    ideals = {w.name: w.ideal_s for w in workloads if w.ideal_s is not None}
    print_table(results, ideals)
    for name, note in skipped.items():
        print(f"skipped {name}: {note}")
    if REFERENCE in skipped:
        print("(no ratios without run-testsuite)")

    if args.json:
        doc = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "jobs": args.jobs,
            "repeat": args.repeat,
            "peers_python": args.peers_python,
            "versions": {t.name: t.version for t in tools if t.version},
            "skipped": skipped,
            "run_testsuite_argv": next(
                (t.argv for t in tools if isinstance(t, RunTestsuite)), None
            ),
            "workloads": {
                w.name: {"count": w.count, "cmd": w.cmd, "ideal_s": w.ideal_s}
                for w in workloads
            },
            "results": [dict(asdict(r), best_s=r.best_s) for r in results],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
        log(f"figures saved to {args.json}")

    # Non-zero when a tool that ran did not pass its tests: the figures of
    # that run are missing, and a script driving the bench should know.
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
