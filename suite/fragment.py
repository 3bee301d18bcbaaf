"""Fragments, the units of work the scheduler places on slots, and the
commands they run.

Plain picklable data: a fragment built in the main process runs in a
worker process, in the main process (``--no-multiprocessing``) or on a
Dask worker without change. Drivers build them (``Driver.fragments``) and
keep whatever judging needs in ``Fragment.data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Not typing.TYPE_CHECKING: importing typing costs every run a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from run_testsuite.sandbox import Sandbox


# The longest timeout a command may have: a year. The schemas refuse more
# (and NaN); a Command a driver makes with more, or with inf or NaN, runs
# with this (the clock cannot wait longer than its integers hold).
MAX_TIMEOUT = 365 * 24 * 3600.0


# The env and resources of a fragment with none of its own: shared, never
# changed in place (a dict each cost 100,000 testcases 6 MB).
NO_ENV: dict[str, str] = {}
NO_RESOURCES: dict[str, int] = {}


@dataclass(slots=True)
class Command:
    """One command to run: a string goes through ``sh -c``, a list is an argv."""

    cmd: str | list[str]
    exit_code: int = 0
    timeout: float = 300.0
    step: str = "run"


@dataclass(slots=True)
class Fragment:
    """A unit of work the scheduler places on a slot."""

    testcase: str
    name: str
    driver: str  # "module:Class" or "/path/file.py:Class", importable anywhere
    commands: list[Command]
    env: dict[str, str]
    source_dir: str
    work_dir: str
    log_stem: str  # OUTPUT/new/logs/NAME: logs are NAME@STEP.log beside it
    prepare: bool = False  # copy the testcase directory into work_dir first
    final: bool = False  # the testcase's last fragment
    data: dict[str, Any] = field(default_factory=dict)
    # Write the output to log_path even when small (a later fragment reads it).
    keep_log: bool = False
    # Files of the testcase directory, relative to it, that are not copied
    # into the work directory: the framework's (spec, baseline), not the test's.
    private_files: tuple[str, ...] = ()
    # Resources from the suite's pools held while it runs, e.g. {"boards": 1};
    # the scheduler hands them out and names them in RESOURCE_<POOL>.
    resources: dict[str, int] = field(default_factory=dict)
    # Directories put first on sys.path before ``driver`` is imported: the
    # suite root for a suite's ``package.module:Class`` driver, so that a
    # worker anywhere (a Dask node too) finds it as the main process did.
    driver_path: tuple[str, ...] = ()
    # Work directories of testcases that passed (--cleanup), for the worker
    # that runs this fragment to remove; set by the scheduler as it sends it.
    discard: tuple[str, ...] = ()
    # ``sandbox: true``: its commands run under bubblewrap (see sandbox).
    sandbox: Sandbox | None = None
    # The testcase's fragments (positions in the driver's list) this one
    # waits for; None: the one before it, so steps run in order. () lets
    # fragments run side by side (GoogleTest shards after their listing);
    # the testcase is decided once each has run or cannot.
    after: tuple[int, ...] | None = None
    suite_root: str = ""  # $TEST_SUITE_ROOT (see standard_env)

    def standard_env(self) -> dict[str, str]:
        """The TEST_* variables its commands see, made from the fragment's
        own fields where it runs. The plan keeps in ``env`` only what
        differs from these (see ``keep_own_env``): a copy in every
        fragment cost 100,000 testcases 17 MB of the main process."""
        env = {"TEST_NAME": self.testcase, "TEST_WORK_DIR": self.work_dir}
        if self.source_dir:  # a set-up has none
            env["TEST_SOURCE_DIR"] = self.source_dir
        if self.suite_root:
            env["TEST_SUITE_ROOT"] = self.suite_root
        return env

    def keep_own_env(self) -> None:
        """Drop from ``env`` what ``standard_env`` gives back where it runs."""
        standard = self.standard_env()
        own = {key: value for key, value in self.env.items() if standard.get(key) != value}
        self.env = own or NO_ENV

    @property
    def log_path(self) -> str:
        # One flat directory of logs: a directory per testcase cost an inode
        # allocation each, the dearest file-system operation of a run. '@'
        # never occurs in the file-safe testcase name, so names cannot clash.
        return f"{self.log_stem}@{_step_file_part(self.name)}.log"

    @property
    def budget(self) -> float:
        """The longest this fragment may legitimately take, for watchdogs."""
        return sum(c.timeout for c in self.commands)


# Longest file-safe testcase name: a file name may hold 255 bytes, and the
# log of a step adds '@STEP.log' (STEP at most STEP_NAME_MAX), a clash
# '~N'. Two nested directories of 130 characters, or a matrix of compiler
# flags, made names past 255: 'File name too long' lost the result.
SAFE_NAME_MAX = 150
# Longest step name in a log's file name.
STEP_NAME_MAX = 80


def hashed(safe: str, name: str, limit: int) -> str:
    """The start of file-safe ``safe`` and a hash of the ``name`` it was
    made from, ``limit`` characters in all: two names never meet in it."""
    import hashlib

    return f"{safe[: limit - 17]}~{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"


def bounded(safe: str, name: str, limit: int = SAFE_NAME_MAX) -> str:
    """``safe`` if it is short enough, else ``hashed``."""
    return safe if len(safe) <= limit else hashed(safe, name, limit)


def _step_file_part(name: str) -> str:
    """A step's name as it goes into its log's file name: as it is when
    short and plain (nearly always), else made safe, and shortened with a
    hash of the whole, so that two steps never share a log."""
    if len(name) <= STEP_NAME_MAX and name.isascii() and name.isprintable():
        return name
    import re

    return hashed(re.sub(r"[^A-Za-z0-9._-]", "_", name), name, STEP_NAME_MAX)
