"""How close run-testsuite's schedule comes to the best possible one.

    python bench/bench_scheduling.py [--peers-python PATH] [--repeat N]
                                     [--only lpt|dag|dag-setup] [--json FILE]

The workloads are sleeps of known length, so the best possible wall time is
known: the larger of the longest chain of durations (dependencies, set-ups)
and the total work spread evenly over the slots. Each is named so that the
natural (name) order is a bad order: what must start first sorts last.

- lpt: 200 x `sleep 0.1` (t000..t199) and 4 x `sleep 3` named last (z0..z3),
  -j 8. Bound 4.0 s; name order gives 2.5 + 3 = 5.5 s. The scheduler only
  knows the long ones are long from the durations recorded by an earlier
  run (OUTPUT/history.sqlite), so the target is for the second run: within
  5% of the bound. lit runs it too, with its own time ordering
  (.lit_test_times.txt, longest first).
- dag: a chain of 6 x `sleep 0.5` (each depends on the previous one), named
  last, beside 60 independent `sleep 0.2`, -j 4. Bound max(3.0, 15/4) = 3.75 s.
- dag-setup: the same, plus a suite.yaml set-up of `sleep 1` that 40 of the
  independent testcases `need`. Bound max(3.0, 16/4) = 4.0 s. Target for
  both DAG workloads: second run within 10% of the bound.

One repeat is a pair of runs on the same output directory: the first with no
history (a fresh directory), the second with the first's durations. The best
of ``--repeat`` first runs and the best of the second runs are kept (the
machine may be shared: the best run is the least disturbed one).

Besides the wall time, run-testsuite's report index gives the schedule's
span (first start to last end of a testcase): wall - span is start-up and
shutdown, span - bound is scheduling. The last column says when the long
testcases started (lpt) or when the chain ended (dag), from the same index.

Standard library only. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

# Sibling modules: this file is run as a script, so bench/ is on sys.path.
from tools import Invocation, Lit, RunTestsuite, log, scratch_dir, tail, timed
from workloads import (
    Case,
    Setup,
    lower_bound,
    write_cases_lit,
    write_cases_run_testsuite,
)


# Workloads -------------------------------------------------------------------


@dataclass
class SchedWorkload:
    name: str
    cases: List[Case]
    jobs: int
    tolerance: float
    """Target: second run's wall <= bound * (1 + tolerance)."""
    default_repeat: int
    setups: List[Setup] = field(default_factory=list)
    lit: bool = False
    """lit can run it (no dependencies, no set-ups)."""
    watch: Callable[[Dict[str, dict], float], str] = lambda results, t0: ""
    """A note from the run's results (by name) and its first start."""

    @property
    def bound(self) -> Dict[str, float]:
        return lower_bound(self.cases, self.jobs, self.setups)

    @property
    def count(self) -> int:
        return len(self.cases) + len(self.setups)


def _lpt_watch(results: Dict[str, dict], t0: float) -> str:
    starts = sorted(r["start"] - t0 for n, r in results.items() if n.startswith("z"))
    return "z* started at +" + "/".join(f"{s:.2f}" for s in starts) + " s"


def _dag_watch(results: Dict[str, dict], t0: float) -> str:
    chain = [r for n, r in results.items() if n.startswith("zchain")]
    first = min(r["start"] for r in chain) - t0
    end = max(r["start"] + r["duration"] for r in chain) - t0
    note = f"chain +{first:.2f}..+{end:.2f} s"
    setup = results.get("setup:build")
    if setup:
        note += f", set-up +{setup['start'] - t0:.2f} s"
    return note


def make_workloads() -> Dict[str, SchedWorkload]:
    lpt = [Case(f"t{i:03d}", "sleep 0.1", 0.1) for i in range(200)]
    lpt += [Case(f"z{i}", "sleep 3", 3.0) for i in range(4)]

    # The chain sorts after the independent work, so name order starts it last.
    chain = [
        Case(f"zchain{i}", "sleep 0.5", 0.5, depends=(f"zchain{i - 1}",) if i else ())
        for i in range(6)
    ]
    free = [Case(f"w{i:02d}", "sleep 0.2", 0.2) for i in range(60)]
    needing = [
        Case(c.name, c.cmd, c.seconds, needs=("build",) if i < 40 else ())
        for i, c in enumerate(free)
    ]
    return {
        "lpt": SchedWorkload("lpt", lpt, 8, 0.05, 2, lit=True, watch=_lpt_watch),
        "dag": SchedWorkload("dag", free + chain, 4, 0.10, 3, watch=_dag_watch),
        "dag-setup": SchedWorkload(
            "dag-setup", needing + chain, 4, 0.10, 3,
            setups=[Setup("build", "sleep 1", 1.0)], watch=_dag_watch,
        ),
    }


# Runs ------------------------------------------------------------------------


@dataclass
class Run:
    """One timed run."""

    wall_s: float
    span_s: Optional[float] = None
    note: str = ""
    error: Optional[str] = None
    load_1m: Optional[float] = None
    """The machine's load average when the pair of runs began."""


@dataclass
class Row:
    """Best of the repeats for one workload, tool and run (first/second)."""

    workload: str
    tool: str
    run: str
    bound_s: float
    target: Optional[float]  # max ratio, for the runs that have one
    runs: List[Run] = field(default_factory=list)

    @property
    def best(self) -> Optional[Run]:
        ok = [r for r in self.runs if r.error is None]
        return min(ok, key=lambda r: r.wall_s) if ok and len(ok) == len(self.runs) else None

    @property
    def error(self) -> Optional[str]:
        return next((r.error for r in self.runs if r.error), None)


_SUMMARY = re.compile(r"^(\d+) testcases: (\d+) passed", re.M)


class RtsRunner:
    """run-testsuite, twice on the same output directory."""

    name = "run-testsuite"

    def __init__(self, tool: RunTestsuite) -> None:
        self.tool = tool

    def prepare(self, w: SchedWorkload, workdir: str) -> None:
        write_cases_run_testsuite(w.cases, os.path.join(workdir, "cases"), w.setups)

    def pair(self, w: SchedWorkload, workdir: str) -> List[Run]:
        shutil.rmtree(os.path.join(workdir, "out"), ignore_errors=True)
        runs = [self._run(w, workdir)]
        if runs[0].error is None:
            runs.append(self._run(w, workdir))
        return runs

    def _run(self, w: SchedWorkload, workdir: str) -> Run:
        out = os.path.join(workdir, "out")
        inv = Invocation(
            self.tool.argv
            + [os.path.join(workdir, "cases"), "-j", str(w.jobs), "--output-dir", out],
            cwd=workdir,
            env=self.tool.env,
        )
        seconds, proc = timed(inv)
        text = proc.stdout + proc.stderr
        found = _SUMMARY.search(proc.stdout)
        if proc.returncode != 0 or not found or int(found.group(2)) != w.count:
            return Run(seconds, error=f"exit {proc.returncode}, expected {w.count} passed:\n{tail(text)}")
        with open(os.path.join(out, "new", "_index.json"), encoding="utf-8") as f:
            results = {r["name"]: r for r in json.load(f)["results"]}
        t0 = min(r["start"] for r in results.values())
        t1 = max(r["start"] + r["duration"] for r in results.values())
        return Run(seconds, span_s=t1 - t0, note=w.watch(results, t0))


class LitRunner:
    """lit, twice: the second run orders by .lit_test_times.txt."""

    name = "lit"

    def __init__(self, tool: Lit) -> None:
        self.tool = tool

    def prepare(self, w: SchedWorkload, workdir: str) -> None:
        write_cases_lit(w.cases, workdir, f"bench-{w.name}")

    def pair(self, w: SchedWorkload, workdir: str) -> List[Run]:
        times = os.path.join(workdir, ".lit_test_times.txt")
        if os.path.exists(times):
            os.remove(times)
        runs = [self._run(w, workdir)]
        if runs[0].error is None:
            if not os.path.exists(times):
                runs[0].note = "no .lit_test_times.txt written!"
            runs.append(self._run(w, workdir))
        return runs

    def _run(self, w: SchedWorkload, workdir: str) -> Run:
        shutil.rmtree(os.path.join(workdir, "Output"), ignore_errors=True)
        inv = self.tool.invocation(None, workdir, w.jobs)  # uses only workdir
        seconds, proc = timed(inv)
        text = proc.stdout + proc.stderr
        found = re.search(r"Total Discovered Tests:\s*(\d+)", text)
        if proc.returncode != 0 or not found or int(found.group(1)) != len(w.cases):
            return Run(seconds, error=f"exit {proc.returncode}, expected {len(w.cases)} tests:\n{tail(text)}")
        return Run(seconds)


class FloorRunner:
    """The same commands with no framework, longest first, by ``xargs -P``:
    what the machine itself makes of the best order (process start-up and
    all). Only for workloads without dependencies; one run per repeat."""

    name = "floor (xargs)"

    def prepare(self, w: SchedWorkload, workdir: str) -> None:
        pass

    def pair(self, w: SchedWorkload, workdir: str) -> List[Run]:
        order = sorted(w.cases, key=lambda c: -c.seconds)
        # Each line becomes $1 of `sh -c 'exec $1'`: sh splits and execs it.
        inv = Invocation(
            ["xargs", "-d", "\\n", "-n1", "-P", str(w.jobs), "sh", "-c", "exec $1", "floor"],
            stdin="".join(c.cmd + "\n" for c in order),
        )
        seconds, proc = timed(inv)
        if proc.returncode != 0:
            return [Run(seconds, error=f"exit {proc.returncode}:\n{tail(proc.stderr)}")]
        return [Run(seconds, note="longest first, no framework")]


# Command line, loop, table ---------------------------------------------------


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="How close run-testsuite schedules to the lower bound.")
    p.add_argument(
        "--peers-python",
        default=os.environ.get("BENCH_PEERS_PYTHON", sys.executable),
        help="Python whose environment has lit (default: $BENCH_PEERS_PYTHON, else this interpreter)",
    )
    p.add_argument("--run-testsuite", metavar="CMD", help="command to run run-testsuite with")
    p.add_argument(
        "--repeat", type=int,
        help="pairs of runs per tool, best kept (default: 2 for lpt, 3 for the DAG workloads)",
    )
    p.add_argument("--only", choices=["lpt", "dag", "dag-setup"], action="append",
                   help="run only this workload (may be repeated)")
    p.add_argument("--no-lit", action="store_true", help="do not run lit")
    p.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    p.add_argument("--keep", action="store_true", help="keep the generated suites and print where")
    args = p.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def bench(w: SchedWorkload, runners: list, base: str, repeat: int) -> List[Row]:
    bound = w.bound["lower_bound_s"]
    rows: Dict[tuple, Row] = {}
    dirs = {}
    for i, r in enumerate(runners):
        dirs[r.name] = os.path.join(base, w.name, f"{i}-{r.name}")
        os.makedirs(dirs[r.name])
        r.prepare(w, dirs[r.name])
        for which in ("first", "second") if r.name != FloorRunner.name else ("-",):
            target = w.tolerance if (which == "second" and r.name == RtsRunner.name) else None
            rows[(r.name, which)] = Row(w.name, r.name, which, bound, target)
    # Round-robin over tools within a repeat, so a slow spell is shared.
    for rep in range(1, repeat + 1):
        for r in runners:
            if any(row.error for (name, _), row in rows.items() if name == r.name):
                continue
            whiches = ("first", "second") if r.name != FloorRunner.name else ("-",)
            load = os.getloadavg()[0]
            for which, run in zip(whiches, r.pair(w, dirs[r.name])):
                run.load_1m = load
                rows[(r.name, which)].runs.append(run)
                if run.error:
                    log(f"\n!!! {w.name} / {r.name} {which} run FAILED (repeat {rep}):\n{run.error}\n")
                else:
                    span = f", span {run.span_s:.2f} s" if run.span_s is not None else ""
                    log(f"{w.name:<9} {r.name:<13} {which:<6} {rep}/{repeat}: "
                        f"{run.wall_s:.2f} s{span}  (load {load:.1f})  {run.note}")
    return list(rows.values())


def print_table(rows: List[Row], workloads: Dict[str, SchedWorkload]) -> None:
    header = (f"{'workload':<10} {'tool':<14} {'run':<7} {'wall(s)':>7} {'span(s)':>7} "
              f"{'bound(s)':>8} {'ratio':>6}  {'target':<14} note")
    print(header)
    print("-" * len(header))
    last = None
    for row in rows:
        if row.workload != last:
            if last is not None:
                print()
            b = workloads[row.workload].bound
            w = workloads[row.workload]
            print(f"{row.workload:<10} {len(w.cases)} testcases"
                  f"{f' + {len(w.setups)} set-up' if w.setups else ''}, -j {w.jobs}: bound "
                  f"max(critical path {b['critical_path_s']:.2f}, work/slots "
                  f"{b['work_per_slot_s']:.2f}) = {b['lower_bound_s']:.2f} s")
            last = row.workload
        best = row.best
        if best is None:
            print(f"{row.workload:<10} {row.tool:<14} {row.run:<7} {'FAILED':>7}")
            continue
        ratio = best.wall_s / row.bound_s
        span = f"{best.span_s:.2f}" if best.span_s is not None else "-"
        target = ""
        if row.target is not None:
            ok = ratio <= 1 + row.target
            target = f"<= {1 + row.target:.2f} {'ok' if ok else 'MISSED'}"
        print(f"{row.workload:<10} {row.tool:<14} {row.run:<7} {best.wall_s:>7.2f} {span:>7} "
              f"{row.bound_s:>8.2f} {ratio:>6.3f}  {target:<14} {best.note}".rstrip())
    print("\nratio = best wall time / lower bound; span = first start to last end"
          " of a testcase (run-testsuite's report index)")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    all_w = make_workloads()
    chosen = {n: w for n, w in all_w.items() if not args.only or n in args.only}

    rts = RunTestsuite(args.run_testsuite)
    note = rts.unavailable()
    if note:
        log(f"error: {note}")
        return 2
    lit = Lit(args.peers_python)
    lit_note = "disabled (--no-lit)" if args.no_lit else lit.unavailable()
    log(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load {os.getloadavg()[0]:.2f}")
    log(f"run-testsuite: {' '.join(rts.argv)}")
    log(f"lit: {lit.version}" if not lit_note else f"note: skipping lit: {lit_note}")

    rows: List[Row] = []
    with scratch_dir("bench-sched-", args.keep) as tmp:
        for w in chosen.values():
            runners: list = [RtsRunner(rts)]
            if w.lit and not lit_note:
                runners.append(LitRunner(lit))
            if w.lit and shutil.which("xargs"):
                runners.append(FloorRunner())
            repeat = args.repeat or w.default_repeat
            log(f"\n== {w.name}: {len(w.cases)} testcases, -j {w.jobs}, "
                f"bound {w.bound['lower_bound_s']:.2f} s, {repeat} pair(s) per tool ==")
            rows += bench(w, runners, tmp, repeat)

    print()
    print_table(rows, chosen)
    if lit_note:
        print(f"lit skipped: {lit_note}")

    if args.json:
        doc = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "run_testsuite_argv": rts.argv,
            "lit": lit.version or None,
            "workloads": {n: {"jobs": w.jobs, "testcases": len(w.cases), "setups": len(w.setups),
                              **w.bound} for n, w in chosen.items()},
            "rows": [dict(asdict(r), best=asdict(r.best) if r.best else None) for r in rows],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
        log(f"figures saved to {args.json}")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
