"""JUnit XML (`run-testsuite report --junit-xml`): valid for CI reporters
whatever the testcases printed.

One suite with every status runs once for the module; its report is
validated against the Jenkins xUnit plugin's junit-10.xsd content model
(tests/data/junit.xsd), then checked element by element.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
import xmlschema

from conftest import REPO, cli_env, report, run_cli, write_suite
from run_testsuite.reports.junit import classname_and_name, write_junit, xml_safe

JUNIT_XSD = xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit.xsd"))

VERDICT_DRIVER = '''
from run_testsuite.api import Driver, Outcome, Reason, Status


class Verdict(Driver):
    """Runs the command, then returns the status the spec's options name:
    the only way to get XFAIL and XPASS from the built-in drivers' world."""

    options_schema = {"type": "object", "required": ["status"]}

    def fragments(self, test):
        fragments = super().fragments(test)
        fragments[-1].data["verdict"] = test.spec["options"]
        return fragments

    def check(self, fragment, ctx):
        verdict = fragment.data["verdict"]
        reason = verdict.get("reason")
        return Outcome(Status(verdict["status"]), Reason(reason) if reason else None, verdict.get("message", ""))


class Raises(Driver):
    def check(self, fragment, ctx):
        raise RuntimeError("driver <bug> & \\x01 control")
'''

# Output that a naive writer turns into an invalid file: markup, bytes that
# are not UTF-8, C0 controls and an ANSI colour sequence.
NASTY = r"printf '<script>alert(1)</script> & \377\376 bytes \001\002 \033[31mred\033[0m ]]>\n'"

SUITE = {
    "suite.yaml": """
        name: jsuite
        drivers:
          verdict: lib/verdict.py:Verdict
          raises: lib/verdict.py:Raises
    """,
    "lib/verdict.py": VERDICT_DRIVER,
    "top/test.yaml": "cmd: echo top\n",
    "arith/basic/test.yaml": "cmd: echo basic\n",
    "deep/a/b/test.yaml": "cmd: echo deep\n",
    "diff/test.yaml": "driver: diff\ncmd: echo '<script>actual</script>'\n",
    "diff/test.out": "<script>expected</script>\n",
    "exit/test.yaml": f"cmd: {json.dumps(NASTY + '; exit 3')}\n",
    "raises/test.yaml": "driver: raises\ncmd: echo before the bug\n",
    "skipped/test.yaml": "depends: [exit]\ncmd: echo never\n",
    "xfail/test.yaml": "driver: verdict\ncmd: echo known\noptions: {status: XFAIL, message: known bug 123}\n",
    "xpass/test.yaml": "driver: verdict\ncmd: echo fixed\noptions: {status: XPASS, message: bug 456 no longer fails}\n",
    "badspec/test.yaml": "cmd: echo\ntimout: 1\n",
}
EXPECTED = {
    "top": ("PASS", None),
    "arith/basic": ("PASS", None),
    "deep/a/b": ("PASS", None),
    "diff": ("FAIL", "DIFF"),
    "exit": ("FAIL", "EXIT_CODE"),
    "raises": ("ERROR", "DRIVER"),
    "skipped": ("SKIP", "DEPENDENCY"),
    "xfail": ("XFAIL", None),
    "xpass": ("XPASS", None),
    "badspec": ("ERROR", "SPEC"),
}


@pytest.fixture(scope="module")
def junit(tmp_path_factory):
    """(run, path of the JUnit file, parsed root) for the suite of every status."""
    base = tmp_path_factory.mktemp("junit")
    root, out = write_suite(base / "suite", SUITE), base / "out"
    run = run_cli(root, out, "-j", "4")
    got = {e["name"]: (e["status"], e["reason"]) for e in run.index["results"]}
    assert got == EXPECTED, run.stdout + run.stderr
    path = base / "report.xml"
    proc = report(out, "--junit-xml", path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return run, path, ET.parse(path).getroot()


def cases(root: ET.Element) -> dict[str, ET.Element]:
    """{testcase name in the suite: <testcase>}, rebuilt from classname and name."""
    found = {}
    for case in root.iter("testcase"):
        dirs = case.get("classname").split(".")[1:]
        found["/".join([*dirs, case.get("name")])] = case
    return found


def test_report_validates_against_the_junit_schema(junit):
    _, path, _ = junit
    JUNIT_XSD.validate(str(path))
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_one_testsuite_with_counts_matching_the_elements(junit):
    run, _, root = junit
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    testcases = suite.findall("testcase")
    counted = {
        "tests": len(testcases),
        "failures": sum(len(c.findall("failure")) for c in testcases),
        "errors": sum(len(c.findall("error")) for c in testcases),
        "skipped": sum(len(c.findall("skipped")) for c in testcases),
    }
    assert counted == {"tests": 10, "failures": 3, "errors": 2, "skipped": 2}
    for key, value in counted.items():
        assert suite.get(key) == str(value), key
    for key in ("tests", "failures", "errors"):
        assert root.get(key) == suite.get(key), key
    assert root.get("skipped") is None  # junit-10.xsd has no such attribute on the root
    assert suite.get("name") == root.get("name") == "jsuite"
    assert float(suite.get("time")) == pytest.approx(run.index["duration"], abs=0.001)
    assert datetime.fromisoformat(suite.get("timestamp")).timestamp() == pytest.approx(run.index["start"], abs=1)
    assert suite.get("hostname") == run.index["host"]
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["complete"] == "true"
    assert properties["jobs"] == "4"
    assert properties["command_line"] == " ".join(run.index["command_line"])


def test_classname_groups_by_directory(junit):
    _, _, root = junit
    pairs = sorted((c.get("classname"), c.get("name")) for c in root.iter("testcase"))
    assert ("jsuite", "top") in pairs
    assert ("jsuite.arith", "basic") in pairs
    assert ("jsuite.deep.a", "b") in pairs
    assert classname_and_name("calc-example", "arith/basic") == ("calc-example.arith", "basic")
    assert classname_and_name("calc-example", "hello") == ("calc-example", "hello")
    # In name order, whatever order they finished in.
    assert list(cases(root)) == sorted(EXPECTED)


def test_times_are_seconds(junit):
    run, _, root = junit
    by_name = cases(root)
    for entry in run.index["results"]:
        assert float(by_name[entry["name"]].get("time")) == pytest.approx(entry["duration"], abs=0.0006)


def test_pass_is_a_plain_testcase_with_its_output(junit):
    _, _, root = junit
    case = cases(root)["arith/basic"]
    assert [child.tag for child in case] == ["system-out"]
    assert case.find("system-out").text == "basic\n"


def test_fail_diff_is_a_failure_with_the_diff(junit):
    _, _, root = junit
    failure = cases(root)["diff"].find("failure")
    assert failure.get("type") == "DIFF"
    assert failure.get("message") == "output differs from the baseline"
    assert "-<script>expected</script>" in failure.text
    assert "+<script>actual</script>" in failure.text
    assert "$ echo '<script>actual</script>'    # exit 0" in failure.text


def test_fail_exit_code_is_a_failure_with_the_output_tail(junit):
    _, _, root = junit
    case = cases(root)["exit"]
    failure = case.find("failure")
    assert failure.get("type") == "EXIT_CODE"
    assert failure.get("message") == "step 'run' exited with 3, expected 0"
    assert "<script>alert(1)</script>" in failure.text
    assert case.find("system-out") is not None


def test_error_carries_the_traceback(junit):
    _, _, root = junit
    error = cases(root)["raises"].find("error")
    assert error.get("type") == "DRIVER"
    assert error.get("message").startswith("driver raised RuntimeError: driver <bug> &")
    assert "Traceback (most recent call last)" in error.text
    assert 'raise RuntimeError("driver <bug> & \\x01 control")' in error.text
    assert cases(root)["raises"].find("failure") is None


def test_spec_error_is_an_error_without_output(junit):
    _, _, root = junit
    case = cases(root)["badspec"]
    error = case.find("error")
    assert error.get("type") == "SPEC"
    assert "unknown key 'timout'" in error.get("message")
    assert case.find("system-out") is None


def test_skip_and_xfail_are_skipped(junit):
    _, _, root = junit
    skipped = cases(root)["skipped"].find("skipped")
    assert "exit" in skipped.get("message")
    xfail = cases(root)["xfail"].find("skipped")
    assert xfail.get("message") == "expected failure: known bug 123"
    for name in ("skipped", "xfail"):
        assert cases(root)[name].find("failure") is None and cases(root)[name].find("error") is None


def test_xpass_is_a_failure(junit):
    _, _, root = junit
    failure = cases(root)["xpass"].find("failure")
    assert failure.get("type") == "XPASS"
    assert failure.get("message") == "unexpected pass: bug 456 no longer fails"


def test_markup_bytes_and_control_characters_survive(junit):
    run, path, root = junit
    raw = path.read_bytes()
    assert not any(byte < 0x20 and byte not in b"\t\n\r" for byte in raw)
    assert b"<script>" not in raw.replace(b"<system-out>", b"")
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    out = cases(root)["exit"].find("system-out").text
    # Invalid UTF-8 became replacement characters when captured; controls
    # are shown escaped, so the reader sees where they were.
    assert out.startswith("<script>alert(1)</script> & \ufffd\ufffd bytes \\x01\\x02 \\x1b[31mred\\x1b[0m ]]>")


# -- unit level: what no real run produces -------------------------------------------
def _fake_run(tmp_path: Path, results: list[dict]) -> tuple[dict, Path]:
    (tmp_path / "results").mkdir()
    entries = []
    for number, result in enumerate(results):
        rel = f"results/r{number}.json"
        (tmp_path / rel).write_text(json.dumps(result), encoding="utf-8")
        entries.append({key: result.get(key) for key in ("name", "status", "reason", "message", "duration")} | {"result": rel})
    index = {"suite": "fake", "start": 1_700_000_000.0, "duration": 2.5, "host": "h", "results": entries}
    return index, tmp_path


def _result(name: str, status: str, **extra) -> dict:
    return {"name": name, "status": status, "reason": None, "message": "", "duration": 0.25, "commands": [], "output": ""} | extra


def test_lone_surrogates_and_every_control_character(tmp_path):
    evil = "".join(map(chr, range(0x20))) + "\udfff\ud800\ufffe\uffff é 🙂"
    index, index_dir = _fake_run(
        tmp_path,
        [
            _result(f"odd{evil[:3]}", "FAIL", reason="DIFF", message=f"m{evil}", diff=f"-a\n+{evil}\n", output=evil),
            _result("err", "ERROR", reason="DRIVER", message=evil, traceback=evil),
            _result("skip", "SKIP", reason="DEPENDENCY", message=evil),
        ],
    )
    path = tmp_path / "out.xml"
    write_junit(index, str(index_dir), str(path))
    JUNIT_XSD.validate(str(path))
    root = ET.parse(path).getroot()  # expat rejects any illegal character
    out = root.find(".//system-out").text
    assert out.startswith("\\x00\\x01\\x02")
    assert "\t\n" in out  # tab and newline are kept
    assert "\ufffd\ufffd\ufffd\ufffd é 🙂" in out
    names = [case.get("name") for case in root.iter("testcase")]
    assert names == ["err", "odd\\x00\\x01\\x02", "skip"]


def test_text_is_bounded(tmp_path):
    huge = "x" * 3_000_000
    index, index_dir = _fake_run(tmp_path, [_result("big", "FAIL", reason="DIFF", message=huge, diff=huge, output=huge)])
    path = tmp_path / "out.xml"
    write_junit(index, str(index_dir), str(path))
    assert path.stat().st_size < 300_000
    JUNIT_XSD.validate(str(path))
    assert "characters cut" in ET.parse(path).getroot().find(".//system-out").text


def test_a_missing_result_file_still_gives_its_testcase(tmp_path):
    index, index_dir = _fake_run(tmp_path, [_result("gone", "FAIL", reason="EXIT_CODE", message="exited 1")])
    os.unlink(tmp_path / "results" / "r0.json")
    path = tmp_path / "out.xml"
    write_junit(index, str(index_dir), str(path))
    failure = ET.parse(path).getroot().find(".//failure")
    assert failure.get("message") == "exited 1" and failure.get("type") == "EXIT_CODE"
    assert sorted(os.listdir(tmp_path)) == ["out.xml", "results"]  # no temporary file left


def test_xml_safe():
    assert xml_safe("a\tb\nc\rd") == "a\tb\nc\rd"
    assert xml_safe("\x00\x1b\x7f") == "\\x00\\x1b\x7f"  # DEL is legal XML 1.0
    assert xml_safe("\ud83d") == "\ufffd"
    cut = xml_safe("h" * 100 + "t" * 100, limit=40)
    assert cut.startswith("h" * 10) and cut.endswith("t" * 30) and "[... 160 characters cut ...]" in cut
