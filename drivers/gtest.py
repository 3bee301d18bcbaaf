"""The ``gtest`` driver: a GoogleTest binary, split into shards that run
side by side, each of its tests a sub-result.

    driver: gtest
    needs: [gtest-build]                  # a set-up may build the binary
    options:
      binary: $SETUP_GTEST_BUILD_DIR/unit_tests
      filter: "Math.*:-Math.Slow*"        # --gtest_filter, optional
      shards: auto                        # or a number
      xfail: {Math.Divide: "bug 42"}      # known failures, by test name
      skip: {Net.Ping: "no network in CI"}

Fragments: ``list`` runs ``--gtest_list_tests`` once the binary exists
(a set-up may build it), then ``shard-K-of-N`` run at once, each with
GoogleTest's own sharding variables and a JSON report. A shard whose
binary crashes or hangs: the test that was running is FAIL (CRASH or
TIMEOUT) with what it printed, and the shard's tests after it run again
in a fresh process, so none is lost; after MAX_RESTARTS crashes the rest
are ERROR, named.

Shards (``auto``): as many as the run has slots, or, once history knows
how long the binary takes, one per SHARD_SECONDS of it (at least one),
so a quick binary is not paid a process start per slot for nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time

from run_testsuite.drivers.base import Driver, Testcase, describe_status, expand_env
from run_testsuite.drivers.gtest_output import Progress, is_disabled, parse_listing, read_json_report, shard
from run_testsuite.fragment import Command, Fragment
from run_testsuite.results import Outcome, Reason, Status, SubResult
from run_testsuite.subresults import apply_expectations, summarise, unknown_names

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.context import RunContext

# A shard should hold about this much work: a binary start costs 2-5 ms
# here, so at 0.5 s a shard spends under 1% starting.
SHARD_SECONDS = 0.5
MAX_SHARDS = 256
# Crashes a shard survives by running its remaining tests again.
MAX_RESTARTS = 20
# The longest --gtest_filter argument: Linux refuses one string over 128 KiB.
FILTER_MAX = 100_000
LIST_FILE = ".gtest-tests.json"

NAMES = {"type": "object", "additionalProperties": {"type": "string"}}


class GtestDriver(Driver):
    """Run a GoogleTest binary in shards; each test is a sub-result."""

    runs_cmd = False
    options_schema = {  # noqa: RUF012 - read, never changed; Driver declares it an attribute
        "type": "object",
        "required": ["binary"],
        "additionalProperties": False,
        "properties": {
            "binary": {"type": "string", "minLength": 1},
            "args": {"type": "array", "items": {"type": "string"}},
            "filter": {"type": "string"},
            "shards": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_SHARDS}, {"const": "auto"}]},
            "xfail": NAMES,
            "skip": NAMES,
        },
    }

    def fragments(self, test: Testcase) -> list[Fragment]:
        for key in ("cmd", "steps"):
            if key in test.spec:
                test.error(f"the gtest driver runs options.binary; '{key}' is not used", [key])
        options = test.spec.get("options", {})
        total = shard_count(options.get("shards", "auto"), test.slots, test.last_duration)
        data = {
            "binary": options["binary"],
            "args": list(options.get("args", ())),
            "filter": options.get("filter"),
            "xfail": dict(options.get("xfail", {})),
            "skip": dict(options.get("skip", {})),
            "total": total,
            "spec_file": test.spec_file,
        }
        ref = self.reference()

        def fragment(name: str, index: int | None) -> Fragment:
            return Fragment(
                testcase=test.name,
                name=name,
                driver=ref,
                commands=[Command([data["binary"]], 0, test.timeout, name)],
                env=test.env,
                source_dir=test.source_dir,
                work_dir=test.work_dir,
                log_stem=test.log_stem,
                data={**data, "index": index},
            )

        listing = fragment("list", None)
        listing.prepare = True
        listing.private_files = tuple(self.private_files(test))
        shards = [fragment(f"shard-{k + 1}-of-{total}", k) for k in range(total)]
        for each in shards:
            each.after = (0,)  # side by side, once the list is known
        shards[-1].final = True
        return [listing, *shards]

    @classmethod
    def merge_subresults(cls, fragments: list[Fragment], outcomes: list[Outcome]) -> list[SubResult]:
        """In the binary's order (each sub-result knows its place in the
        listing), however the shards split them."""
        subresults = [sub for outcome in outcomes for sub in outcome.subresults]
        if all(sub.position is not None for sub in subresults):
            subresults.sort(key=lambda sub: sub.position or 0)
        return subresults

    def inputs(self, test: Testcase) -> list[str]:
        """The binary, where it lies outside the run (one a set-up builds is
        in the set-up's key already, one beside the spec in the testcase's),
        so --incremental runs it again when it is rebuilt."""
        binary = expand_env(test.spec["options"]["binary"], {**os.environ, **test.env})
        if "/" not in binary:
            binary = shutil.which(binary, path=test.env.get("PATH", os.environ.get("PATH"))) or ""
        run_dir = os.path.dirname(test.work_dir)
        if not os.path.isabs(binary) or binary.startswith(run_dir + os.sep):
            return []
        return [binary]

    def run(self, fragment: Fragment, ctx: RunContext) -> Outcome:
        if fragment.data["index"] is None:
            return self._list(fragment, ctx)
        return self._shard(fragment, ctx)

    # -- the list ---------------------------------------------------------
    def _list(self, fragment: Fragment, ctx: RunContext) -> Outcome:
        data = fragment.data
        binary = binary_path(data["binary"], ctx)
        if "/" in binary and not os.path.exists(binary):
            return Outcome(Status.FAIL, None, f"the binary {binary} does not exist (options.binary: {data['binary']})")
        argv = [binary, "--gtest_list_tests", *_filter(data["filter"]), *data["args"]]
        record = ctx.run(Command(argv, 0, fragment.commands[0].timeout, "list"))
        if record.timed_out or record.exit_code != 0:
            how = describe_status(record.exit_code) if not record.timed_out else "a timeout"
            return Outcome(Status.FAIL, Reason.EXIT_CODE, f"listing the tests of {argv[0]} failed ({how})")
        names = parse_listing(ctx.output().decode("utf-8", "replace"))
        if not names:
            where = f" matching filter '{data['filter']}'" if data["filter"] else ""
            return Outcome(Status.FAIL, Reason.EXIT_CODE, f"{argv[0]} lists no tests{where}")
        with open(os.path.join(ctx.work_dir, LIST_FILE), "w", encoding="utf-8") as handle:
            json.dump(names, handle)
        disabled = [
            SubResult(name, Status.SKIP, None, "disabled (DISABLED_)", position=place)
            for place, name in enumerate(names)
            if is_disabled(name) and not _runs_disabled(data["args"])
        ]
        return Outcome(Status.PASS, subresults=disabled)

    # -- a shard ----------------------------------------------------------
    def _shard(self, fragment: Fragment, ctx: RunContext) -> Outcome:
        data = fragment.data
        with open(os.path.join(ctx.work_dir, LIST_FILE), encoding="utf-8") as handle:
            listed = json.load(handle)
        places = {name: place for place, name in enumerate(listed)}
        problems: list[str] = []
        # The first shard says which xfail/skip names the binary lacks; not
        # with a filter, whose outside is not the binary's to lack.
        unknown = sorted((set(data["xfail"]) | set(data["skip"])) - set(places))
        if unknown and data["index"] == 0 and not data["filter"]:
            problems.append(unknown_names(unknown, listed, data["xfail"], data.get("spec_file"), "the binary lists"))
        everything = _runs_disabled(data["args"])
        runnable = [name for name in listed if everything or not is_disabled(name)]
        mine = shard(runnable, data["total"], data["index"])
        if not mine:
            return Outcome(Status.FAIL, None, "; ".join(problems)) if problems else Outcome(Status.PASS)
        binary = binary_path(data["binary"], ctx)
        deadline = time.monotonic() + fragment.commands[0].timeout
        results: dict[str, SubResult] = {}
        exits = False  # a problem is an exit status no test shows
        restarts = 0
        left = mine
        while left:
            first = left is mine
            known = len(results)
            for chunk in [None] if first else _filter_chunks(left):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                argv = [binary, *_filter(data["filter"] if first else chunk), *data["args"]]
                ended = self._run_once(fragment, ctx, argv, remaining, first, results)
                if ended:
                    problems.append(ended)
                    exits = True
            left = [n for n in mine if n not in results]
            if not left or time.monotonic() >= deadline or len(results) == known:
                break  # done, out of time, or a binary that dies before any test
            restarts += 1
            if restarts > MAX_RESTARTS:
                break
        for name in left:
            if time.monotonic() >= deadline:
                why, cause = "the shard's timeout was spent", Reason.TIMEOUT
            else:
                why = "the binary kept ending" if restarts > MAX_RESTARTS else "the binary ended"
                cause = Reason.CRASH
            results[name] = SubResult(name, Status.ERROR, cause, f"not run: {why} before it")
        subresults = [results[n] for n in mine]
        for sub in subresults:
            sub.position = places[sub.name]
        apply_expectations(subresults, data["xfail"], data["skip"])
        status, reason, message = summarise(subresults)
        if problems:
            reason = reason if status is Status.FAIL else Reason.EXIT_CODE if exits else None
            message = "; ".join([message, *problems] if status is Status.FAIL else problems)
            status = Status.FAIL
        return Outcome(status, reason, message, subresults=subresults)

    def _run_once(
        self, fragment: Fragment, ctx: RunContext, argv: list[str], timeout: float, sharded: bool, results: dict
    ) -> str | None:
        """Run the binary once; put the tests it ended into ``results``.
        Returns what went wrong that no test shows (an exit status with
        every test passed), or None."""
        data = fragment.data
        report = os.path.join(ctx.work_dir, f".gtest-{fragment.name}-{len(ctx.records)}.json")
        # Through env(1), so the command recorded is the one to run again.
        shards = ["GTEST_TOTAL_SHARDS", "GTEST_SHARD_INDEX"]
        if sharded:
            settings = [f"GTEST_TOTAL_SHARDS={data['total']}", f"GTEST_SHARD_INDEX={data['index']}"]
        else:  # tests named in a filter: no sharding, even one from outside
            settings = [option for name in shards for option in ("-u", name)]
        wrapped = ["env", *settings, f"GTEST_OUTPUT=json:{report}", *argv]
        before = ctx.capture.size
        record = ctx.run(Command(wrapped, 0, round(timeout, 3), fragment.name))
        try:
            reported = read_json_report(report)
        except (OSError, ValueError):
            reported = None
        # The progress lines are read only where needed (a test that did not
        # pass, no report): for 2,000 passing tests they cost 20 ms.
        if reported is None or record.timed_out or any(s.status is not Status.PASS for s in reported.values()):
            progress = Progress(ctx.output()[before:].decode("utf-8", "replace"))
        else:
            progress = Progress("")
        if reported is not None and not record.timed_out:
            for name, sub in reported.items():
                if sub.status is not Status.PASS and not sub.output.strip():
                    sub.output = progress.output_of(name)
                elif sub.status is Status.FAIL:
                    sub.output = progress.output_of(name) or sub.output
                results.setdefault(name, sub)
        else:
            for name, sub in progress.ended.items():
                if sub.status is not Status.PASS:
                    sub.output = progress.output_of(name)
                results.setdefault(name, sub)
            if record.timed_out:
                how, reason = f"timed out after {record.timeout:g} s (the shard's time)", Reason.TIMEOUT
            else:
                how, reason = f"the binary ended with {describe_status(record.exit_code)} during it", Reason.CRASH
            crashed = progress.crashed(how, reason)
            if crashed is not None:
                results[crashed.name] = crashed
            elif record.timed_out or record.exit_code:
                return f"{argv[0]} ended with {describe_status(record.exit_code)} outside any test"
            return None
        if record.exit_code != 0 and all(s.status is not Status.FAIL for s in reported.values()):
            return f"every test passed, but {argv[0]} exited with {describe_status(record.exit_code)}"
        return None


def _runs_disabled(args: list[str]) -> bool:
    """``args`` ask GoogleTest to run DISABLED_ tests too: then they are
    runnable, and in its shards, like any other."""
    return any(arg in ("--gtest_also_run_disabled_tests", "--gtest_also_run_disabled_tests=1") for arg in args)


def shard_count(option: int | str, slots: int, last_duration: float | None) -> int:
    """``shards:`` as a number, or ``auto``: see the module docstring."""
    if isinstance(option, int):
        return option
    if last_duration is None:
        return max(1, min(slots, MAX_SHARDS))
    return max(1, min(slots, MAX_SHARDS, math.ceil(last_duration / SHARD_SECONDS)))


def binary_path(binary: str, ctx: RunContext) -> str:
    """``options.binary`` with ``$VARS`` from the command's environment,
    relative to the work directory; a bare name is looked up on PATH."""
    expanded = expand_env(binary, ctx.env)
    if "/" not in expanded:
        return expanded
    return os.path.normpath(os.path.join(ctx.work_dir, expanded))


def _filter(pattern: str | list[str] | None) -> list[str]:
    if not pattern:
        return []
    joined = pattern if isinstance(pattern, str) else ":".join(pattern)
    return [f"--gtest_filter={joined}"]


def _filter_chunks(names: list[str]) -> list[list[str]]:
    """Tests to run again, in filters short enough for one argument."""
    chunks: list[list[str]] = [[]]
    size = 0
    for name in names:
        if size + len(name) + 1 > FILTER_MAX and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(name)
        size += len(name) + 1
    return chunks
