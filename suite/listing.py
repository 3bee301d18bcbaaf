"""``--list`` and ``--list-json``: the selection, planned but not run."""

from __future__ import annotations

import json
import sys

from run_testsuite.plan import Plan


def print_list(plan: Plan) -> None:
    """One line per testcase: name, driver, dependencies, early verdict."""
    for planned in plan.testcases:
        extra = f"  [{planned.driver}]" if planned.driver else ""
        if planned.depends:
            extra += f"  depends: {', '.join(planned.depends)}"
        if planned.result is not None:
            extra += f"  ({planned.result.status.value}: {planned.result.message.splitlines()[0]})"
        print(f"{planned.name}{extra}")


def write_list_json(plan: Plan, path: str) -> None:
    """The selection as JSON, to ``path`` ('-': stdout)."""
    entries = [
        {
            "name": p.name,
            "kind": p.kind,
            "driver": p.driver,
            "description": p.description,
            "tags": p.tags,
            "depends": p.depends,
            "needs": p.needs,
            "spec_file": p.spec_file,
            "fragments": [plan.fragments[f].name for f in p.fragments],
            "status": p.result.status.value if p.result else None,
            "message": p.result.message if p.result else None,
        }
        for p in plan.testcases
    ]
    text = json.dumps({"suite": plan.suite.name, "testcases": entries}, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
