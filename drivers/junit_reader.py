"""Read the JUnit XML file a test program wrote into sub-results.

The shapes read are the ones real writers produce:

- pytest ``--junitxml``: ``<testsuites><testsuite name="pytest">``, each
  ``<testcase classname="tests.test_x.TestY" name="test_z[1]" time="0.001">``
  holding ``<failure message=...>``, ``<error message="failed on setup
  with ...">``, ``<skipped type="pytest.skip">`` or, for an expected failure,
  ``<skipped type="pytest.xfail" message=reason/>`` (a non-strict unexpected
  pass is written as a plain pass; a strict one as a ``<failure>``).
- ctest ``--output-junit``: a bare ``<testsuite>`` root; ``<testcase
  name=N classname=N time= status="run|fail|notrun|disabled">`` where a
  ``fail`` holds ``<failure message=...>``, a ``notrun`` a ``<skipped
  message=...>`` and a ``disabled`` nothing; every testcase has
  ``<properties>`` and its output in ``<system-out>``.
- GoogleTest ``--gtest_output=xml``: ``<testsuites><testsuite name=Suite>``,
  ``<testcase name=Test classname=Suite status="run|notrun"
  result="completed|skipped|suppressed">``, one ``<failure>`` per failed
  assertion (a test may also hold a ``<skipped>`` after them: it failed).
  A failure outside any test is ``<testcase name="" classname="">`` in a
  suite named ``NonTestSuiteFailure``.
- Maven surefire, go-junit-report, jest-junit: ``classname``/``name`` with
  ``<failure>``/``<error>``/``<skipped>`` and per-testcase ``<system-out>``.

The file comes from the program under test, so it is read as hostile: a
streaming expat parser builds no tree, keeps only the head and tail of each
text (what ``excerpt`` shows), and refuses any DOCTYPE, the only way to
declare entities (billion laughs, external files). No JUnit writer emits one.
"""

from __future__ import annotations

import math
import pyexpat

from run_testsuite.results import Status, SubResult
from run_testsuite.subresults import EXCERPT_LIMIT, excerpt

ROOTS = ("testsuites", "testsuite")
VERDICTS = {"failure": Status.FAIL, "error": Status.ERROR}
STREAMS = ("system-out", "system-err")
CHUNK = 1 << 20
# What pytest writes when an xfail-marked test passed but was reported failed.
PYTEST_XPASS = "xfail-marked test passes unexpectedly"


class JunitFileError(Exception):
    """The file is missing, empty, not XML, or not JUnit: str(exc) says which,
    naming the file (and line:column for a parse error)."""


class _Text:
    """A text read in pieces, kept whole up to EXCERPT_LIMIT characters, else
    its head and tail: all that excerpt() shows of it, so that a 200 MB
    <system-out> costs 8 kB."""

    __slots__ = ("head", "size", "tail")

    def __init__(self, data: str = "") -> None:
        self.head = self.tail = ""
        self.size = 0
        self.add(data)

    def add(self, data: str) -> None:
        self.size += len(data)
        room = EXCERPT_LIMIT - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail = (self.tail + data)[-EXCERPT_LIMIT:]

    def extend(self, other: _Text) -> None:
        self.add(other.head)
        # The middle the other dropped: its tail, EXCERPT_LIMIT long then, replaces ours.
        self.size += other.size - len(other.head) - len(other.tail)
        self.add(other.tail)

    def whole(self) -> str | None:
        return self.head + self.tail if self.size == len(self.head) + len(self.tail) else None

    def blank(self) -> bool:
        text = self.whole()
        return text is not None and not text.strip()

    def excerpt(self) -> str:
        text = self.whole()
        if text is not None:
            return excerpt(text)
        half = EXCERPT_LIMIT // 2
        # excerpt()'s own shape for the whole text (the tests compare the two).
        return f"{self.head[:half]}\n[... {self.size - 2 * half} characters cut ...]\n{self.tail[-half:]}"


def _join(into: _Text | None, text: _Text) -> _Text:
    """Append text to into (made if None), a newline between."""
    if into is None:
        return text
    into.add("\n")
    into.extend(text)
    return into


def _first_line(text: _Text) -> str:
    return next((line.strip() for line in text.head.splitlines() if line.strip()), "")


class _Case:
    """One <testcase> being read."""

    __slots__ = ("attrs", "bad", "depth", "detail", "message", "skip", "streams")

    def __init__(self, attrs: dict[str, str], depth: int) -> None:
        self.attrs = attrs
        self.depth = depth
        self.bad: Status | None = None  # the first <failure>/<error>
        self.skip: tuple[Status, str] | None = None  # the first <skipped>
        self.message = ""
        self.detail: _Text | None = None  # the verdicts' texts
        self.streams: _Text | None = None  # <system-out>, <system-err>

    def child(self, tag: str, attrs: dict[str, str], text: _Text) -> None:
        if tag in STREAMS:
            if not text.blank():
                self.streams = _join(self.streams, text)
            return
        message = excerpt((attrs.get("message") or _first_line(text) or attrs.get("type") or "").strip())
        decides = False
        if tag in VERDICTS:
            if self.bad is None:
                self.bad, self.message, decides = VERDICTS[tag], message, True
        elif self.skip is None:
            decides = True
            if attrs.get("type") == "pytest.xfail":
                self.skip = Status.XFAIL, message
            elif message == PYTEST_XPASS:
                self.skip = Status.XPASS, message
            else:
                self.skip = Status.SKIP, message
        if not text.blank():
            self.detail = _join(self.detail, text)
        elif message and not decides:
            # A second text-less verdict: its message is all it says.
            self.detail = _join(self.detail, _Text(message))

    def verdict(self) -> tuple[Status, str]:
        """Failures and errors first (GoogleTest writes <skipped> after a
        failed assertion), then <skipped>, then ctest's and GoogleTest's
        status attributes."""
        if self.bad is not None:
            return self.bad, self.message
        if self.skip is not None:
            return self.skip
        status = self.attrs.get("status")
        if status == "fail":
            return Status.FAIL, 'status="fail"'
        if status == "disabled":
            return Status.SKIP, "disabled"
        if status == "notrun":
            return Status.SKIP, "not run"
        if self.attrs.get("result") == "skipped":  # older GoogleTest wrote no <skipped>
            return Status.SKIP, "skipped"
        return Status.PASS, ""


def _duration(text: str | None) -> float | None:
    try:
        seconds = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _name(classname: str, name: str, suite: str) -> str:
    """``classname.name`` unless classname already heads name as a whole word."""
    if not classname:
        return name or suite or "(unnamed)"
    if not name:
        return classname
    if name.startswith(classname) and (len(name) == len(classname) or not _word(name[len(classname)])):
        return name
    return f"{classname}.{name}"


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.results: list[SubResult] = []
        self.taken: set[str] = set()
        self.count: dict[str, int] = {}  # the last suffix given to a name met again
        self.stack: list[str] = []
        self.suites: list[str] = []  # the names of the open <testsuite>s
        self.case: _Case | None = None
        self.text: _Text | None = None  # the testcase child being read
        self.text_attrs: dict[str, str] = {}
        self.parser = parser = pyexpat.ParserCreate()
        parser.buffer_text = True
        parser.buffer_size = 1 << 16
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.data
        parser.StartDoctypeDeclHandler = self.doctype

    def where(self) -> str:
        # Columns counted from 1, as compilers and editors do (expat's from 0).
        return f"{self.path}:{self.parser.CurrentLineNumber}:{self.parser.CurrentColumnNumber + 1}"

    def doctype(self, *_args: object) -> None:
        raise JunitFileError(
            f"{self.where()}: refused: the file has a DOCTYPE, whose entities could expand without bound "
            "or read other files (no JUnit writer emits one)"
        )

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        parent = stack[-1] if stack else None
        stack.append(tag)
        if parent is None and tag not in ROOTS:
            raise JunitFileError(
                f"{self.path} is not a JUnit file: its root element is <{tag}>, not <testsuites> or <testsuite>"
            )
        if tag == "testsuite":
            self.suites.append(attrs.get("name", ""))
        case = self.case
        if case is None:
            # Only a suite's own testcases: not one inside a testcase or <properties>.
            if tag == "testcase" and parent in ROOTS:
                self.case = _Case(attrs, len(stack))
        elif len(stack) == case.depth + 1 and (tag in STREAMS or tag in VERDICTS or tag == "skipped"):
            # Direct children only: surefire's <flakyFailure> holds its own <system-out>.
            self.text, self.text_attrs = _Text(), attrs

    def data(self, data: str) -> None:
        if self.text is not None:
            self.text.add(data)

    def end(self, tag: str) -> None:
        depth = len(self.stack)
        self.stack.pop()
        if tag == "testsuite":
            self.suites.pop()
        case = self.case
        if case is None:
            return
        if depth == case.depth + 1 and self.text is not None:
            case.child(tag, self.text_attrs, self.text)
            self.text = None
        elif depth == case.depth:
            self.case = None
            self.results.append(self.result(case))

    def result(self, case: _Case) -> SubResult:
        status, message = case.verdict()
        attrs = case.attrs
        name = _name(attrs.get("classname", ""), attrs.get("name", ""), self.suites[-1] if self.suites else "")
        if name in self.taken:
            base, count = name, self.count.get(name, 1)
            while name in self.taken:
                count += 1
                name = f"{base} ({count})"
            self.count[base] = count
        self.taken.add(name)
        output = ""
        if status is not Status.PASS:
            text = case.detail
            if case.streams is not None:
                text = _join(text, case.streams)
            output = text.excerpt() if text is not None else ""
        return SubResult(name, status, None, message, _duration(attrs.get("time")), output)


def read_junit(path: str) -> list[SubResult]:
    """The sub-results a JUnit XML file reports: one per ``<testcase>`` at
    any depth of ``<testsuites>``/``<testsuite>``, in document order.

    Names are ``classname.name``: what the tool itself calls the test and
    unique in the file (pytest's dotted node id ``tests.test_x.TestY.test_z[1]``,
    GoogleTest's ``Suite.Test`` that ``--gtest_filter`` takes, surefire's
    ``pkg.Class.method``, go-junit-report's ``package.TestX``). ctest writes
    the test's name as both classname and name, and jest-junit's default
    templates ``{classname} {title}`` for both, so a classname already at the
    head of the name (as a whole word: ``Parser`` does not head
    ``ParserEmpty``) is not repeated. An empty name falls back to the
    classname, then the enclosing suite's name. A name met again is
    suffixed `` (2)``, `` (3)``: both results are kept.

    Status: the first ``<failure>`` (FAIL) or ``<error>`` (ERROR) decides,
    with its message; else ``<skipped>``: XFAIL for pytest's
    ``type="pytest.xfail"``, XPASS for pytest's "xfail-marked test passes
    unexpectedly", SKIP otherwise; else ctest's ``status="fail"`` FAIL,
    ``status="notrun"``/``"disabled"`` (GoogleTest's disabled tests too) and
    GoogleTest's ``result="skipped"`` SKIP; else PASS. A message is the
    element's ``message`` attribute, else its text's first line, else its
    ``type``. ``time`` is the duration in seconds (None when not a number).
    A result that did not pass keeps an excerpt of its verdicts' texts, then
    its ``<system-out>``/``<system-err>``.

    Raises JunitFileError when the file is missing, empty, not well-formed
    XML (``path:line:column: message``), has a DOCTYPE, or its root is not
    ``<testsuites>``/``<testsuite>``. A file with no testcase gives [].
    """
    reader = _Reader(path)
    try:
        with open(path, "rb") as file:
            chunk = file.read(CHUNK)
            if not chunk:
                raise JunitFileError(f"{path} is empty")
            while chunk:
                reader.parser.Parse(chunk, False)
                chunk = file.read(CHUNK)
            reader.parser.Parse(b"", True)
    except FileNotFoundError:
        raise JunitFileError(f"{path} was not written") from None
    except OSError as exc:
        raise JunitFileError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except pyexpat.ExpatError as exc:
        raise JunitFileError(f"{path}:{exc.lineno}:{exc.offset + 1}: {pyexpat.errors.messages[exc.code]}") from None
    return reader.results
