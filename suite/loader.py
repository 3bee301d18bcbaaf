"""Turn a suite directory into a Plan: every testcase, its fragments, one DAG.

Problems found here (invalid specs, unknown drivers, missing dependencies,
cycles) become ERROR results for the testcases concerned; the rest of the
suite still runs.
"""

from __future__ import annotations

import functools
import gc
import os
import re
import sys
import traceback

from run_testsuite import spec as specs
from run_testsuite.discovery import SPEC_FILE, Found, discover
from run_testsuite.drivers.base import Driver, Testcase
from run_testsuite.drivers.registry import BUILTIN, DriverLoadError, DriverNotFound, resolve
from run_testsuite.file_hashes import FileHashes
from run_testsuite.fragment import NO_RESOURCES, Command, Fragment, bounded
from run_testsuite.history import HistoryView
from run_testsuite.keys import KeyMaker, compute_keys, spec_digest, use_cache
from run_testsuite.links import link
from run_testsuite.plan import SETUP_PREFIX, Plan, Planned, UsageError, env_value, setup_env_name
from run_testsuite.results import Reason, Result, Status
from run_testsuite.sandbox import Sandbox, readable_paths
from run_testsuite.selection import (
    Selection,
    keeper,
    nothing_selected,
    pattern_kinds,
    select,
    unmatched_variants,
    variant_wanted,
    variants_named,
)
from run_testsuite.spec_cache import SpecCache, stamp
from run_testsuite.spec_checks import check_options, check_resources, expand_inputs
from run_testsuite.suite_config import SuiteConfig, load_suite_config
from run_testsuite.variants import Variant, base_name, variants

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")
    T = TypeVar("T")

DEFAULT_TIMEOUT = 300.0
# A testcase without matrix or --repeat: one plain variant.
NO_VARIANT = Variant()


def _collector_waiting(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` with the garbage collector off while it runs: planning
    makes millions of objects and no garbage to speak of, and the
    collector's full passes over them took 2-5 s of 12-15 s at 100,000
    testcases."""

    @functools.wraps(function)
    def waiting(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return waiting


@_collector_waiting
def build_plan(
    root: str,
    patterns: list[str],
    output_dir: str,
    work_dir: str,
    default_timeout: float | None = None,
    history: HistoryView | None = None,
    selection: Selection | None = None,
    written: tuple[str, ...] = (),
) -> Plan:
    """``written``: files the run writes besides its output directory (a
    --junit-xml report), which are never part of a key."""
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
    keep = keeper(selection, history)
    shared: list[tuple[str, str]] = []
    misnamed: list[str] = []
    found = discover(root, exclude=(output_dir, work_dir), shared=shared, misnamed=misnamed)
    by_name = {item.name: item for item in found}
    builder = _Builder(suite, output_dir, work_dir, default_timeout or DEFAULT_TIMEOUT, selection, cache)
    builder.history = history
    excluded = frozenset(os.path.abspath(p) for p in (output_dir, work_dir, *written))
    maker = KeyMaker(suite, FileHashes(output_dir), shared, excluded, salt_dir=output_dir)
    maker.params = builder.params

    # The selection first, then whatever it depends on, transitively.
    queue: list[tuple[Found, Variant]] = []
    kinds = pattern_kinds(found, selection.patterns)
    for item in select(found, selection.patterns, kinds):
        tags = builder.tags_of(item)
        named = variants_named(item.name, selection.patterns, kinds)
        queue.extend(
            (item, v)
            for v in builder.variants(item)
            if variant_wanted(item.name + v.suffix, named)
            and keep(item.name + v.suffix, tags)
            and (selection.only is None or item.name + v.suffix in selection.only)
        )
    builder.warnings += [
        f"{path}:1:1: warning: not read: a testcase's spec is named {SPEC_FILE} (rename this file)" for path in misnamed
    ]
    if not queue:
        recorded = history is not None and bool(history.verdicts)
        raise nothing_selected(selection, len(found), root, recorded, misnamed)
    typos = unmatched_variants(kinds, [item.name + v.suffix for item, v in queue])
    if typos:
        raise UsageError("no variant matches " + ", ".join(repr(p) for p in typos))
    index: dict[str, int] = {}
    refused: set[tuple[str, str]] = set()  # (spec, variant) reported under a name of its own
    for item, variant in queue:  # grows as dependencies are discovered
        name = item.name + variant.suffix
        if name in index or name.startswith(SETUP_PREFIX):
            holder = builder.testcases[index[name]].spec_file if name in index else None
            # Not the same testcase queued twice (a dependency's), but another of that name.
            if holder != item.spec_file and (item.spec_file, variant.suffix) not in refused:
                refused.add((item.spec_file, variant.suffix))
                planned = builder.refuse_duplicate(item, name, holder, index)
                index[planned.name] = len(builder.testcases) - 1
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
    # What only loading needed goes before the keys are made: at 100,000
    # testcases, 25 MB the keys' parts take instead.
    del queue, found, by_name, kinds
    builder.raw_specs, builder.last_spec, builder.alike = {}, ("", {}), {}
    if selection.keys:
        compute_keys(
            builder.testcases,
            builder.fragments,
            maker,
            builder.setup_reads,
            lambda dep, planned: builder.resolve(dep, planned, index),
        )
    maker.hashes.done_hashing()
    if selection.incremental and history is not None:
        use_cache(builder.testcases, history)
    builder.add_setups(index, maker)
    graph, dependents = link(
        builder.testcases, len(builder.fragments), suite.setup, index, lambda dep, p: builder.resolve(dep, p, index)
    )
    return Plan(
        suite,
        builder.testcases,
        builder.fragments,
        builder.owner,
        graph,
        dependents,
        output_dir,
        work_dir,
        cache,
        maker.hashes,
        maker,
        builder.warnings,
    )


class _Builder:
    def __init__(
        self,
        suite: SuiteConfig,
        output_dir: str,
        work_dir: str,
        timeout: float,
        selection: Selection,
        cache: SpecCache,
    ):
        self.suite = suite
        self.selection = selection
        self.params = {**{k: env_value(v) for k, v in suite.params.items()}, **selection.params}
        self.groups: dict[tuple[str, int | None], list[int]] = {}  # (directory name, repeat) -> variants
        self.output_dir = output_dir
        self.work_dir = work_dir
        self.timeout = timeout
        self.testcases: list[Planned] = []
        self.fragments: list[Fragment] = []
        self.owner: list[int] = []
        # Per driver name: the instance and its sys.path entries, or why it cannot load.
        self.drivers: dict[str, tuple[Driver, tuple[str, ...]] | Exception] = {}
        self.safe_names: set[str] = set()
        self.log_root = os.path.join(output_dir, "new", "logs")
        self.cache = cache
        # Per spec file: its spec, why it is invalid, or _CACHED (decoded
        # from the spec cache when asked for again); and the last one asked.
        self.raw_specs: dict[str, dict | specs.SpecError | object] = {}
        self.last_spec: tuple[str, dict] = ("", {})
        self.alike: dict = {}  # see _alike
        self.too_many: dict[str, str] = {}  # spec file -> why its matrix is not expanded
        self.warnings: list[str] = []  # said before the run; nothing wrong enough to stop it
        self.sandbox_reads: tuple[str, ...] | None = None  # see sandbox.readable_paths
        self.checked_entries: set[tuple] = set()
        # Set-ups' file names are reserved first, so testcases can be told
        # where each set-up's directory will be before it is planned.
        self.setup_safe = {name: self._safe(SETUP_PREFIX + name) for name in suite.setup}
        self.history: HistoryView | None = None  # what drivers may size their work by

    def raw_spec(self, item: Found) -> dict:
        """The validated test.yaml of ``item`` (SpecError if it is not).

        Asked for several times per testcase (tags, variants, loading):
        read, or checked against the spec cache, once per run. A spec the
        cache holds is decoded from it again when asked for later (the
        last one is kept): 100,000 specs kept as dicts cost planning 30 MB.
        """
        path = item.spec_file
        if self.last_spec[0] == path:
            return self.last_spec[1]
        known = self.raw_specs.get(path)
        if known is _CACHED:
            known = self.cache.again(path)
        elif known is None:
            try:
                raw = self.cache.get(path)
                if raw is None:
                    # Stamp first: a file changed while we read it is read again next time.
                    file_stamp = stamp(path)
                    raw = specs.load_and_validate(path, "testcase")
                    self.cache.put(path, file_stamp, raw)
                known = raw
            except specs.SpecError as exc:
                known = exc
            cached = isinstance(known, dict) and path in self.cache.entries
            self.raw_specs[path] = _CACHED if cached else known
        if isinstance(known, specs.SpecError):
            raise known.with_traceback(None)  # raised again per use: its traceback must not grow
        assert isinstance(known, dict)
        self.last_spec = (path, known)
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
        count = self.selection.repeat
        for values in (matrix or {}).values():
            count *= len(values)
        if count > self.suite.max_variants:  # counted before any is made
            line, col = specs.key_position(item.spec_file, ["matrix"])
            self.too_many[item.spec_file] = (
                f"{item.spec_file}:{line}:{col}: the matrix (times --repeat) makes {count} variants, "
                f"more than max_variants ({self.suite.max_variants}; suite.yaml may raise it)"
            )
            return [NO_VARIANT]
        return variants(matrix, self.selection.repeat)

    def refuse_duplicate(self, item: Found, name: str, other: str | None, taken: dict[str, int]) -> Planned:
        """A testcase whose name another already has (a directory named
        ``m[opt=O2]`` beside matrix testcase ``m``, two names alike once
        their bytes are escaped), or one a set-up's would be (``setup:build``):
        ERROR under a name of its own, ``NAME (2)``, rather than dropped in
        silence with its verdict."""
        # Never 'setup:...': reports count those as set-ups.
        base = "setup_" + name[len(SETUP_PREFIX) :] if name.startswith(SETUP_PREFIX) else name
        number = 2
        while f"{base} ({number})" in taken:
            number += 1
        unique = sys.intern(f"{base} ({number})")
        planned = Planned(unique, item.spec_file, item.directory, self._safe(unique))
        self.testcases.append(planned)
        if other:
            clash = f"is also that of the testcase of {other}: rename one of the two directories"
        else:
            clash = f"begins with '{SETUP_PREFIX}', which names the set-ups of suite.yaml: rename this directory"
        message = f"{item.spec_file}:1:1: the name '{name}' {clash} (reported as '{unique}' meanwhile)"
        planned.result = self._early(planned, Status.ERROR, Reason.SPEC, message)
        return planned

    def load(self, item: Found, variant: Variant = NO_VARIANT) -> Planned:
        # Interned, as history's names are: one string for the plan, the
        # history read at start and the index (100,000 names: 6 MB a copy).
        name = sys.intern(item.name + variant.suffix)
        planned = Planned(name, item.spec_file, item.directory, self._safe(name))
        if item.spec_file in self.too_many:
            self.testcases.append(planned)
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, self.too_many[item.spec_file])
            return planned
        planned.repeat_suffix = variant.repeat_suffix
        self.testcases.append(planned)
        if variant.values:  # a name without variants is found in the index
            self.groups.setdefault((item.name, variant.repeat), []).append(len(self.testcases) - 1)
        merged: dict | None = None
        try:
            merged = self._spec_of(planned, item, variant)
            if self._control(planned, merged, dict(variant.values)):
                return planned  # skipped: nothing to plan
            driver, driver_path = self._driver(planned.driver)
            test = self._testcase(planned, merged)
            test.matrix = dict(self.raw_spec(item).get("matrix") or {})
            planned.timeout = test.timeout
            planned.inputs = self._inputs(item, test.env)
            check_options(driver, test, self.cache)
            planned.inputs += tuple(driver.inputs(test))
            resources = check_resources(self.suite, merged.get("resources", {}), item.spec_file)
            fragments = driver.fragments(test)
            if not fragments or not all(isinstance(f, Fragment) for f in fragments):
                raise TypeError(f"{type(driver).__name__}.fragments() must return a non-empty list of Fragment")
            sandboxed = self._sandboxed(self.raw_spec(item), merged, planned.spec_file)
            for fragment in fragments:
                # A driver's own count wins; none at all is the shared empty dict.
                fragment.resources = (
                    {**resources, **fragment.resources} if resources else fragment.resources or NO_RESOURCES
                )
                fragment.driver_path = fragment.driver_path or driver_path
                fragment.suite_root = self.suite.root
                fragment.keep_own_env()
                fragment.private_files = self._alike(fragment.private_files)
                for command in fragment.commands:
                    if isinstance(command.cmd, str):
                        command.cmd = self._alike(command.cmd)
                if sandboxed is not None:
                    fragment.sandbox = self._sandbox(fragment, sandboxed)
            planned.plan_fragments(fragments, len(self.fragments))
        except specs.SpecError as exc:
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, exc.render())
            return planned
        except (DriverNotFound, DriverLoadError) as exc:
            # Not found: the spec's mistake. Not loadable: the driver's code.
            line, col = specs.key_position(item.spec_file, ["driver"])
            reason = Reason.SPEC if isinstance(exc, DriverNotFound) else Reason.DRIVER
            planned.result = self._early(planned, Status.ERROR, reason, f"{item.spec_file}:{line}:{col}: {exc}")
            if isinstance(exc, DriverLoadError) and exc.details:
                planned.result.traceback = exc.details
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
        finally:  # whichever way it ended, the merged spec is let go here
            if merged is not None:
                planned.spec_digest = spec_digest(planned, merged, self.params) if self.selection.keys else ""
        owner = len(self.testcases) - 1
        self.fragments.extend(fragments)
        self.owner.extend([owner] * len(fragments))
        return planned

    def _spec_of(self, planned: Planned, item: Found, variant: Variant) -> dict:
        """The variant's spec, merged over suite.yaml's defaults, and what
        the plan keeps of it on ``planned``."""
        merged = self._merge(self.raw_spec(item))
        if variant.values:
            merged.pop("matrix", None)
            merged["variant"] = dict(variant.values)  # part of the key
            merged["env"] = {**merged.get("env", {}), **variant.env()}
        planned.description = merged.get("description", "")
        planned.driver = self._alike(merged.get("driver", "shell"))
        planned.tags = _listed(merged.get("tags"))
        planned.depends = _listed(merged.get("depends"))
        planned.needs = _listed(merged.get("needs"))
        planned.control = tuple(merged.get("control") or ())
        planned.retries = int(merged.get("retries", 0))
        planned.key_env = tuple(merged.get("key_env", ()))
        return merged

    def _sandboxed(self, own: dict, merged: dict, spec_file: str, where: tuple = ()) -> bool | None:
        """None: no sandbox; else whether it has the network.

        The testcase's own ``sandbox`` decides; else --sandbox; else
        suite.yaml's defaults. ``network: false`` asks for the sandbox; a
        testcase saying both ``sandbox: false`` and ``network: false`` is a
        SPEC error, while its own ``sandbox: false`` under a default
        ``network: false`` opts out of both. ``merged`` (the spec the key is
        made of) records the decision."""
        defaults = self.suite.defaults
        network = own.get("network", defaults.get("network", True))
        if "sandbox" in own:
            sandbox = own["sandbox"]
            if not sandbox and own.get("network", True) is False:
                line, col = specs.key_position(spec_file, [*where, "network"])
                raise specs.SpecError(
                    spec_file, [(line, col, "network: false needs the sandbox, and sandbox is false")]
                )
        else:
            sandbox = self.selection.sandbox or defaults.get("sandbox", False) or not network
        if sandbox or "sandbox" in merged:
            merged["sandbox"] = bool(sandbox)  # part of the key: a sandbox can change the outcome
        return network if sandbox else None

    def _sandbox(self, fragment: Fragment, network: bool) -> Sandbox:
        if self.sandbox_reads is None:
            self.sandbox_reads = readable_paths((self.suite.root, self.output_dir, self.work_dir))
        return Sandbox(fragment.work_dir, network, self.sandbox_reads)

    def _inputs(self, item: Found, env: dict[str, str]) -> tuple[str, ...]:
        """The testcase's ``inputs``, suite.yaml's defaults first, with
        variables from the environment its commands will see."""
        defaults = self.suite.defaults.get("inputs", [])
        own = self.raw_spec(item).get("inputs", [])
        if not defaults and not own:
            return ()  # the common case: no copy of the environment made
        seen = {**os.environ, **env}
        expanded = expand_inputs(defaults, seen, self.suite.path or "", ["defaults", "inputs"]) if defaults else []
        return (*expanded, *expand_inputs(own, seen, item.spec_file, ["inputs"]))

    def setup_reads(self, name: str) -> tuple[list[str], dict[str, str]]:
        """A set-up's ``inputs``, after the defaults', with variables from
        its environment (a SpecError if one is not set), and that
        environment (besides the outer one), for its key."""
        spec = self.suite.setup[name]
        own = self._setup_env(name)
        env = {**os.environ, **own}
        path = self.suite.path or ""
        defaults = self.suite.defaults.get("inputs", [])
        inputs = expand_inputs(defaults, env, path, ["defaults", "inputs"]) + expand_inputs(
            spec.get("inputs", []), env, path, ["setup", name, "inputs"]
        )
        return inputs, own

    def _merge(self, raw: dict) -> dict:
        merged = dict(self.suite.defaults)
        merged.update(raw)
        if "env" in self.suite.defaults and "env" in raw:
            merged["env"] = {**self.suite.defaults["env"], **raw["env"]}
        for union in ("tags", "key_env"):  # the defaults' and the testcase's own
            if union in self.suite.defaults:
                merged[union] = list(dict.fromkeys([*self.suite.defaults[union], *raw.get(union, [])]))
        merged.pop("inputs", None)  # expanded per testcase, defaults first (see _inputs)
        return merged

    def _driver(self, name: str) -> tuple[Driver, tuple[str, ...]]:
        """The driver named in a spec, and its fragments' sys.path entries;
        loaded once per run, and a failure to load it is kept too, so
        that a broken driver is not imported again for each testcase."""
        known = self.drivers.get(name)
        if known is None:
            try:
                cls, path = resolve(name, self.suite.drivers, self.suite.root)
                known = (cls(), path)
            except (DriverNotFound, DriverLoadError) as exc:
                known = exc
            self.drivers[name] = known
        if isinstance(known, Exception):
            raise known.with_traceback(None)  # raised again per testcase: its traceback must not grow
        return known

    def _testcase(self, planned: Planned, merged: dict) -> Testcase:
        work_dir = os.path.join(self.work_dir, planned.safe_name)
        env = {key: env_value(value) for key, value in merged.get("env", {}).items()}
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
            params=dict(self.params),
            rewrite=self.selection.rewrite,
            slots=self.selection.slots,
            last_duration=self._last_duration(planned.name),
        )

    def _last_duration(self, name: str) -> float | None:
        return self.history.last_durations.get(name) if self.history is not None else None

    def _control(self, planned: Planned, merged: dict, matrix: dict) -> bool:
        """Apply ``control``: True when the testcase is skipped. An xfail is
        noted for the scheduler; a bad condition is a SPEC error."""
        entries = merged.get("control")
        if not entries:
            return False
        from run_testsuite.control import ExpressionError, condition_names, decide

        self._check_values(planned.spec_file, entries, [*self.params, *matrix])
        self._check_shadowed(planned.spec_file, matrix)
        path = merged.get("env", {}).get("PATH")  # `which` looks where the commands will
        names = condition_names(planned.tags, os.environ, self.params, matrix, path=str(path) if path else None)
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

    def _check_values(self, spec_file: str, entries: list, shadowed: list[str]) -> None:
        """Warn, once per entry, of a comparison that can never hold
        (``os == 'Linux'``): silently false, it would hide a skip."""
        from run_testsuite.control import never_true

        for number, entry in enumerate(entries):
            for kind in ("skip", "xfail"):
                if not isinstance(entry, dict) or not isinstance(entry.get(kind), str):
                    continue
                if (spec_file, number, kind) in self.checked_entries:
                    continue
                self.checked_entries.add((spec_file, number, kind))
                for problem in never_true(entry[kind], shadowed):
                    line, col = specs.key_position(spec_file, ["control", number, kind])
                    self.warnings.append(f"{spec_file}:{line}:{col}: warning: control: {problem}")

    def _check_shadowed(self, spec_file: str, matrix: dict) -> None:
        """Warn of a parameter or matrix key that conditions cannot name by
        its bare name, because a namespace has it (``which``, ``env``)."""
        from run_testsuite.conditions import NAMESPACES

        for kind, names, where in (
            ("parameter", self.params, self.suite.path or spec_file),
            ("matrix key", matrix, spec_file),
        ):
            for name in sorted(NAMESPACES.intersection(names) | ({"tags"} & set(names))):
                if (where, name) in self.checked_entries:
                    continue
                self.checked_entries.add((where, name))
                fix = f"params.{name}" if kind == "parameter" else "another key name"
                self.warnings.append(
                    f"{where}:1:1: warning: control: {kind} '{name}' is hidden in conditions, where"
                    f" '{name}' is always the namespace of that name; use {fix}"
                )

    def add_setups(self, index: dict[str, int], maker: KeyMaker) -> None:
        """Plan each set-up that a testcase still to run needs, transitively."""
        wanted = [n for p in self.testcases if p.result is None for n in p.needs]
        for name in wanted:  # grows with set-ups' own needs
            full = SETUP_PREFIX + name
            if full in index or name not in self.suite.setup:
                continue
            index[full] = len(self.testcases)
            planned = self._load_setup(name, maker)
            wanted.extend(planned.needs)

    def _setup_env(self, name: str) -> dict[str, str]:
        """What a set-up's command sees besides the outer environment."""
        spec = self.suite.setup[name]
        work_dir = os.path.join(self.work_dir, self.setup_safe[name])
        env = {key: env_value(value) for key, value in self.suite.defaults.get("env", {}).items()}
        env.update({key: env_value(value) for key, value in spec.get("env", {}).items()})
        env.update(
            TEST_NAME=SETUP_PREFIX + name, TEST_WORK_DIR=work_dir, SETUP_DIR=work_dir, TEST_SUITE_ROOT=self.suite.root
        )
        for needed in spec.get("needs", []):
            if needed in self.setup_safe:
                env[setup_env_name(needed)] = os.path.join(self.work_dir, self.setup_safe[needed])
        return env

    def _load_setup(self, name: str, maker: KeyMaker) -> Planned:
        spec = self.suite.setup[name]
        safe = self.setup_safe[name]
        planned = Planned(
            SETUP_PREFIX + name,
            self.suite.path or "",
            "",
            safe,
            description=spec.get("description", ""),
            driver="shell",
            needs=list(spec.get("needs", [])),
            kind="setup",
        )
        self.testcases.append(planned)
        work_dir = os.path.join(self.work_dir, safe)
        env = self._setup_env(name)
        try:
            parts = maker.setup(name, self.setup_reads)
            maker.keep_parts(planned, parts.to_json())
            resources = check_resources(self.suite, spec.get("resources", {}), planned.spec_file, ["setup", name])
        except specs.SpecError as exc:
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, exc.render())
            return planned
        timeout = float(spec.get("timeout", self.suite.defaults.get("timeout", self.timeout)))
        cmd = spec["cmd"] if isinstance(spec["cmd"], str) else [str(p) for p in spec["cmd"]]
        fragment = Fragment(
            testcase=planned.name,
            name="setup",
            driver=BUILTIN["shell"],
            commands=[Command(cmd, 0, timeout, "setup")],
            env=env,
            source_dir="",
            work_dir=work_dir,
            log_stem=os.path.join(self.log_root, safe),
            prepare=True,
            final=True,
            resources=resources,
            suite_root=self.suite.root,
        )
        fragment.keep_own_env()
        try:
            sandboxed = self._sandboxed(spec, {}, planned.spec_file, ("setup", name))
        except specs.SpecError as exc:
            planned.result = self._early(planned, Status.ERROR, Reason.SPEC, exc.render())
            return planned
        if sandboxed is not None:
            fragment.sandbox = self._sandbox(fragment, sandboxed)
        planned.plan_fragments([fragment], len(self.fragments))
        self.fragments.append(fragment)
        self.owner.append(len(self.testcases) - 1)
        return planned

    def _alike(self, value: T) -> T:
        """One object for equal values that testcases have alike (a driver
        name, a command, the files kept from the work directory): each its
        own cost 100,000 testcases 17 MB."""
        return self.alike.setdefault(value, value)

    def _safe(self, name: str) -> str:
        """A file name for the testcase's result, logs and work directory."""
        base = bounded(re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "__")) or "_", name)
        safe, number = base, 1
        while safe in self.safe_names:
            number += 1
            safe = f"{base}~{number}"
        self.safe_names.add(safe)
        return safe

    @staticmethod
    def _early(planned: Planned, status: Status, reason: Reason, message: str) -> Result:
        return planned.verdict(status, reason, message)

    def resolve(self, dep: str, planned: Planned, index: dict[str, int]) -> list[int]:
        """A dependency by exact name (within the same repetition), or by a
        directory name standing for all its matrix variants."""
        exact = index.get(dep + planned.repeat_suffix)
        if exact is not None:
            return [exact]
        repeat = int(planned.repeat_suffix[1:]) if planned.repeat_suffix else None
        return list(self.groups.get((dep, repeat), []))


# Shared by every testcase that has none: never changed in place (three
# empty lists a testcase cost 100,000 of them 17 MB).
_NONE: list = []


_CACHED = object()


def _listed(value: list | None) -> list:
    return list(value) if value else _NONE
