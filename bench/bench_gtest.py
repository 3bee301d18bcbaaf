"""A GoogleTest binary of 2,000 tests: run-testsuite's gtest driver against
lit's GoogleTest format on the same binary, and against running it once.

    python bench/bench_gtest.py [--tests 2000] [-j 16] [--repeat 5]
                                [--spin N] [--peers-python PY]
                                [--run-testsuite CMD] [--json FILE]

The binary is generated (``--tests`` TEST()s over several files, each
spinning ``--spin`` iterations of arithmetic, read from $BENCH_SPIN at run
time so one build serves every setting; 0 makes them trivial) and built
once with g++ into a cache directory. Each round runs, alternating:

  once     the binary alone, no JSON (what a developer types)
  rts      run-testsuite, one gtest testcase, -j N, a fresh output
           directory (no history: one shard per slot)
  rts-hist the same on the output directory of the previous rts run
           (history known: shards sized by the last duration)
  lit      lit -j N on a directory holding the binary (lit.formats.GoogleTest,
           its sharding on, as LLVM runs its unit tests)

and prints medians of wall time and of CPU time (user+sys of everything
the run started), with ratios: wall against lit, CPU against the single
run. Needs g++ and GoogleTest (apt-get install g++ libgtest-dev); lit from
``--peers-python`` ($BENCH_PEERS_PYTHON), else it is skipped with a note.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PER_FILE = 200  # tests per translation unit: files build in parallel

HEADER = """#include <gtest/gtest.h>
#include <cstdlib>
static long spin() {
  static const long n = std::getenv("BENCH_SPIN") ? std::atol(std::getenv("BENCH_SPIN")) : 0;
  volatile long acc = 0;
  for (long i = 0; i < n; ++i) acc = acc + (i ^ (acc >> 3));
  return acc;
}
"""


def source_files(tests: int) -> dict[str, str]:
    files = {}
    for start in range(0, tests, PER_FILE):
        body = [HEADER]
        for number in range(start, min(tests, start + PER_FILE)):
            body.append(f"TEST(Bench{number // 50:03}, Case{number:05}) {{ (void)spin(); }}\n")
        files[f"part{start // PER_FILE:03}.cc"] = "".join(body)
    return files


def build(tests: int, cache: str) -> str:
    """The binary for ``tests`` tests, built once per source."""
    files = source_files(tests)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    directory = os.path.join(cache, f"gtest-{tests}-{digest}")
    binary = os.path.join(directory, "BenchTests")
    if os.path.exists(binary):
        return binary
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as handle:
            handle.write(text)
    print(f"building {binary} ({len(files)} files) ...", file=sys.stderr)
    started = time.monotonic()
    objects, running = [], []
    for name in files:
        obj = os.path.join(directory, name[:-3] + ".o")
        running.append(subprocess.Popen(["g++", "-O1", "-c", os.path.join(directory, name), "-o", obj]))
        objects.append(obj)
        if len(running) >= (os.cpu_count() or 2):
            _wait(running.pop(0))
    for proc in running:
        _wait(proc)
    subprocess.run(["g++", "-o", binary + ".tmp", *objects, "-lgtest", "-lgtest_main", "-pthread"], check=True)
    os.replace(binary + ".tmp", binary)
    print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return binary


def _wait(proc: subprocess.Popen) -> None:
    if proc.wait() != 0:
        sys.exit("bench_gtest: g++ failed")


def timed(argv: list[str], env: dict, cwd: str | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds (every process it started) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("-j", "--jobs", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spin", type=int, default=2_000_000, help="iterations per test (0: trivial tests; 2,000,000 is about 1.7 ms here)")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "bench-gtest"))
    parser.add_argument("--peers-python", default=os.environ.get("BENCH_PEERS_PYTHON", ""))
    parser.add_argument("--run-testsuite", default=shutil.which("run-testsuite") or "")
    parser.add_argument("--json", help="also save the figures here")
    args = parser.parse_args()
    if shutil.which("g++") is None or not os.path.exists("/usr/include/gtest/gtest.h"):
        sys.exit("bench_gtest: needs g++ and GoogleTest (apt-get install g++ libgtest-dev)")
    binary = build(args.tests, args.cache)
    env = {**os.environ, "BENCH_SPIN": str(args.spin), "NO_COLOR": "1"}
    env.pop("GTEST_TOTAL_SHARDS", None)
    env.pop("GTEST_SHARD_INDEX", None)

    work = tempfile.mkdtemp(prefix="bench-gtest-")
    suite = os.path.join(work, "suite")
    os.makedirs(os.path.join(suite, "unit"))
    with open(os.path.join(suite, "suite.yaml"), "w") as handle:
        handle.write("name: bench-gtest\n")
    with open(os.path.join(suite, "unit", "test.yaml"), "w") as handle:
        handle.write(f"driver: gtest\noptions:\n  binary: {binary}\n")
    lit_dir = os.path.join(work, "lit")
    os.makedirs(lit_dir)
    os.symlink(binary, os.path.join(lit_dir, "BenchTests"))
    with open(os.path.join(lit_dir, "lit.cfg.py"), "w") as handle:
        handle.write(
            "import lit.formats\nconfig.name = 'bench-gtest'\n"
            "config.test_format = lit.formats.GoogleTest('.', 'Tests')\n"
            "config.test_source_root = config.test_exec_root = os.path.dirname(__file__)\n"
            "config.environment['BENCH_SPIN'] = os.environ.get('BENCH_SPIN', '0')\n"
        )
    rts = [args.run_testsuite] if args.run_testsuite else [sys.executable, "-m", "run_testsuite"]
    lit = None
    if args.peers_python:
        probe = subprocess.run([args.peers_python, "-c", "import lit"], capture_output=True)
        lit = [args.peers_python, "-c", "import lit.main; lit.main.main()"] if probe.returncode == 0 else None
    if lit is None:
        print("lit: not available (give --peers-python with lit installed); skipped", file=sys.stderr)

    out = os.path.join(work, "out")
    hist = os.path.join(work, "out-hist")

    def once() -> tuple[float, float]:
        wall, cpu, proc = timed([binary, "--gtest_brief=1"], env)
        if "PASSED" not in proc.stdout:
            sys.exit(f"the binary failed:\n{proc.stdout[-2000:]}")
        return wall, cpu

    def run_rts(directory: str, fresh: bool) -> tuple[float, float]:
        if fresh:
            shutil.rmtree(directory, ignore_errors=True)
        wall, cpu, proc = timed([*rts, suite, "-o", directory, "-j", str(args.jobs), "-q", "--no-html"], env)
        with open(os.path.join(directory, "new", "results", "unit.json")) as handle:
            result = json.load(handle)
        passed = sum(sub["status"] == "PASS" for sub in result.get("subresults", ()))
        if proc.returncode != 0 or passed != args.tests:
            sys.exit(f"run-testsuite: exit {proc.returncode}, {passed} passed:\n{proc.stdout[-2000:]}{proc.stderr}")
        return wall, cpu

    def run_lit() -> tuple[float, float]:
        for name in os.listdir(lit_dir):
            if name.endswith(".json") or name == ".lit_test_times.txt":
                os.unlink(os.path.join(lit_dir, name))
        wall, cpu, proc = timed([*lit, "-q", "-j", str(args.jobs), lit_dir], env, cwd=lit_dir)
        if proc.returncode != 0:
            sys.exit(f"lit failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return wall, cpu

    runners = {
        "once": once,
        "rts": lambda: run_rts(out, True),
        "rts-hist": lambda: run_rts(hist, False),
        **({"lit": run_lit} if lit else {}),
    }
    run_rts(hist, True)  # history for rts-hist
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for round_number in range(args.repeat):
        for name, runner in runners.items():
            figures[name].append(runner())
        print(f"round {round_number + 1}: " + "  ".join(f"{n} {w[-1][0]:.2f}s" for n, w in figures.items()), file=sys.stderr)
    with open(os.path.join(hist, "new", "results", "unit.json")) as handle:
        shards = sum(c["step"].startswith("shard-") and c["cmd"][1].startswith("GTEST_TOTAL") for c in json.load(handle)["commands"])

    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in figures.items()
    }
    single_cpu = medians["once"][1]
    lit_wall = medians["lit"][0] if "lit" in medians else None
    print(f"\n{args.tests} GoogleTest tests, {args.spin} spins each, -j {args.jobs}, medians of {args.repeat}"
          f" (rts-hist ran {shards} shards)")
    print(f"{'run':<10} {'wall':>8} {'cpu':>8} {'wall/lit':>9} {'cpu/once':>9}")
    for name, (wall, cpu) in medians.items():
        versus = f"{wall / lit_wall:.2f}" if lit_wall else "-"
        print(f"{name:<10} {wall:>7.2f}s {cpu:>7.2f}s {versus:>9} {cpu / single_cpu:>9.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "runs": figures, "medians": medians, "shards_with_history": shards}, handle, indent=2)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
