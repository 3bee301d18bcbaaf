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
        fragments[-1].data["baseline"] = baseline
        self.combine_output(fragments)
        return fragments

    def private_files(self, test: Testcase) -> list[str]:
        # Commands never see their own expected output.
        return [*super().private_files(test), test.spec.get("baseline", "test.out")]

    def check(self, fragment: Fragment, ctx) -> Outcome:
        if not fragment.final:
            return Outcome(Status.PASS)
        return compare(fragment.data["baseline"], ctx.output_sources())


def _inside(path: str, root: str) -> bool:
    """Whether the normalised ``path`` lies under ``root``."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _size(source: str | bytes) -> int:
    if isinstance(source, bytes):
        return len(source)
    return os.path.getsize(source) if os.path.exists(source) else 0


def compare(baseline: str, sources: list[str | bytes]) -> Outcome:
    """PASS when the concatenated output equals the baseline byte for byte."""
    try:
        expected_size = os.path.getsize(baseline)
    except OSError as exc:
        return Outcome(Status.ERROR, Reason.SPEC, f"cannot read baseline: {exc}")
    actual_size = sum(_size(s) for s in sources)
    if actual_size > DIFF_LIMIT or expected_size > DIFF_LIMIT:
        return _compare_large(baseline, sources, expected_size, actual_size)
    actual = b"".join(s if isinstance(s, bytes) else _read(s) for s in sources)
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


def _blocks(sources: list[str | bytes], size: int):
    for source in sources:
        if isinstance(source, bytes):
            for at in range(0, len(source), size):
                yield source[at : at + size]
        elif os.path.exists(source):
            with open(source, "rb") as handle:
                while block := handle.read(size):
                    yield block


def _compare_large(baseline: str, sources: list[str | bytes], expected_size: int, actual_size: int) -> Outcome:
    """Stream both sides; memory stays bounded whatever the output size."""
    offset = 0
    with open(baseline, "rb") as expected:
        for block in _blocks(sources, 1 << 16):
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
