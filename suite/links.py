"""Links between testcases: dependencies and set-ups made into edges of
the one DAG, with unknown names and cycles reported as the spec errors of
the testcases concerned."""

from __future__ import annotations

from collections.abc import Callable

from run_testsuite import spec as specs
from run_testsuite.dag import Graph, cycle_path, find_cycles
from run_testsuite.plan import SETUP_PREFIX, Planned
from run_testsuite.results import Reason, Status


def _unknown(planned: Planned, key: str, names: list[str], hint: str) -> str:
    at = ["setup", planned.name[len(SETUP_PREFIX) :], key] if planned.kind == "setup" else [key]
    return unknown_names(
        planned.spec_file, at, names, hint, list(planned.depends if key == "depends" else planned.needs)
    )


def unknown_names(spec_file: str, at: list, names: list[str], hint: str, listed: list | None = None) -> str:
    """``FILE:LINE:COL: needs unknown set-up 'x' (suite.yaml declares: a, b)``,
    located at key path ``at`` (ending in 'depends' or 'needs'), or, when
    one name of the ``listed`` ones is unknown, at its own entry."""
    entry = [listed.index(names[0])] if listed and len(names) == 1 and names[0] in listed else []
    line, col = specs.key_position(spec_file, at + entry)
    if at[-1] == "depends" and any(".." in name.split("/") for name in names):
        hint += " (names are the testcases' paths from the suite's root, without '..')"
    shown = ", ".join(repr(n) for n in names)
    what = "depends on unknown testcase" if at[-1] == "depends" else "needs unknown set-up"
    return f"{spec_file}:{line}:{col}: {what} {shown}{hint}"


def declared(setups) -> str:
    return f" (suite.yaml declares: {', '.join(sorted(setups)) or 'none'})"


def link(
    testcases: list[Planned],
    fragment_count: int,
    setups: dict[str, dict],
    index: dict[str, int],
    resolve: Callable[[str, Planned], list[int]],
) -> tuple[Graph, list[list[int]]]:
    """The DAG of ``fragment_count`` fragments, with the edges of steps and
    dependencies, and each testcase's dependents. A testcase with an
    unknown dependency or set-up, or on a cycle, gets its ERROR here."""
    dependents: list[list[int]] = [[] for _ in testcases]
    graph = Graph(fragment_count)
    for planned in testcases:
        for position, waits in enumerate(planned.inner):
            for before in waits:
                graph.add_edge(planned.fragments[before], planned.fragments[position])
    deps_of: list[list[int]] = [[] for _ in testcases]
    for number, planned in enumerate(testcases):
        if planned.result is not None:
            continue
        resolved = {d: resolve(d, planned) for d in planned.depends}
        unknown = [d for d, found in resolved.items() if not found]
        missing = [n for n in planned.needs if n not in setups]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(_unknown(planned, "depends", unknown, ""))
            if missing:
                problems.append(_unknown(planned, "needs", missing, declared(setups)))
            planned.result = planned.verdict(Status.ERROR, Reason.SPEC, "\n".join(problems))
            continue
        deps_of[number] = [i for d in planned.depends for i in resolved[d]] + [
            index[SETUP_PREFIX + n] for n in planned.needs
        ]
    for cycle in find_cycles(deps_of):
        path = cycle_path(deps_of, cycle)
        loop = " -> ".join(testcases[n].name for n in [*path, path[0]])
        for number in cycle:
            member = testcases[number]
            line, col = specs.key_position(member.spec_file, ["depends"])
            member.result = member.verdict(
                Status.ERROR,
                Reason.SPEC,
                f"{member.spec_file}:{line}:{col}: dependency cycle: {loop}",
            )
    for number, deps in enumerate(deps_of):
        for dep in deps:
            dependents[dep].append(number)
            upstream, downstream = testcases[dep], testcases[number]
            if upstream.fragments and downstream.fragments and upstream.result is None:
                # Every last fragment of the one before every first of the other.
                for last in upstream.ends():
                    for first in downstream.starts():
                        graph.add_edge(last, first)
    return graph, dependents
