"""Statuses, reasons and the plain data a run produces.

Everything here is a dataclass of plain values so that it pickles across a
worker pipe and serialises to the report index without adaptation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    XFAIL = "XFAIL"
    XPASS = "XPASS"
    SKIP = "SKIP"
    ERROR = "ERROR"

    @property
    def is_failure(self) -> bool:
        """A result that makes the run exit 1."""
        return self in (Status.FAIL, Status.ERROR)

    @property
    def ran_ok(self) -> bool:
        """A result that dependents may build on."""
        return self in (Status.PASS, Status.XPASS)


# The order statuses need attention in, worst first: how reports list
# results, and which of two results of one testcase a merge keeps.
WORST_FIRST = (Status.ERROR, Status.FAIL, Status.XPASS, Status.XFAIL, Status.SKIP, Status.PASS)


class Reason(str, Enum):
    DIFF = "DIFF"
    EXIT_CODE = "EXIT_CODE"
    TIMEOUT = "TIMEOUT"
    CRASH = "CRASH"
    DEPENDENCY = "DEPENDENCY"
    SPEC = "SPEC"
    DRIVER = "DRIVER"
    INTERRUPTED = "INTERRUPTED"
    CONTROL = "CONTROL"
    MAX_FAILURES = "MAX_FAILURES"
    CACHED = "CACHED"
    # The machine refused what the run needed: a full disk, a read-only
    # file system, no descriptors left. Not the driver's fault nor the test's.
    SYSTEM = "SYSTEM"


# How counts of each status read: "2 passed", "1 error", "2 errors".
WORDS = {
    Status.PASS: "passed",
    Status.FAIL: "failed",
    Status.XFAIL: "xfailed",
    Status.XPASS: "xpassed",
    Status.SKIP: "skipped",
    Status.ERROR: "error",  # the one noun: "1 error", "2 errors"
}


def plural_s(status: Status, count: int) -> str:
    """WORDS are participles ("2 passed") but for the one noun: "2 errors"."""
    return "s" if status is Status.ERROR and count != 1 else ""


@dataclass
class CommandRecord:
    """One command a fragment ran, as the user will want to re-run it."""

    step: str
    cmd: str | list[str]
    exit_code: int | None
    duration: float
    timed_out: bool = False
    timeout: float | None = None  # the seconds it was given


def describe_exit(exit_code: int | None, timed_out: bool = False, timeout: float | None = None) -> str:
    """How a command ended, as a reader wants it: ``exit 1``, ``killed by
    SIGSEGV``, ``killed by SIGTERM after the 1 s timeout``."""
    if exit_code is not None and exit_code < 0:
        import signal

        try:
            ended = f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            ended = f"killed by signal {-exit_code}"
    elif exit_code is None:
        ended = "no exit status"
    else:
        ended = f"exit {exit_code}"
    if timed_out:
        limit = f"the {timeout:g} s timeout" if timeout is not None else "its timeout"
        return f"{ended} after {limit}"
    return ended


@dataclass
class SubResult:
    """One test inside a testcase: a TAP point, a GoogleTest test, a JUnit
    ``<testcase>``. ``duration`` is None where the producer does not say;
    ``output`` is an excerpt (kept for the ones that did not pass)."""

    name: str
    status: Status
    reason: Reason | None = None
    message: str = ""
    duration: float | None = None
    output: str = ""
    # Where it stands among its testcase's sub-results, where fragments
    # side by side report them (GoogleTest shards); not saved.
    position: int | None = None

    def to_json(self) -> dict:
        data: dict = {"name": self.name, "status": self.status.value}
        if self.reason is not None:
            data["reason"] = self.reason.value
        if self.message:
            data["message"] = self.message
        if self.duration is not None:
            data["duration"] = round(self.duration, 6)
        if self.output:
            data["output"] = self.output
        return data

    @classmethod
    def from_json(cls, data: dict) -> SubResult:
        reason = data.get("reason")
        return cls(
            str(data["name"]),
            Status(data["status"]),
            Reason(reason) if reason else None,
            data.get("message", ""),
            data.get("duration"),
            data.get("output", ""),
        )


@dataclass
class Outcome:
    """What one fragment did, judged by its driver where it ran."""

    status: Status
    reason: Reason | None = None
    message: str = ""
    commands: list[CommandRecord] = field(default_factory=list)
    output: str = ""
    diff: str | None = None
    start: float = 0.0
    duration: float = 0.0
    slot: int | None = None
    log_files: list[str] = field(default_factory=list)
    traceback: str | None = None
    # The tests inside (see SubResult), in the order they ran.
    subresults: list[SubResult] = field(default_factory=list)


@dataclass(slots=True)
class Verdict:
    """What the run keeps of a result once its file is written: enough for
    history, --rewrite and the exit status, not its outputs (100,000
    results kept whole held 100 MB; these, 12)."""

    name: str
    status: Status
    reason: Reason | None
    duration: float
    attempts: int
    cached: bool | None
    quarantined: str | None


@dataclass(slots=True)
class Result:
    """The verdict on one testcase: what every report is made from."""

    name: str
    status: Status
    reason: Reason | None = None
    message: str = ""
    description: str = ""
    driver: str = ""
    tags: list[str] = field(default_factory=list)
    start: float = 0.0
    duration: float = 0.0
    slot: int | None = None
    commands: list[CommandRecord] = field(default_factory=list)
    output: str = ""
    diff: str | None = None
    log_files: list[str] = field(default_factory=list)
    traceback: str | None = None
    attempts: int = 1
    spec_file: str | None = None
    kind: str = "testcase"
    cached: bool | None = None
    subresults: list[SubResult] = field(default_factory=list)
    # Fragments that ran side by side: from the first one's start to the
    # last one's end (``duration`` is their sum, the work done).
    wall: float | None = None
    # Why its failures do not fail the run (quarantined as flaky), or None.
    quarantined: str | None = None

    def slim(self) -> Verdict:
        """What the run keeps of a result once its file is written."""
        return Verdict(self.name, self.status, self.reason, self.duration, self.attempts, self.cached, self.quarantined)

    def to_json(self) -> dict:
        # Built by hand: dataclasses.asdict deep-copies recursively and cost
        # a quarter of the main process's time per result.
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["status"] = self.status.value
        data["reason"] = self.reason.value if self.reason else None
        data["commands"] = [vars(command) for command in self.commands]
        if self.subresults:
            data["subresults"] = [sub.to_json() for sub in self.subresults]
        else:
            del data["subresults"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Result:
        data = dict(data)
        data["status"] = Status(data["status"])
        data["reason"] = Reason(data["reason"]) if data.get("reason") else None
        data["commands"] = [CommandRecord(**c) for c in data.get("commands", [])]
        data["subresults"] = [SubResult.from_json(sub) for sub in data.get("subresults", ())]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
