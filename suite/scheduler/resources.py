"""Resource pools: scarce things (boards, licences) handed to testcases.

A testcase takes its resources with its first fragment and keeps them
until it is decided: its steps all see the same board. A fragment whose
resources are not all free waits aside, and goes back to the ready queue
when a testcase gives some back.
"""

from __future__ import annotations

import re
from dataclasses import replace

from run_testsuite.fragment import Fragment
from run_testsuite.suite_config import SuiteConfig


class ResourcePools:
    def __init__(self, suite: SuiteConfig):
        # The members free right now, per pool.
        self.free = {pool: suite.pool(pool) for pool in suite.resources}
        # testcase -> (members taken per pool, the environment naming them)
        self.held: dict[int, tuple[dict[str, list[str]], dict[str, str]]] = {}
        self.blocked: list[int] = []  # ready fragments waiting for resources

    def acquire(self, number: int, fragment: Fragment) -> Fragment | None:
        """``fragment`` of testcase ``number`` as it is to be sent, with its
        resources taken and named in its environment; None when they are
        not all free now."""
        if not fragment.resources:
            return fragment
        if number in self.held:
            return replace(fragment, env=self.held[number][1])
        free = self.free
        if any(len(free[pool]) < count for pool, count in fragment.resources.items()):
            return None
        taken = {pool: [free[pool].pop(0) for _ in range(count)] for pool, count in fragment.resources.items()}
        env = dict(fragment.env)
        for pool, members in taken.items():
            env["RESOURCE_" + re.sub(r"[^A-Za-z0-9]", "_", pool).upper()] = ",".join(members)
        self.held[number] = (taken, env)
        return replace(fragment, env=env)

    def wait(self, fragment: int) -> None:
        """Keep a fragment aside until resources are given back."""
        self.blocked.append(fragment)

    def release(self, number: int) -> list[int]:
        """A decided testcase gives its resources back; returns the
        fragments that waited for some, to be ready again."""
        held = self.held.pop(number, None)
        if not held:
            return []
        for pool, members in held[0].items():
            self.free[pool].extend(members)
        waiting, self.blocked = self.blocked, []
        return waiting
