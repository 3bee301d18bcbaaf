"""The JUnit XML reader (drivers/junit_reader.py): the files real tools
write, read into exact sub-results; broken and hostile files refused
cleanly; big files read fast in bounded memory.

pytest's file is its real output (pytest runs in a subprocess); the ctest,
GoogleTest and surefire files copy the shapes those tools write (CMake's
cmCTestTestHandler::WriteJUnitXML, googletest's gtest_xml_output_unittest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

from run_testsuite.drivers.junit_reader import JunitFileError, read_junit
from run_testsuite.results import Status, SubResult
from run_testsuite.subresults import EXCERPT_LIMIT, excerpt

PASS, FAIL, ERROR, SKIP, XFAIL, XPASS = (
    Status.PASS,
    Status.FAIL,
    Status.ERROR,
    Status.SKIP,
    Status.XFAIL,
    Status.XPASS,
)


def write(tmp_path, text: str | bytes, name: str = "junit.xml") -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def refused(path: str) -> str:
    with pytest.raises(JunitFileError) as info:
        read_junit(path)
    return str(info.value)


# -- pytest ---------------------------------------------------------------------
PYTEST_FILE = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_pass():
    pass

def test_fail():
    assert 1 == 2

def test_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False

@pytest.mark.xfail(reason="fixed now")
def test_xpass():
    pass

@pytest.mark.xfail(reason="must fail", strict=True)
def test_xpass_strict():
    pass

class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        assert n
"""


def test_pytest_real_output(tmp_path):
    (tmp_path / "test_sample.py").write_text(PYTEST_FILE)
    xml = tmp_path / "out.xml"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    # --tb=line: the failure texts are one stable line each.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=line", "-W", "ignore"]
    run = subprocess.run(
        [*command, f"--junitxml={xml}", "test_sample.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    results = read_junit(str(xml))
    for sub in results:
        assert isinstance(sub.duration, float) and 0 <= sub.duration < 60, sub
        sub.duration = None
    assert results == [
        SubResult("test_sample.test_pass", PASS),
        SubResult("test_sample.test_fail", FAIL, message="assert 1 == 2", output="E   assert 1 == 2"),
        SubResult(
            "test_sample.test_error",
            ERROR,
            message='failed on setup with "RuntimeError: fixture broke"',
            output="E   RuntimeError: fixture broke",
        ),
        SubResult(
            "test_sample.test_skip", SKIP, message="not today", output=f"{tmp_path}/test_sample.py:17: not today"
        ),
        SubResult("test_sample.test_xfail", XFAIL, message="known bug"),
        # pytest writes a non-strict unexpected pass as a plain pass: the file cannot tell.
        SubResult("test_sample.test_xpass", PASS),
        SubResult(
            "test_sample.test_xpass_strict",
            FAIL,
            message="[XPASS(strict)] must fail",
            output="[XPASS(strict)] must fail",
        ),
        SubResult("test_sample.TestGroup.test_param[1]", PASS),
        SubResult("test_sample.TestGroup.test_param[2]", PASS),
    ]


def test_pytest_xpass_skipped_and_bare_testsuite(tmp_path):
    """The <skipped> pytest writes for a failed report of an xfail-marked test."""
    path = write(
        tmp_path,
        """
        <testsuite name="pytest">
          <testcase classname="t" name="x" time="0.5">
            <skipped message="xfail-marked test passes unexpectedly"/>
          </testcase>
        </testsuite>
        """,
    )
    assert read_junit(path) == [
        SubResult("t.x", XPASS, message="xfail-marked test passes unexpectedly", duration=0.5),
    ]


# -- ctest ------------------------------------------------------------------------
def test_ctest(tmp_path):
    path = write(
        tmp_path,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuite name="Linux-c++"
            tests="5" failures="2" disabled="1" skipped="1" hostname="h" time="2" timestamp="2024-01-01T00:00:00">
            <testcase name="unit" classname="unit" time="0.0123" status="run">
                <properties><property name="cmake_labels" value="fast;core"/></properties>
                <system-out>all good
        </system-out>
            </testcase>
            <testcase name="crash" classname="crash" time="1.5" status="fail">
                <failure message="SEGFAULT"/>
                <properties/>
                <system-out>starting
        boom
        </system-out>
            </testcase>
            <testcase name="quiet_fail" classname="quiet_fail" time="0.25" status="fail">
                <failure message="Failed"/>
                <properties/>
                <system-out/>
            </testcase>
            <testcase name="needs_file" classname="needs_file" time="0" status="notrun">
                <skipped message="Required Files Missing"/>
                <properties/>
                <system-out>Could not find executable needs_file
        </system-out>
            </testcase>
            <testcase name="off" classname="off" time="0" status="disabled">
                <properties/>
                <system-out/>
            </testcase>
        </testsuite>
        """,
    )
    assert read_junit(path) == [
        SubResult("unit", PASS, duration=0.0123),
        SubResult("crash", FAIL, message="SEGFAULT", duration=1.5, output="starting\nboom\n"),
        SubResult("quiet_fail", FAIL, message="Failed", duration=0.25),
        SubResult(
            "needs_file",
            SKIP,
            message="Required Files Missing",
            duration=0.0,
            output="Could not find executable needs_file\n",
        ),
        SubResult("off", SKIP, message="disabled", duration=0.0),
    ]


def test_status_attribute_alone(tmp_path):
    """ctest's status="fail" without its <failure> still fails."""
    path = write(tmp_path, '<testsuite><testcase name="a" status="fail"/><testcase name="b" status="run"/></testsuite>')
    assert read_junit(path) == [SubResult("a", FAIL, message='status="fail"'), SubResult("b", PASS)]


# -- GoogleTest -----------------------------------------------------------------
def test_gtest(tmp_path):
    path = write(
        tmp_path,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites tests="9" failures="3" disabled="1" errors="0" time="0.035" timestamp="2024-01-01T00:00:00" name="AllTests">
          <testsuite name="MathTest" tests="4" failures="1" disabled="1" skipped="0" errors="0" time="0.015">
            <testcase name="Addition" file="m.cc" line="3" status="run" result="completed" time="0.007" timestamp="t" classname="MathTest">
              <failure message="m.cc:4&#x0A;Expected equality of these values:&#x0A;  add(1, 1)&#x0A;  3" type=""><![CDATA[m.cc:4
        Expected equality of these values:
          add(1, 1)
          3]]></failure>
              <failure message="m.cc:5&#x0A;Value of: ok" type=""><![CDATA[m.cc:5
        Value of: ok]]></failure>
            </testcase>
            <testcase name="Subtraction" file="m.cc" line="8" status="run" result="completed" time="0.005" timestamp="t" classname="MathTest">
              <properties><property name="key" value="1"/></properties>
            </testcase>
            <testcase name="MathTestsAgain" status="run" result="completed" time="0" classname="MathTest"/>
            <testcase name="DISABLED_Division" file="m.cc" line="12" status="notrun" result="suppressed" time="0" timestamp="t" classname="MathTest"/>
          </testsuite>
          <testsuite name="SkippedTest" tests="3" failures="1" disabled="0" skipped="2" errors="0" time="0">
            <testcase name="Skipped" status="run" result="skipped" time="0" classname="SkippedTest">
              <skipped message="s.cc:2&#x0A;&#x0A;"><![CDATA[s.cc:2

        ]]></skipped>
            </testcase>
            <testcase name="Old" status="run" result="skipped" time="0" classname="SkippedTest"/>
            <testcase name="SkippedAfterFailure" status="run" result="completed" time="0" classname="SkippedTest">
              <failure message="s.cc:9&#x0A;Failed" type=""><![CDATA[s.cc:9
        Failed]]></failure>
              <skipped message="s.cc:10&#x0A;why&#x0A;"><![CDATA[s.cc:10
        why
        ]]></skipped>
            </testcase>
          </testsuite>
          <testsuite name="Single/ValueParamTest" tests="1" failures="0" disabled="0" skipped="0" errors="0" time="0">
            <testcase name="HasValueParam/0" value_param="33" status="run" result="completed" time="0.001" classname="Single/ValueParamTest"/>
          </testsuite>
          <testsuite name="NonTestSuiteFailure" tests="1" failures="1" disabled="0" skipped="0" errors="0" time="0">
            <testcase name="" status="run" result="completed" time="0" classname="">
              <failure message="env.cc:1&#x0A;Failed" type=""><![CDATA[env.cc:1
        Failed]]></failure>
            </testcase>
          </testsuite>
        </testsuites>
        """,
    )
    assert read_junit(path) == [
        SubResult(
            "MathTest.Addition",
            FAIL,
            message="m.cc:4\nExpected equality of these values:\n  add(1, 1)\n  3",
            duration=0.007,
            output="m.cc:4\nExpected equality of these values:\n  add(1, 1)\n  3\nm.cc:5\nValue of: ok",
        ),
        SubResult("MathTest.Subtraction", PASS, duration=0.005),
        # "MathTest" heads the name but not as a whole word: still prefixed.
        SubResult("MathTest.MathTestsAgain", PASS, duration=0.0),
        SubResult("MathTest.DISABLED_Division", SKIP, message="not run", duration=0.0),
        SubResult("SkippedTest.Skipped", SKIP, message="s.cc:2", duration=0.0, output="s.cc:2\n\n"),
        SubResult("SkippedTest.Old", SKIP, message="skipped", duration=0.0),
        SubResult(
            "SkippedTest.SkippedAfterFailure",
            FAIL,
            message="s.cc:9\nFailed",
            duration=0.0,
            output="s.cc:9\nFailed\ns.cc:10\nwhy\n",
        ),
        SubResult("Single/ValueParamTest.HasValueParam/0", PASS, duration=0.001),
        SubResult("NonTestSuiteFailure", FAIL, message="env.cc:1\nFailed", duration=0.0, output="env.cc:1\nFailed"),
    ]


# -- nesting, names, other writers ----------------------------------------------
def test_nested_suites_and_other_writers(tmp_path):
    path = write(
        tmp_path,
        """
        <testsuites name="jest tests">
          <testcase classname="top" name="direct" time="1"/>
          <testsuite name="outer">
            <properties><property name="failure" value="not a verdict"/></properties>
            <system-out>suite output, not a testcase's</system-out>
            <testsuite name="inner">
              <testsuite name="innermost">
                <testcase classname="sum adds" name="sum adds" time="0.002"/>
                <testcase classname="sum" name="sum handles zero" time="0.003">
                  <system-err>err first in the file</system-err>
                  <system-out>out</system-out>
                  <failure>Error: expected 0
            at sum.test.js:9</failure>
                </testcase>
              </testsuite>
              <testcase name="no_classname"/>
              <testcase classname="com.example.FooTest" name="testFlaky" time="0.1">
                <flakyFailure message="first try" type="java.lang.AssertionError">
                  <system-out>first try's output</system-out>
                </flakyFailure>
              </testcase>
              <testcase classname="com.example.FooTest" name="testBoom" time="0.1">
                <error type="java.lang.IllegalStateException">java.lang.IllegalStateException
        &#9;at com.example.FooTest.testBoom(FooTest.java:20)</error>
                <system-out><![CDATA[log <line> & more]]></system-out>
              </testcase>
              <testcase classname="c" name="t">
                <testcase classname="c" name="inside a testcase: not one"/>
              </testcase>
            </testsuite>
          </testsuite>
          <testsuite name="github.com/me/pkg">
            <testcase classname="github.com/me/pkg" name="TestX" time="0.010000">
              <failure message="Failed" type="">    x_test.go:8: nope</failure>
            </testcase>
          </testsuite>
        </testsuites>
        """,
    )
    assert read_junit(path) == [
        SubResult("top.direct", PASS, duration=1.0),
        SubResult("sum adds", PASS, duration=0.002),
        SubResult(
            "sum handles zero",
            FAIL,
            message="Error: expected 0",
            duration=0.003,
            output="Error: expected 0\n    at sum.test.js:9\nerr first in the file\nout",
        ),
        SubResult("no_classname", PASS),
        SubResult("com.example.FooTest.testFlaky", PASS, duration=0.1),
        SubResult(
            "com.example.FooTest.testBoom",
            ERROR,
            message="java.lang.IllegalStateException",
            duration=0.1,
            output="java.lang.IllegalStateException\n\tat com.example.FooTest.testBoom(FooTest.java:20)\nlog <line> & more",
        ),
        SubResult("c.t", PASS),
        SubResult("github.com/me/pkg.TestX", FAIL, message="Failed", duration=0.01, output="    x_test.go:8: nope"),
    ]


def test_duplicates_kept_and_suffixed(tmp_path):
    path = write(
        tmp_path,
        """
        <testsuites>
          <testsuite name="one"><testcase classname="m" name="a"/><testcase classname="m" name="a"/></testsuite>
          <testsuite name="two">
            <testcase name="m.a (2)"><failure message="third"/></testcase>
            <testcase classname="m" name="a"/>
            <testcase name="" classname=""/>
          </testsuite>
          <testsuite><testcase name="" classname=""/><testcase name="" classname=""/></testsuite>
        </testsuites>
        """,
    )
    assert read_junit(path) == [
        SubResult("m.a", PASS),
        SubResult("m.a (2)", PASS),
        SubResult("m.a (2) (2)", FAIL, message="third"),
        SubResult("m.a (3)", PASS),
        SubResult("two", PASS),
        SubResult("(unnamed)", PASS),
        SubResult("(unnamed) (2)", PASS),
    ]


def test_durations_and_messages(tmp_path):
    times = ["0.5", "", "abc", "nan", "inf", "1e400", "-1", "3"]
    cases = "".join(f'<testcase name="t{i}" time="{time}"/>' for i, time in enumerate(times))
    path = write(
        tmp_path,
        f"""
        <testsuite>{cases}<testcase name="nothing"/>
          <testcase name="text"><failure>

            first line
          second</failure></testcase>
          <testcase name="type"><error type="Boom"/></testcase>
          <testcase name="bare"><failure/></testcase>
          <testcase name="attr_wins"><failure message=" spaced &#x0A;">text line</failure></testcase>
          <testcase name="several">
            <failure message="one"/><error message="two"/><failure message="three">third's text</failure>
          </testcase>
          <testcase name="skip_text"><skipped>because
        reasons</skipped></testcase>
        </testsuite>
        """,
    )
    results = read_junit(path)
    assert [sub.duration for sub in results[: len(times) + 1]] == [0.5, None, None, None, None, None, None, 3.0, None]
    assert results[len(times) + 1 :] == [
        SubResult("text", FAIL, message="first line", output="\n\n    first line\n  second"),
        SubResult("type", ERROR, message="Boom"),
        SubResult("bare", FAIL),
        SubResult("attr_wins", FAIL, message="spaced", output="text line"),
        # The first decides; the others are all in the output.
        SubResult("several", FAIL, message="one", output="two\nthird's text"),
        SubResult("skip_text", SKIP, message="because", output="because\nreasons"),
    ]


def test_no_testcases(tmp_path):
    assert read_junit(write(tmp_path, "<testsuites/>")) == []
    assert read_junit(write(tmp_path, '<?xml version="1.0"?>\n<testsuite name="x" tests="0"></testsuite>')) == []


# -- broken files ---------------------------------------------------------------
def test_missing(tmp_path):
    path = str(tmp_path / "nowhere.xml")
    assert refused(path) == f"{path} was not written"


def test_empty(tmp_path):
    path = write(tmp_path, b"")
    assert refused(path) == f"{path} is empty"


def test_directory(tmp_path):
    assert refused(str(tmp_path)) == f"{tmp_path} cannot be read: Is a directory"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"<testsuites>\n  <testcase name=1/>", "2:18: not well-formed (invalid token)"),
        (b"<testsuite><testcase name='a'>", "1:31: no element found"),
        (b"  \n", "2:1: no element found"),
        (b"<testsuite/><x/>", "1:13: junk after document element"),
        (b"<testsuite>&nbsp;</testsuite>", "1:12: undefined entity"),
        (b"\x00\x01binary\xff", "1:1: not well-formed (invalid token)"),
        (b"<testsuite><testcase name='\xff'/></testsuite>", "1:28: not well-formed (invalid token)"),
        (b"plain text output", "1:1: syntax error"),
    ],
)
def test_not_well_formed(tmp_path, content, error):
    path = write(tmp_path, content)
    assert refused(path) == f"{path}:{error}"


@pytest.mark.parametrize("root", ["html", "testcase", "testrun"])
def test_wrong_root(tmp_path, root):
    path = write(tmp_path, f"<!-- a comment first --><{root}><testsuite><testcase name='a'/></testsuite></{root}>")
    assert refused(path) == f"{path} is not a JUnit file: its root element is <{root}>, not <testsuites> or <testsuite>"


DOCTYPE_REFUSED = (
    "refused: the file has a DOCTYPE, whose entities could expand without bound or read other files "
    "(no JUnit writer emits one)"
)


def test_billion_laughs_refused_fast(tmp_path):
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    path = write(
        tmp_path,
        f'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>\n'
        "<testsuite><testcase name='&lol9;'/></testsuite>",
    )
    start = time.monotonic()
    assert refused(path) == f"{path}:2:16: {DOCTYPE_REFUSED}"
    assert time.monotonic() - start < 1


def test_external_entity_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    path = write(
        tmp_path,
        f'<!DOCTYPE testsuite [<!ENTITY leak SYSTEM "file://{secret}">]>'
        "<testsuite><testcase name='a'><failure>&leak;</failure></testcase></testsuite>",
    )
    assert refused(path) == f"{path}:1:21: {DOCTYPE_REFUSED}"


# -- size -----------------------------------------------------------------------
def test_many_passing_testcases_fast(tmp_path):
    path = tmp_path / "big.xml"
    with open(path, "w") as file:
        file.write('<testsuites><testsuite name="s">\n')
        file.writelines(f'  <testcase classname="pkg.mod" name="test_{i}" time="0.001"/>\n' for i in range(100_000))
        file.write("</testsuite></testsuites>\n")
    start = time.monotonic()
    results = read_junit(str(path))
    assert time.monotonic() - start < 10
    assert len(results) == 100_000
    assert results[-1] == SubResult("pkg.mod.test_99999", PASS, duration=0.001)
    assert all(sub.status is PASS and not sub.output for sub in results)


def numbered(size: int, mark: str) -> str:
    """A text of this size whose every part is telling: where a cut fell shows."""
    line = "".join(f"{mark}{i:07d}\n" for i in range(size // 9 + 1))
    return line[:size]


@pytest.mark.parametrize(
    "sizes",
    [
        (0, 10),
        (EXCERPT_LIMIT - 5, 3),
        (EXCERPT_LIMIT, EXCERPT_LIMIT),
        (2 * EXCERPT_LIMIT, 1),
        (2 * EXCERPT_LIMIT + 1, 0),
        (3, 3 * EXCERPT_LIMIT),
        (50_000, 10, 70_000),
        (1, 300_000, 5),
    ],
)
def test_output_excerpt_exact(tmp_path, sizes):
    """What the reader keeps of long texts gives excerpt() of the whole output."""
    texts = [numbered(size, "abc"[i]) for i, size in enumerate(sizes)]
    verdicts = "".join(f"<failure message='m'>{text}</failure>" for text in texts[:-1])
    path = write(
        tmp_path, f"<testsuite><testcase name='t'><system-out>{texts[-1]}</system-out>{verdicts}</testcase></testsuite>"
    )
    [sub] = read_junit(path)
    whole = "\n".join(text for text in texts if text)
    assert sub.output == excerpt(whole)


def test_huge_output_bounded_memory(tmp_path):
    path = tmp_path / "huge.xml"
    line = "x" * 99 + "\n"
    with open(path, "w") as file:
        file.write(
            '<testsuite><testcase name="big" classname="big" status="fail"><failure message="Failed"/><system-out>'
        )
        file.writelines(line for _ in range(300_000))  # 30 MB in one element
        file.write("</system-out></testcase>")
        file.writelines(f'<testcase name="t{i}"><system-out>{line * 20}</system-out></testcase>' for i in range(10_000))
        file.write("</testsuite>")
    tracemalloc.start()
    try:
        results = read_junit(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16_000_000, peak
    assert len(results) == 10_001
    assert results[0].output == excerpt(line * 300_000)
    assert results[1:] == [SubResult(f"t{i}", PASS) for i in range(10_000)]
