"""JUnit XML from the report index, for CI test reporters.

GitLab, Jenkins and GitHub actions that read test reports all understand
the same loose dialect (Jenkins' ``junit-10.xsd`` is the common
denominator): one ``<testsuites>`` holding ``<testsuite>`` elements whose
``<testcase>`` children may carry ``<failure>``, ``<error>``,
``<skipped>`` and ``<system-out>``.

Naming: reporters group test cases by ``classname``, and Jenkins splits it
at the last dot into package and class. A testcase named ``arith/basic``
in suite ``calc-example`` therefore becomes ``classname="calc-example.arith"``
and ``name="basic"``: Jenkins shows package ``calc-example``, class
``arith``, test ``basic``, and GitLab lists ``calc-example.arith`` beside
``basic``, so testcases group by directory. A top-level testcase gets the
suite name as its classname. (Dots inside a directory name are kept: they
only change how Jenkins nests packages.)

Status mapping:

    PASS   plain <testcase>
    FAIL   <failure type=REASON>      the message, commands, diff or output tail
    XPASS  <failure type="XPASS">     "unexpected pass: ..."
    ERROR  <error type=REASON>        the message, traceback or output tail
    SKIP   <skipped message=...>
    XFAIL  <skipped message="expected failure: ...">

so ``failures`` counts FAIL and XPASS, ``skipped`` counts SKIP and XFAIL.

A testcase with sub-results (TAP points, GoogleTest tests, the testcases
of a JUnit file it ran) becomes one ``<testcase>`` per sub-result, whose
classname is the testcase's whole dotted name (``calc-example.unit.gtest``)
so reporters group them under it.

Every string goes through :func:`xml_safe`: command output can hold any
byte, and one control character would make the whole file unreadable to
the reporter, which then drops every result, not only that one.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import xml.etree.ElementTree as ET

from run_testsuite.jsonio import read_result
from run_testsuite.results import Status, describe_exit

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.jsonio import Index, IndexEntry


# Bounds, so one testcase cannot make the report huge: a result's output
# is already cut to head and tail, but a diff's lines can be long.
TEXT_MAX = 64 * 1024
MESSAGE_MAX = 1000
TAIL_LINES = 50

# Characters XML 1.0 forbids: C0 controls but tab, LF and CR; lone
# surrogates (json.loads accepts "\udc80"); U+FFFE and U+FFFF.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _replace(match: re.Match) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff" or char in "\ufffe\uffff":
        return "\ufffd"
    # Visible, so ANSI colours or a stray NUL still show where they were.
    return f"\\x{ord(char):02x}"


def xml_safe(text: str, limit: int = TEXT_MAX) -> str:
    """``text`` with XML-illegal characters made visible, cut to ``limit``
    characters (keeping head and tail, where a failure usually shows)."""
    text = _ILLEGAL.sub(_replace, text)
    if len(text) > limit:
        head = limit // 4
        tail = limit - head
        cut = len(text) - head - tail
        text = f"{text[:head]}\n[... {cut} characters cut ...]\n{text[-tail:]}"
    return text


def classname_and_name(suite: str, testcase: str) -> tuple[str, str]:
    """``('calc-example.arith', 'basic')`` for ``arith/basic``; see the module docstring."""
    *dirs, last = testcase.split("/")
    return ".".join([suite, *dirs]), last


def write_junit(index: Index, index_dir: str, path: str) -> None:
    """Write JUnit XML for ``index`` (whose result files lie under
    ``index_dir``) to ``path``, atomically."""
    root = build_junit(index, index_dir)
    ET.indent(root)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as handle:
            ET.ElementTree(root).write(handle, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build_junit(index: Index, index_dir: str) -> ET.Element:
    """The ``<testsuites>`` element for ``index``."""
    suite = index.get("suite") or "run-testsuite"
    # By name, not in completion order: the file is the same for the same
    # verdicts, and reporters that keep document order group directories.
    entries = sorted(index.get("results", []), key=lambda entry: entry["name"])
    cases = []
    statuses = []
    for entry in entries:
        result = _read_result(index_dir, entry)
        for element, status in _elements(suite, entry, result):
            cases.append(element)
            statuses.append(status)
    counts = {
        "tests": len(cases),
        "failures": sum(s in (Status.FAIL, Status.XPASS) for s in statuses),
        "errors": sum(s == Status.ERROR for s in statuses),
        "skipped": sum(s in (Status.SKIP, Status.XFAIL) for s in statuses),
    }
    duration = f"{float(index.get('duration', 0.0)):.3f}"
    testsuites = ET.Element(
        "testsuites",
        name=xml_safe(suite),
        tests=str(counts["tests"]),
        failures=str(counts["failures"]),
        errors=str(counts["errors"]),
        time=duration,
    )
    testsuite = ET.SubElement(
        testsuites,
        "testsuite",
        {
            "name": xml_safe(suite),
            **{key: str(value) for key, value in counts.items()},
            "time": duration,
            "timestamp": _timestamp(index.get("start", 0.0)),
            "hostname": xml_safe(index.get("host", "") or "localhost"),
        },
    )
    properties = ET.SubElement(testsuite, "properties")
    for key in ("root", "command_line", "jobs", "complete", "interrupted", "rebuilt"):
        if key in index:
            ET.SubElement(properties, "property", name=key, value=xml_safe(_property(index[key]), MESSAGE_MAX))
    testsuite.extend(cases)
    return testsuites


def _property(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(map(str, value))
    return json.dumps(value)


def _timestamp(start: float) -> str:
    """ISO 8601 local time with its offset, as pytest writes it."""
    return datetime.datetime.fromtimestamp(start).astimezone().isoformat(timespec="seconds")


def _read_result(index_dir: str, entry: IndexEntry) -> dict:
    """The entry's result file, or the entry itself when the file is gone:
    a report with less detail beats no report."""
    data = read_result(index_dir, entry["result"])
    return {**entry, **data} if data is not None else dict(entry)


def _elements(suite: str, entry: IndexEntry, result: dict) -> list[tuple[ET.Element, str]]:
    """The ``<testcase>`` elements of one result, with their statuses: one
    per sub-result (its classname the testcase's whole name), and the
    testcase's own where it has none, or where it failed for a reason no
    sub-result shows (a plan not met, an exit status), so no failure hides."""
    subresults = result.get("subresults") or []
    if not subresults:
        return [(_testcase(suite, entry, result), entry["status"])]
    classname = ".".join(classname_and_name(suite, entry["name"]))
    elements = [(_subresult(classname, sub), sub["status"]) for sub in subresults]
    bad = (Status.FAIL, Status.ERROR)
    if entry["status"] in bad and not any(sub["status"] in bad for sub in subresults):
        elements.append((_testcase(suite, entry, result), entry["status"]))
    return elements


def _subresult(classname: str, sub: dict) -> ET.Element:
    duration = sub.get("duration")
    element = ET.Element(
        "testcase",
        classname=xml_safe(classname),
        name=xml_safe(sub["name"]),
        time=f"{float(duration or 0.0):.3f}",
    )
    status = sub["status"]
    message = sub.get("message") or ""
    first = xml_safe(message.split("\n", 1)[0], MESSAGE_MAX)
    body = "\n".join(part for part in (message, sub.get("output") or "") if part)
    kind = sub.get("reason") or status
    if status == Status.FAIL:
        _child(element, "failure", body, message=first, type=kind)
    elif status == Status.XPASS:
        _child(element, "failure", body, message=_prefixed("unexpected pass", first), type="XPASS")
    elif status == Status.ERROR:
        _child(element, "error", body, message=first, type=kind)
    elif status in (Status.SKIP, Status.XFAIL):
        _child(element, "skipped", None, message=first)
    return element


def _testcase(suite: str, entry: IndexEntry, result: dict) -> ET.Element:
    classname, name = classname_and_name(suite, entry["name"])
    element = ET.Element(
        "testcase",
        classname=xml_safe(classname),
        name=xml_safe(name),
        time=f"{float(entry.get('duration', 0.0)):.3f}",
    )
    status = entry["status"]
    reason = entry.get("reason") or status
    message = result.get("message") or ""
    if entry.get("quarantined") and status in (Status.FAIL, Status.ERROR):
        message = f"[quarantined, not counted: {entry['quarantined']}] {message}"
    first = xml_safe(message.split("\n", 1)[0], MESSAGE_MAX)
    if status == Status.FAIL:
        body = _details(result, result.get("diff") or _tail(result.get("output", "")))
        _child(element, "failure", body, message=first, type=reason)
    elif status == Status.XPASS:
        _child(element, "failure", _details(result, ""), message=_prefixed("unexpected pass", first), type="XPASS")
    elif status == Status.ERROR:
        body = _details(result, result.get("traceback") or _tail(result.get("output", "")))
        _child(element, "error", body, message=first, type=reason)
    elif status == Status.SKIP:
        _child(element, "skipped", None, message=first)
    elif status == Status.XFAIL:
        _child(element, "skipped", None, message=_prefixed("expected failure", first))
    output = result.get("output") or ""
    if output:
        _child(element, "system-out", output)
    return element


def _prefixed(prefix: str, message: str) -> str:
    return f"{prefix}: {message}" if message else prefix


def _child(parent: ET.Element, tag: str, text: str | None, **attributes: str) -> None:
    child = ET.SubElement(parent, tag, {k: xml_safe(v, MESSAGE_MAX) for k, v in attributes.items()})
    if text:
        child.text = xml_safe(text)


def _details(result: dict, evidence: str) -> str:
    """The whole message and each command with its exit status, then the
    evidence: what a reader needs without opening the result file."""
    parts = []
    if result.get("message"):
        parts.append(result["message"].rstrip("\n"))
    for command in result.get("commands") or []:
        cmd = command.get("cmd", "")
        cmd = cmd if isinstance(cmd, str) else " ".join(map(str, cmd))
        ended = describe_exit(command.get("exit_code"), bool(command.get("timed_out")), command.get("timeout"))
        parts.append(f"$ {cmd}    # {ended}")
    if evidence:
        parts.append(evidence.rstrip("\n"))
    return "\n".join(parts) + "\n" if parts else ""


def _tail(output: str) -> str:
    lines = output.rstrip("\n").split("\n")
    if len(lines) <= TAIL_LINES:
        return output
    return f"[... {len(lines) - TAIL_LINES} earlier lines; full output in <system-out> ...]\n" + "\n".join(
        lines[-TAIL_LINES:]
    )
