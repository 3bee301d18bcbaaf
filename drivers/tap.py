"""The ``tap`` driver: the last step prints TAP (12, 13 or 14) on its
output; each test point is a sub-result.

    driver: tap
    cmd: ./run-tests.sh           # or: bats --tap tests/
    options:
      xfail: {"parses dates": "bug 12"}    # by description, or "3 - parses dates"
      skip: {"7 - network": "no network in CI"}

A failing point (not a TODO) fails the testcase, as do a plan not met
("planned 103, ran 60"), ``Bail out!``, and a non-zero exit with every
point ok; ``1..0 # SKIP why`` skips it. See ``tap_parser`` for the stream.
"""

from __future__ import annotations

from run_testsuite.drivers.collecting import EXPECTATIONS, CollectingDriver
from run_testsuite.drivers.tap_parser import parse_tap
from run_testsuite.fragment import Fragment
from run_testsuite.results import CommandRecord, SubResult

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.context import RunContext


class TapDriver(CollectingDriver):
    """Run ``cmd`` or ``steps``; the last step's TAP points are sub-results."""

    source = "TAP stream"
    options_schema = {  # noqa: RUF012 - read, never changed; Driver declares it an attribute
        "type": "object",
        "additionalProperties": False,
        "properties": EXPECTATIONS,
    }

    def aliases(self, sub: SubResult) -> list[str]:
        """A point by its description alone: ``adds``, not ``1 - adds``
        (numbers move as tests are added)."""
        number, dash, description = sub.name.partition(" - ")
        return [description] if dash and number.isdigit() else []

    def collect(
        self, fragment: Fragment, ctx: RunContext, record: CommandRecord, start: int
    ) -> tuple[list[SubResult], list[str], str | None]:
        verdict = parse_tap(ctx.output()[start:].decode("utf-8", "replace"))
        return verdict.subresults, verdict.problems, verdict.plan_skip
