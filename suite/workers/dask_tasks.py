"""What runs on the Dask workers: the task that runs one fragment, and the
small functions the main process runs there (version probe, running
tasks, stopping commands). Imported by Dask workers: nothing heavy.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback

from run_testsuite.commands import kill_active
from run_testsuite.execution import execute
from run_testsuite.fragment import Fragment
from run_testsuite.results import Outcome, Reason, Status
from run_testsuite.runner import STATE
from run_testsuite.workers.dask_guard import CommandWatch, release_lease, take_lease

TYPE_CHECKING = False  # not typing's: this runs on every Dask worker
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

# Tasks running in this (Dask worker) process: key -> monotonic start.
_running: dict[Any, float] = {}


def run_fragment(payload: bytes, slot: int) -> Outcome:
    """The Dask task: run one fragment where it landed; never raises."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    _running[key] = time.monotonic()
    try:
        fragment = pickle.loads(payload)
        problem = _invisible(fragment, worker.address)
        if problem:
            return Outcome(Status.ERROR, Reason.CRASH, problem, slot=slot)
        if STATE.watch is None:
            STATE.watch = CommandWatch()
        # Not while a dead worker's commands may still write there (see dask_guard).
        lease = take_lease(fragment.work_dir)
        try:
            return execute(fragment, slot)
        finally:
            release_lease(lease)
    except Exception as exc:  # execute never raises; unpickling might
        return Outcome(
            Status.ERROR,
            Reason.CRASH,
            f"Dask worker {worker.address} could not run the fragment: {type(exc).__name__}: {exc}",
            slot=slot,
            traceback=traceback.format_exc(),
        )
    finally:
        _running.pop(key, None)


SHARED_FS = "the cluster needs a shared filesystem at the same path"


def _invisible(fragment: Fragment, address: str) -> str | None:
    """Why this worker cannot run the fragment for want of a shared file
    system, or None. Costs a stat or two."""
    if fragment.prepare and fragment.source_dir and not os.path.isdir(fragment.source_dir):
        return f"testcase directory {fragment.source_dir} is not visible on Dask worker {address}: {SHARED_FS}"
    if not fragment.prepare and not os.path.isdir(fragment.work_dir):
        return f"work directory {fragment.work_dir} is not visible on Dask worker {address}: {SHARED_FS}"
    logs = os.path.dirname(fragment.log_stem)
    if logs and not os.path.isdir(logs):
        return f"output directory {os.path.dirname(logs)} is not visible on Dask worker {address}: {SHARED_FS}"
    return None


def probe() -> str:
    """Run on each worker at connection: the run-testsuite it imports."""
    from run_testsuite import __version__

    return __version__


def running_tasks() -> dict[Any, float]:
    """The fragments this worker process runs: task key -> seconds so far."""
    now = time.monotonic()
    return {key: now - started for key, started in list(_running.items())}


def stop_tasks(tasks: dict[Any, float]) -> bool:
    """Stop the commands of the tasks ``tasks`` (key -> grace) if they are
    all that this process runs: commands are not told apart by task, and
    those of another fragment (another run's too) are never touched."""
    running = set(_running)
    if not running or not running <= set(tasks):
        return False
    grace = min(tasks[key] for key in running)
    threading.Thread(target=kill_active, args=(grace,), name="run-testsuite-stop", daemon=True).start()
    return True
