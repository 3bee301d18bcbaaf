"""Run one fragment with its driver: prepare its work directory, run,
judge, and gather what the commands did into an ``Outcome``.

This module runs wherever a fragment runs (a worker process, the main
process, a cluster node), so it imports nothing heavy.
"""

from __future__ import annotations

import os
import time
import traceback

from run_testsuite.context import RunContext
from run_testsuite.fragment import Fragment
from run_testsuite.results import Outcome, Reason, Status
from run_testsuite.workdir import prepare_work_dir


def execute(fragment: Fragment, slot: int, on_output=None) -> Outcome:
    """Run a fragment with its driver; never raises.

    ``on_output``, if given, sees the output as it arrives (for --tee)."""
    from run_testsuite.drivers.registry import DriverLoadError, load_reference

    start = time.time()
    began = time.monotonic()
    ctx = None
    try:
        if fragment.prepare:
            if not fragment.source_dir:  # a set-up: a fresh, empty directory
                prepare_work_dir(None, fragment.work_dir)
            elif not os.path.isdir(fragment.source_dir):
                raise FileNotFoundError(f"testcase directory {fragment.source_dir} is not visible here")
            else:
                prepare_work_dir(fragment.source_dir, fragment.work_dir, fragment.private_files)
        ctx = RunContext(fragment, slot, on_output)
        driver = load_reference(fragment.driver, fragment.driver_path)()
        outcome = driver.run(fragment, ctx)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"{fragment.driver}.run returned {type(outcome).__name__}, not Outcome")
    except DriverLoadError as exc:
        outcome = Outcome(Status.ERROR, Reason.DRIVER, str(exc), traceback=exc.details or traceback.format_exc())
    except Exception as exc:  # a driver's bug is this testcase's ERROR, not the run's
        outcome = Outcome(
            Status.ERROR,
            Reason.DRIVER,
            f"driver raised {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    outcome.start = start
    outcome.duration = time.monotonic() - began
    outcome.slot = slot
    if ctx is not None:
        ctx.capture.keep_if_not_text()
        ctx.capture.close()
        outcome.commands = ctx.records
        if not outcome.output:
            outcome.output = ctx.capture.summary()
        outcome.log_files = ctx.capture.log_files()
    return outcome
