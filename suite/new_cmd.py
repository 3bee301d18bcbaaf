"""``run-testsuite new PATH``: scaffold a testcase directory."""

from __future__ import annotations

import argparse
import os
import sys

from run_testsuite import schemas

TEMPLATES = {
    "shell": "description: {description}\ncmd: {cmd}\n",
    "diff": (
        "description: {description}\n"
        "driver: diff\n"
        "cmd: {cmd}\n"
        "# The expected output (stdout and stderr together) is in test.out;\n"
        "# `run-testsuite ROOT NAME --rewrite` fills it from a run.\n"
    ),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="run-testsuite new", description="Create a testcase directory with a test.yaml."
    )
    parser.add_argument("path", help="the testcase directory to create")
    parser.add_argument("--driver", default="shell", help="shell (default), diff, or a suite's own driver")
    parser.add_argument("--cmd", default="echo hello", help="the command (default: echo hello)")
    parser.add_argument("--description", default="TODO: what this testcase checks")
    args = parser.parse_args(argv)
    spec_path = os.path.join(args.path, "test.yaml")
    if os.path.exists(spec_path):
        print(f"run-testsuite: error: {spec_path} already exists", file=sys.stderr)
        return 2
    os.makedirs(args.path, exist_ok=True)
    template = TEMPLATES.get(args.driver, "description: {description}\ndriver: {driver}\ncmd: {cmd}\n")
    schema = os.path.relpath(schemas.path("testcase"), os.path.abspath(args.path))
    body = template.format(description=_quote(args.description), cmd=_quote(args.cmd), driver=args.driver)
    with open(spec_path, "w", encoding="utf-8") as handle:
        # The comment lets an editor with the YAML language server complete
        # and document every key.
        handle.write(f"# yaml-language-server: $schema={schema}\n{body}")
    created = [spec_path]
    if args.driver == "diff":
        baseline = os.path.join(args.path, "test.out")
        open(baseline, "a").close()
        created.append(baseline)
    for path in created:
        print(f"created {path}")
    return 0


def _quote(text: str) -> str:
    """``text`` as a YAML scalar: plain when that is safe, quoted if not."""
    import yaml

    dumped = yaml.safe_dump(text, width=10**6).strip()
    return dumped[:-3].strip() if dumped.endswith("...") else dumped
