"""``run-testsuite validate DIR``: check every spec without running anything.

It plans the whole suite as a run would (schema, drivers and their options,
baselines, dependencies and cycles, set-ups and resources), compiles every
control condition, and prints each problem as ``file:line:col: message``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from run_testsuite import spec as specs
from run_testsuite.options import definition
from run_testsuite.reports.text import counted
from run_testsuite.results import Reason, Status


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="run-testsuite validate",
        description="Check every spec of a suite without running anything: schema, drivers and their options,"
        " baselines, dependencies and cycles, set-ups, resources and control conditions. Each problem is"
        " printed as file:line:col: message; the exit status is 1 if there is any.",
    )
    parser.add_argument("root", help="the suite directory")
    parser.add_argument(
        "-D",
        dest="define",
        action="append",
        type=definition,
        metavar="NAME=VALUE",
        help="check with this suite parameter's value, as a run with it would (repeatable)",
    )
    args = parser.parse_args(argv)
    from run_testsuite.loader import build_plan
    from run_testsuite.plan import NothingSelected, UsageError
    from run_testsuite.selection import Selection

    with tempfile.TemporaryDirectory(prefix="run-testsuite-validate-") as scratch:
        try:
            selection = Selection(params=dict(args.define or []))
            plan = build_plan(args.root, [], scratch, os.path.join(scratch, "work"), selection=selection)
        except UsageError as exc:
            print(f"run-testsuite: error: {exc}", file=sys.stderr)
            return 2
        except NothingSelected as exc:  # an empty suite: nothing to check, said
            print(f"run-testsuite: {exc}", file=sys.stderr)
            return exc.exit_status
    problems: list[str] = []
    for planned in plan.testcases:
        result = planned.result
        if result is not None and result.status is Status.ERROR:
            for line in result.message.splitlines():
                located = result.reason is Reason.SPEC or specs.is_located(line)
                problems.append(line if located else f"{planned.spec_file}:1:1: {line}")
        if planned.kind == "testcase" and planned.control:
            problems.extend(_check_conditions(planned.spec_file, list(planned.control)))
    problems.extend(_check_links_of_unloaded(plan))
    problems.extend(_check_setups(plan.suite))
    problems.extend(_check_drivers(plan.suite, {planned.driver for planned in plan.testcases}))
    _warn_quarantine(plan)
    for line in dict.fromkeys(problems):  # each once, in order
        print(line)
    for line in plan.warnings:  # said, but not problems: the exit status stays
        print(line)
    checked = sum(1 for p in plan.testcases if p.kind == "testcase")
    if problems:
        print(
            f"{len(set(problems))} problem{'s' if len(set(problems)) > 1 else ''} in {counted(checked)}",
            file=sys.stderr,
        )
        return 1
    print(f"{counted(checked)}: all valid", file=sys.stderr)
    return 0


def _warn_quarantine(plan) -> None:
    """suite.yaml's quarantine naming no testcase: a typo, or one gone."""
    from run_testsuite.variants import base_name

    names = {p.name for p in plan.testcases} | {base_name(p.name) for p in plan.testcases}
    for name in plan.suite.quarantine:
        if name not in names:
            line, col = specs.key_position(plan.suite.path or "", ["quarantine"])
            plan.warnings.append(f"{plan.suite.path}:{line}:{col}: warning: quarantine: '{name}' names no testcase")


def _check_setups(suite) -> list[str]:
    """Every set-up of suite.yaml, those no testcase needs too (a run plans
    only the needed ones): what it needs exists, its resources too."""
    from run_testsuite.links import declared, unknown_names
    from run_testsuite.spec_checks import check_resources

    problems = []
    path = suite.path or ""
    for name, spec in suite.setup.items():
        missing = [n for n in spec.get("needs", []) if n not in suite.setup]
        if missing:
            problems.append(unknown_names(path, ["setup", name, "needs"], missing, declared(suite.setup)))
        try:
            check_resources(suite, spec.get("resources", {}), path, ["setup", name])
        except specs.SpecError as exc:
            problems.extend(exc.render().splitlines())
    return problems


def _check_links_of_unloaded(plan) -> list[str]:
    """The dependency and set-up names of testcases that did not load (a
    schema error, say), which the run checks only once they load: so that
    one pass of validate names every problem it can."""
    from run_testsuite.links import declared, unknown_names
    from run_testsuite.variants import base_name

    names = {planned.name for planned in plan.testcases}
    names |= {base_name(name) for name in names}  # a matrix testcase by its directory's name
    problems = []
    seen: set[str] = set()
    for planned in plan.testcases:
        result = planned.result
        if planned.kind != "testcase" or planned.fragments or result is None or result.reason is not Reason.SPEC:
            continue  # loaded (its links were checked), or not a spec problem
        if planned.spec_file in seen:  # its variants alike
            continue
        seen.add(planned.spec_file)
        try:
            raw = specs.load_yaml(planned.spec_file)
        except specs.SpecError:
            continue
        if not isinstance(raw, dict):
            continue
        for key, known, hint in (("depends", names, ""), ("needs", set(plan.suite.setup), declared(plan.suite.setup))):
            listed = raw.get(key)
            if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
                continue  # the schema's error says what is wrong with it
            unknown = [name for name in listed if name not in known]
            if unknown:
                problems.append(unknown_names(planned.spec_file, [key], unknown, hint, listed))
    return problems


def _check_drivers(suite, used: set[str]) -> list[str]:
    """The drivers suite.yaml names that no testcase uses (a run loads only
    the used ones, whose problems their testcases say at their ``driver:``),
    located at their line in suite.yaml."""
    from run_testsuite.drivers.registry import DriverLoadError, DriverNotFound, resolve

    problems = []
    for name in sorted(set(suite.drivers) - used):
        try:
            resolve(name, suite.drivers, suite.root)
        except (DriverNotFound, DriverLoadError) as exc:
            line, col = specs.key_position(suite.path or "", ["drivers", name])
            problems.append(f"{suite.path}:{line}:{col}: {exc}")
    return problems


def _check_conditions(spec_file: str, entries: list[dict]) -> list[str]:
    """Compile every condition, not only the one a run would reach."""
    from run_testsuite.conditions import ExpressionError, compile_condition

    problems = []
    for number, entry in enumerate(entries):
        for kind in ("skip", "xfail"):
            if kind in entry:
                try:
                    compile_condition(entry[kind])
                except ExpressionError as exc:
                    line, col = specs.key_position(spec_file, ["control", number, kind])
                    problems.append(f"{spec_file}:{line}:{col}: control: {exc}")
    return problems
