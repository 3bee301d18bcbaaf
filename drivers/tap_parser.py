r"""Read a TAP stream (TAP 12, 13 and 14) into sub-results, for the tap driver.

Written here rather than reused: tap.py 3.2.1 reads TAP 14's indented
subtests as unknown lines, ends a description at the first ``#`` even when
escaped as ``\#``, and refuses ``TAP version 12``; pytap13 0.3.0 is
Python 2 code (``import StringIO``, print statements) that does not import.

One pass over the lines, one level of indentation at a time: an indented
block is a subtest, read by the same code one level deeper, and the test
point after it is its parent. Only top-level points become sub-results.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import yaml

from run_testsuite.results import Status, SubResult
from run_testsuite.subresults import NAMED_IN_MESSAGE, excerpt

# Every pattern is linear: possessive quantifiers never backtrack, and the
# trailing `.*` always matches, so a 1 MB line costs one scan.
_POINT = re.compile(r"(not )?ok\b\s*+(\d*+)\s*+(.*)", re.DOTALL)
_PLAN = re.compile(r"1\.\.(\d++)\s*+(?:#\s*+(.*))?", re.DOTALL)
_DIRECTIVE = re.compile(r"\s*+(?:(skip)\S*+|todo(?!\S))\s*+(.*)", re.IGNORECASE | re.DOTALL)
_SKIP_WORD = re.compile(r"skip\S*+\s*+", re.IGNORECASE)
_HASH = re.compile(r"\\[\\#]|#")  # an escape (TAP 14: \# and \\) or a bare #
_ESCAPE = re.compile(r"\\([\\#])")
_YAML_START = re.compile(r"( +)---")

# Deeper indentation is read as plain text: no real suite nests this far,
# and each level copies its lines once.
_MAX_DEPTH = 32
# A larger diagnostic block is kept as text, not parsed: PyYAML is slow on
# megabytes, and a message or a duration never needs that much.
_YAML_LIMIT = 100_000
# The failing nested points a parent's output details, one by one.
_DETAILED = 20
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe_load's rules, in C when built


@dataclass
class TapVerdict:
    subresults: list[SubResult]  # one per top-level test point, in order
    problems: list[str]  # what makes the stream itself a failure, each one short line
    plan_skip: str | None = None  # `1..0 # SKIP reason` (or `1..0` alone: "") -> the reason
    planned: int | None = None  # the plan's count, None if no plan was seen
    bailed_out: str | None = None  # the Bail out! reason ("" when none given), None if no bail out


def parse_tap(text: str) -> TapVerdict:
    """The sub-results and problems of a TAP stream (the text a test printed)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _Stream(0).read([line.rstrip() for line in lines])


def _names(subs: list[SubResult]) -> str:
    named = ", ".join(sub.name for sub in subs[:NAMED_IN_MESSAGE])
    return named + (f" and {len(subs) - NAMED_IN_MESSAGE} more" if len(subs) > NAMED_IN_MESSAGE else "")


def _split_point(rest: str) -> tuple[str, str | None, str]:
    """A point's description, its directive ("skip", "todo" or None) and the
    directive's reason. A ``#`` starts a directive only after a blank and
    before SKIP or TODO: other ``#`` text is description (bats writes it bare)."""
    if "#" in rest:
        for match in _HASH.finditer(rest):
            at = match.start()
            if match.group() != "#" or (at and not rest[at - 1].isspace()):
                continue
            directive = _DIRECTIVE.match(rest, match.end())
            if directive:
                kind = "skip" if directive.group(1) else "todo"
                return _unescape(rest[:at]), kind, _unescape(directive.group(2)).strip()
    return _unescape(rest), None, ""


def _unescape(text: str) -> str:
    return _ESCAPE.sub(r"\1", text) if "\\" in text else text


class _Stream:
    """One TAP stream at one indentation level (a subtest is a stream)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.verdict = TapVerdict([], [])
        self.last_number = 0
        self.seen: dict[int, int] = {}  # point number -> times seen
        self.numbering_problems = 0
        self.plan_reason = ""  # the plan's comment, the reason when it is 1..0
        self.plan_at_end = False  # the plan came after points: none may follow
        self.more_after_plan = False
        self.current: SubResult | None = None  # the last point, for its YAML block
        self.yaml_allowed = False  # only comments came since the last point
        self.output: list[str] | None = None  # the lines kept for a failing last point
        self.child: TapVerdict | None = None  # a subtest read, waiting for its point
        self.child_name = ""  # the waiting subtest's, from `# Subtest: name`
        self.next_name = ""  # from a `# Subtest: name` whose block is still to come

    def read(self, lines: list[str]) -> TapVerdict:
        i, count = 0, len(lines)
        while i < count and self.verdict.bailed_out is None:
            line = lines[i]
            i += 1
            if not line:
                if self.output is not None:
                    self.output.append(line)
            elif self.yaml_allowed and (start := _YAML_START.fullmatch(line)):
                i = self._yaml(lines, i, start.group(1))
            elif line.startswith("    ") and self.depth < _MAX_DEPTH:
                i = self._indented(lines, i - 1)
            elif point := _POINT.match(line):
                self._point(point)
            elif plan := _PLAN.fullmatch(line):
                self._plan(int(plan.group(1)), plan.group(2) or "")
            elif line[:9].lower() == "bail out!":
                self._bail(line[9:].strip())
            elif line == "# Subtest" or line.startswith("# Subtest:"):
                # Introduces the next subtest: not output of the point before.
                self._close()
                self.next_name = line[10:].strip()
            elif line.startswith(("TAP version ", "pragma ")):
                pass  # any version is read the same way; no pragma changes that
            elif self.output is not None:
                self.output.append(line)  # diagnostics and stray text, as prove shows them
        self._close()
        self._finish()
        return self.verdict

    def _problem(self, text: str) -> None:
        self.verdict.problems.append(text)

    def _close(self) -> None:
        """Ends the last point's output: the next line is not about it."""
        if self.output is not None and self.current is not None:
            parts = [self.current.output, "\n".join(self.output).rstrip()]
            self.current.output = excerpt("\n".join(part for part in parts if part))
        self.output = None
        self.yaml_allowed = False

    def _point(self, match: re.Match[str]) -> None:
        self._close()
        if self.plan_at_end and not self.more_after_plan:
            self.more_after_plan = True
            self._problem(f"plan 1..{self.verdict.planned} in the middle (more points followed)")
        number = int(match.group(2)) if match.group(2) else self.last_number + 1
        description, directive, reason = _split_point(match.group(3))
        description = description.strip()
        if description[:1] == "-" and description[1:2] in ("", " ", "\t"):
            description = description[1:].lstrip()
        if not description and self.child is not None:
            description = self.child_name
        name = f"{number} - {description}" if description else str(number)
        times = self.seen[number] = self.seen.get(number, 0) + 1
        if times > 1:
            self._numbering(f"point {number} appears {'twice' if times == 2 else f'{times} times'}")
            name += f" ({times})"  # both kept, under distinct names
        elif number != self.last_number + 1:
            self._numbering(f"point {number} out of sequence (expected {self.last_number + 1})")
        self.last_number = number

        failed = match.group(1) is not None
        if directive == "skip":
            sub = SubResult(name, Status.SKIP, message=reason)
        elif directive == "todo":
            todo = f"TODO: {reason}" if reason else "TODO"
            sub = SubResult(name, Status.XFAIL if failed else Status.XPASS, message=todo)
        else:
            sub = SubResult(name, Status.FAIL if failed else Status.PASS)
        if self.child is not None:
            _judge_parent(sub, self.child)
        self.child, self.child_name, self.next_name = None, "", ""
        self.verdict.subresults.append(sub)
        self.current = sub
        self.yaml_allowed = True
        # Passing points keep no output: a stream may have 10,000 of them.
        self.output = [] if sub.status in (Status.FAIL, Status.XFAIL) else None

    def _numbering(self, text: str) -> None:
        # A renumbered stream would give one problem per point: name a few.
        self.numbering_problems += 1
        if self.numbering_problems <= NAMED_IN_MESSAGE:
            self._problem(text)

    def _plan(self, count: int, comment: str) -> None:
        self.yaml_allowed = False
        verdict = self.verdict
        if verdict.planned is not None:
            self._problem(f"more than one plan (1..{verdict.planned}, then 1..{count})")
            return
        verdict.planned = count
        skip = _SKIP_WORD.match(comment)  # `1..0 # SKIP reason`, or TAP 14's `1..0 # reason`
        self.plan_reason = comment[skip.end() if skip else 0 :].strip()
        self.plan_at_end = bool(verdict.subresults)

    def _bail(self, reason: str) -> None:
        self._close()
        self.verdict.bailed_out = reason
        self._problem(f"Bail out! {reason}".rstrip())

    def _indented(self, lines: list[str], start: int) -> int:
        """Reads the indented block at ``start``: a subtest if it holds TAP,
        else a program's own text. Returns the index after it."""
        end = start
        while end < len(lines) and (not lines[end] or lines[end].startswith("    ")):
            end += 1
        while not lines[end - 1]:
            end -= 1  # trailing blank lines are the parent's
        block = lines[start:end]
        child = _Stream(self.depth + 1).read([line[4:] for line in block])
        if not child.subresults and child.planned is None and child.bailed_out is None:
            if self.output is not None:
                self.output.extend(block)
            return end
        self._close()
        if self.child is not None:
            self._orphan()
        self.child, self.child_name, self.next_name = child, self.next_name, ""
        if child.bailed_out is not None:  # a bail out inside stops everything
            self._bail(child.bailed_out)
        return end

    def _orphan(self) -> None:
        assert self.child is not None
        bad = [sub for sub in self.child.subresults if sub.status.is_failure]
        name = f" {self.child_name!r}" if self.child_name else ""
        inside = f" (failed inside: {_names(bad)})" if bad else ""
        self._problem(f"subtest{name} has no test point{inside}")
        self.child, self.child_name = None, ""

    def _yaml(self, lines: list[str], i: int, indent: str) -> int:
        """Reads the YAML block whose ``---`` line was just read. Returns
        the index after it; a block cut short ends at its last indented line."""
        start, closed = i - 1, False
        body: list[str] = []
        while i < len(lines):
            line = lines[i]
            if line == indent + "...":
                closed = True
                i += 1
                break
            if line.startswith(indent):
                body.append(line[len(indent) :])
            elif line:
                break
            else:
                body.append("")
            i += 1
        self.yaml_allowed = False
        if closed and self.current is not None:
            _apply_yaml(self.current, "\n".join(body))
        if self.output is not None:
            self.output.extend(lines[start:i])  # the raw text, whether it parsed or not
        return i

    def _finish(self) -> None:
        verdict = self.verdict
        if self.child is not None and verdict.bailed_out is None:
            self._orphan()
        if self.numbering_problems > NAMED_IN_MESSAGE:
            self._problem(f"{self.numbering_problems - NAMED_IN_MESSAGE} more numbering problems")
        if verdict.bailed_out is not None:
            return  # the bail out says why points are missing
        ran = len(verdict.subresults)
        if verdict.planned is None:
            self._problem(f"no plan (ran {ran} point{'' if ran == 1 else 's'})")
        elif verdict.planned == 0 and not ran:
            verdict.plan_skip = self.plan_reason
        elif verdict.planned != ran:
            stopped = ""
            if ran < verdict.planned and ran:
                last = verdict.subresults[-1].name
                stopped = f" (stopped after {last if len(last) <= 80 else last[:77] + '...'})"
            self._problem(f"planned {verdict.planned}, ran {ran}{stopped}")


def _judge_parent(sub: SubResult, child: TapVerdict) -> None:
    """A parent point's status and message, given its subtest: an `ok` over
    failures or a broken nested plan is a failure."""
    bad = [nested for nested in child.subresults if nested.status.is_failure]
    notes = ([f"failed inside: {_names(bad)}"] if bad else []) + child.problems
    if sub.status is Status.PASS and child.plan_skip is not None:
        sub.status, sub.message = Status.SKIP, child.plan_skip
    if not notes or sub.status is Status.SKIP:
        return
    said = "; ".join(notes)
    if sub.status is Status.PASS:
        sub.status, sub.message = Status.FAIL, f"said ok, but {said}"
    else:
        if sub.status is Status.XPASS:
            sub.status = Status.XFAIL  # the TODO is what failed inside
        sub.message = f"{sub.message}; {said}" if sub.message else said
    details = []
    for nested in bad[:_DETAILED]:
        details.append(f"{nested.name}: {nested.message}" if nested.message else nested.name)
        if nested.output:
            details.append("    " + nested.output.replace("\n", "\n    "))
    if len(bad) > _DETAILED:
        details.append(f"... and {len(bad) - _DETAILED} more failed inside")
    sub.output = "\n".join(details + child.problems)


def _apply_yaml(sub: SubResult, text: str) -> None:
    """A diagnostic block's `message` and `duration_ms`, when it has them."""
    if len(text) > _YAML_LIMIT:
        return
    try:
        data = yaml.load(text, Loader=_LOADER)
    except Exception:
        return  # not YAML after all: its text stays in the output
    if not isinstance(data, dict):
        return
    message = data.get("message")
    # Scalars only: an aliased structure could print as gigabytes.
    if not sub.message and isinstance(message, (str, int, float)):
        sub.message = str(message).strip()
    duration = data.get("duration_ms")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool) and 0 <= duration < math.inf:
        sub.duration = duration / 1000
