"""run-testsuite at 10,000 testcases: planning time, whole-run time, memory.

    python bench/bench_scale.py [--peers-python PATH] [--repeat N] [-j N]
                                [--count N] [--only plan|run] [--with-e3]
                                [--source DIR] [--profile DIR] [--json FILE] [--memory]

plan: a suite of ``--count`` testcases (`echo hello`, diff driver, a
  test.out baseline) in 100 directories, with dependencies: every testcase
  whose number is not a multiple of 10 depends on the previous multiple of
  10; multiples of 10 chain to the previous multiple of 10 inside their
  hundred, and multiples of 100 chain to the previous multiple of 100 (a
  chain ~110 deep). In a fresh process, ``run_testsuite.loader.build_plan`` is
  timed: discovery, YAML parsing, schema validation, fragments, the DAG
  and its cycle check, together. Twice per repeat: with an empty output
  directory (no spec cache: every spec parsed and validated) and with the
  spec cache the first left (saved after the timing). The import of
  run_testsuite.loader and the whole process (interpreter start included) are
  timed too. Target: build_plan under 3 s. (The files are in the page
  cache: "cold" is the process, not the disk.)

run: ``--count`` trivial testcases (no dependencies; the "trivial"
  workload of workloads.py) at -j 16: run-testsuite's wall time, through a
  wrapper that calls run_testsuite.cli.main and reports getrusage's peak RSS of the
  main process (RUSAGE_SELF) and of the largest descendant
  (RUSAGE_CHILDREN: the workers and the commands they waited for). Once
  with a fresh output directory, then again on the same one (spec cache
  and history warm, the previous run rotated away). lit runs the same
  testcases (its workloads.py layout) for the ratio; e3-testsuite too with
  --with-e3 (slow: minutes at this size). Targets: main process under
  200 MB; run-testsuite at or below lit's time.

list: ``run-testsuite SUITE --list`` on the run's suite, in a fresh
  process with the spec cache warm (the run made it): wall time and peak
  RSS. Target at 100,000 testcases: under 10 s.

memory (--memory): where the main process's memory goes, per testcase, in
  a child process under tracemalloc: the plan as planning leaves it (with
  the spec and file-hash caches and merged specs), what the run keeps of
  it once those are let go, split by the modules that allocated it (the
  testcase and fragment objects, discovery's paths, keys, the DAG), and
  what the run keeps per result (its index entry, the HTML report's
  details, spooled to a file, the slim result for history, the fragment
  timings). Bytes per
  testcase times the count is the model of the main process's heap; RSS
  adds the interpreter (about 40 MB) and the allocator's slack.

The 100,000-testcase case: ``--count 100000 --memory`` (about 12 minutes
here with lit beside it). Targets there: main process under 400 MB,
at or below lit's time, --list under 10 s.

Best of ``--repeat`` for every figure (the machine may be shared).
--profile DIR runs each run-testsuite measurement once more under cProfile
(untimed) and prints where the time goes.

Standard library only. Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

# Sibling modules: this file is run as a script, so bench/ is on sys.path.
from tools import E3Testsuite, Invocation, Lit, log, scratch_dir, tail, timed
from workloads import Case, Workload, make_workloads, write_cases_run_testsuite, write_run_testsuite

PLAN_TARGET_S = 3.0  # at 10,000 testcases; linear in the count
LIST_TARGET_S = 10.0  # at 100,000 testcases


def rss_target_mb(count: int) -> float:
    """The main process's budget: 200 MB at 10,000 testcases, 400 MB at 100,000."""
    return 200.0 if count <= 10000 else 400.0


# The code run in fresh processes ----------------------------------------------

# argv: ROOT OUTPUT_DIR RESULT_JSON SAVE_CACHE(0/1) [PROFILE_FILE]
_PLAN_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from run_testsuite.loader import build_plan
t1 = time.perf_counter()
c1 = time.process_time()
root, out, result_json, save = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
profile = sys.argv[5] if len(sys.argv) > 5 else None
work = os.path.join(out, "new", "work")
if profile:
    import cProfile
    prof = cProfile.Profile()
    plan = prof.runcall(build_plan, root, [], out, work)
    prof.dump_stats(profile)
else:
    plan = build_plan(root, [], out, work)
t2 = time.perf_counter()
c2 = time.process_time()
early = [p for p in plan.testcases if p.result is not None]
doc = {
    "import_s": t1 - t0,
    "build_s": t2 - t1,
    "build_cpu_s": c2 - c1,
    "testcases": len(plan.testcases),
    "fragments": len(plan.fragments),
    "edges": sum(len(s) for s in plan.graph.succs),
    "early": len(early),
    "first_early": early[0].result.message[:500] if early else None,
}
cache = getattr(plan, "spec_cache", None)
doc["cache_entries"] = len(cache.entries) if cache is not None else None
if save and cache is not None:
    cache.save()
hashes = getattr(plan, "file_hashes", None)  # the keys' file hash cache, where there is one
if save and hashes is not None:
    hashes.save()
with open(result_json, "w") as f:
    json.dump(doc, f)
"""

# argv: RESULT_JSON [run-testsuite arguments...]; $BENCH_PROFILE: profile file
_RUN_WRAPPER = r"""
import json, os, resource, sys, time
result_json, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
from run_testsuite.cli import main
profile = os.environ.pop("BENCH_PROFILE", None)
if profile:
    import cProfile
    prof = cProfile.Profile()
    rc = prof.runcall(main, argv)
    prof.dump_stats(profile)
else:
    rc = main(argv)
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(result_json, "w") as f:
    json.dump({
        "main_s": time.perf_counter() - t0,
        "rc": rc,
        "self_maxrss_kb": me.ru_maxrss,
        "children_maxrss_kb": kids.ru_maxrss,
        "self_cpu_s": me.ru_utime + me.ru_stime,
        "children_cpu_s": kids.ru_utime + kids.ru_stime,
    }, f)
sys.exit(rc)
"""


# argv: ROOT OUTPUT_DIR RESULT_JSON
_MEMORY_CHILD = r"""
import gc, json, sys, tracemalloc
tracemalloc.start()
from run_testsuite.loader import build_plan
from array import array
from run_testsuite.index import index_entry
from run_testsuite.reporters import DetailsSpool
from run_testsuite.reports import html
from run_testsuite.results import CommandRecord, Result, Status
root, out, result_json = sys.argv[1:4]

GROUPS = [  # (what, module path fragments), first match wins
    ("spec cache (planning only)", ("spec_cache.py", "json/decoder.py")),
    ("key parts and keys", ("keys.py", "json/encoder.py", "file_hashes.py")),
    ("discovery: names and paths", ("discovery.py",)),
    ("the DAG and links", ("dag.py", "links.py")),
    ("testcases and fragments", ("loader.py", "plan.py", "fragment.py", "drivers/", "posixpath", "yaml/", "<string>")),
]

def by_group(snapshot, before):
    sizes = {name: 0 for name, _ in GROUPS}
    sizes["other"] = 0
    for stat in snapshot.compare_to(before, "filename"):
        where = stat.traceback[0].filename
        name = next((g for g, parts in GROUPS if any(p in where for p in parts)), "other")
        sizes[name] += stat.size_diff
    return sizes

gc.collect()
start = tracemalloc.take_snapshot()
plan = build_plan(root, [], out, out + "/new/work")
count = len(plan.testcases)
planning = by_group(tracemalloc.take_snapshot(), start)
plan.let_go()
gc.collect()
kept = by_group(tracemalloc.take_snapshot(), start)

def per(make):
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    held = [make(n) for n in range(count)]
    gc.collect()
    return (tracemalloc.get_traced_memory()[0] - before) / count, held

def result(n):
    name = plan.testcases[n].name
    return Result(name, Status.PASS, description="", driver="diff", tags=[], start=1.7e9 + n, duration=0.004,
                  slot=n % 16 + 1, commands=[CommandRecord("run", ["echo", "hello"], 0, 0.003, False, 300.0)],
                  output="hello\n", spec_file=plan.testcases[n].spec_file)

results = [result(n) for n in range(count)]
run = {}
run["index entry"], entries = per(lambda n: index_entry(results[n], f"results/{plan.testcases[n].safe_name}.json"))
spool = DetailsSpool(out + "/details-spool.jsonl")  # as the run keeps them: in a file
run["HTML details (spooled to a file)"], details = per(
    lambda n: spool.add(f"results/{n}.json", html.details(results[n].to_json()))
)
spool.remove()
run["slim result (history, exit status)"], slims = per(lambda n: results[n].slim())
gc.collect()
before = tracemalloc.get_traced_memory()[0]
timings = ([None] * count, bytearray(count), array("d", bytes(8 * count)))  # as Verdicts keeps them
for n in range(count):
    timings[0][n], timings[1][n], timings[2][n] = "run", 1, 0.004
run["fragment timings (history)"] = (tracemalloc.get_traced_memory()[0] - before) / count
with open(result_json, "w") as f:
    json.dump({"count": count, "planning": {k: v / count for k, v in planning.items()},
               "kept": {k: v / count for k, v in kept.items()}, "run": run}, f)
"""


@dataclass
class Child:
    """How to start a Python process that imports run-testsuite."""

    python: str
    env: Optional[Dict[str, str]]
    source: str
    cwd: str

    @classmethod
    def find(cls, python: str, source: Optional[str], cwd: str) -> "Child":
        """``python`` with run-testsuite installed (``source``: a directory
        to put first on its PYTHONPATH, holding another ``run_testsuite``)."""
        env = None
        if source:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        probe = subprocess.run(
            [python, "-c", "import run_testsuite, os; print(os.path.dirname(run_testsuite.__file__))"],
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd,
        )
        if probe.returncode != 0:
            raise SystemExit(
                f"cannot import run_testsuite with {python} (pip install . for it first):\n{probe.stderr}"
            )
        return cls(python, env, probe.stdout.strip(), cwd)


# plan ------------------------------------------------------------------------


def dependency_cases(count: int) -> List[Case]:
    """``count`` diff testcases in directories of 100, with dependencies."""
    width = max(4, len(str(count - 1)))

    def name(i: int) -> str:
        return f"g{i // 100:0{max(2, len(str((count - 1) // 100)))}d}/t{i:0{width}d}"

    cases = []
    for i in range(count):
        if i % 10:
            dep = i - i % 10  # the previous multiple of 10
        elif i % 100:
            dep = i - 10  # chain of tens inside a hundred
        elif i:
            dep = i - 100  # chain of hundreds across the suite
        else:
            dep = None
        depends = (name(dep),) if dep is not None else ()
        cases.append(Case(name(i), "echo hello", 0.0, depends=depends, driver="diff", expected="hello\n"))
    return cases


@dataclass
class PlanFigure:
    cache: str  # "empty" or "warm"
    process_s: List[float] = field(default_factory=list)
    import_s: List[float] = field(default_factory=list)
    build_s: List[float] = field(default_factory=list)
    build_cpu_s: List[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    error: Optional[str] = None


def plan_child(child: Child, root: str, out: str, save: bool, tmp: str, profile: Optional[str] = None):
    result = os.path.join(tmp, "plan-result.json")
    if os.path.exists(result):
        os.remove(result)
    argv = [child.python, "-c", _PLAN_CHILD, root, out, result, "1" if save else "0"]
    if profile:
        argv.append(profile)
    seconds, proc = timed(Invocation(argv, cwd=child.cwd, env=child.env))
    if proc.returncode != 0 or not os.path.exists(result):
        return seconds, None, f"exit {proc.returncode}:\n{tail(proc.stdout + proc.stderr)}"
    with open(result, encoding="utf-8") as f:
        return seconds, json.load(f), None


def bench_plan(child: Child, count: int, repeat: int, tmp: str, profile_dir: Optional[str]) -> List[PlanFigure]:
    cases = dependency_cases(count)
    root = os.path.join(tmp, "plan", "suite")
    log(f"\n== plan: writing {count} testcases with dependencies ==")
    write_cases_run_testsuite(cases, root)
    # A real suite's files are older than the 2 s in which a hash is not
    # trusted to its stat (file_hashes.RACY_SECONDS): so are these.
    time.sleep(2.5)
    edges = sum(len(c.depends) for c in cases)
    figures = {k: PlanFigure(k) for k in ("empty", "warm")}
    for rep in range(1, repeat + 1):
        out = os.path.join(tmp, "plan", f"out-{rep}")
        shutil.rmtree(out, ignore_errors=True)
        # empty: no spec cache; it saves one (after the timing) for "warm".
        for kind, save in (("empty", True), ("warm", False)):
            fig = figures[kind]
            if fig.error:
                continue
            seconds, doc, err = plan_child(child, root, out, save, tmp)
            if err is None and (doc["testcases"] != count or doc["early"] or doc["edges"] != edges):
                err = (f"plan: {doc['testcases']} testcases, {doc['edges']} edges (expected "
                       f"{count}, {edges}), {doc['early']} decided early: {doc['first_early']}")
            if err:
                fig.error = err
                log(f"\n!!! plan ({kind} cache) FAILED:\n{err}\n")
                continue
            fig.process_s.append(seconds)
            fig.import_s.append(doc["import_s"])
            fig.build_s.append(doc["build_s"])
            fig.build_cpu_s.append(doc["build_cpu_s"])
            fig.info = doc
            log(f"plan {kind:<5} cache {rep}/{repeat}: build_plan {doc['build_s']:.2f} s (CPU "
                f"{doc['build_cpu_s']:.2f} s), import "
                f"{doc['import_s']:.2f} s, process {seconds:.2f} s")
    if profile_dir:
        for kind in ("empty", "warm"):
            out = os.path.join(tmp, "plan", "out-profile")
            if kind == "empty":
                shutil.rmtree(out, ignore_errors=True)
            path = os.path.join(profile_dir, f"plan-{kind}.prof")
            plan_child(child, root, out, kind == "empty", tmp, profile=path)
            print_profile(f"build_plan, {kind} spec cache", path)
    return list(figures.values())


# run -------------------------------------------------------------------------

_SUMMARY = re.compile(r"^(\d+) testcases: (\d+) passed", re.M)


@dataclass
class RunFigure:
    tool: str
    run: str
    wall_s: List[float] = field(default_factory=list)
    usage: List[dict] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def best_index(self) -> Optional[int]:
        if self.error or not self.wall_s:
            return None
        return min(range(len(self.wall_s)), key=self.wall_s.__getitem__)


def rts_run(child: Child, w: Workload, workdir: str, jobs: int, tmp: str, profile: Optional[str] = None,
            extra: tuple = ()):
    """One run of run-testsuite through the rusage wrapper."""
    result = os.path.join(tmp, "run-result.json")
    if os.path.exists(result):
        os.remove(result)
    env = dict(child.env if child.env is not None else os.environ)
    # `python -c` puts the working directory first on sys.path, where the
    # generated suite (a directory named `suite`) would shadow the package.
    env["PYTHONSAFEPATH"] = "1"
    if profile:
        env["BENCH_PROFILE"] = profile
    argv = [child.python, "-c", _RUN_WRAPPER, result, os.path.join(workdir, "suite"),
            "-j", str(jobs), "--output-dir", os.path.join(workdir, "out"), *extra]
    seconds, proc = timed(Invocation(argv, cwd=child.cwd, env=env))
    found = _SUMMARY.search(proc.stdout)
    if proc.returncode != 0 or not found or int(found.group(2)) != w.count:
        return seconds, None, f"exit {proc.returncode}, expected {w.count} passed:\n{tail(proc.stdout + proc.stderr)}"
    with open(result, encoding="utf-8") as f:
        return seconds, json.load(f), None


def bench_run(child: Child, args: argparse.Namespace, tmp: str) -> List[RunFigure]:
    w = make_workloads(args.count, args.jobs)["trivial"]
    peers: list = []
    lit = Lit(args.peers_python)
    note = lit.unavailable()
    if note:
        log(f"note: skipping lit: {note}")
    else:
        peers.append(lit)
    if args.with_e3:
        e3 = E3Testsuite(args.peers_python)
        note = e3.unavailable()
        if note:
            log(f"note: skipping e3-testsuite: {note}")
        else:
            peers.append(e3)

    log(f"\n== run: writing {w.count} x `{w.cmd}` (diff driver) for run-testsuite"
        f"{''.join(', ' + p.name for p in peers)} ==")
    rts_dir = os.path.join(tmp, "run", "run-testsuite")
    write_run_testsuite(w, os.path.join(rts_dir, "suite"))
    time.sleep(2.5)  # older than the racy window of file hashes, as a real suite is
    dirs = {}
    for p in peers:
        dirs[p.name] = os.path.join(tmp, "run", p.name)
        os.makedirs(dirs[p.name])
        p.prepare(w, dirs[p.name])

    fresh = RunFigure("run-testsuite", "fresh")
    again = RunFigure("run-testsuite", "re-run")
    # Nothing changed since the re-run: every key is checked, nothing runs.
    cached = RunFigure("run-testsuite", "incremental")
    peer_figs = {p.name: RunFigure(f"{p.name} {p.version}", "fresh") for p in peers}
    for rep in range(1, args.repeat + 1):
        # Round-robin, so that a slow spell of the machine is shared.
        shutil.rmtree(os.path.join(rts_dir, "out"), ignore_errors=True)
        for fig in (fresh, again, cached):
            if fig.error:
                continue
            extra = (*args.rts_args.split(), *(("--incremental",) if fig is cached else ()))
            seconds, usage, err = rts_run(child, w, rts_dir, args.jobs, tmp, extra=extra)
            if err:
                fig.error = err
                log(f"\n!!! run-testsuite ({fig.run}) FAILED:\n{err}\n")
                continue
            fig.wall_s.append(seconds)
            fig.usage.append(usage)
            log(f"run-testsuite {fig.run:<7} {rep}/{args.repeat}: {seconds:.2f} s, main "
                f"{usage['self_maxrss_kb'] / 1024:.0f} MB, children max "
                f"{usage['children_maxrss_kb'] / 1024:.0f} MB, CPU main {usage['self_cpu_s']:.1f} s,"
                f" children {usage['children_cpu_s']:.1f} s")
        for p in peers:
            fig = peer_figs[p.name]
            if fig.error:
                continue
            outcome = p.run(w, dirs[p.name], args.jobs)
            if outcome.error:
                fig.error = outcome.error
                log(f"\n!!! {p.name} FAILED:\n{outcome.error}\n")
                continue
            fig.wall_s.append(outcome.seconds)
            log(f"{p.name:<13} {'fresh':<7} {rep}/{args.repeat}: {outcome.seconds:.2f} s")
    if args.profile:
        shutil.rmtree(os.path.join(rts_dir, "out"), ignore_errors=True)
        for kind in ("fresh", "re-run"):
            path = os.path.join(args.profile, f"run-{kind}.prof")
            seconds, usage, err = rts_run(child, w, rts_dir, args.jobs, tmp, profile=path)
            print_profile(f"whole run, {kind} output dir (main process; {seconds:.2f} s under cProfile)", path)
    return [fresh, again, cached, *peer_figs.values()]


def bench_list(child: Child, args: argparse.Namespace, tmp: str) -> Optional[dict]:
    """``--list`` on the run's suite (its spec cache warm): wall and peak RSS."""
    rts_dir = os.path.join(tmp, "run", "run-testsuite")
    walls, rss = [], []
    env = dict(child.env if child.env is not None else os.environ)
    env["PYTHONSAFEPATH"] = "1"
    tries = max(2, args.repeat)  # the first may meet a page cache the runs before emptied
    for rep in range(1, tries + 1):
        argv = ["/usr/bin/time", "-f", "%M", child.python, "-m", "run_testsuite", os.path.join(rts_dir, "suite"),
                "--output-dir", os.path.join(rts_dir, "out"), "--list"]
        seconds, proc = timed(Invocation(argv, cwd=child.cwd, env=env))
        if proc.returncode != 0:
            log(f"\n!!! --list FAILED:\n{tail(proc.stdout + proc.stderr)}\n")
            return None
        walls.append(seconds)
        rss.append(int(proc.stderr.strip().splitlines()[-1]) / 1024)
        log(f"--list {rep}/{tries}: {seconds:.2f} s, {rss[-1]:.0f} MB")
    return {"wall_s": walls, "rss_mb": rss}


def bench_memory(child: Child, args: argparse.Namespace, tmp: str) -> Optional[dict]:
    rts_dir = os.path.join(tmp, "run", "run-testsuite")
    result = os.path.join(tmp, "memory.json")
    log("\n== memory: the plan and what the run keeps per result, under tracemalloc ==")
    argv = [child.python, "-c", _MEMORY_CHILD, os.path.join(rts_dir, "suite"), os.path.join(tmp, "memory-out"), result]
    seconds, proc = timed(Invocation(argv, cwd=child.cwd, env=child.env))
    if proc.returncode != 0:
        log(f"\n!!! memory FAILED:\n{tail(proc.stdout + proc.stderr)}\n")
        return None
    with open(result, encoding="utf-8") as f:
        return json.load(f)


# output ----------------------------------------------------------------------


def print_profile(title: str, path: str, lines: int = 25) -> None:
    print(f"\n---- cProfile: {title} ({path})")
    for order in ("cumulative", "tottime"):
        print(f"[by {order}]")
        stats = pstats.Stats(path, stream=sys.stdout)
        stats.strip_dirs().sort_stats(order).print_stats(lines)


def best(values: List[float]) -> Optional[float]:
    return min(values) if values else None


def print_plan(figs: List[PlanFigure], count: int) -> None:
    target = PLAN_TARGET_S * max(1.0, count / 10000)
    print(f"plan: build_plan on {count} testcases with dependencies, fresh process"
          f" (best of each; target build_plan < {target:.0f} s)")
    header = (f"{'spec cache':<11} {'build_plan(s)':>13} {'its CPU(s)':>10} {'import(s)':>9} "
              f"{'process(s)':>10}  target")
    print(header)
    print("-" * len(header))
    for f in figs:
        if f.error:
            print(f"{f.cache:<11} {'FAILED':>13}")
            continue
        b = best(f.build_s)
        verdict = "ok" if b < target else "MISSED"
        print(f"{f.cache:<11} {b:>13.2f} {best(f.build_cpu_s):>10.2f} {best(f.import_s):>9.2f} "
              f"{best(f.process_s):>10.2f}  {verdict}")
    info = next((f.info for f in figs if f.info), None)
    if info:
        print(f"({info['testcases']} testcases, {info['fragments']} fragments, {info['edges']} edges;"
              " CPU = build_plan's user+sys time, which a busy machine does not inflate;"
              " process = interpreter start + import + build_plan + exit)")


def print_run(figs: List[RunFigure], count: int, jobs: int) -> None:
    print(f"run: {count} trivial testcases (echo hello, diff), -j {jobs} (best of each)")
    ref = next((f for f in figs if f.tool == "run-testsuite" and f.run == "fresh"), None)
    ref_s = best(ref.wall_s) if ref and not ref.error else None
    header = (f"{'tool':<22} {'run':<7} {'wall(s)':>7} {'vs rts':>7}  {'main RSS':>8} "
              f"{'child max':>9} {'main CPU':>8} {'child CPU':>9}  target")
    print(header)
    print("-" * len(header))
    lit = next((f for f in figs if f.tool.startswith("lit") and not f.error and f.wall_s), None)
    for f in figs:
        i = f.best_index
        if i is None:
            print(f"{f.tool:<22} {f.run:<7} {'FAILED' if f.error else 'n/a':>7}")
            continue
        wall = f.wall_s[i]
        ratio = f"{wall / ref_s:.2f}" if ref_s else "n/a"
        cols = f"{'':>8} {'':>9} {'':>8} {'':>9}"
        target = ""
        if f.usage:
            u = f.usage[i]
            rss = max(x["self_maxrss_kb"] for x in f.usage) / 1024  # worst, not the best run's
            cols = (f"{rss:>6.0f}MB {max(x['children_maxrss_kb'] for x in f.usage) / 1024:>7.0f}MB "
                    f"{u['self_cpu_s']:>7.1f}s {u['children_cpu_s']:>8.1f}s")
            budget = rss_target_mb(count)
            verdicts = [f"RSS<{budget:.0f}MB {'ok' if rss < budget else 'MISSED'}"]
            if lit:
                verdicts.append(f"<=lit {'ok' if wall <= best(lit.wall_s) else 'MISSED'}")
            target = ", ".join(verdicts)
        print(f"{f.tool:<22} {f.run:<7} {wall:>7.2f} {ratio:>7}  {cols}  {target}".rstrip())
    print("vs rts = wall / run-testsuite's fresh run; RSS = peak (the worst of the repeats);"
          " CPU = user+sys of the best run; child = workers and the commands they ran")


def print_list(figure: dict, count: int) -> None:
    i = min(range(len(figure["wall_s"])), key=figure["wall_s"].__getitem__)
    wall = figure["wall_s"][i]
    verdict = ("ok" if wall < LIST_TARGET_S else "MISSED") if count >= 100000 else "n/a below 100,000"
    print(f"--list of {count} testcases (spec cache warm, best of {len(figure['wall_s'])}): {wall:.2f} s,"
          f" peak RSS {max(figure['rss_mb']):.0f} MB; target < {LIST_TARGET_S:.0f} s at 100,000: {verdict}")


def print_memory(doc: dict, count: int) -> None:
    print(f"memory of the main process, bytes per testcase (tracemalloc; x {count} for the heap):")
    print(f"{'':<38} {'planning':>9} {'run':>9}")
    for name in doc["planning"]:
        print(f"{name:<38} {doc['planning'][name]:>9.0f} {doc['kept'][name]:>9.0f}")
    plan_total, kept_total = sum(doc["planning"].values()), sum(doc["kept"].values())
    print(f"{'plan, total':<38} {plan_total:>9.0f} {kept_total:>9.0f}")
    for name, size in doc["run"].items():
        print(f"{'per result: ' + name:<38} {'':>9} {size:>9.0f}")
    run_total = kept_total + sum(doc["run"].values())
    print(f"{'whole run, per testcase':<38} {'':>9} {run_total:>9.0f}  "
          f"(x {count}: {run_total * count / 1e6:.0f} MB of heap at the end, "
          f"{plan_total * count / 1e6:.0f} MB when planning ends)")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="run-testsuite at 10,000 testcases: planning, running, memory.")
    p.add_argument("--peers-python", default=os.environ.get("BENCH_PEERS_PYTHON", sys.executable),
                   help="Python whose environment has lit (and e3-testsuite)")
    p.add_argument("--python", default=sys.executable,
                   help="Python that imports run-testsuite (default: this one)")
    p.add_argument("--source", metavar="DIR",
                   help="a directory holding another run_testsuite package, put first on PYTHONPATH")
    p.add_argument("--repeat", type=int, default=2, help="best of N (default 2)")
    p.add_argument("-j", "--jobs", type=int, default=16, help="slots for the run (default 16)")
    p.add_argument("--count", type=int, default=10000, help="testcases (default 10000)")
    p.add_argument("--only", choices=["plan", "run"], help="one half only")
    p.add_argument("--with-e3", action="store_true", help="also time e3-testsuite (minutes at 10,000)")
    p.add_argument("--profile", metavar="DIR", help="also profile each run-testsuite measurement (untimed), save and print")
    p.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    p.add_argument("--memory", action="store_true",
                   help="also break the main process's memory down per testcase (tracemalloc, a few minutes at 100,000)")
    p.add_argument("--rts-args", default="", metavar="ARGS",
                   help="more arguments for each run of run-testsuite, e.g. '--cleanup none'")
    p.add_argument("--keep", action="store_true", help="keep the generated suites and print where")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.jobs < 1 or args.count < 100:
        p.error("--repeat and -j must be at least 1, --count at least 100")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    plan_figs: List[PlanFigure] = []
    run_figs: List[RunFigure] = []
    with scratch_dir("bench-scale-", args.keep) as tmp:
        # An empty directory to run children in: `python -c` puts the cwd
        # first on sys.path, where nothing generated should be importable.
        cwd = os.path.join(tmp, "cwd")
        os.mkdir(cwd)
        child = Child.find(args.python, args.source, cwd)
        log(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load {os.getloadavg()[0]:.2f}")
        log(f"run-testsuite: {child.python}, run_testsuite imported from {child.source}")
        if args.only in (None, "plan"):
            plan_figs = bench_plan(child, args.count, args.repeat, tmp, args.profile)
        list_fig = memory = None
        if args.only in (None, "run"):
            run_figs = bench_run(child, args, tmp)
            list_fig = bench_list(child, args, tmp)
            if args.memory:
                memory = bench_memory(child, args, tmp)

    print()
    if plan_figs:
        print_plan(plan_figs, args.count)
        print()
    if run_figs:
        print_run(run_figs, args.count, args.jobs)
    if list_fig:
        print()
        print_list(list_fig, args.count)
    if memory:
        print()
        print_memory(memory, args.count)
    if args.json:
        doc = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "python": args.python, "source": args.source or "installed", "count": args.count, "jobs": args.jobs,
            "plan": [asdict(f) for f in plan_figs],
            "run": [asdict(f) for f in run_figs],
            "list": list_fig,
            "memory": memory,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
        log(f"figures saved to {args.json}")
    failed = any(f.error for f in plan_figs) or any(f.error for f in run_figs)
    failed = failed or (args.only in (None, "run") and list_fig is None) or (args.memory and memory is None)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
