"""The plan of a run: every testcase with its fragments or its early
verdict, the fragments, and the one DAG that links them.

Made by ``loader.build_plan``; read by the scheduler, the session and the
reports. Plain data: nothing here runs anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from run_testsuite.dag import Graph
from run_testsuite.fragment import Fragment
from run_testsuite.results import Reason, Result, Status
from run_testsuite.suite_config import SuiteConfig

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from run_testsuite.file_hashes import FileHashes
    from run_testsuite.keys import KeyMaker
    from run_testsuite.spec_cache import SpecCache

# Set-up fragments appear in results under this prefix: "setup:build".
SETUP_PREFIX = "setup:"


class UsageError(Exception):
    """A problem with how run-testsuite was called: exit status 2."""


class NothingSelected(Exception):
    """The selection holds no testcase: said before anything runs, with
    exit status 5 (as pytest's "no tests collected"), or 0 when there was
    simply nothing to re-run (``--failed``)."""

    def __init__(self, message: str, exit_status: int = 5):
        super().__init__(message)
        self.exit_status = exit_status
        # --shard K/N with nothing in it: (suite name, K, N), for its empty run.
        self.empty_shard: tuple[str, int, int] | None = None


class CachedPass:
    """The verdict of the testcases --incremental takes from the cache, one
    for all that passed in the same run: a Result each took 100,000
    testcases 40 MB from planning until published. ``of`` makes the
    testcase's own Result as it is published."""

    __slots__ = ("message",)
    status = Status.PASS
    reason = Reason.CACHED
    cached = True
    quarantined = None

    def __init__(self, message: str):
        self.message = message

    def of(self, planned: Planned) -> Result:
        result = planned.verdict(Status.PASS, Reason.CACHED, self.message)
        result.cached = True
        return result


@dataclass(slots=True)
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
    fragments: range = range(0)  # their numbers in the run: consecutive
    result: Result | CachedPass | None = None  # decided before anything runs
    kind: str = "testcase"  # or "setup"
    xfail: str | None = None  # control: a failure is expected, for this reason
    retries: int = 0
    repeat_suffix: str = ""
    # The digest of its merged spec (with driver, timeout, expected failure
    # and parameters), for the key: taken as the spec loads, so that the
    # merged spec is let go at once (100,000 of them held 30 MB until the
    # plan was done). None: the spec did not load; "": no keys this run.
    spec_digest: str | None = None
    control: tuple = ()  # the merged spec's ``control`` entries, for validate
    timeout: float | None = None
    inputs: tuple[str, ...] = ()  # `inputs`, $VARS expanded
    key_env: tuple[str, ...] = ()
    # Where what the key is made of is kept (KeyParts as JSON, in the
    # plan's ``KeyMaker.spool``), for history and --explain; None: no key.
    parts_at: int | None = None
    key: str | None = None  # for history and --incremental
    # Per fragment, the positions of the testcase's fragments it waits for
    # (see Fragment.after); empty until the loader plans the fragments.
    inner: list[tuple[int, ...]] = field(default_factory=list)
    quarantine: str | None = None  # why its failures do not fail the run

    def plan_fragments(self, fragments: list[Fragment], first: int) -> None:
        """Take the driver's fragments, numbered from ``first`` in the run;
        check and keep the order they ask for among themselves."""
        inner: list[tuple[int, ...]] = []
        for position, fragment in enumerate(fragments):
            if fragment.after is None:
                inner.append((position - 1,) if position else ())
            elif all(isinstance(p, int) and 0 <= p < position for p in fragment.after):
                inner.append(tuple(fragment.after))
            else:
                raise ValueError(
                    f"fragment '{fragment.name}' (position {position}) may only wait for fragments "
                    f"before it, not {fragment.after!r}"
                )
        self.inner = inner if inner != _ONE_STEP else _ONE_STEP  # shared by lone fragments: 5 MB at 100,000
        self.fragments = range(first, first + len(fragments))

    @property
    def in_order(self) -> bool:
        """Its fragments run one after the other (steps), not side by side."""
        return all(waits == ((p - 1,) if p else ()) for p, waits in enumerate(self.inner))

    def starts(self) -> list[int]:
        """Its fragments that wait for none of its others: what runs first."""
        return [self.fragments[p] for p, waits in enumerate(self.inner) if not waits] or list(self.fragments[:1])

    def ends(self) -> list[int]:
        """Its fragments none of its others wait for: what runs last."""
        waited = {before for waits in self.inner for before in waits}
        return [f for p, f in enumerate(self.fragments) if p not in waited]

    def verdict(self, status: Status, reason: Reason | None, message: str, **fields: Any) -> Result:
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
            # Quarantine excuses a flaky testcase, never a mistake in its spec or driver.
            quarantined=self.quarantine if reason not in (Reason.SPEC, Reason.DRIVER) else None,
            **fields,
        )


@dataclass
class Plan:
    suite: SuiteConfig
    testcases: list[Planned]
    fragments: list[Fragment]
    owner: list[int]  # fragment index -> testcase index
    graph: Graph
    dependents: list[list[int]]  # testcase index -> testcases that depend on it
    output_dir: str
    work_dir: str
    spec_cache: SpecCache | None = None  # saved by a run, not by --list
    file_hashes: FileHashes | None = None  # likewise
    keys: KeyMaker | None = None  # the shared files' manifest, for history and --explain
    warnings: list[str] = field(default_factory=list)  # file:line:col: what may be wrong
    # --shard: (K, N, this shard's expected seconds of work, all shards')
    shard: tuple[int, int, float, float] | None = None

    def let_go(self) -> None:
        """Once a run has saved its caches: what only planning needed (the
        spec and file-hash caches) is let go. At 100,000 testcases they
        held 200 MB of the main process."""
        self.spec_cache = None
        self.file_hashes = None
        if self.keys is not None:
            self.keys.forget_files()


_ONE_STEP: list[tuple[int, ...]] = [()]

# What the plan holds in place of the fragments of a testcase decided
# without failing (see verdicts): nothing reads them again but a ready
# fragment's resources, which it has none of. Never to be changed.
DECIDED = Fragment("", "(decided)", "", [], {}, "", "", "")


def setup_env_name(name: str) -> str:
    """SETUP_<NAME>_DIR: where a needed set-up left its work."""
    return "SETUP_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_DIR"


def env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
