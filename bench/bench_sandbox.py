"""What the sandbox costs: the same trivial testcases with and without
--sandbox, and one command under bubblewrap against the bare command.

    python bench/bench_sandbox.py [--count 1000] [-j 16] [--repeat 5]
                                  [--run-testsuite CMD] [--json FILE]

suite: ``--count`` testcases (`echo hello`, diff driver, a baseline) run at
  -j N with and without --sandbox, alternating, ``--repeat`` times each on
  a fresh output directory; medians of wall time and of the CPU time of
  the run (user+sys, the commands included), and the difference per
  testcase.
command: one command started ``--spawns`` times in a row, bare and under
  the bwrap argv run-testsuite builds (run_testsuite.sandbox), medians per
  start: the floor that bubblewrap itself sets (its namespaces and mounts).

Standard library and run_testsuite only. Needs bwrap (apt-get install
bubblewrap). Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def write_suite(root: str, count: int) -> None:
    for number in range(count):
        directory = os.path.join(root, f"g{number // 100:03}", f"t{number:05}")
        os.makedirs(directory)
        with open(os.path.join(directory, "test.yaml"), "w") as handle:
            handle.write("driver: diff\ncmd: echo hello\n")
        with open(os.path.join(directory, "test.out"), "w") as handle:
            handle.write("hello\n")


def run_suite(command: list[str], suite: str, out: str, jobs: int, sandbox: bool) -> tuple[float, float]:
    """Wall seconds and CPU seconds (children: the run and its commands)."""
    shutil.rmtree(out, ignore_errors=True)
    argv = [*command, suite, "-o", out, "-j", str(jobs), "-q", *(["--sandbox"] if sandbox else [])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"run-testsuite failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def spawn_times(argv: list[str], spawns: int, keep: tuple[int, ...] = ()) -> list[float]:
    times = []
    for _ in range(spawns):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, pass_fds=keep)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("-j", "--jobs", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spawns", type=int, default=300)
    parser.add_argument("--run-testsuite", default=shutil.which("run-testsuite") or "")
    parser.add_argument("--json", help="also save the figures here")
    args = parser.parse_args()
    if shutil.which("bwrap") is None:
        sys.exit("bench_sandbox: needs bubblewrap (apt-get install bubblewrap)")
    command = [args.run_testsuite] if args.run_testsuite else [sys.executable, "-m", "run_testsuite"]
    from run_testsuite.sandbox import Sandbox, readable_paths

    figures: dict = {"count": args.count, "jobs": args.jobs}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        suite = os.path.join(scratch, "suite")
        write_suite(suite, args.count)
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for rep in range(args.repeat):
            for sandbox in (False, True):
                wall, cpu = run_suite(command, suite, os.path.join(scratch, "out"), args.jobs, sandbox)
                runs[sandbox].append((wall, cpu))
                print(f"{'sandbox' if sandbox else 'plain  '} {rep + 1}/{args.repeat}: {wall:.2f} s, CPU {cpu:.2f} s",
                      file=sys.stderr)
        work = os.path.join(scratch, "work")
        os.makedirs(work)
        bare = ["/bin/true"]
        status_r, status_w = os.pipe()  # bwrap's status goes there, drained
        wrapped = Sandbox(work, True, readable_paths()).wrap(bare, work, dict(os.environ), status_w)
        spawns: dict[str, list[float]] = {"bare": [], "sandbox": []}
        for _ in range(3):  # alternating blocks, so drift hits both
            spawns["bare"] += spawn_times(bare, args.spawns // 3)
            spawns["sandbox"] += spawn_times(wrapped, args.spawns // 3, (status_w,))
            os.read(status_r, 1 << 20)  # ~150 bytes a start: the pipe never fills in a block

    print(f"\nsuite: {args.count} x `echo hello` (diff driver), -j {args.jobs}, medians of {args.repeat}")
    print(f"{'run':<10}{'wall(s)':>10}{'CPU(s)':>10}{'ratio':>8}")
    plain_wall = statistics.median(w for w, _ in runs[False])
    plain_cpu = statistics.median(c for _, c in runs[False])
    for sandbox in (False, True):
        wall = statistics.median(w for w, _ in runs[sandbox])
        cpu = statistics.median(c for _, c in runs[sandbox])
        label = "sandbox" if sandbox else "plain"
        print(f"{label:<10}{wall:>10.2f}{cpu:>10.2f}{wall / plain_wall:>8.2f}")
        figures[label] = {"wall_s": wall, "cpu_s": cpu}
    extra_cpu_ms = (figures["sandbox"]["cpu_s"] - plain_cpu) / args.count * 1000
    extra_wall_ms = (figures["sandbox"]["wall_s"] - plain_wall) / args.count * 1000
    print(f"per testcase: +{extra_cpu_ms:.2f} ms CPU, +{extra_wall_ms:.2f} ms wall at -j {args.jobs}")
    bare_ms = statistics.median(spawns["bare"]) * 1000
    sandbox_ms = statistics.median(spawns["sandbox"]) * 1000
    print(f"\none command started in a row (median of {len(spawns['bare'])}): /bin/true {bare_ms:.2f} ms,"
          f" under bwrap {sandbox_ms:.2f} ms (+{sandbox_ms - bare_ms:.2f} ms)")
    figures.update(extra_cpu_ms=extra_cpu_ms, extra_wall_ms=extra_wall_ms, bare_ms=bare_ms, bwrap_ms=sandbox_ms)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
