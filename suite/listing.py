"""``--list`` and ``--list-json``: the selection, planned but not run."""

from __future__ import annotations

import json
import sys

from run_testsuite.plan import Plan, Planned


def print_list(plan: Plan) -> None:
    """One line per testcase: name, driver, dependencies, set-ups, resources,
    sandbox, expected failure, early verdict."""
    for planned in plan.testcases:
        extra = f"  [{planned.driver}]" if planned.driver else ""
        if planned.depends:
            extra += f"  depends: {', '.join(planned.depends)}"
        if planned.needs:
            extra += f"  needs: {', '.join(planned.needs)}"
        held = resources_of(plan, planned)
        if held:
            extra += "  resources: " + ", ".join(f"{pool}={count}" for pool, count in held.items())
        sandbox = sandbox_of(plan, planned)
        if sandbox:
            extra += f"  {sandbox}"
        if planned.xfail:
            extra += f"  xfail: {planned.xfail}"
        if planned.result is not None:
            extra += f"  ({planned.result.status.value}: {planned.result.message.splitlines()[0]})"
        print(f"{planned.name}{extra}")


def resources_of(plan: Plan, planned: Planned) -> dict[str, int]:
    """What the testcase holds from the pools, at most, while it runs."""
    held: dict[str, int] = {}
    for number in planned.fragments:
        for pool, count in plan.fragments[number].resources.items():
            held[pool] = max(held.get(pool, 0), count)
    return held


def sandbox_of(plan: Plan, planned: Planned) -> str | None:
    """'sandbox', 'sandbox, no network', or None."""
    sandboxes = [plan.fragments[n].sandbox for n in planned.fragments]
    if not any(sandboxes):
        return None
    return "sandbox" if all(s is not None and s.network for s in sandboxes) else "sandbox, no network"


def _sandbox_data(plan: Plan, planned: Planned) -> dict | None:
    """--list-json: null, or {"network": bool}."""
    shown = sandbox_of(plan, planned)
    return None if shown is None else {"network": shown == "sandbox"}


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
            "resources": resources_of(plan, p),
            "sandbox": _sandbox_data(plan, p),
            "xfail": p.xfail or None,
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
