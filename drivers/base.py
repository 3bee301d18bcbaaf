"""The Driver base class: how a testcase spec becomes fragments and a verdict.

A driver is a Python class. In the main process, ``fragments()`` turns one
testcase into the units of work the scheduler runs. In whichever process runs
a fragment (a worker process, the main process with --no-multiprocessing, or
a cluster node), ``run()`` executes it and returns an ``Outcome``.

Fragments are plain picklable data; a driver keeps any settings it needs in
``Fragment.data`` rather than on ``self``, because the instance that builds a
fragment is not the one that runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from run_testsuite.fragment import Command, Fragment
from run_testsuite.results import CommandRecord, Outcome, Reason, Status, SubResult

# Not typing.TYPE_CHECKING: importing typing costs every run a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, NoReturn

    from run_testsuite.context import RunContext


@dataclass
class Testcase:
    """A validated testcase, as a driver sees it in the main process."""

    name: str
    source_dir: str
    spec_file: str
    spec: dict[str, Any]  # test.yaml merged over suite.yaml defaults
    work_dir: str
    log_stem: str
    env: dict[str, str]
    timeout: float
    suite_root: str
    # The suite parameters (suite.yaml `params`, -D) and this variant's
    # matrix values, by name: what `${name}` in a spec value may expand to.
    params: dict[str, str] = field(default_factory=dict)
    # The run was asked to --rewrite baselines: a missing one is made, not an error.
    rewrite: bool = False
    # The testcase's whole matrix (key -> values), of which ``spec["variant"]``
    # is this variant's choice: what its other variants can be.
    matrix: dict[str, list] = field(default_factory=dict)
    # How many fragments of it could usefully run at once: the run's -j,
    # capped by the machine's CPUs (a Dask cluster's slots, with --dask).
    slots: int = 1
    # Seconds its latest run took (the sum of its fragments), from history.
    last_duration: float | None = None

    def values(self) -> dict[str, str]:
        """Parameters and matrix values (a matrix value wins), as strings,
        as commands see them (`true`, not `True`)."""
        from run_testsuite.variants import as_text

        return {**self.params, **{key: as_text(value) for key, value in self.spec.get("variant", {}).items()}}

    def error(self, message: str, at: list | None = None) -> NoReturn:
        """Reject the spec with a message located at key path ``at``."""
        from run_testsuite.spec import SpecError, key_position

        line, col = key_position(self.spec_file, at or [])
        raise SpecError(self.spec_file, [(line, col, message)])


# Set by the registry on each class it loads, to the reference it used.
REFERENCE_ATTRIBUTE = "_run_testsuite_reference"


class Driver:
    """Base class: runs commands and judges them by their exit status.

    Subclasses override ``fragments`` to shape the work, ``check`` to judge
    what the commands did, or ``run`` to take over execution entirely.
    ``options_schema`` is a JSON Schema for the testcase's ``options`` key.
    """

    options_schema: dict | None = None
    # Whether testcases give ``cmd`` or ``steps`` (False: the driver makes
    # its commands from options, as gtest does; ``new`` writes none).
    runs_cmd = True

    # -- main process -----------------------------------------------------
    def fragments(self, test: Testcase) -> list[Fragment]:
        """One fragment per step (or one for ``cmd``), chained in order."""
        steps = self.steps(test)
        if not steps:
            test.error("nothing to run: give 'cmd' or 'steps'")
        ref = self.reference()
        fragments = [
            Fragment(
                testcase=test.name,
                name=name,
                driver=ref,
                commands=[command],
                env=test.env,
                source_dir=test.source_dir,
                work_dir=test.work_dir,
                log_stem=test.log_stem,
            )
            for name, command in steps
        ]
        fragments[0].prepare = True
        fragments[0].private_files = tuple(self.private_files(test))
        fragments[-1].final = True
        return fragments

    @staticmethod
    def combine_output(fragments: list[Fragment]) -> None:
        """Let the last fragment judge the output of all: earlier fragments
        keep their output in log files, whose paths travel with the last
        one (see ``RunContext.combined_output``)."""
        for fragment in fragments[:-1]:
            fragment.keep_log = True
        if len(fragments) > 1:  # a lone fragment's empty list cost 100,000 testcases 26 MB
            fragments[-1].data["earlier_logs"] = [f.log_path for f in fragments[:-1]]

    def inputs(self, test: Testcase) -> list[str]:
        """Files outside the testcase directory that its commands read, as
        the driver knows from its options (absolute paths): part of the
        testcase's incremental key, beside the spec's ``inputs``."""
        return []

    def private_files(self, test: Testcase) -> list[str]:
        """Files of the testcase directory that commands must not see in
        their work directory; they stay in ``$TEST_SOURCE_DIR``."""
        return ["test.yaml"]

    def steps(self, test: Testcase) -> list[tuple[str, Command]]:
        """The (name, command) pairs the spec asks for, with defaults applied."""
        spec = test.spec
        exit_code = spec.get("exit_code", 0)
        if "cmd" in spec:
            return [("run", Command(_argv(spec["cmd"]), exit_code, test.timeout, "run"))]
        result = []
        names = set()
        for number, step in enumerate(spec.get("steps", ()), start=1):
            name = step.get("name", f"step{number}")
            if name in names:
                test.error(f"duplicate step name '{name}'", ["steps", number - 1, "name"])
            names.add(name)
            command = Command(
                _argv(step["cmd"]),
                step.get("exit_code", exit_code),
                float(step.get("timeout", test.timeout)),
                name,
            )
            result.append((name, command))
        return result

    @classmethod
    def reference(cls) -> str:
        """How a worker anywhere finds this class again: the reference it
        was loaded by (see ``registry``), else its module and name."""
        known = cls.__dict__.get(REFERENCE_ATTRIBUTE)  # its own, never a base's
        return known if known is not None else f"{cls.__module__}:{cls.__qualname__}"

    def rewrite(self, fragment: Fragment) -> str | None:
        """``--rewrite``: make the expected output of a testcase that failed
        on it (``fragment`` is its last) what it printed; return the file
        changed, or None. Drivers without a baseline change nothing."""
        return None

    @classmethod
    def merge_subresults(cls, fragments: list[Fragment], outcomes: list[Outcome]) -> list[SubResult]:
        """The testcase's sub-results, from its fragments' outcomes (in its
        order): in the main process, as its verdict is made."""
        return [sub for outcome in outcomes for sub in outcome.subresults]

    # -- wherever the fragment runs ---------------------------------------
    def run(self, fragment: Fragment, ctx: RunContext) -> Outcome:
        for command in fragment.commands:
            record = ctx.run(command)
            failed = judge_exit(command, record)
            if failed is not None:
                return failed
        return self.check(fragment, ctx)

    def check(self, fragment: Fragment, ctx: RunContext) -> Outcome:
        """Judge a fragment whose commands all exited as expected."""
        return Outcome(Status.PASS)


def judge_exit(command: Command, record: CommandRecord) -> Outcome | None:
    """FAIL for a timeout or an unexpected exit status, else None."""
    if record.timed_out:
        return Outcome(
            Status.FAIL,
            Reason.TIMEOUT,
            f"step '{command.step}' timed out after {command.timeout:g} s",
        )
    if record.exit_code != command.exit_code:
        return Outcome(
            Status.FAIL,
            Reason.EXIT_CODE,
            f"step '{command.step}' exited with {describe_status(record.exit_code)}, expected {command.exit_code}",
        )
    return None


def describe_status(code: int | None) -> str:
    if code is None:
        return "no status"
    if code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return str(code)


# ``$NAME`` or ``${NAME}`` in a spec's path (inputs, options.binary ...).
ENV_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_env(text: str, env: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` in a path option, from the command's
    environment (a set-up's ``$SETUP_BUILD_DIR``); unknown names stay."""
    return ENV_VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def _argv(cmd: str | list) -> str | list[str]:
    return cmd if isinstance(cmd, str) else [str(part) for part in cmd]
