"""The base of drivers whose last step reports the tests inside it (TAP on
its output, a JUnit file): those tests become sub-results, and the
testcase's verdict is theirs.

The rule, the same for every such driver: the testcase fails when a
sub-result fails (one listed in ``xfail:`` is XFAIL instead), when the
stream or file itself is wrong (a plan not met, a bail out, a file not
written), when the step times out, or when it exits other than
``exit_code`` while every sub-result passed (a crash after the last test,
a leak checker). A program that exits 1 because tests failed is the usual
case, and those failures say it already.
"""

from __future__ import annotations

from run_testsuite.drivers.base import Driver, Testcase, describe_status, judge_exit
from run_testsuite.fragment import Fragment
from run_testsuite.results import CommandRecord, Outcome, Reason, Status, SubResult
from run_testsuite.subresults import apply_expectations, one_line, summarise, unknown_names

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.context import RunContext

NAMES = {"type": "object", "additionalProperties": {"type": "string"}}
# The longest sub-result name kept: a TAP description or a JUnit name can
# be megabytes, and each is in the index, the terminal and the HTML.
NAME_MAX = 300
# Known failures and skips, by sub-result name, with the reason for each.
EXPECTATIONS = {"xfail": NAMES, "skip": NAMES}


class CollectingDriver(Driver):
    """Run ``cmd`` or ``steps``; the last step's tests are the sub-results."""

    # What the step reports, in messages: "TAP stream", "JUnit file".
    source = "report"

    def fragments(self, test: Testcase) -> list[Fragment]:
        fragments = super().fragments(test)
        options = test.spec.get("options", {})
        fragments[-1].data.update(
            xfail=dict(options.get("xfail", {})),
            skip=dict(options.get("skip", {})),
            options=dict(options),
            spec_file=test.spec_file,
        )
        return fragments

    def run(self, fragment: Fragment, ctx: RunContext) -> Outcome:
        if not fragment.final:
            return super().run(fragment, ctx)
        *before, last = fragment.commands
        for command in before:
            failed = judge_exit(command, ctx.run(command))
            if failed is not None:
                return failed
        self.prepare(fragment, ctx)
        start = ctx.capture.size
        record = ctx.run(last)
        subresults, problems, skipped = self.collect(fragment, ctx, record, start)
        for sub in subresults:  # a name is any length and any text; in reports it is one short line
            sub.name = one_line(sub.name)
            if len(sub.name) > NAME_MAX:
                sub.name = sub.name[: NAME_MAX - 1] + "…"
        return self.verdict(fragment, record, subresults, problems, skipped)

    # -- what a subclass provides ------------------------------------------
    def prepare(self, fragment: Fragment, ctx: RunContext) -> None:
        """Before the last step runs (e.g. remove a stale report file)."""

    def collect(
        self, fragment: Fragment, ctx: RunContext, record: CommandRecord, start: int
    ) -> tuple[list[SubResult], list[str], str | None]:
        """The sub-results the last step reported, the problems of the
        report itself, and why the whole of it was skipped (or None).
        ``start``: where the step's output begins in ``ctx.output()``."""
        raise NotImplementedError

    def aliases(self, sub: SubResult) -> list[str]:
        """Other names ``xfail:`` and ``skip:`` may give a sub-result."""
        return []

    # -- the verdict -------------------------------------------------------
    def verdict(
        self,
        fragment: Fragment,
        record: CommandRecord,
        subresults: list[SubResult],
        problems: list[str],
        skipped: str | None,
    ) -> Outcome:
        data = fragment.data
        command = fragment.commands[-1]
        # A test that failed explains a non-zero exit, even one known to fail.
        explained = any(sub.status.is_failure for sub in subresults)
        unknown = apply_expectations(subresults, data["xfail"], data["skip"], self.aliases)
        status, reason, message = summarise(subresults)
        problems = list(problems)
        if record.timed_out:
            problems.insert(0, f"step '{command.step}' timed out after {command.timeout:g} s")
            reason = Reason.TIMEOUT
        elif record.exit_code != command.exit_code and not explained:
            exited = (
                f"step '{command.step}' exited with {describe_status(record.exit_code)}, expected {command.exit_code}"
            )
            if problems:  # the stream's own problem comes first; the status is one more fact
                problems.append(exited)
            else:
                what = "every test passed" if subresults else f"the {self.source} holds no test"
                problems.append(f"{'it skipped everything' if skipped is not None else what}, but {exited}")
            reason = reason or Reason.EXIT_CODE
        if unknown and not problems:
            known = [name for sub in subresults for name in (sub.name, *self.aliases(sub))]
            problems.append(
                unknown_names(unknown, known, data["xfail"], data.get("spec_file"), f"in the {self.source}")
            )
        if not problems and skipped is not None and status is not Status.FAIL:
            return Outcome(Status.SKIP, None, f"skipped: {skipped}" if skipped else "skipped", subresults=subresults)
        if problems:
            message = "; ".join([message, *problems] if status is Status.FAIL else problems)
            status = Status.FAIL
        return Outcome(status, reason, message, subresults=subresults)
