"""A suite's own driver, as a team would write one: ``expect``.

It runs the testcase's commands like the shell driver, then checks the
output against patterns from the spec instead of a whole baseline, which
suits output that varies in ways a baseline cannot pin down:

    driver: expect
    cmd: python3 "$TEST_SUITE_ROOT/program/calc.py" --version
    options:
      expect: ['^calc \\d+\\.\\d+$']   # each must match some line
      reject: ['Traceback']           # none may match any line

Registered in suite.yaml:  drivers: {expect: _drivers/expect.py:ExpectDriver}
"""

import re

from run_testsuite.api import Driver, Outcome, Reason, Status


class ExpectDriver(Driver):
    # Validated against the testcase's ``options`` before anything runs, so
    # a typo in a pattern list is a SPEC error naming the line.
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "expect": {"type": "array", "items": {"type": "string", "format": "regex"}},
            "reject": {"type": "array", "items": {"type": "string", "format": "regex"}},
        },
        "anyOf": [{"required": ["expect"]}, {"required": ["reject"]}],
    }

    def fragments(self, test):
        fragments = super().fragments(test)
        # Fragments are plain data: the patterns travel with the last one to
        # whichever process runs it.
        options = test.spec.get("options", {})
        for key in ("expect", "reject"):
            for number, pattern in enumerate(options.get(key, [])):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    test.error(f"invalid regular expression: {exc}", ["options", key, number])
        fragments[-1].data["expect"] = options.get("expect", [])
        fragments[-1].data["reject"] = options.get("reject", [])
        self.combine_output(fragments)  # judge the output of every step
        return fragments

    def check(self, fragment, ctx):
        if not fragment.final:
            return Outcome(Status.PASS)
        lines = ctx.combined_output().decode("utf-8", "replace").splitlines()
        missing = [p for p in fragment.data["expect"] if not any(re.search(p, line) for line in lines)]
        found = [p for p in fragment.data["reject"] if any(re.search(p, line) for line in lines)]
        if not missing and not found:
            return Outcome(Status.PASS)
        problems = [f"no line matches {p!r}" for p in missing] + [f"a line matches rejected {p!r}" for p in found]
        return Outcome(Status.FAIL, Reason.DIFF, "; ".join(problems))
