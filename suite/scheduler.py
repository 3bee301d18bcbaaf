"""The scheduler: runs a Plan's fragments on N slots, in dependency order.

It is event-driven: between dispatches it blocks in one selector (epoll)
on the workers' pipes and process sentinels, waking only when a fragment finishes, a worker dies, or a
watchdog deadline passes. Nothing sleeps and polls.
"""

from __future__ import annotations

import re
import selectors
import time
from dataclasses import dataclass, field, replace
from collections.abc import Callable

from suite.dag import ReadyQueue
from suite.loader import Plan
from suite.results import Outcome, Reason, Result, Status
from suite.processes import become_subreaper, children, kill_orphans
from suite.workers import ProcessWorker, Worker


@dataclass
class Policy:
    """How the run is steered: failure limits and what history tells."""

    max_failures: int = 0  # 0: no limit
    fail_fast: bool = False  # also stop running fragments at the limit
    durations: dict[tuple[str, str], float] = field(default_factory=dict)
    failed_last_time: set[str] = field(default_factory=set)


# A fragment is sent ahead to a worker only behind one expected to end
# within this many seconds: waiting behind it never costs the schedule more.
AHEAD_WITHIN = 0.5


class _FailFast(Exception):
    """--fail-fast: leave the loop and stop what runs."""


class MultiprocessScheduler:
    """Run every fragment of ``plan`` on ``jobs`` slots, each with its own worker."""

    def __init__(
        self,
        plan: Plan,
        jobs: int,
        on_result: Callable[[Result], None],
        worker_class: type[Worker] = ProcessWorker,
        on_output: Callable[[str, bytes | None], None] | None = None,
        on_progress: Callable[["MultiprocessScheduler"], None] | None = None,
        stderr_dir: str | None = None,
        policy: "Policy | None" = None,
        slot_cpus: dict[int, list[int]] | None = None,
        on_started: Callable[[], None] | None = None,
        defer_close: bool = False,
    ):
        """``on_started`` is called once the workers exist and the first
        fragments are handed out: the place to start threads of this
        process, which forking workers should not copy."""
        self.plan = plan
        self.on_started = on_started
        self.defer_close = defer_close
        self._subreaper = False
        self.slots = 0
        self.jobs = max(1, jobs)
        self.on_result = on_result
        # Verdicts wait here while the loop hands out new work: a slot that
        # just finished gets its next fragment before we spend time writing
        # reports, so reporting never delays a worker.
        self.unpublished: list[Result] = []
        self.worker_class = worker_class
        self.on_output = on_output
        self._hook = self._output if on_output is not None else None  # what workers call with output
        self.on_progress = on_progress
        self.stderr_dir = stderr_dir
        self.policy = policy or Policy()
        self.slot_cpus = slot_cpus or {}
        self.failures = 0
        self.stop_reason: str | None = None  # set once --max-failures is reached
        # Resource pools: the members free right now, per pool.
        self.free = {pool: plan.suite.pool(pool) for pool in plan.suite.resources}
        self.held: dict[int, tuple[dict[str, list[str]], dict]] = {}  # testcase -> (taken, env)
        self.blocked: list[int] = []  # ready, but waiting for resources
        self.running = 0
        self.done = 0
        self.decided: list[bool] = [False] * len(plan.testcases)
        self.attempts: list[int] = [1] * len(plan.testcases)
        self.failed_attempts: list[list[Outcome]] = [[] for _ in plan.testcases]
        self.outcomes: list[list[Outcome]] = [[] for _ in plan.testcases]
        self.workers: list[Worker] = []
        self.interrupted = False
        self.critical = 0
        self.pending_interrupt = False
        self.stopping = False

    # -- the main loop -----------------------------------------------------
    def run(self) -> None:
        plan = self.plan
        self.expected = self.expected_durations()
        self.ready = ReadyQueue(plan.graph, self.priorities())
        # Never start more workers than there are fragments to run.
        slots = min(self.jobs, len(plan.fragments)) or 0
        if self.worker_class.max_slots is not None:
            slots = min(slots, self.worker_class.max_slots)
        # While the run lasts, this process adopts orphans too: commands of a
        # worker that died are reparented here and swept at the end.
        self.children_before = frozenset(children())
        subreaper = become_subreaper()
        self.slots = slots
        ended_well = False
        try:
            self._publish_early()
            self._loop()
            ended_well = True
        except _FailFast:
            self._interrupt(Status.SKIP, Reason.MAX_FAILURES, f"stopped: {self.stop_reason}")
        except KeyboardInterrupt:
            self.interrupted = True
            self._interrupt()
        finally:
            # From here on an interrupt only hurries things (see cli.Interrupts).
            self.stopping = True
            # Tell every worker first, then wait: they wind down together.
            for worker in self.workers:
                worker.release()
            self._subreaper = subreaper
            if not (ended_well and self.defer_close):
                self.close()
            self.pending_interrupt = False
            self._publish()
        self._settle()
        self._publish()

    def close(self) -> None:
        """Wait for the workers to be gone and sweep what their commands
        left; ``run`` does it, unless told to leave it to its caller
        (``defer_close``), who writes reports meanwhile. Idempotent."""
        for worker in self.workers:
            worker.stop()
        if self._subreaper:
            kill_orphans(adopted_since=self.children_before)
            become_subreaper(False)
            self._subreaper = False

    def _publish_early(self) -> None:
        """Publish every verdict known before the run first, and only then
        skip dependents: a cycle's members are each an ERROR of their own."""
        early = [(n, p.result) for n, p in enumerate(self.plan.testcases) if p.result is not None]
        for number, result in early:
            self.decided[number] = True
            self.unpublished.append(result)
            self._count_failure(result)
        for number, result in early:
            if not result.status.ran_ok:
                self._skip_dependents(number, result)
        self._publish()

    def _loop(self) -> None:
        # One selector for the whole run (epoll on Linux): each wake-up is a
        # single system call, whatever the number of slots.
        self.selector = selectors.DefaultSelector()
        self.registered: dict[Worker, tuple[int, list]] = {}
        idle: list[Worker] = []
        running = 0
        while True:
            while (idle or len(self.workers) < self.slots) and self.ready:
                picked = self._pick()
                if picked is None:
                    continue
                worker = idle.pop() if idle else self._start_worker()
                worker.submit(*picked)
                running += 1
            running += self._send_ahead()
            if self.on_started is not None:  # once the first fragments are out
                self.on_started()
                self.on_started = None
            self._publish()
            if not running:
                return
            if self.stop_reason is not None:
                if self.policy.fail_fast:
                    raise _FailFast
                for worker in self.workers:  # nothing new starts
                    worker.withdraw()
            self.running = sum(w.busy for w in self.workers)
            if self.on_progress is not None:
                self.on_progress(self)
            events = self._wait()
            for job, outcome in events:
                running -= 1
                if outcome is None:  # given back unrun
                    self.ready.push(job)
                    continue
                self.done += 1
                self._finished(job, outcome)
            if events:
                idle = [w for w in self.workers if not w.busy]
                idle.reverse()

    def _pick(self) -> tuple[int, object] | None:
        """Take the best ready fragment: with its spec, resources taken,
        or None when it is not to run (now)."""
        fragment = self.ready.pop()
        number = self.plan.owner[fragment]
        if self.decided[number]:
            return None
        if self.stop_reason is not None and not self.outcomes[number]:
            return None  # past --max-failures only testcases under way go on
        spec = self._acquire(fragment)
        if spec is None:
            self.blocked.append(fragment)
            return None
        return fragment, spec

    def _send_ahead(self) -> int:
        """Send busy workers their next fragment while there is plenty of
        short work: the round trip to this process is then off the slot's
        path. Only where it cannot cost the schedule: every slot is busy,
        more fragments are ready than there are slots (the end of the run,
        where the order matters most, is handed out as slots free), the
        fragment a worker runs is expected to end soon, and the next one
        needs no resources (held while waiting, they would idle)."""
        if self.stop_reason is not None or len(self.workers) < self.slots:
            return 0
        sent = 0
        for worker in self.workers:
            if len(self.ready.heap) < self.slots:
                break
            if not worker.free_ahead or self.expected[worker.job] > AHEAD_WITHIN:
                continue
            if self.plan.fragments[self.ready.peek()].resources:
                break
            picked = self._pick()
            if picked is not None:
                worker.submit(*picked)
                sent += 1
        return sent

    def _start_worker(self) -> Worker:
        """Start the worker of the next slot. Workers start as the first
        fragments are handed out, not all before: the first fragment runs
        while the later workers are still being forked."""
        slot = len(self.workers) + 1
        worker = self.worker_class(slot, self._hook, self.stderr_dir, self.slot_cpus.get(slot))
        self.workers.append(worker)
        self._register(worker)
        return worker

    def _register(self, worker: Worker) -> None:
        """(Re)register a worker's file descriptors, e.g. after a respawn."""
        known = self.registered.get(worker)
        if known is not None and known[0] == worker.generation:
            return
        for old in known[1] if known else ():
            self.selector.unregister(old)
        waitables = worker.waitables()
        for waitable in waitables:
            self.selector.register(waitable, selectors.EVENT_READ, worker)
        self.registered[worker] = (worker.generation, waitables)

    def _wait(self) -> list:
        """Block until a worker has news or a watchdog deadline passes."""
        events = []
        for worker in self.workers:  # workers that finish synchronously
            if worker.busy and not worker.waitables():
                events.extend(worker.events())
        if events:
            return events
        deadline = min((w.deadline for w in self.workers if w.busy and w.deadline), default=None)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        woken = {key.data for key, _ in self.selector.select(timeout)}
        for worker in woken:
            events.extend(worker.events())
            self._register(worker)
        now = time.monotonic()
        for worker in self.workers:
            if worker.busy and worker.deadline is not None and now > worker.deadline:
                events.extend(worker.expire())
                self._register(worker)
        return events

    # -- verdicts ------------------------------------------------------------
    def _finished(self, fragment: int, outcome: Outcome) -> None:
        number = self.plan.owner[fragment]
        if self.decided[number]:
            return
        self.outcomes[number].append(outcome)
        if outcome.status is not Status.PASS:
            if self._retry(number):
                return
            self._decide(number, self._result(number))
        elif self.plan.fragments[fragment].final:
            result = self._result(number)
            self._decide(number, result)
            if result.status.ran_ok:
                self.ready.done(fragment)
        else:
            self.ready.done(fragment)

    def _retry(self, number: int) -> bool:
        """``retries``: run a failed testcase again from its first step."""
        planned = self.plan.testcases[number]
        if self.attempts[number] > planned.retries or self.stop_reason is not None:
            return False
        self.attempts[number] += 1
        self.failed_attempts[number].append(self.outcomes[number][-1])
        self.outcomes[number] = []
        chain = planned.fragments
        for later in chain[1:]:  # each waits for its predecessor again
            self.ready.waiting[later] = 1
        self.ready.push(chain[0])
        return True

    def _result(self, number: int) -> Result:
        """Fold a testcase's fragment outcomes into its Result."""
        planned = self.plan.testcases[number]
        outcomes = self.outcomes[number]
        last = outcomes[-1]
        fragments = [self.plan.fragments[f] for f in planned.fragments]
        message = last.message
        not_run = len(fragments) - len(outcomes)
        if last.status is not Status.PASS and not_run:
            message += f" ({not_run} later step{'s' if not_run > 1 else ''} not run)"
        if len(outcomes) == 1:
            output = last.output
        else:
            output = "".join(
                f"[{fragment.name}]\n{outcome.output}" + ("" if outcome.output.endswith("\n") else "\n")
                for fragment, outcome in zip(fragments, outcomes)
            )
        status, reason = last.status, last.reason
        attempts = self.attempts[number]
        if attempts > 1:
            if status is Status.PASS:
                message = f"passed on attempt {attempts} of {planned.retries + 1} (flaky: earlier attempts {self._earlier(number)})"
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
            start=outcomes[0].start,
            duration=sum(o.duration for o in outcomes),
            slot=last.slot,
            commands=[c for o in outcomes for c in o.commands],
            output=output,
            diff=last.diff,
            log_files=[path for o in outcomes for path in o.log_files],
            traceback=last.traceback,
        )

    def _earlier(self, number: int) -> str:
        return "; ".join(
            f"{o.status.value}{' ' + o.reason.value if o.reason else ''}" for o in self.failed_attempts[number]
        )

    def _decide(self, number: int, result: Result) -> None:
        """Publish a testcase's verdict; if it did not pass, skip its dependents."""
        if self.decided[number]:
            return
        self.decided[number] = True
        self.unpublished.append(result)
        self._release(number)
        self._count_failure(result)
        if not result.status.ran_ok:
            self._skip_dependents(number, result)

    def _publish(self) -> None:
        """Hand verdicts to the reports. A Ctrl-C arriving meanwhile waits
        until this is done (see ``deferring``), so none is half-written."""
        self.critical += 1
        try:
            done = 0
            try:
                for result in self.unpublished:
                    self.on_result(result)
                    done += 1
            finally:  # what was handed over is gone, even if a report failed
                del self.unpublished[:done]
        finally:
            self.critical -= 1
        if self.pending_interrupt and not self.critical and not self.stopping:
            self.pending_interrupt = False
            raise KeyboardInterrupt

    @property
    def deferring(self) -> bool:
        """True while an interrupt must wait: results are being written."""
        return self.critical > 0

    def _count_failure(self, result: Result) -> None:
        """--max-failures counts every FAIL and ERROR, spec errors too."""
        if not result.status.is_failure:
            return
        self.failures += 1
        limit = self.policy.max_failures
        if limit and self.failures >= limit and self.stop_reason is None:
            self.stop_reason = f"{self.failures} failure{'s' if self.failures > 1 else ''} reached --max-failures {limit}"

    def _skip_dependents(self, number: int, cause: Result) -> None:
        """SKIP everything downstream of a testcase that did not pass."""
        pending = [(dependent, cause) for dependent in self.plan.dependents[number]]
        while pending:
            number, cause = pending.pop()
            if self.decided[number]:
                continue
            skipped = self._skipped(number, cause)
            self.decided[number] = True
            self.unpublished.append(skipped)
            pending.extend((dependent, skipped) for dependent in self.plan.dependents[number])

    def _skipped(self, number: int, cause: Result) -> Result:
        what = "set-up" if cause.kind == "setup" else "dependency"
        return self.plan.testcases[number].verdict(
            Status.SKIP, Reason.DEPENDENCY, f"not run: {what} '{cause.name}' did not pass ({cause.status.value})"
        )

    # -- stopping ------------------------------------------------------------
    def _interrupt(
        self, status: Status = Status.ERROR, reason: Reason = Reason.INTERRUPTED, message: str = "interrupted while running"
    ) -> None:
        """Ctrl-C or --fail-fast: stop running fragments; they and the rest
        are reported."""
        for worker in self.workers:
            if worker.busy:
                number = self.plan.owner[worker.job]
                worker.interrupt()
                if not self.decided[number]:
                    self.outcomes[number].append(Outcome(status, reason, message, slot=worker.slot))
                    self._decide(number, self._result(number))

    def kill_now(self) -> None:
        """A second Ctrl-C: no grace. Workers and every process below this
        one are killed at once; what finished is still reported."""
        for worker in self.workers:
            worker.kill()
        kill_orphans(adopted_since=getattr(self, "children_before", frozenset()))

    # -- priorities and resources ------------------------------------------
    def expected_durations(self) -> list[float]:
        """Seconds each fragment is expected to take, from history; a
        fragment never timed counts as the median of those that were (or 1 s)."""
        known = self.policy.durations
        values = sorted(known.values())
        estimate = values[len(values) // 2] if values else 1.0
        return [known.get((f.testcase, f.name), estimate) for f in self.plan.fragments]

    def priorities(self) -> list[float]:
        """Critical-path priority of each fragment: the longest chain of
        expected durations (``self.expected``) from it to the end of the
        graph. What failed last time goes first, so a re-run answers the
        open question soonest."""
        fragments = self.plan.fragments
        weights = self.expected
        longest = self.plan.graph.longest_paths(weights)
        # Ties go to the fragment deeper in a chain: with no history every
        # estimate is equal, and a chain's last link would otherwise wait
        # behind all the independent work named before it.
        for number, depth in enumerate(self.plan.graph.depths()):
            longest[number] += depth * 1e-6
        failed = self.policy.failed_last_time
        if failed:
            bonus = (sum(weights) or 1.0) * 2
            for number, fragment in enumerate(fragments):
                if fragment.testcase in failed:
                    longest[number] += bonus
        return longest

    def _acquire(self, fragment: int):
        """The fragment to send, with its resources taken, or None when they
        are not all free now.

        A testcase takes its resources with its first fragment and keeps
        them until it is decided: its steps all see the same board.
        """
        spec = self.plan.fragments[fragment]
        if not spec.resources:
            return spec
        number = self.plan.owner[fragment]
        if number in self.held:
            return replace(spec, env=self.held[number][1])
        free = self.free
        if any(len(free[pool]) < count for pool, count in spec.resources.items()):
            return None
        taken = {pool: [free[pool].pop(0) for _ in range(count)] for pool, count in spec.resources.items()}
        env = dict(spec.env)
        for pool, members in taken.items():
            env["RESOURCE_" + re.sub(r"[^A-Za-z0-9]", "_", pool).upper()] = ",".join(members)
        self.held[number] = (taken, env)
        return replace(spec, env=env)

    def _release(self, number: int) -> None:
        """A decided testcase gives its resources back."""
        held = self.held.pop(number, None)
        if not held:
            return
        taken = held[0]
        for pool, members in taken.items():
            self.free[pool].extend(members)
        # Whatever waited for resources may start now; the queue re-orders it.
        for waiting in self.blocked:
            self.ready.push(waiting)
        self.blocked.clear()

    def _output(self, job: int, data: bytes) -> None:
        self.on_output(self.plan.fragments[job].testcase, data)

    def _settle(self) -> None:
        """Give every testcase still undecided a result, so none is lost."""
        for number, planned in enumerate(self.plan.testcases):
            if self.decided[number]:
                continue
            if self.interrupted:
                status, reason, message = Status.SKIP, Reason.INTERRUPTED, "not run: the run was interrupted"
            elif self.stop_reason is not None:
                status, reason, message = Status.SKIP, Reason.MAX_FAILURES, f"not run: {self.stop_reason}"
            else:  # pragma: no cover - would be a scheduler bug
                status, reason, message = Status.ERROR, Reason.CRASH, "never became ready to run"
            # Decided directly, not through _decide: every testcase left gets
            # the same reason, whichever order they come in.
            self.decided[number] = True
            self.unpublished.append(planned.verdict(status, reason, message))
