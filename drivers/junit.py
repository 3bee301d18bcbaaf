"""The ``junit`` driver: the last step writes a JUnit XML file (pytest
``--junitxml``, ctest ``--output-junit``, go-junit-report ...); each of
its ``<testcase>`` elements is a sub-result.

    driver: junit
    cmd: python -m pytest tests --junitxml=report.xml
    options:
      junit: report.xml            # relative to the work directory; $VARS expanded
      xfail: {"tests.test_io.test_big": "bug 7"}

The file is removed before the step runs, so a stale one is never read;
one missing or unreadable afterwards fails the testcase, naming it. See
``junit_reader`` for the shapes read and ``collecting`` for the verdict.
"""

from __future__ import annotations

import os

from run_testsuite.drivers.base import expand_env
from run_testsuite.drivers.collecting import EXPECTATIONS, CollectingDriver
from run_testsuite.drivers.junit_reader import JunitFileError, read_junit
from run_testsuite.fragment import Fragment
from run_testsuite.results import CommandRecord, SubResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.context import RunContext


class JunitDriver(CollectingDriver):
    """Run ``cmd`` or ``steps``; the last step's JUnit file gives the sub-results."""

    source = "JUnit file"
    options_schema = {  # noqa: RUF012 - read, never changed; Driver declares it an attribute
        "type": "object",
        "required": ["junit"],
        "additionalProperties": False,
        "properties": {"junit": {"type": "string", "minLength": 1}, **EXPECTATIONS},
    }

    def prepare(self, fragment: Fragment, ctx: RunContext) -> None:
        path = report_path(fragment, ctx)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def collect(
        self, fragment: Fragment, ctx: RunContext, record: CommandRecord, start: int
    ) -> tuple[list[SubResult], list[str], str | None]:
        try:
            return read_junit(report_path(fragment, ctx)), [], None
        except JunitFileError as exc:
            return [], [str(exc)], None


def report_path(fragment: Fragment, ctx: RunContext) -> str:
    """``options.junit`` with ``$VARS`` from the command's environment,
    relative to the work directory."""
    return os.path.join(ctx.work_dir, expand_env(fragment.data["options"]["junit"], ctx.env))
