"""Dispatch: ready fragments to the slots' workers, in dependency order.

It is event-driven: between dispatches it blocks in one selector (epoll) on
the workers' pipes and process sentinels, waking only when a fragment
finishes, a worker dies, or a watchdog deadline passes. Nothing sleeps and
polls.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

from run_testsuite.dag import ReadyQueue
from run_testsuite.fragment import Fragment
from run_testsuite.plan import Plan
from run_testsuite.processes import become_subreaper, children, kill_orphans
from run_testsuite.results import Outcome, Reason, Result, Status
from run_testsuite.scheduler.priorities import expected_durations, priorities
from run_testsuite.scheduler.resources import ResourcePools
from run_testsuite.scheduler.verdicts import Next, Policy, Verdicts
from run_testsuite.workers.base import Event, Worker

# A fragment is sent ahead to a worker only behind one expected to end
# within this many seconds: waiting behind it never costs the schedule more.
AHEAD_WITHIN = 0.5
# The longest the loop blocks at once; epoll refuses waits past its int.
MAX_WAIT = 3600.0
# Seconds the loop waits while verdicts wait for the reports to take them.
PUBLISH_WAIT = 0.02


class _FailFast(Exception):
    """--fail-fast: leave the loop and stop what runs."""


class MultiprocessScheduler:
    """Run every fragment of ``plan`` on ``jobs`` slots, each with its own worker."""

    def __init__(
        self,
        plan: Plan,
        jobs: int,
        on_result: Callable[[Result], None],
        worker_class: type[Worker] | None = None,
        on_output: Callable[[str, bytes], None] | None = None,
        on_progress: Callable[[MultiprocessScheduler], None] | None = None,
        stderr_dir: str | None = None,
        policy: Policy | None = None,
        slot_cpus: dict[int, list[int]] | None = None,
        on_started: Callable[[], None] | None = None,
        defer_close: bool = False,
        discards: Callable[[], tuple[str, ...]] | None = None,
        spend_plan: bool = False,
        has_room: Callable[[], bool] | None = None,
    ):
        """``on_started`` is called once the workers exist and the first
        fragments are handed out: the place to start threads of this
        process, which forking workers should not copy. ``discards()``
        gives the work directories the worker of each fragment sent is to
        remove (``--cleanup``). ``spend_plan``: the plan runs once, and the
        fragments of a testcase decided without failing are let go (see
        ``Verdicts``). ``has_room()``: whether the reports take a verdict
        now without waiting (the index's writer thread); while they do not,
        verdicts wait and the run goes on."""
        if worker_class is None:
            from run_testsuite.workers.local import ProcessWorker

            worker_class = ProcessWorker
        self.plan = plan
        self.has_room = has_room
        self.on_started = on_started
        self.defer_close = defer_close
        self.discards = discards
        self._subreaper = False
        self.slots = 0
        self.jobs = max(1, jobs)
        self.on_result = on_result
        self.worker_class = worker_class
        self.on_output = on_output
        self._hook = self._output if on_output is not None else None  # what workers call with output
        self.on_progress = on_progress
        self.stderr_dir = stderr_dir
        self.policy = policy or Policy()
        self.slot_cpus = slot_cpus or {}
        self.resources = ResourcePools(plan.suite)
        # Verdicts wait in verdicts.unpublished while the loop hands out new
        # work: a slot that just finished gets its next fragment before we
        # spend time writing reports, so reporting never delays a worker.
        self.verdicts = Verdicts(plan, self.policy, self._decided, spend_plan)
        self.running = 0
        self.done = 0
        self.workers: list[Worker] = []
        self.interrupted = False
        self.children_before: frozenset[int] = frozenset()
        self._critical = 0  # > 0 while results are handed to the reports
        self._pending_interrupt = False
        self._stopping = False

    # -- the main loop -----------------------------------------------------
    def run(self) -> None:
        plan = self.plan
        self.expected = expected_durations(plan, self.policy.durations)
        self.ready = ReadyQueue(plan.graph, priorities(plan, self.expected, self.policy.failed_last_time))
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
            self.verdicts.decide_early()
            self._publish()
            self._loop()
            ended_well = True
        except _FailFast:
            self._interrupt(Status.SKIP, Reason.MAX_FAILURES, f"stopped: {self.verdicts.stop_reason}")
        except KeyboardInterrupt:
            self.interrupted = True
            self._interrupt()
        finally:
            # From here on an interrupt only hurries things (see interrupt_requested).
            self._stopping = True
            # Tell every worker first, then wait: they wind down together.
            for worker in self.workers:
                worker.release()
            self._subreaper = subreaper
            if not (ended_well and self.defer_close):
                self.close()
            self._pending_interrupt = False
            self._publish(everything=True)
        self.verdicts.settle(self.interrupted)
        self._publish(everything=True)

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
            if self.verdicts.stop_reason is not None:
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

    def _pick(self) -> tuple[int, Fragment] | None:
        """Take the best ready fragment: with its spec, resources taken,
        or None when it is not to run (now)."""
        fragment = self.ready.pop()
        number = self.plan.owner[fragment]
        if not self.verdicts.may_start(number):
            return None
        spec = self.resources.acquire(number, self.plan.fragments[fragment])
        if spec is None:
            self.resources.wait(fragment)
            return None
        if self.discards is not None:
            spec.discard = self.discards()
        return fragment, spec

    def _send_ahead(self) -> int:
        """Send busy workers their next fragment while there is plenty of
        short work: the round trip to this process is then off the slot's
        path. Only where it cannot cost the schedule: every slot is busy,
        more fragments are ready than there are slots (the end of the run,
        where the order matters most, is handed out as slots free), the
        fragment a worker runs is expected to end soon, and the next one
        needs no resources (held while waiting, they would idle)."""
        if self.verdicts.stop_reason is not None or len(self.workers) < self.slots:
            return 0
        sent = 0
        for worker in self.workers:
            if len(self.ready) < self.slots:
                break
            if not worker.free_ahead or worker.job is None or self.expected[worker.job] > AHEAD_WITHIN:
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

    def _wait(self) -> list[Event]:
        """Block until a worker has news or a watchdog deadline passes."""
        events: list[Event] = []
        for worker in self.workers:  # workers that finish synchronously
            if worker.busy and not worker.waitables():
                events.extend(worker.events())
        if events:
            return events
        deadline = min((w.deadline for w in self.workers if w.busy and w.deadline), default=None)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if timeout is not None and not timeout < MAX_WAIT:  # a watchdog a year away, inf, NaN
            timeout = MAX_WAIT
        if self.verdicts.unpublished and (timeout is None or timeout > PUBLISH_WAIT):
            timeout = PUBLISH_WAIT  # verdicts wait for the reports: back soon to hand them over
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

    def _finished(self, fragment: int, outcome: Outcome) -> None:
        step = self.verdicts.finished(fragment, outcome)
        if step is Next.GO_ON:
            self.ready.done(fragment)
        elif step is Next.RETRY:
            self.ready.restart(self.plan.testcases[self.plan.owner[fragment]].fragments)
        elif step is Next.RELEASE:
            for last in self.plan.testcases[self.plan.owner[fragment]].ends():
                self.ready.done(last)
        # STOP, WAIT, IGNORE: what follows it does not run (yet).

    def _decided(self, number: int) -> None:
        """A testcase was decided: whatever waited for its resources may
        start now (the queue re-orders it)."""
        for waiting in self.resources.release(number):
            self.ready.push(waiting)

    # -- reporting -------------------------------------------------------------
    def _publish(self, everything: bool = False) -> None:
        """Hand verdicts to the reports: as many as they take without
        waiting, unless ``everything`` (the run is over). A Ctrl-C arriving
        meanwhile waits until this is done (see ``interrupt_requested``),
        so none is half-written. (100,000 verdicts known at the start,
        taken from the cache, used to wait for the writer thread, and the
        fragments to run behind them.)"""
        unpublished = self.verdicts.unpublished
        self._critical += 1
        try:
            done = 0
            try:
                for item in unpublished:
                    if not everything and self.has_room is not None and not self.has_room():
                        break
                    self.on_result(self.verdicts.published(item))
                    self.verdicts.forget(item)
                    done += 1
            finally:  # what was handed over is gone, even if a report failed
                del unpublished[:done]
        finally:
            self._critical -= 1
        if self._pending_interrupt and not self._critical and not self._stopping:
            self._pending_interrupt = False
            raise KeyboardInterrupt

    def running_testcases(self) -> list[str]:
        """The testcases of the fragments running now."""
        plan = self.plan
        return [plan.testcases[plan.owner[w.job]].name for w in self.workers if w.job is not None]

    def ready_count(self) -> int:
        """Fragments ready to run and not yet handed out."""
        return len(self.ready) if hasattr(self, "ready") else 0

    def fragment_outcomes(self) -> list[tuple[str, str, str, float]]:
        """(testcase, fragment, status, duration) of what ran, for history."""
        return self.verdicts.fragment_outcomes()

    def _output(self, job: int, data: bytes) -> None:
        if self.on_output is not None:
            self.on_output(self.plan.testcases[self.plan.owner[job]].name, data)

    # -- stopping ------------------------------------------------------------
    def interrupt_requested(self) -> bool:
        """A first Ctrl-C or SIGTERM arrived (called from the signal
        handler). True when the caller is to raise KeyboardInterrupt now to
        leave the loop; False when the run is winding down already (the
        exit status says it all) or results are being handed to the reports
        (the interrupt is raised right after, so none is half-written)."""
        self.interrupted = True
        if self._stopping:
            return False
        if self._critical:
            self._pending_interrupt = True
            return False
        return True

    def _interrupt(
        self,
        status: Status = Status.ERROR,
        reason: Reason = Reason.INTERRUPTED,
        message: str = "interrupted while running",
    ) -> None:
        """Ctrl-C or --fail-fast: stop running fragments; they and the rest
        are reported."""
        for worker in self.workers:
            if worker.job is not None:
                job = worker.job
                worker.interrupt()
                self.verdicts.stop_running(job, worker.slot, status, reason, message, worker.began)

    def kill_now(self) -> None:
        """A second Ctrl-C: no grace. Workers and every process below this
        one are killed at once; what finished is still reported."""
        for worker in self.workers:
            worker.kill()
        kill_orphans(adopted_since=self.children_before)
