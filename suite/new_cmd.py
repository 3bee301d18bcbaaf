"""run-testsuite new PATH: scaffold a testcase directory."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from run_testsuite.discovery import SUITE_FILE
from run_testsuite.schema_cmd import SCHEMA_DIR, suite_root_of, write_schemas

DEFAULT_CMD = "echo hello"
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
        prog="run-testsuite new",
        description="Create a testcase directory with a test.yaml (and, with --driver diff, a test.out: the default command's output, or empty for --rewrite to fill)."
        " The test.yaml references the suite's copy of the schema (ROOT/.schemas/, written by"
        " `run-testsuite schema` or here when missing), so an editor completes its keys in any checkout.",
    )
    parser.add_argument("path", help="the testcase directory to create")
    parser.add_argument(
        "--driver", default="shell", help="shell (default), diff, or a driver of the suite's suite.yaml or installed"
    )
    parser.add_argument("--cmd", default=DEFAULT_CMD, help=f"the command (default: {DEFAULT_CMD})")
    parser.add_argument(
        "--description",
        default="TODO: what this testcase checks",
        help="what the testcase checks, shown in reports (default: a TODO)",
    )
    args = parser.parse_args(argv)
    spec_path = os.path.join(args.path, "test.yaml")
    if os.path.exists(spec_path):
        print(f"run-testsuite: error: {spec_path} already exists", file=sys.stderr)
        return 2
    if os.path.isfile(os.path.join(args.path, SUITE_FILE)):
        print(
            f"run-testsuite new: error: {args.path} is a suite's root (it holds {SUITE_FILE}):"
            " a testcase is a directory below it",
            file=sys.stderr,
        )
        return 2
    if not args.cmd.strip():
        print("run-testsuite new: error: --cmd is empty: give the command the testcase runs", file=sys.stderr)
        return 2
    root = suite_root_of(args.path)
    problem, driver_class = _unknown_driver(args.driver, root)
    if problem:
        print(f"run-testsuite new: error: {problem}", file=sys.stderr)
        return 2
    created = []
    schema = os.path.join(root, SCHEMA_DIR, "testcase.schema.json")
    if not os.path.exists(schema):
        created += write_schemas(root)
    os.makedirs(args.path, exist_ok=True)
    template = TEMPLATES.get(args.driver, "description: {description}\ndriver: {driver}\ncmd: {cmd}\n")
    if not getattr(driver_class, "runs_cmd", True):  # the driver makes its own commands (gtest)
        template = template.replace("cmd: {cmd}\n", "")
    reference = os.path.relpath(schema, os.path.abspath(args.path))
    body = template.format(description=_quote(args.description), cmd=_quote(args.cmd), driver=args.driver)
    body += _options_stub(getattr(driver_class, "options_schema", None))
    with open(spec_path, "w", encoding="utf-8") as handle:
        # The comment lets an editor with the YAML language server complete
        # and document every key.
        handle.write(f"# yaml-language-server: $schema={reference}\n{body}")
    created.append(spec_path)
    record = None
    if args.driver == "diff":
        baseline = os.path.join(args.path, "test.out")
        with open(baseline, "w", encoding="utf-8") as handle:
            # The default command's output is known; any other is recorded
            # by a run (an empty baseline would fail the first run).
            handle.write("hello\n" if args.cmd == DEFAULT_CMD else "")
        created.append(baseline)
        if args.cmd != DEFAULT_CMD:
            name = os.path.relpath(os.path.abspath(args.path), os.path.abspath(root))
            record = shlex.join(["run-testsuite", root, name, "--rewrite"])
    for path in created:
        print(f"created {path}")
    if record:
        print(f"test.out is empty: `{record}` records the command's output in it (review it before committing)")
    return 0


def _unknown_driver(name: str, root: str) -> tuple[str | None, type | None]:
    """Why ``name`` names no driver the suite at ``root`` can use (or
    None), and the driver's class."""
    from run_testsuite.drivers.registry import DriverLoadError, DriverNotFound, resolve
    from run_testsuite.spec import SpecError
    from run_testsuite.suite_config import load_suite_config

    try:
        suite = load_suite_config(root)
    except SpecError as exc:
        return f"cannot read the suite's configuration:\n{exc.render()}", None
    try:
        return None, resolve(name, suite.drivers, suite.root)[0]
    except (DriverNotFound, DriverLoadError) as exc:
        return str(exc), None


def _options_stub(schema: dict | None) -> str:
    """``options:`` with what the driver requires, to fill in: a string is
    TODO, a list or mapping empty."""
    from run_testsuite.spec_checks import required_options

    if not schema:
        return ""
    wanted = required_options(schema)
    if not wanted:
        return ""
    properties = schema.get("properties", {})
    empty = {"array": "[]", "object": "{}", "string": "TODO", "integer": "0", "number": "0", "boolean": "false"}
    lines = ["options:  # the driver needs " + " or ".join(", ".join(keys) for keys in wanted)]
    for key in wanted[0]:
        kind = properties.get(key, {}).get("type", "string")
        lines.append(f"  {key}: {empty.get(kind if isinstance(kind, str) else kind[0], 'TODO')}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """``text`` as a YAML scalar: plain when that is safe, quoted if not."""
    import yaml

    dumped = yaml.safe_dump(text, width=10**6).strip()
    return dumped[:-3].strip() if dumped.endswith("...") else dumped
