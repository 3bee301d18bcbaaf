"""What a GoogleTest binary prints, read: its test list, its JSON report,
and its progress lines (all there is of a shard that crashed).

Facts this relies on, checked against GoogleTest 1.12 (Debian's):

- ``--gtest_list_tests`` prints ``Suite.`` lines with ``  Test`` lines
  under them; typed and value-parameterised ones carry a ``  # TypeParam =``
  or ``  # GetParam() =`` comment. It lists DISABLED_ tests and ignores
  the sharding variables.
- With ``GTEST_TOTAL_SHARDS=N`` and ``GTEST_SHARD_INDEX=K`` a binary runs
  the tests whose position among the runnable ones (matching the filter,
  not disabled) is K modulo N, in list order.
- ``GTEST_OUTPUT=json:FILE`` is written only when the binary ends: a crash
  leaves none. The progress lines (``[ RUN      ] Suite.Test``, then
  ``[       OK ]``, ``[  FAILED  ]`` or ``[  SKIPPED ]``) are flushed as
  each test starts and ends, so they say which test was running.
"""

from __future__ import annotations

import json
import re

from run_testsuite.results import Reason, Status, SubResult
from run_testsuite.subresults import excerpt

_SUITE = re.compile(r"^(\S+)\.(?:\s+#.*)?$")
_TEST = re.compile(r"^  (\S+)(?:\s+#.*)?$")
SKIPPED = "skipped by the test (GTEST_SKIP)"
MESSAGE_MAX = 200  # a failure's one line; the whole of it is the output
_PROGRESS = re.compile(r"^\[ +(RUN|OK|FAILED|SKIPPED) +\] (\S+)(?: \((\d+) ms\))?")


def parse_listing(text: str) -> list[str]:
    """``Suite.Test`` names in the order the binary runs them."""
    names = []
    suite = None
    for line in text.splitlines():
        found = _SUITE.match(line)
        if found:
            suite = found.group(1)
            continue
        found = _TEST.match(line)
        if found and suite is not None:
            names.append(f"{suite}.{found.group(1)}")
    return names


def is_disabled(name: str) -> bool:
    suite, _, test = name.partition(".")
    return suite.startswith("DISABLED_") or test.startswith("DISABLED_") or "/DISABLED_" in suite


def shard(runnable: list[str], total: int, index: int) -> list[str]:
    """The tests shard ``index`` of ``total`` runs (GoogleTest's own rule)."""
    return runnable[index::total]


def read_json_report(path: str) -> dict[str, SubResult]:
    """The tests a JSON report holds, by name. Raises OSError when there is
    no file, ValueError when it is not a GoogleTest JSON report."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        data = json.load(handle)
    found = {}
    try:
        for suite in data["testsuites"]:
            for test in suite["testsuite"]:
                name = f"{suite['name']}.{test['name']}"
                found[name] = _from_json(name, test)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a GoogleTest JSON report ({type(exc).__name__}: {exc})") from None
    return found


def _from_json(name: str, test: dict) -> SubResult:
    duration = _seconds(test.get("time"))
    failures = [f.get("failure", "") for f in test.get("failures") or () if isinstance(f, dict)]
    result = test.get("result")
    if failures:
        return SubResult(name, Status.FAIL, None, failure_line(failures[0]), duration, excerpt("\n".join(failures)))
    if result == "SKIPPED":
        return SubResult(name, Status.SKIP, None, SKIPPED, duration)
    if result == "SUPPRESSED":
        return SubResult(name, Status.SKIP, None, "disabled (DISABLED_)", duration)
    if result == "COMPLETED":
        return SubResult(name, Status.PASS, None, "", duration)
    return SubResult(name, Status.ERROR, None, f"GoogleTest reports result {result!r}", duration)


def failure_line(failure: str, limit: int = MESSAGE_MAX) -> str:
    """A failure as one line: ``t.cc:6: Expected equality of these values:
    3 1 + 1 Which is: 2``: where, then what, its spaces squeezed."""
    where, _, what = failure.strip().partition("\n")
    text = f"{where.removesuffix(': Failure')}: {' '.join(what.split())}" if what else where
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(text: object) -> float | None:
    if isinstance(text, str) and text.endswith("s"):
        try:
            return float(text[:-1])
        except ValueError:
            return None
    return None


class Progress:
    """The progress lines of one run of a binary: the tests that ended,
    and the one that started and never ended (it crashed or hung)."""

    def __init__(self, text: str):
        self.ended: dict[str, SubResult] = {}
        self.running: str | None = None
        self.sections: dict[str, list[str]] = {}
        for line in text.splitlines():
            found = _PROGRESS.match(line)
            if found is None:
                if self.running is not None:
                    self.sections[self.running].append(line)
                continue
            word, name, ms = found.groups()
            if word == "RUN":
                self.running = name
                self.sections[name] = [line]
                continue
            if name in self.ended:  # the summary at the end names failures again
                continue
            self.sections.setdefault(name, []).append(line)
            duration = int(ms) / 1000 if ms else None
            status = {"OK": Status.PASS, "FAILED": Status.FAIL, "SKIPPED": Status.SKIP}[word]
            self.ended[name] = SubResult(name, status, None, self._message(status, name), duration)
            if self.running == name:
                self.running = None

    def _message(self, status: Status, name: str) -> str:
        """As the JSON report would say it: ``t.cc:6: Expected equality of
        these values:`` from ``t.cc:6: Failure`` and the line after it."""
        if status is Status.SKIP:
            return SKIPPED
        if status is not Status.FAIL:
            return ""
        lines = self.sections.get(name, [])[1:]
        for number, line in enumerate(lines):
            if line.endswith(": Failure"):  # up to the test's end line, as the report's text
                return failure_line("\n".join(lines[number:-1] if lines[-1].startswith("[") else lines[number:]))
        return ""

    def output_of(self, name: str) -> str:
        """What the binary printed while ``name`` ran."""
        return excerpt("\n".join(self.sections.get(name, ())))

    def crashed(self, how: str, reason: Reason) -> SubResult | None:
        """The test that was running when the binary ended ``how``."""
        if self.running is None:
            return None
        return SubResult(self.running, Status.FAIL, reason, how, None, self.output_of(self.running))
