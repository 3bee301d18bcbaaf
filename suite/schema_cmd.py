"""run-testsuite schema [ROOT]: write the JSON Schemas of test.yaml and
suite.yaml into a suite, for editors.

A `$schema` reference into the installed package names a path on one
machine (a virtual environment's site-packages); the copies in
ROOT/.schemas/ travel with the suite, so a relative reference to them works
in every checkout. Discovery and incremental keys skip hidden directories,
so the copies are neither testcases nor part of any key.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from run_testsuite import schemas
from run_testsuite.discovery import SUITE_FILE

SCHEMA_DIR = ".schemas"
WRITTEN = ("testcase", "suite")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="run-testsuite schema",
        description="Write the JSON Schemas of test.yaml and suite.yaml into ROOT/.schemas/ (again after an"
        " upgrade), so that test.yaml files can reference them relatively, in any checkout.",
    )
    parser.add_argument(
        "root",
        nargs="?",
        default=".",
        help="the suite directory (default: the current one); a directory below a suite.yaml means that suite",
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"run-testsuite schema: error: '{args.root}' is not a directory", file=sys.stderr)
        return 2
    root = _suite_above(os.path.abspath(args.root))
    if root is None:
        root = args.root
    elif os.path.abspath(args.root) != root:
        print(f"{args.root} is inside the suite at {root} (it holds {SUITE_FILE}): the schemas go there")
    try:
        written = write_schemas(root)
    except OSError as exc:
        print(f"run-testsuite schema: error: cannot write the schemas: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    reference = os.path.join("..", SCHEMA_DIR, "testcase.schema.json")
    print(f"a test.yaml one level below {root} starts with: # yaml-language-server: $schema={reference}")
    return 0


def write_schemas(root: str) -> list[str]:
    """Copy the schemas into ROOT/.schemas/; the paths written."""
    target = os.path.join(root, SCHEMA_DIR)
    os.makedirs(target, exist_ok=True)
    written = []
    for name in WRITTEN:
        destination = os.path.join(target, f"{name}.schema.json")
        shutil.copyfile(schemas.path(name), destination)
        written.append(destination)
    return written


def suite_root_of(path: str) -> str:
    """The suite a new testcase at ``path`` belongs to: the nearest directory
    above it holding a suite.yaml; else the nearest holding the schemas
    already; else the current directory, when ``path`` is below it (where
    `run-testsuite ROOT` would find it); else the directory it is made in.
    One suite, one copy of the schemas, however deep the testcases."""
    start = os.path.dirname(os.path.abspath(path))
    for marker in (SUITE_FILE, SCHEMA_DIR):
        found = _above(start, marker)
        if found is not None:
            return found
    here = os.getcwd()
    return here if start == here or start.startswith(here.rstrip(os.sep) + os.sep) else start


def _suite_above(start: str) -> str | None:
    """``start`` or the nearest directory above it holding a suite.yaml."""
    return _above(start, SUITE_FILE)


def _above(start: str, name: str) -> str | None:
    here = start
    while True:
        if os.path.exists(os.path.join(here, name)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
