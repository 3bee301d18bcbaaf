"""The Driver API: everything a suite's own driver imports.

    from run_testsuite.api import Driver, Outcome, Reason, Status

A driver is a class deriving from ``Driver``. In the main process,
``fragments(test)`` turns a validated ``Testcase`` into ``Fragment``\\ s
(by default one per step, each running a ``Command``); wherever a fragment
runs, ``run(fragment, ctx)`` executes it through the ``RunContext`` and
``check(fragment, ctx)`` judges it, returning an ``Outcome``. An outcome
may carry ``SubResult`` objects, the tests inside the testcase (``summarise``
makes the testcase's status from them). Fragments may run side by side
(``Fragment.after``); the testcase is decided once all have run. What the
judging needs travels in ``Fragment.data``: fragments are plain picklable
data, and the instance that builds them is not the one that runs them.

Only the names here are the API; the modules behind them may move.
"""

from run_testsuite.context import RunContext
from run_testsuite.drivers.base import Driver, Testcase, describe_status, judge_exit
from run_testsuite.fragment import Command, Fragment
from run_testsuite.results import CommandRecord, Outcome, Reason, Status, SubResult
from run_testsuite.spec import SpecError
from run_testsuite.subresults import apply_expectations, summarise

__all__ = [
    "Command",
    "CommandRecord",
    "Driver",
    "Fragment",
    "Outcome",
    "Reason",
    "RunContext",
    "SpecError",
    "Status",
    "SubResult",
    "Testcase",
    "apply_expectations",
    "describe_status",
    "judge_exit",
    "summarise",
]
