"""Sub-results: the tests inside one testcase, and how they add up.

A TAP script's points, a GoogleTest binary's tests, the ``<testcase>``
elements of a JUnit file: each is a ``SubResult`` of its testcase. The
testcase's own status summarises them: FAIL when one failed (or erred),
SKIP when every one was skipped, XPASS when one listed as a known failure
passed (the list is stale: the testcase says so as an XPASS testcase does,
without failing the run), PASS otherwise (an expected failure or a skip
among passes does not fail it, as prove and GoogleTest see it). The drivers and the verdict of a testcase whose
fragments ran in parallel (GoogleTest shards) use the same rule, so the
testcase says the same whichever way its tests were split.
"""

from __future__ import annotations

from collections.abc import Callable

from run_testsuite.results import WORDS, Reason, Status, SubResult, plural_s

# Names a testcase's message lists before "and N more": a line, not a page.
NAMED_IN_MESSAGE = 5
# The longest output excerpt a sub-result keeps: its own failure, not the log.
EXCERPT_LIMIT = 4000

# Sub-results the index names per testcase (the failing ones and unexpected
# passes): what the terminal, `report` and --compare show without opening
# result files; the rest are counted. A 2,000-test binary's index entry
# stays a few hundred bytes.
NOTABLE = (Status.FAIL, Status.ERROR, Status.XPASS)
NOTABLE_IN_INDEX = 50
ORDER = (Status.FAIL, Status.ERROR, Status.XPASS, Status.XFAIL, Status.SKIP, Status.PASS)


def counts(subresults: list[SubResult]) -> dict[str, int]:
    """How many sub-results have each status, worst first, without zeros."""
    found: dict[str, int] = {}
    for sub in subresults:
        found[sub.status.value] = found.get(sub.status.value, 0) + 1
    return {status.value: found[status.value] for status in ORDER if status.value in found}


def describe_counts(numbers: dict[str, int]) -> str:
    """``103 sub-results: 100 passed, 2 failed, 1 xfailed``."""
    total = sum(numbers.values())
    order = (Status.PASS, Status.FAIL, Status.ERROR, Status.XFAIL, Status.XPASS, Status.SKIP)
    parts = [
        f"{numbers[status.value]} {WORDS[status]}{plural_s(status, numbers[status.value])}"
        for status in order
        if numbers.get(status.value)
    ]
    return f"{total} sub-result{'' if total == 1 else 's'}: {', '.join(parts)}"


def summarise(subresults: list[SubResult]) -> tuple[Status, Reason | None, str]:
    """The testcase's status, reason and message that its sub-results make:
    ``2 of 103 failed: 2 - plain nested in bare, 7 - parse``."""
    bad = [sub for sub in subresults if sub.status.is_failure]
    if bad:
        named = ", ".join(sub.name for sub in bad[:NAMED_IN_MESSAGE])
        more = f" and {len(bad) - NAMED_IN_MESSAGE} more" if len(bad) > NAMED_IN_MESSAGE else ""
        reasons = {sub.reason for sub in bad}
        reason = reasons.pop() if len(reasons) == 1 else None
        return Status.FAIL, reason, f"{len(bad)} of {len(subresults)} failed: {named}{more}"
    if subresults and all(sub.status is Status.SKIP for sub in subresults):
        return Status.SKIP, None, f"all {len(subresults)} skipped"
    unexpected = [sub for sub in subresults if sub.status is Status.XPASS]
    if unexpected:  # a known failure that passed: the list is stale, and says so as a testcase would
        named = ", ".join(sub.name for sub in unexpected[:NAMED_IN_MESSAGE])
        more = f" and {len(unexpected) - NAMED_IN_MESSAGE} more" if len(unexpected) > NAMED_IN_MESSAGE else ""
        return Status.XPASS, None, f"{len(unexpected)} of {len(subresults)} passed unexpectedly: {named}{more}"
    return Status.PASS, None, describe_counts(counts(subresults)) if subresults else ""


def index_summary(subresults: list[SubResult]) -> dict:
    """A testcase's sub-results as its index entry holds them: the counts
    by status and the first NOTABLE_IN_INDEX notable ones (name, status,
    the message's first line)."""
    notable = [
        {"name": sub.name, "status": sub.status.value, "message": sub.message.split("\n", 1)[0][:300]}
        for sub in subresults
        if sub.status in NOTABLE
    ]
    return {"counts": counts(subresults), "notable": notable[:NOTABLE_IN_INDEX]}


def unknown_names(unknown: list[str], known: list[str], xfail: dict, spec_file: str | None, what: str) -> str:
    """What is wrong with ``xfail:``/``skip:`` names no sub-result has, one
    clause a name, located in the spec and with the closest known name:
    ``t/test.yaml:7:5: options.xfail: 'Ring.Grow' is not a test of the
    binary (did you mean 'Ring.Grows'?)``. The spec is read again only
    here, where a name is wrong."""
    import difflib

    from run_testsuite import spec as specs

    clauses = []
    for name in unknown:
        kind = "xfail" if name in xfail else "skip"
        where = ""
        if spec_file:
            line, col = specs.key_position(spec_file, ["options", kind, name])
            where = f"{spec_file}:{line}:{col}: "
        close = difflib.get_close_matches(name, known, 1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        clauses.append(f"{where}options.{kind}: '{name}' is not a test {what}{hint}")
    return "; ".join(clauses)


# Control characters a name or message could hide a line break or an
# escape sequence in; shown as escapes so one line stays one line.
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F] if code != 0x09}
_CONTROL.update({0x0A: "\\n", 0x0D: "\\r"})


def one_line(text: str) -> str:
    """``text`` as one line: a sub-result's name comes from the program
    under test, and a line break in it could forge a line of a report."""
    return text.translate(_CONTROL)


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """The head and tail of a long output, saying what was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}"


def apply_expectations(
    subresults: list[SubResult],
    xfail: dict[str, str],
    skip: dict[str, str],
    aliases: Callable[[SubResult], list[str]] | None = None,
) -> list[str]:
    """A spec's known failures and skips, by sub-result name (the driver's
    ``xfail:`` and ``skip:`` options): a failing one listed in ``xfail``
    is XFAIL, a passing one XPASS; one listed in ``skip`` is SKIP whatever
    it did. ``aliases`` gives other names a sub-result answers to (a TAP
    point's description without its number, which moves as tests are
    added). Returns the listed names no sub-result has (a typo, or a test
    that went away), for the message."""
    seen: set[str] = set()
    for sub in subresults:
        names = [sub.name, *(aliases(sub) if aliases is not None else ())]
        skipped = next((n for n in names if n in skip), None)
        expected = next((n for n in names if n in xfail), None)
        seen.update(n for n in names if n in skip or n in xfail)  # listed twice, by both names: known
        if skipped is not None:
            if sub.status is not Status.SKIP:
                sub.message = f"known skip ({skip[skipped]}); it was {sub.status.value}" + (
                    f": {sub.message}" if sub.message else ""
                )
                sub.status, sub.reason = Status.SKIP, Reason.CONTROL
        elif expected is not None:
            if sub.status.is_failure:
                sub.status = Status.XFAIL
                sub.message = f"expected failure ({xfail[expected]})" + (f": {sub.message}" if sub.message else "")
            elif sub.status is Status.PASS:
                sub.status = Status.XPASS
                sub.message = f"passed, but a failure was expected: {xfail[expected]}"
    return sorted((set(xfail) | set(skip)) - seen)
