"""History at scale: 10,000 testcases recorded over 200 runs, then what
``--history-keep`` and ``report --history`` cost there.

    python bench/bench_history.py [--testcases 10000] [--runs 200] [--keep 200]

Records ``--runs`` synthetic runs straight through ``History.record`` (the
run's own writer: one transaction a run, keys changing now and then, a few
flaky testcases), pruning to ``--keep`` runs after each as a run does, then
prints the database's size, the time of one more record and prune, and the
time ``report --history`` (``read_window`` and the text) takes for the last
20 runs, and for one testcase. Standard library and run_testsuite only.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testcases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--keep", type=int, default=200)
    args = parser.parse_args()
    from run_testsuite.history import History
    from run_testsuite.history_view import read_window
    from run_testsuite.reports.history_text import render_summary, render_testcase
    from run_testsuite.results import Result, Status

    rng = random.Random(7)
    names = [f"group{n // 100:03}/testcase-{n:05}" for n in range(args.testcases)]
    keys = {name: f"{rng.getrandbits(256):064x}" for name in names}
    base = {name: rng.uniform(0.005, 0.5) for name in names}
    path = os.path.join(tempfile.mkdtemp(prefix="bench-history-"), "history.sqlite")
    record_times = []
    start = time.time() - args.runs * 3600
    for run in range(args.runs):
        for name in rng.sample(names, 50):  # some keys change each run
            keys[name] = f"{rng.getrandbits(256):064x}"
        results = []
        for number, name in enumerate(names):
            flaky = number % 500 == 0 and rng.random() < 0.3
            status = Status.FAIL if flaky or number % 2000 == 1 else Status.PASS
            results.append(Result(name, status, duration=base[name] * rng.uniform(0.9, 1.1)))
        began = time.perf_counter()
        history = History(path)
        history.record(start + run * 3600, ["bench"], results, keys, [(n, "run", "PASS", 0.1) for n in names], {})
        history.prune(args.keep)
        history.close()
        record_times.append(time.perf_counter() - began)
        if run % 50 == 49:
            print(f"{run + 1} runs recorded, {os.path.getsize(path) / 1e6:.0f} MB", file=sys.stderr)
    size = os.path.getsize(path) + sum(
        os.path.getsize(path + s) for s in ("-wal", "-shm") if os.path.exists(path + s)
    )
    reads = []
    for _ in range(5):
        began = time.perf_counter()
        render_summary(read_window(path, 20))
        reads.append(time.perf_counter() - began)
    one = []
    for _ in range(5):
        began = time.perf_counter()
        render_testcase(read_window(path, 200, names[500]), names[500])
        one.append(time.perf_counter() - began)
    print(f"{args.testcases} testcases, {args.runs} runs recorded, keeping {args.keep}")
    print(f"database: {size / 1e6:.0f} MB ({size / (args.testcases * min(args.runs, args.keep)):.0f} bytes a result)")
    print(f"record + prune of one run: median {statistics.median(record_times[-20:]):.2f} s (the last 20)")
    print(f"report --history (last 20 runs): median {statistics.median(reads):.2f} s of 5")
    print(f"report --history NAME (200 runs read): median {statistics.median(one):.2f} s of 5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
