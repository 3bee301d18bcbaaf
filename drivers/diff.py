"""The ``diff`` driver: the combined output of the commands must equal a baseline."""

from __future__ import annotations

import difflib
import os

from drivers.api import Driver, Fragment, Testcase
from suite.results import Outcome, Reason, Status

# Outputs larger than this are compared in chunks, and the failure names the
# first differing byte instead of printing a diff nobody would read.
DIFF_LIMIT = 1 << 20
# A unified diff longer than this many lines is cut in the result.
DIFF_MAX_LINES = 400


class DiffDriver(Driver):
    """Run the commands, then compare stdout+stderr of all steps with the baseline."""

    def fragments(self, test: Testcase) -> list[Fragment]:
        fragments = super().fragments(test)
        baseline_name = test.spec.get("baseline", "test.out")
        baseline = os.path.normpath(os.path.join(test.source_dir, baseline_name))
        # Lexical, not resolved: a testcase reached through a symlinked
        # directory is inside the suite, while '../../etc/passwd' is not.
        if not _inside(baseline, os.path.normpath(test.suite_root)):
            test.error(f"baseline '{baseline_name}' is outside the suite directory", ["baseline"])
        if not os.path.isfile(baseline):
            test.error(f"baseline '{baseline_name}' does not exist (expected {baseline})", ["baseline"])
        if not os.access(baseline, os.R_OK):
            test.error(f"baseline '{baseline_name}' is not readable", ["baseline"])
        final = fragments[-1]
        final.data["baseline"] = baseline
        final.data["logs"] = [f.log_path for f in fragments]
        return fragments

    def check(self, fragment: Fragment, ctx) -> Outcome:
        if not fragment.final:
            return Outcome(Status.PASS)
        baseline = fragment.data["baseline"]
        logs = fragment.data["logs"]
        return compare(baseline, logs)


def _inside(path: str, root: str) -> bool:
    """Whether the normalised ``path`` lies under ``root``."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def compare(baseline: str, logs: list[str]) -> Outcome:
    """PASS when the concatenated logs equal the baseline byte for byte."""
    try:
        sizes = [os.path.getsize(p) if os.path.exists(p) else 0 for p in logs]
        expected_size = os.path.getsize(baseline)
    except OSError as exc:
        return Outcome(Status.ERROR, Reason.SPEC, f"cannot read baseline: {exc}")
    if sum(sizes) > DIFF_LIMIT or expected_size > DIFF_LIMIT:
        return _compare_large(baseline, logs, expected_size, sum(sizes))
    actual = b"".join(_read(p) for p in logs)
    with open(baseline, "rb") as handle:
        expected = handle.read()
    if actual == expected:
        return Outcome(Status.PASS)
    return Outcome(
        Status.FAIL,
        Reason.DIFF,
        "output differs from the baseline",
        diff=unified_diff(expected, actual, os.path.basename(baseline)),
    )


def unified_diff(expected: bytes, actual: bytes, label: str) -> str:
    old = expected.decode("utf-8", "replace").splitlines(keepends=True)
    new = actual.decode("utf-8", "replace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, f"{label} (expected)", "output (actual)"))
    if len(lines) > DIFF_MAX_LINES:
        cut = len(lines) - DIFF_MAX_LINES
        lines = lines[:DIFF_MAX_LINES] + [f"[... {cut} more diff lines cut ...]\n"]
    # A line without its newline would glue itself to the next one.
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""


def _compare_large(baseline: str, logs: list[str], expected_size: int, actual_size: int) -> Outcome:
    """Stream both sides; memory stays bounded whatever the output size."""
    chunk = 1 << 16
    offset = 0
    with open(baseline, "rb") as expected:
        for path in logs:
            if not os.path.exists(path):
                continue
            with open(path, "rb") as actual:
                while block := actual.read(chunk):
                    other = expected.read(len(block))
                    if block != other:
                        at = offset + next(
                            (i for i, (a, b) in enumerate(zip(block, other)) if a != b),
                            min(len(block), len(other)),
                        )
                        return _large_diff(at, expected_size, actual_size)
                    offset += len(block)
        if expected.read(1):
            return _large_diff(offset, expected_size, actual_size)
    return Outcome(Status.PASS)


def _large_diff(at: int, expected_size: int, actual_size: int) -> Outcome:
    return Outcome(
        Status.FAIL,
        Reason.DIFF,
        f"output differs from the baseline at byte {at} "
        f"(output {actual_size} bytes, baseline {expected_size} bytes; too large to diff)",
    )
