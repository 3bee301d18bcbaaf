"""Verdicts: each testcase's fragment outcomes folded into its Result.

Here live the rules that turn what ran into what is reported: a failed
fragment ends its testcase (or starts it again, under ``retries``), an
expected failure turns FAIL into XFAIL and PASS into XPASS, the failure
limit (``--max-failures``) stops new work, a testcase that did not pass
skips everything that depends on it, and at the end every testcase still
undecided gets a result, so none is lost.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from run_testsuite.fragment import Fragment
from run_testsuite.plan import DECIDED, CachedPass, Plan
from run_testsuite.results import Outcome, Reason, Result, Status, SubResult
from run_testsuite.spec import is_located
from run_testsuite.subresults import summarise

# Reasons of an outcome the run made by stopping a fragment, not its driver.
STOPPED = (Reason.INTERRUPTED, Reason.MAX_FAILURES)


@dataclass
class Policy:
    """How the run is steered: failure limits and what history tells."""

    max_failures: int = 0  # 0: no limit
    fail_fast: bool = False  # also stop running fragments at the limit
    durations: dict[tuple[str, str], float] = field(default_factory=dict)
    failed_last_time: set[str] = field(default_factory=set)


class Next(Enum):
    """What the dispatcher does after a fragment's outcome is recorded."""

    IGNORE = "ignore"  # its testcase was decided already
    GO_ON = "go on"  # the fragment is done: what follows it may run
    WAIT = "wait"  # its testcase waits for fragments beside it; nothing follows yet
    RELEASE = "release"  # fragments side by side all done well: what follows the testcase may run
    RETRY = "retry"  # the testcase starts again from its first fragment
    STOP = "stop"  # the testcase is decided, and nothing after it runs


class Verdicts:
    """The state of every testcase's verdict, and the rules that decide it.

    ``on_decided(number)`` is called as each testcase is decided (the
    dispatcher gives its resources back); decided results wait in
    ``unpublished`` until the dispatcher hands them to the reports.
    """

    def __init__(self, plan: Plan, policy: Policy, on_decided: Callable[[int], None], spend_plan: bool = False):
        self.plan = plan
        self.spend_plan = spend_plan
        self.policy = policy
        self.on_decided = on_decided
        count = len(plan.testcases)
        self.decided = [False] * count
        self.attempts = [1] * count
        # Both start shared and empty, and are made per testcase on its
        # first write: a dict and a list each cost 100,000 testcases 12 MB.
        self.failed_attempts: list[list[Outcome]] = [_NO_ATTEMPTS] * count
        # Per testcase, its fragments' outcomes by fragment number.
        self.outcomes: list[dict[int, Outcome]] = [_NO_OUTCOMES] * count
        self.side_by_side = [not planned.in_order for planned in plan.testcases]
        # Their last fragments: what follows the testcase waits for these,
        # released together once it is decided (a retry runs them again).
        self.ends = [
            frozenset(planned.ends()) if side else _NONE for planned, side in zip(plan.testcases, self.side_by_side)
        ]
        # Per fragment of a decided testcase, its name, status and duration,
        # for history: the outcomes, outputs and all, are let go (at 100,000
        # testcases they held 90 MB), and these are kept in arrays (a tuple
        # each took 150 bytes, 15 MB).
        fragments = len(plan.fragments)
        self.ran_names: list[str | None] = [None] * fragments
        self.ran_status = bytearray(fragments)  # 1 + its index in STATUSES; 0: did not run
        self.ran_durations = array("d", bytes(8 * fragments))
        self.failures = 0
        self.stop_reason: str | None = None  # set once --max-failures is reached
        # Verdicts to publish; a number: a testcase taken from the cache,
        # whose Result is made as it is published (see plan.CachedPass).
        self.unpublished: list[Result | int] = []

    def decide_early(self) -> None:
        """Take every verdict known before the run, and only then skip
        dependents: a cycle's members are each an ERROR of their own."""
        early = [(n, p.result) for n, p in enumerate(self.plan.testcases) if p.result is not None]
        for number, result in early:
            self.decided[number] = True
            if isinstance(result, CachedPass):
                self.unpublished.append(number)
                continue
            self.unpublished.append(result)
            self._count_failure(result)
            if self.spend_plan:  # published, then let go
                self.plan.testcases[number].result = None
        for number, result in early:
            if not isinstance(result, CachedPass) and not result.status.ran_ok:
                self._skip_dependents(number, result)

    def published(self, item: Result | int) -> Result:
        """An item of ``unpublished`` as its Result: a cached testcase's is
        made now."""
        if not isinstance(item, int):
            return item
        planned = self.plan.testcases[item]
        cached = planned.result
        assert isinstance(cached, CachedPass)  # what decide_early put there
        return cached.of(planned)

    def forget(self, item: Result | int) -> None:
        """An item of ``unpublished`` was published: a cached testcase's
        verdict is let go by the plan."""
        if isinstance(item, int) and self.spend_plan:
            self.plan.testcases[item].result = None

    def may_start(self, number: int) -> bool:
        """Whether a fragment of testcase ``number`` may start now: it is
        undecided and, past the failure limit, already under way."""
        if self.decided[number]:
            return False
        return self.stop_reason is None or bool(self.outcomes[number]) or self.attempts[number] > 1

    def finished(self, fragment: int, outcome: Outcome) -> Next:
        """Record a fragment's outcome; decide its testcase if it is over:
        when a step fails, or once each fragment has run or cannot (a
        testcase whose fragments run side by side waits for all of them)."""
        number = self.plan.owner[fragment]
        if self.decided[number]:
            return Next.IGNORE
        outcomes = self._outcomes_of(number)
        outcomes[fragment] = outcome
        if self.side_by_side[number]:
            # A shard that skipped, or whose known failures passed, is no
            # failure: only FAIL and ERROR hold back or retry the rest.
            passed = not outcome.status.is_failure
            if self._still_open(number):
                return Next.GO_ON if passed and fragment not in self.ends[number] else Next.WAIT
            over = True
            failed = any(o.status.is_failure for o in outcomes.values())
        else:
            passed = outcome.status is Status.PASS
            over = not passed or len(outcomes) == len(self.plan.testcases[number].fragments)
            failed = not passed
        if over:
            if failed and self._retry(number):
                return Next.RETRY
            result = self.result(number)
            self.decide(number, result)
            if not result.status.ran_ok:
                return Next.STOP
            if self.side_by_side[number]:
                return Next.RELEASE
            return Next.GO_ON if passed else Next.STOP
        return Next.GO_ON

    def _still_open(self, number: int) -> bool:
        """Whether a fragment of the testcase has yet to finish and can: it
        waits for no fragment of it that failed."""
        planned = self.plan.testcases[number]
        outcomes = self.outcomes[number]
        blocked = [False] * len(planned.fragments)
        for position, fragment in enumerate(planned.fragments):
            if fragment in outcomes:
                blocked[position] = outcomes[fragment].status.is_failure
                continue
            if not any(blocked[before] for before in planned.inner[position]):
                return True
            blocked[position] = True
        return False

    def _retry(self, number: int) -> bool:
        """``retries``: run a failed testcase again from its first step."""
        planned = self.plan.testcases[number]
        if self.attempts[number] > planned.retries or self.stop_reason is not None:
            return False
        self.attempts[number] += 1
        self.failed_attempts[number] = [*self.failed_attempts[number], _last([o for _, o in self._ran(number)])]
        self.outcomes[number] = _NO_OUTCOMES
        return True

    def _outcomes_of(self, number: int) -> dict[int, Outcome]:
        """The testcase's outcomes, to add to."""
        outcomes = self.outcomes[number]
        if outcomes is _NO_OUTCOMES:
            outcomes = self.outcomes[number] = {}
        return outcomes

    def _ran(self, number: int) -> list[tuple[Fragment, Outcome]]:
        """The testcase's fragments that ran, with their outcomes, in its order."""
        outcomes = self.outcomes[number]
        return [(self.plan.fragments[f], outcomes[f]) for f in self.plan.testcases[number].fragments if f in outcomes]

    def result(self, number: int) -> Result:
        """Fold a testcase's fragment outcomes into its Result."""
        planned = self.plan.testcases[number]
        ran = self._ran(number)
        outcomes = [outcome for _, outcome in ran]
        last = _last(outcomes)
        message = last.message
        not_run = len(planned.fragments) - len(outcomes)
        if last.status is not Status.PASS and not_run:
            what = "shard" if self.side_by_side[number] else "later step"
            message += f" ({not_run} {what}{'s' if not_run > 1 else ''} not run)"
        if len(outcomes) == 1:
            output = last.output
        else:
            output = "".join(
                f"[{fragment.name}]\n{outcome.output}" + ("" if outcome.output.endswith("\n") else "\n")
                for fragment, outcome in ran
            )
        status, reason = last.status, last.reason
        subresults = self._subresults(ran)
        if len(outcomes) > 1 and (self.side_by_side[number] or sum(bool(o.subresults) for o in outcomes) > 1):
            status, reason, message = _side_by_side(ran, subresults)
            stopped = [(f, o) for f, o in ran if _stopped(o)]
            if stopped and not status.is_failure:
                # The run stopped it before its tests all ran: that is its verdict.
                status, reason = stopped[0][1].status, stopped[0][1].reason
                message = "; ".join(f"{f.name}: {o.message}" for f, o in stopped)
        attempts = self.attempts[number]
        if attempts > 1:
            if status is Status.PASS:
                message = (
                    f"passed on attempt {attempts} of {planned.retries + 1} "
                    f"(flaky: earlier attempts {self._earlier(number)})"
                )
            else:
                message += f" (failed all {attempts} attempts)"
        if planned.xfail is not None and status in (Status.PASS, Status.FAIL):
            # control: a failure is expected here. FAIL is then no news, a PASS is.
            if status is Status.FAIL:
                status, message = Status.XFAIL, f"expected failure ({planned.xfail}): {message}"
            else:
                status, message = Status.XPASS, f"passed, but a failure was expected: {planned.xfail}"
        return planned.verdict(
            status,
            reason,
            message,
            attempts=attempts,
            start=min((o.start for o in outcomes if o.start), default=0.0),
            duration=sum(o.duration for o in outcomes),
            slot=last.slot,
            commands=[c for o in outcomes for c in o.commands],
            output=output,
            diff=last.diff,
            log_files=[path for o in outcomes for path in o.log_files],
            traceback=last.traceback,
            subresults=subresults,
            wall=_wall(outcomes) if self.side_by_side[number] and len(outcomes) > 1 else None,
        )

    @staticmethod
    def _subresults(ran: list[tuple[Fragment, Outcome]]) -> list[SubResult]:
        """The sub-results of the fragments that ran, as their driver
        orders them (shards side by side interleave)."""
        if sum(bool(outcome.subresults) for _, outcome in ran) < 2:
            return [sub for _, outcome in ran for sub in outcome.subresults]
        from run_testsuite.drivers.registry import load_reference

        fragments = [fragment for fragment, _ in ran]
        outcomes = [outcome for _, outcome in ran]
        try:  # loaded already, to plan the testcase: this is a cache lookup
            driver = load_reference(fragments[0].driver, fragments[0].driver_path)
            return driver.merge_subresults(fragments, outcomes)
        except Exception:  # a driver's bug must not lose the results
            return [sub for outcome in outcomes for sub in outcome.subresults]

    def _earlier(self, number: int) -> str:
        return "; ".join(
            f"{o.status.value}{' ' + o.reason.value if o.reason else ''}" for o in self.failed_attempts[number]
        )

    def decide(self, number: int, result: Result) -> None:
        """Take a testcase's verdict; if it did not pass, skip its dependents."""
        if self.decided[number]:
            return
        self.decided[number] = True
        self.unpublished.append(result)
        self._let_go(number, keep_fragments=result.status.is_failure or not self.spend_plan)
        self.on_decided(number)
        self._count_failure(result)
        if not result.status.ran_ok:
            self._skip_dependents(number, result)

    def _let_go(self, number: int, keep_fragments: bool) -> None:
        """Keep only the timings of a decided testcase's fragments, and
        unless it failed (--rewrite reads those), not the fragments either:
        at 100,000 testcases they held 120 MB, which the results written
        meanwhile take instead. The plan keeps a stand-in for each."""
        outcomes = self.outcomes[number]
        fragments = self.plan.fragments
        if outcomes:
            for f, outcome in outcomes.items():
                self.ran_names[f] = fragments[f].name
                self.ran_status[f] = 1 + STATUSES.index(outcome.status)
                self.ran_durations[f] = outcome.duration
            self.outcomes[number] = _NO_OUTCOMES
        if not keep_fragments:
            for f in self.plan.testcases[number].fragments:
                fragments[f] = DECIDED

    def stop_running(
        self, fragment: int, slot: int, status: Status, reason: Reason, message: str, began: float | None = None
    ) -> None:
        """A fragment was stopped while it ran (an interrupt, --fail-fast):
        that is its testcase's last outcome, from ``began`` (wall clock)
        until now."""
        number = self.plan.owner[fragment]
        if not self.decided[number]:
            start, duration = (began, max(0.0, time.time() - began)) if began else (0.0, 0.0)
            self._outcomes_of(number)[fragment] = Outcome(
                status, reason, message, slot=slot, start=start, duration=duration
            )
            self.decide(number, self.result(number))

    def _count_failure(self, result: Result) -> None:
        """--max-failures counts every FAIL and ERROR, spec errors too, but
        those of quarantined testcases (flaky: they must not stop a run)."""
        if not result.status.is_failure or result.quarantined:
            return
        self.failures += 1
        limit = self.policy.max_failures
        if limit and self.failures >= limit and self.stop_reason is None:
            plural = "s" if self.failures > 1 else ""
            option = "-x" if self.policy.fail_fast and limit == 1 else f"--max-failures {limit}"
            self.stop_reason = f"{self.failures} failure{plural} reached {option}"

    def _skip_dependents(self, number: int, cause: Result) -> None:
        """SKIP everything downstream of a testcase that did not pass."""
        pending = [(dependent, cause) for dependent in self.plan.dependents[number]]
        while pending:
            number, cause = pending.pop()
            if self.decided[number]:
                continue
            what = "set-up" if cause.kind == "setup" else "dependency"
            skipped = self.plan.testcases[number].verdict(
                Status.SKIP, Reason.DEPENDENCY, f"not run: {what} '{cause.name}' did not pass ({cause.status.value})"
            )
            self.decided[number] = True
            self.unpublished.append(skipped)
            pending.extend((dependent, skipped) for dependent in self.plan.dependents[number])

    def settle(self, interrupted: bool) -> None:
        """Give every testcase still undecided a result, so none is lost."""
        for number, planned in enumerate(self.plan.testcases):
            if self.decided[number]:
                continue
            if self.outcomes[number]:  # under way: a failure seen already is not hidden
                result = self.result(number)
                if result.status.is_failure and result.reason not in STOPPED:
                    self.decided[number] = True
                    self.unpublished.append(result)
                    continue
            if interrupted:
                status, reason, message = Status.SKIP, Reason.INTERRUPTED, "not run: the run was interrupted"
            elif self.stop_reason is not None:
                status, reason, message = Status.SKIP, Reason.MAX_FAILURES, f"not run: {self.stop_reason}"
            else:  # pragma: no cover - would be a scheduler bug
                status, reason, message = Status.ERROR, Reason.CRASH, "never became ready to run"
            # Decided directly, not through decide: every testcase left gets
            # the same reason, whichever order they come in.
            self.decided[number] = True
            self.unpublished.append(planned.verdict(status, reason, message))

    def fragment_outcomes(self) -> list[tuple[str, str, str, float]]:
        """(testcase, fragment, status, duration) of every fragment that ran
        in the last attempt of its testcase, for history."""
        rows = []
        fragments = self.plan.fragments
        names, codes, durations = self.ran_names, self.ran_status, self.ran_durations
        for planned, outcomes in zip(self.plan.testcases, self.outcomes):
            for number in planned.fragments:
                outcome = outcomes.get(number)
                if outcome is not None:
                    rows.append((planned.name, fragments[number].name, outcome.status.value, outcome.duration))
                elif codes[number]:
                    name = names[number]
                    assert name is not None  # kept with its status
                    rows.append((planned.name, name, STATUSES[codes[number] - 1].value, durations[number]))
        return rows


_NONE: frozenset[int] = frozenset()
STATUSES = list(Status)
_NO_OUTCOMES: dict[int, Outcome] = {}  # never added to: see _outcomes_of
_NO_ATTEMPTS: list[Outcome] = []  # never added to: see _retry


def _last(outcomes: list[Outcome]) -> Outcome:
    """What a verdict is of: the first failure, else the last outcome."""
    return next((o for o in outcomes if o.status is not Status.PASS), outcomes[-1])


def _stopped(outcome: Outcome) -> bool:
    """An outcome the run made by stopping a fragment (Ctrl-C, -x): it says
    nothing of the tests."""
    return outcome.reason in STOPPED and not outcome.subresults


def _wall(outcomes: list[Outcome]) -> float | None:
    """Seconds from the first fragment's start to the last one's end."""
    ran = [o for o in outcomes if o.start]
    if not ran:
        return None
    return max(o.start + o.duration for o in ran) - min(o.start for o in ran)


def _side_by_side(
    ran: list[tuple[Fragment, Outcome]], subresults: list[SubResult]
) -> tuple[Status, Reason | None, str]:
    """The verdict of fragments that ran side by side (shards): their
    sub-results summarised as one, and what failed besides them, by
    fragment. An ERROR outranks a FAIL."""
    status, reason, message = summarise(subresults)
    # A fragment the run stopped (Ctrl-C, -x) says nothing of the tests:
    # the failures seen before it are the verdict (see Verdicts.result).
    failed = [(f, o) for f, o in ran if o.status.is_failure and not _stopped(o)]
    if any(outcome.status is Status.ERROR for _, outcome in failed):
        status = Status.ERROR
    elif failed:
        status = Status.FAIL
    # What a fragment said beyond its own sub-results' summary (an exit
    # status, a crash between tests, a stale xfail name) is kept, with the
    # fragment's name.
    extras = []
    for fragment, outcome in failed:
        own = summarise(outcome.subresults)[2] if outcome.subresults else ""
        extra = outcome.message.removeprefix(own).removeprefix("; ") if own else outcome.message
        if extra:
            # A problem of the spec (a stale xfail name: FILE:LINE:COL: ...)
            # is the testcase's, not the shard's that happened to find it.
            extras.append((outcome, extra if is_located(extra) else f"{fragment.name}: {extra}"))
    if extras:
        if not any(sub.status.is_failure for sub in subresults):
            reason = extras[0][0].reason
            message = "; ".join(text for _, text in extras)
        else:
            message = "; ".join([message, *(text for _, text in extras)])
    return status, reason, message
