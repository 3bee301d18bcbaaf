"""What running on a Dask cluster costs per fragment.

    python bench/bench_dask.py [--count 1000] [--repeat 3] [--json FILE]
                               [--run-testsuite CMD]

1,000 trivial testcases (driver diff, `cmd: echo hello`, baseline `hello`):
the command costs next to nothing, so the wall time is the framework's, and
the difference between two ways of running them is their overhead. Each is
run:

- locally (the default ProcessWorker) at -j 16 and at -j 2;
- with `--dask local:2` (a LocalCluster of two single-threaded worker
  processes started and stopped by the run, so its start-up is in the
  time) at -j 2 and -j 16 (-j caps the fragments in flight; 16 keeps a
  queue in Dask so a worker never waits for the next task's round trip);
- with `--dask tcp://...` against a LocalCluster of two workers that this
  script starts once, so the figure is the per-fragment cost alone.

Printed: best-of-N wall times, and the overhead per fragment of each Dask
configuration against each local one, ((dask - local) / count) in ms. A run
counts only if it exits 0 with every testcase passed.

Needs `distributed` (pip install 'run-testsuite[dask]'). Progress goes to
stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

# Sibling modules: this file is run as a script, so bench/ is on sys.path.
from tools import Invocation, RunTestsuite, tail, timed
from workloads import Workload, write_run_testsuite

# The cluster's workers are spawned from this process: they import the
# run-testsuite installed for this interpreter, as the run's main process does.


@dataclass
class Config:
    label: str
    args: List[str]
    dask: bool
    times: List[float] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    @property
    def best(self) -> Optional[float]:
        return min(self.times) if self.times else None


def verify(proc, out: str, count: int) -> Optional[str]:
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {tail(proc.stderr or proc.stdout)}"
    with open(os.path.join(out, "new", "_index.json"), encoding="utf-8") as handle:
        index = json.load(handle)
    passed = index["counts"].get("PASS", 0)
    if passed != count:
        return f"{passed} of {count} passed: {index['counts']}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="trivial testcases (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration; the best counts (default 3)")
    parser.add_argument("--run-testsuite", metavar="CMD", help="how to run run-testsuite (default: the console script, else python -m run_testsuite)")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the generated suite and outputs")
    args = parser.parse_args()

    try:
        import distributed
    except ImportError:
        print("bench_dask: needs distributed: pip install 'run-testsuite[dask]'", file=sys.stderr)
        return 2
    tool = RunTestsuite(args.run_testsuite)
    missing = tool.unavailable()
    if missing:
        print(f"bench_dask: {missing}", file=sys.stderr)
        return 2

    workdir = tempfile.mkdtemp(prefix="bench-dask-")
    workload = Workload(name="trivial", count=args.count, cmd="echo hello", driver="diff", expected="hello\n")
    root = write_run_testsuite(workload, os.path.join(workdir, "suite"))
    print(f"bench_dask: {args.count} trivial testcases in {root}", file=sys.stderr)

    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    )
    address = cluster.scheduler_address
    configs = [
        Config("local -j 16", ["-j", "16"], False),
        Config("local -j 2", ["-j", "2"], False),
        Config("dask local:2 -j 2", ["-j", "2", "--dask", "local:2"], True),
        Config("dask local:2 -j 16", ["-j", "16", "--dask", "local:2"], True),
        Config("dask tcp (running) -j 2", ["-j", "2", "--dask", address], True),
        Config("dask tcp (running) -j 16", ["-j", "16", "--dask", address], True),
    ]
    try:
        for repeat in range(1, args.repeat + 1):
            for config in configs:  # interleaved: a disturbance hits all alike
                out = os.path.join(workdir, "out")
                shutil.rmtree(out, ignore_errors=True)  # no history: every run alike
                inv = Invocation(tool.argv + [root, "-q", "--no-html", "--output-dir", out] + config.args, cwd=workdir, env=tool.env)
                seconds, proc = timed(inv)
                error = verify(proc, out, args.count)
                if error:
                    config.errors.append(error)
                    print(f"  {config.label}: run {repeat} does not count: {error}", file=sys.stderr)
                else:
                    config.times.append(seconds)
                    print(f"  {config.label}: run {repeat}: {seconds:.2f} s", file=sys.stderr)
    finally:
        cluster.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    local = [c for c in configs if not c.dask]
    print(f"\n{args.count} trivial testcases, best of {args.repeat}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, distributed {distributed.__version__}\n")
    print(f"{'configuration':28} {'wall s':>8}  " + "  ".join(f"{'ms/fragment vs ' + c.label:>24}" for c in local))
    overheads: Dict[str, Dict[str, float]] = {}
    for config in configs:
        best = config.best
        cells = []
        for base in local:
            if config.dask and best is not None and base.best is not None:
                ms = (best - base.best) / args.count * 1000
                overheads.setdefault(config.label, {})[base.label] = ms
                cells.append(f"{ms:>+24.2f}")
            else:
                cells.append(f"{'':>24}")
        wall = f"{best:8.2f}" if best is not None else f"{'failed':>8}"
        print(f"{config.label:28} {wall}  " + "  ".join(cells))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"count": args.count, "repeat": args.repeat, "configs": [asdict(c) for c in configs],
                       "overhead_ms_per_fragment": overheads}, handle, indent=2)
    return 0 if all(c.times for c in configs) else 1


if __name__ == "__main__":
    sys.exit(main())
