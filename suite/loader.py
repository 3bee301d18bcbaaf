"""Turn a suite directory into a Plan: every testcase, its fragments, one DAG.

Problems found here (invalid specs, unknown drivers, missing dependencies,
cycles) become ERROR results for the testcases concerned; the rest of the
suite still runs.
"""

from __future__ import annotations

import fnmatch
import os
import re
import traceback
from dataclasses import dataclass, field

import drivers
from drivers.api import Command, Driver, Fragment, Testcase
from suite import spec as specs
from suite.dag import Graph
from suite.discovery import SUITE_FILE, Found, discover
from suite.history import HistoryView
from suite.keys import digest_tree, make_key
from suite.spec_cache import SpecCache, stamp
from suite.variants import Variant, base_name, variants
from suite.results import Reason, Result, Status

DEFAULT_TIMEOUT = 300.0
# Set-up fragments appear in results under this prefix: "setup:build".
SETUP_PREFIX = "setup:"


class UsageError(Exception):
    """A problem with how run-testsuite was called: exit status 2."""


@dataclass
class Planned:
    """One testcase in the plan, with its fragments or its early verdict."""

    name: str
    spec_file: str
    source_dir: str
    safe_name: str
    description: str = ""
    driver: str = ""
    tags: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # set-up fragments from suite.yaml
    fragments: list[int] = field(default_factory=list)
    result: Result | None = None  # decided before anything runs
    kind: str = "testcase"  # or "setup"
    xfail: str | None = None  # control: a failure is expected, for this reason
    retries: int = 0
    repeat_suffix: str = ""

    def verdict(self, status: Status, reason: Reason | None, message: str, **fields) -> Result:
        """A Result for this testcase, carrying what the plan knows of it."""
        return Result(
            name=self.name,
            kind=self.kind,
            status=status,
            reason=reason,
            message=message,
            description=self.description,
            driver=self.driver,
            tags=self.tags,
            spec_file=self.spec_file,
            **fields,
        )
    spec: dict = field(default_factory=dict)  # merged, for the key
    key: str | None = None  # for history and --incremental


@dataclass
class Plan:
    suite: specs.SuiteConfig
    testcases: list[Planned]
    fragments: list[Fragment]
    owner: list[int]  # fragment index -> testcase index
    graph: Graph
    dependents: list[list[int]]  # testcase index -> testcases that depend on it
    output_dir: str
    work_dir: str
    spec_cache: SpecCache | None = None  # saved by a run, not by --list


def load_suite_config(root: str, cache: SpecCache | None = None) -> specs.SuiteConfig:
    path = os.path.join(root, SUITE_FILE)
    name = os.path.basename(os.path.abspath(root))
    if not os.path.isfile(path):
        return specs.SuiteConfig(root, name, {}, {})
    data = cache.get(path) if cache is not None else None
    if data is None:
        file_stamp = stamp(path)
        data = specs.load_and_validate(path, "suite")
        if cache is not None:
            cache.put(path, file_stamp, data)
    return specs.SuiteConfig(
        root,
        data.get("name", name),
        data.get("defaults", {}),
        data.get("drivers", {}),
        path,
        setup=data.get("setup", {}),
        params=data.get("params", {}),
        resources=data.get("resources", {}),
        cpus_per_slot=data.get("cpus_per_slot"),
    )


def select(found: list[Found], patterns: list[str]) -> list[Found]:
    """Testcases whose name starts with, or matches the glob of, a pattern."""
    if not patterns:
        return found
    chosen = []
    unmatched = set(patterns)
    for item in found:
        matching = [p for p in patterns if _matches(item.name, p)]
        if matching:
            chosen.append(item)
            unmatched.difference_update(matching)
    if unmatched:
        raise UsageError("no testcase matches " + ", ".join(repr(p) for p in sorted(unmatched)))
    return chosen


def _matches(name: str, pattern: str) -> bool:
    """A glob matches whole names; a plain name is a prefix, and one ending
    in '/' (as shells complete directories) names that directory only."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern.rstrip("/"))
    if pattern.endswith("/"):
        return name == pattern.rstrip("/") or name.startswith(pattern)
    return name.startswith(pattern)


@dataclass
class Selection:
    """What the command line asks to run, beyond the suite itself."""

    patterns: list[str] = field(default_factory=list)
    keyword: str | None = None  # -k
    tags: list[str] = field(default_factory=list)  # --tag, any of them
    failed_only: bool = False  # --failed
    incremental: bool = False  # --incremental
    repeat: int = 1  # --repeat
    params: dict[str, str] = field(default_factory=dict)  # -D name=value


def build_plan(
    root: str,
    patterns: list[str],
    output_dir: str,
    work_dir: str,
    default_timeout: float | None = None,
    history: HistoryView | None = None,
    selection: Selection | None = None,
) -> Plan:
    selection = selection or Selection()
    selection.patterns = list(patterns)
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UsageError(f"suite directory '{root}' does not exist or is not a directory")
    cache = SpecCache(output_dir)
    try:
        suite = load_suite_config(root, cache)
    except specs.SpecError as exc:
        raise UsageError(f"invalid suite configuration:\n{exc.render()}") from None
    unknown = sorted(set(selection.params) - set(suite.params))
    if unknown:
        known = ", ".join(sorted(suite.params)) or "none declared in suite.yaml"
        raise UsageError(f"unknown parameter {', '.join(map(repr, unknown))} for -D (parameters: {known})")
    keep = _keeper(selection, history)
    found = discover(root, exclude=(output_dir, work_dir))
    by_name = {item.name: item for item in found}
    builder = _Builder(suite, output_dir, work_dir, default_timeout or DEFAULT_TIMEOUT, selection, cache)

    # The selection first, then whatever it depends on, transitively.
    queue = []
    for item in select(found, selection.patterns):
        tags = builder.tags_of(item)
        queue.extend((item, v) for v in builder.variants(item) if keep(item.name + v.suffix, tags))
    index: dict[str, int] = {}
    for item, variant in queue:  # grows as dependencies are discovered
        if item.name + variant.suffix in index:
            continue
        planned = builder.load(item, variant)
        index[planned.name] = len(builder.testcases) - 1
        for dep in planned.depends:
            target = by_name.get(dep) or by_name.get(base_name(dep))
            if target is None:
                continue
            for other in builder.variants(target):
                if other.repeat == variant.repeat and target.name + other.suffix not in index:
                    queue.append((target, other))
    builder.compute_keys(index)
    if selection.incremental and history is not None:
        builder.use_cache(history)
    builder.add_setups(index)
    builder.link(index)
    return builder.plan()


def _keeper(selection: Selection, history: HistoryView | None):
    """The test of -k, --tag and --failed for one variant (name, tags)."""
    match = None
    if selection.keyword:
        from suite.keyword_expr import KeywordError, compile_keyword

        try:
            match = compile_keyword(selection.keyword)
        except KeywordError as exc:
            raise UsageError(f"-k: {exc}") from None
    wanted_tags = set(selection.tags)

    def keep(name: str, tags: list[str]) -> bool:
        if match is not None and not match(name, tags):
            return False
        if wanted_tags and not wanted_tags.intersection(tags):
            return False
        if selection.failed_only and (history is None or not history.did_not_pass(name)):
            return False
        return True

    return keep


class _Builder:
    def __init__(
        self,
        suite: specs.SuiteConfig,
        output_dir: str,
        work_dir: str,
        timeout: float,
        selection: Selection,
        cache: SpecCache,
    ):
        self.suite = suite
        self.selection = selection
        self.params = {**{k: _env_value(v) for k, v in suite.params.items()}, **selection.params}
        self.groups: dict[tuple[str, int | None], list[int]] = {}  # (directory name, repeat) -> variants
        self.output_dir = output_dir
        self.work_dir = work_dir
        self.timeout = timeout
        self.testcases: list[Planned] = []
        self.fragments: list[Fragment] = []
        self.owner: list[int] = []
        self.drivers: dict[str, Driver] = {}
        self.safe_names: set[str] = set()
        self.log_root = os.path.join(output_dir, "new", "logs")
        self.cache = cache
        self.raw_specs: dict[str, dict | specs.SpecError] = {}
        # Set-ups' file names are reserved first, so testcases can be told
        # where each set-up's directory will be before it is planned.
        self.setup_safe = {name: self._safe(SETUP_PREFIX + name) for name in suite.setup}

    def raw_spec(self, item: Found) -> dict:
        """The validated test.yaml of ``item`` (SpecError if it is not).

        Asked for several times per testcase (tags, variants, loading):
        read, or checked against the spec cache, once per run.
        """
        known = self.raw_specs.get(item.spec_file)
        if known is None:
            try:
                raw = self.cache.get(item.spec_file)
                if raw is None:
                    # Stamp first: a file changed while we read it is read again next time.
                    file_stamp = stamp(item.spec_file)
                    raw = specs.load_and_validate(item.spec_file, "testcase")
                    self.cache.put(item.spec_file, file_stamp, raw)
                known = raw
            except specs.SpecError as exc:
                known = exc
            self.raw_specs[item.spec_file] = known
        if isinstance(known, specs.SpecError):
            raise known
        return known

    def tags_of(self, item: Found) -> list[str]:
        try:
            return list(self._merge(self.raw_spec(item)).get("tags", []))
        except specs.SpecError:
            return []

    def variants(self, item: Found) -> list[Variant]:
        try:
            matrix = self.raw_spec(item).get("matrix")
        except specs.SpecError:
            matrix = None  # loads as one ERROR
        return variants(matrix, self.selection.repeat)

    def load(self, item: Found, variant: Variant = Variant()) -> Planned:
        name = item.name + variant.suffix
        planned = Planned(name, item.spec_file, item.directory, self._safe(name))
        planned.repeat_suffix = variant.repeat_suffix
        self.testcases.append(planned)
        self.groups.setdefault((item.name, variant.repeat), []).append(len(self.testcases) - 1)
        try:
            raw = self.raw_spec(item)
            merged = self._merge(raw)
            if variant.values:
                merged.pop("matrix", None)
                merged["variant"] = dict(variant.values)  # part of the key
                merged["env"] = {**merged.get("env", {}), **variant.env()}
            planned.description = merged.get("description", "")
            planned.driver = merged.get("driver", "shell")
            planned.tags = list(merged.get("tags", []))
            planned.depends = list(merged.get("depends", []))
            planned.needs = list(merged.get("needs", []))
            planned.spec = merged
            planned.retries = int(merged.get("retries", 0))
            if self._control(planned, merged, dict(variant.values)):
                return planned  # skipped: nothing to plan
            driver = self._driver(planned.driver, item.spec_file)
            test = self._testcase(planned, merged)
            self._check_options(driver, test)
            resources = self._check_resources(merged.get("resources", {}), item.spec_file)
            fragments = driver.fragments(test)
            if not fragments or not all(isinstance(f, Fragment) for f in fragments):
                raise TypeError(f"{type(driver).__name__}.fragments() must return a non-empty list of Fragment")
            for fragment in fragments:
                for pool, count in resources.items():
                    fragment.resources.setdefault(pool, count)
        except specs.SpecError as exc:
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, exc.render())
            return planned
        except drivers.DriverNotFound as exc:
            line, col = specs.key_position(item.spec_file, ["driver"])
            message = f"{item.spec_file}:{line}:{col}: {exc}"
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, message)
            return planned
        except Exception as exc:  # a suite driver's bug: this testcase's ERROR
            planned.result = self._early(
                planned,
                Status.ERROR,
                Reason.DRIVER,
                f"driver '{planned.driver}' failed to load the testcase: {type(exc).__name__}: {exc}",
            )
            planned.result.traceback = traceback.format_exc()
            return planned
        owner = len(self.testcases) - 1
        for fragment in fragments:
            planned.fragments.append(len(self.fragments))
            self.fragments.append(fragment)
            self.owner.append(owner)
        return planned

    def _merge(self, raw: dict) -> dict:
        merged = dict(self.suite.defaults)
        merged.update(raw)
        if "env" in self.suite.defaults and "env" in raw:
            merged["env"] = {**self.suite.defaults["env"], **raw["env"]}
        if "tags" in self.suite.defaults:
            merged["tags"] = list(dict.fromkeys([*self.suite.defaults["tags"], *raw.get("tags", [])]))
        return merged

    def _driver(self, name: str, spec_file: str) -> Driver:
        driver = self.drivers.get(name)
        if driver is None:
            cls = drivers.resolve(name, self.suite.drivers, self.suite.root)
            driver = self.drivers[name] = cls()
        return driver

    def _testcase(self, planned: Planned, merged: dict) -> Testcase:
        work_dir = os.path.join(self.work_dir, planned.safe_name)
        env = {key: _env_value(value) for key, value in merged.get("env", {}).items()}
        env["TEST_NAME"] = planned.name
        env["TEST_WORK_DIR"] = work_dir
        env["TEST_SOURCE_DIR"] = planned.source_dir
        env["TEST_SUITE_ROOT"] = self.suite.root
        for param, value in self.params.items():
            env["PARAM_" + param.upper()] = value
        for name in merged.get("needs", []):
            if name in self.setup_safe:
                env[setup_env_name(name)] = os.path.join(self.work_dir, self.setup_safe[name])
        return Testcase(
            name=planned.name,
            source_dir=planned.source_dir,
            spec_file=planned.spec_file,
            spec=merged,
            work_dir=work_dir,
            log_stem=os.path.join(self.log_root, planned.safe_name),
            env=env,
            timeout=float(merged.get("timeout", self.timeout)),
            suite_root=self.suite.root,
        )

    @staticmethod
    def _check_options(driver: Driver, test: Testcase) -> None:
        schema = driver.options_schema
        if schema is None:
            return
        from jsonschema import Draft202012Validator

        errors = list(Draft202012Validator(schema).iter_errors(test.spec.get("options", {})))
        if errors:
            problems = [
                (*specs.key_position(test.spec_file, ["options", *e.absolute_path]), f"options: {e.message}")
                for e in errors
            ]
            raise specs.SpecError(test.spec_file, problems)

    def _control(self, planned: Planned, merged: dict, matrix: dict) -> bool:
        """Apply ``control``: True when the testcase is skipped. An xfail is
        noted for the scheduler; a bad condition is a SPEC error."""
        entries = merged.get("control")
        if not entries:
            return False
        from suite.control import ExpressionError, condition_names, decide

        names = condition_names(planned.tags, os.environ, self.params, matrix)
        try:
            decision = decide(entries, names)
        except ExpressionError as exc:
            bad = next((i for i, e in enumerate(entries) if exc.expression in (e.get("skip"), e.get("xfail"))), 0)
            kind = "skip" if "skip" in entries[bad] else "xfail"
            line, col = specs.key_position(planned.spec_file, ["control", bad, kind])
            raise specs.SpecError(planned.spec_file, [(line, col, f"control: {exc}")]) from None
        if decision.action == "skip":
            planned.result = self._early(
                planned, Status.SKIP, Reason.CONTROL, f"skipped: {decision.reason or decision.expression}"
            )
            return True
        if decision.action == "xfail":
            planned.xfail = decision.reason or decision.expression
        return False

    def _check_resources(self, asked: dict, spec_file: str, at: list | None = None) -> dict:
        """Resources must come from a declared pool, and fit in it."""
        for pool, count in asked.items():
            where = [*(at or []), "resources", pool]
            if pool not in self.suite.resources:
                known = ", ".join(sorted(self.suite.resources)) or "none declared in suite.yaml"
                line, col = specs.key_position(spec_file, where)
                raise specs.SpecError(spec_file, [(line, col, f"unknown resource pool '{pool}' (pools: {known})")])
            size = len(self.suite.pool(pool))
            if count > size:
                line, col = specs.key_position(spec_file, where)
                raise specs.SpecError(
                    spec_file, [(line, col, f"asks for {count} of '{pool}' but the pool has only {size}")]
                )
        return dict(asked)

    def compute_keys(self, index: dict[str, int]) -> None:
        """Each testcase's key, from its spec, files and upstream keys."""
        setup_keys = {SETUP_PREFIX + name: self.setup_key(name) for name in self.suite.setup}
        done: dict[int, str | None] = {}

        def key_of(number: int, seen: frozenset) -> str | None:
            if number in done:
                return done[number]
            planned = self.testcases[number]
            if number in seen or not planned.spec:
                return None  # a cycle, or a spec that did not load
            upstream = [setup_keys.get(SETUP_PREFIX + n, "") for n in planned.needs]
            for dep in planned.depends:
                for other in self._resolve(dep, planned, index):
                    key = key_of(other, seen | {number})
                    if key is None:
                        done[number] = None
                        return None
                    upstream.append(key)
            key = make_key(planned.spec, planned.driver, digest_tree(planned.source_dir), upstream)
            done[number] = planned.key = key
            return key

        for number in range(len(self.testcases)):
            key_of(number, frozenset())

    def setup_key(self, name: str, seen: frozenset = frozenset()) -> str:
        """A set-up's key: its spec and the keys of the set-ups it needs."""
        spec = self.suite.setup[name]
        upstream = [
            self.setup_key(n, seen | {name}) for n in spec.get("needs", []) if n in self.suite.setup and n not in seen
        ]
        return make_key(spec, "setup", None, upstream)

    def use_cache(self, history: HistoryView) -> None:
        """--incremental: a testcase whose key passed before is not run,
        unless it failed last time."""
        for planned in self.testcases:
            if planned.result is None and planned.key and planned.key in history.passed_keys:
                if history.failed_last_time(planned.name):
                    continue
                run = history.passed_keys[planned.key]
                planned.result = self._early(
                    planned, Status.PASS, Reason.CACHED,
                    f"passed in run {run} with the same key; not run again (--incremental)",
                )
                planned.result.cached = True

    def add_setups(self, index: dict[str, int]) -> None:
        """Plan each set-up that a testcase still to run needs, transitively."""
        wanted = [n for p in self.testcases if p.result is None for n in p.needs]
        for name in wanted:  # grows with set-ups' own needs
            full = SETUP_PREFIX + name
            if full in index or name not in self.suite.setup:
                continue
            index[full] = len(self.testcases)
            planned = self._load_setup(name)
            wanted.extend(planned.needs)

    def _load_setup(self, name: str) -> Planned:
        spec = self.suite.setup[name]
        safe = self.setup_safe[name]
        planned = Planned(
            SETUP_PREFIX + name, self.suite.path or "", "", safe,
            description=spec.get("description", ""), driver="shell",
            needs=list(spec.get("needs", [])), kind="setup", spec=spec,
        )
        planned.key = self.setup_key(name)
        self.testcases.append(planned)
        work_dir = os.path.join(self.work_dir, safe)
        env = {key: _env_value(value) for key, value in self.suite.defaults.get("env", {}).items()}
        env.update({key: _env_value(value) for key, value in spec.get("env", {}).items()})
        env.update(TEST_NAME=planned.name, TEST_WORK_DIR=work_dir, SETUP_DIR=work_dir, TEST_SUITE_ROOT=self.suite.root)
        for needed in planned.needs:
            if needed in self.setup_safe:
                env[setup_env_name(needed)] = os.path.join(self.work_dir, self.setup_safe[needed])
        try:
            resources = self._check_resources(spec.get("resources", {}), planned.spec_file, ["setup", name])
        except specs.SpecError as exc:
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, exc.render())
            return planned
        timeout = float(spec.get("timeout", self.suite.defaults.get("timeout", self.timeout)))
        cmd = spec["cmd"] if isinstance(spec["cmd"], str) else [str(p) for p in spec["cmd"]]
        fragment = Fragment(
            testcase=planned.name, name="setup", driver=drivers.BUILTIN["shell"],
            commands=[Command(cmd, 0, timeout, "setup")], env=env, source_dir="",
            work_dir=work_dir, log_stem=os.path.join(self.log_root, safe),
            prepare=True, final=True, resources=resources,
        )
        planned.fragments.append(len(self.fragments))
        self.fragments.append(fragment)
        self.owner.append(len(self.testcases) - 1)
        return planned

    def _safe(self, name: str) -> str:
        """A file name for the testcase's result, logs and work directory."""
        base = re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "__")) or "_"
        safe, number = base, 1
        while safe in self.safe_names:
            number += 1
            safe = f"{base}~{number}"
        self.safe_names.add(safe)
        return safe

    @staticmethod
    def _early(planned: Planned, status: Status, reason: Reason, message: str) -> Result:
        return planned.verdict(status, reason, message)

    def link(self, index: dict[str, int]) -> None:
        """Add step and dependency edges; name unknown dependencies and cycles."""
        self.dependents: list[list[int]] = [[] for _ in self.testcases]
        self.graph = Graph(len(self.fragments))
        for planned in self.testcases:
            chain = planned.fragments
            for before, after in zip(chain, chain[1:]):
                self.graph.add_edge(before, after)
        deps_of: list[list[int]] = [[] for _ in self.testcases]
        for number, planned in enumerate(self.testcases):
            if planned.result is not None:
                continue
            resolved = {d: self._resolve(d, planned, index) for d in planned.depends}
            unknown = [d for d, found in resolved.items() if not found]
            missing = [n for n in planned.needs if n not in self.suite.setup]
            if unknown or missing:
                key, what, names = ("depends", "testcase", unknown) if unknown else ("needs", "set-up", missing)
                at = ["setup", planned.name[len(SETUP_PREFIX):], key] if planned.kind == "setup" else [key]
                line, col = specs.key_position(planned.spec_file, at)
                listed = ", ".join(repr(d) for d in names)
                hint = "" if unknown else f" (suite.yaml declares: {', '.join(sorted(self.suite.setup)) or 'none'})"
                planned.result = self._early(
                    planned, Status.ERROR, Reason.SPEC,
                    f"{planned.spec_file}:{line}:{col}: {'depends on' if unknown else 'needs'} unknown {what} {listed}{hint}",
                )
                continue
            deps_of[number] = [i for d in planned.depends for i in resolved[d]] + [
                index[SETUP_PREFIX + n] for n in planned.needs
            ]
        for cycle in find_cycles(deps_of):
            path = cycle_path(deps_of, cycle)
            names = " -> ".join(self.testcases[n].name for n in [*path, path[0]])
            for number in cycle:
                planned = self.testcases[number]
                line, col = specs.key_position(planned.spec_file, ["depends"])
                planned.result = self._early(
                    planned, Status.ERROR, Reason.SPEC,
                    f"{planned.spec_file}:{line}:{col}: dependency cycle: {names}",
                )
        for number, deps in enumerate(deps_of):
            for dep in deps:
                self.dependents[dep].append(number)
                before, after = self.testcases[dep], self.testcases[number]
                if before.fragments and after.fragments and before.result is None:
                    self.graph.add_edge(before.fragments[-1], after.fragments[0])

    def _resolve(self, dep: str, planned: Planned, index: dict[str, int]) -> list[int]:
        """A dependency by exact name (within the same repetition), or by a
        directory name standing for all its matrix variants."""
        exact = index.get(dep + planned.repeat_suffix)
        if exact is not None:
            return [exact]
        repeat = int(planned.repeat_suffix[1:]) if planned.repeat_suffix else None
        return list(self.groups.get((dep, repeat), []))

    def plan(self) -> Plan:
        return Plan(
            self.suite, self.testcases, self.fragments, self.owner, self.graph,
            self.dependents, self.output_dir, self.work_dir, self.cache,
        )


def find_cycles(deps_of: list[list[int]]) -> list[list[int]]:
    """Strongly connected components that form cycles (Tarjan, iterative)."""
    counter = 0
    number: list[int | None] = [None] * len(deps_of)
    low = [0] * len(deps_of)
    on_stack = [False] * len(deps_of)
    stack: list[int] = []
    cycles = []
    for start in range(len(deps_of)):
        if number[start] is not None:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                number[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            recurse = False
            for i in range(child, len(deps_of[node])):
                succ = deps_of[node][i]
                if number[succ] is None:
                    work.append((node, i + 1))
                    work.append((succ, 0))
                    recurse = True
                    break
                if on_stack[succ]:
                    low[node] = min(low[node], number[succ])
            if recurse:
                continue
            if low[node] == number[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in deps_of[node]:
                    cycles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def cycle_path(deps_of: list[list[int]], component: list[int]) -> list[int]:
    """A real loop through ``component``, from its first node back to it."""
    members = set(component)
    start = component[0]
    came_from = {start: None}
    queue = [start]
    for node in queue:
        for succ in deps_of[node]:
            if succ == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return path[::-1]
            if succ in members and succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    return component  # pragma: no cover - a component always loops


def setup_env_name(name: str) -> str:
    """SETUP_<NAME>_DIR: where a needed set-up left its work."""
    return "SETUP_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_DIR"


def _env_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
