"""Run one fragment with its driver: prepare its work directory, run,
judge, and gather what the commands did into an ``Outcome``.

This module runs wherever a fragment runs (a worker process, the main
process, a cluster node), so it imports nothing heavy.
"""

from __future__ import annotations

import errno
import os
import time
import traceback

from run_testsuite.context import RunContext
from run_testsuite.fragment import Fragment
from run_testsuite.results import Outcome, Reason, Status
from run_testsuite.sandbox import SandboxError
from run_testsuite.workdir import discard, prepare_work_dir

# Errors of the machine rather than of a driver or a test.
SYSTEM_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
)


def execute(fragment: Fragment, slot: int, on_output=None) -> Outcome:
    """Run a fragment with its driver; never raises.

    ``on_output``, if given, sees the output as it arrives (for --tee)."""
    from run_testsuite.drivers.registry import DriverLoadError, DriverNotFound, load_reference

    start = time.time()
    began = time.monotonic()
    ctx = None
    try:
        if fragment.discard:
            discard(fragment.discard)
        if fragment.prepare:
            if not fragment.source_dir:  # a set-up: a fresh, empty directory
                prepare_work_dir(None, fragment.work_dir)
            elif not os.path.isdir(fragment.source_dir):
                raise FileNotFoundError(f"testcase directory {fragment.source_dir} is not visible here")
            else:
                try:
                    prepare_work_dir(fragment.source_dir, fragment.work_dir, fragment.private_files)
                except OSError as exc:  # the copy's problem, not the driver's: said without a traceback
                    raise _WorkDirError(exc, fragment.work_dir) from None
        ctx = RunContext(fragment, slot, on_output)
        driver = load_reference(fragment.driver, fragment.driver_path)()
        outcome = driver.run(fragment, ctx)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"{fragment.driver}.run returned {type(outcome).__name__}, not Outcome")
    except _WorkDirError as exc:
        outcome = Outcome(Status.ERROR, Reason.SYSTEM, str(exc))
    except OSError as exc:
        if exc.errno not in SYSTEM_ERRNOS:
            outcome = _driver_error(exc)
        else:  # said plainly, without a traceback: nothing in the code is wrong
            outcome = Outcome(Status.ERROR, Reason.SYSTEM, f"the run could not go on here: {_system_problem(exc)}")
    except SandboxError as exc:  # bwrap could not start the command: the machine's problem
        outcome = Outcome(Status.ERROR, Reason.SYSTEM, f"the sandbox could not be set up: {exc}")
    except DriverLoadError as exc:
        outcome = Outcome(Status.ERROR, Reason.DRIVER, str(exc), traceback=exc.details or None)
    except DriverNotFound as exc:  # found by the main process, not here: a file system not shared?
        outcome = Outcome(Status.ERROR, Reason.DRIVER, f"the driver cannot be found where the fragment runs: {exc}")
    except Exception as exc:  # a driver's bug is this testcase's ERROR, not the run's
        outcome = _driver_error(exc)
    duration = time.monotonic() - began
    if ctx is not None:
        try:
            ctx.capture.keep_if_not_text()
            ctx.capture.close()
        except OSError as exc:  # the log cannot be written (a full disk): the verdict cannot stand whole
            outcome = Outcome(Status.ERROR, Reason.SYSTEM, f"the output could not be kept: {_system_problem(exc)}")
    outcome.start = start
    outcome.duration = duration
    outcome.slot = slot
    if ctx is not None:
        outcome.commands = ctx.records
        if not outcome.output:
            outcome.output = ctx.capture.summary()
        outcome.log_files = ctx.capture.log_files()
    return outcome


class _WorkDirError(Exception):
    """The testcase's directory could not be copied into its work
    directory: a file that cannot be read, a link in the way, a full disk."""

    def __init__(self, exc: OSError, work_dir: str):
        if exc.errno in SYSTEM_ERRNOS:  # the disk of the work directory, whichever file was being copied
            problem = f"{_system_problem(exc)}, writing {work_dir}"
        else:
            problem = _system_problem(exc)
        super().__init__(f"the testcase could not be copied into its work directory: {problem}")


def _driver_error(exc: Exception) -> Outcome:
    return Outcome(
        Status.ERROR,
        Reason.DRIVER,
        f"driver raised {type(exc).__name__}: {exc}",
        traceback=traceback.format_exc(),
    )


def _system_problem(exc: OSError) -> str:
    """``no space left on device (ENOSPC) at /out/new/logs/t@run.log``."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    where = f" at {exc.filename}" if exc.filename else ""
    return f"{(exc.strerror or str(exc)).lower()} ({name}){where}"
