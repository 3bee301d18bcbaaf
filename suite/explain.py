"""--explain: for each testcase, whether it runs and what in its key changed.

Compared with the parts of the key it had when it last passed, as history
recorded them: its spec, a file of its own directory, a shared file of
the suite, a declared input, an executable, an outer variable, or the key
of something upstream.
"""

from __future__ import annotations

import json
import os

from run_testsuite.history import HISTORY_FILE, History
from run_testsuite.keys import KeyParts
from run_testsuite.plan import Plan, Planned
from run_testsuite.results import Reason

# Changed files named per part before "and N more".
SHOWN = 3


class Explainer:
    def __init__(self, plan: Plan, incremental: bool):
        self.plan = plan
        self.incremental = incremental
        self.passed: dict[str, tuple[int, str, str, str]] = {}
        self.manifests: dict[str, dict[str, str] | None] = {}
        self.history: History | None = None
        path = os.path.join(plan.output_dir, HISTORY_FILE)
        if os.path.exists(path):
            try:
                self.history = History(path)
                self.passed = self.history.passed_parts()
            except Exception:  # an unreadable history is set aside by the run itself
                self.history = None

    def close(self) -> None:
        if self.history is not None:
            self.history.close()

    def lines(self) -> list[str]:
        return [f"{planned.name}: {self.explain(planned)}" for planned in self.plan.testcases]

    def explain(self, planned: Planned) -> str:
        result = planned.result
        if result is not None and result.reason is Reason.CACHED:
            return f"cached: {result.message.split(';')[0]}"
        if result is not None:
            return f"not run: {result.status.value} ({result.message.splitlines()[0] if result.message else ''})"
        verb = "runs" if self.incremental else "runs (no --incremental)"
        if planned.kind == "setup":
            return f"{verb}: a testcase that runs needs it (set-ups are never taken from the cache)"
        parts = self.plan.keys.parts_of(planned) if self.plan.keys is not None else None
        if parts is None:
            return f"{verb}: it has no key (a dependency cycle, or a spec that did not load)"
        known = self.passed.get(planned.name)
        if known is None:
            return f"{verb}: it never passed in this output directory"
        run, key, parts_json, shared = known
        if key == planned.key:
            return f"{verb}: same key as when it passed in run {run}, but it did not pass since"
        before = KeyParts.from_json(parts_json)
        if before is None:
            return f"{verb}: its key changed since it passed in run {run}"
        now = KeyParts.from_json(parts)
        if now is None:  # never: the plan wrote it
            return f"{verb}: its key changed since it passed in run {run}"
        changes = self.changes(before, now, shared)
        return f"{verb}: since it passed in run {run}, " + "; ".join(changes or ["its key changed"])

    def changes(self, before: KeyParts, now: KeyParts, shared_before: str) -> list[str]:
        said = []
        if before.spec != now.spec:
            said.append("its spec changed")
        said += _files("file", "in its directory", before.files, now.files)
        if before.shared != now.shared:
            old = self._manifest(shared_before)
            current = self.plan.keys.shared_manifest() if self.plan.keys else {}
            named = _files("shared file", "", old, current) if old is not None else []
            said += named or ["the suite's shared files changed"]
        said += _files("input", "", before.inputs, now.inputs)
        said += _files("executable", "", before.executables, now.executables, describe=_executable)
        said += _files("outer variable", "(key_env)", before.environment, now.environment)
        said += _files("upstream key of", "", before.upstream, now.upstream)
        return said

    def _manifest(self, digest: str) -> dict[str, str] | None:
        if digest not in self.manifests:
            text = self.history.manifest(digest) if self.history else None
            self.manifests[digest] = json.loads(text) if text else None
        return self.manifests[digest]


def _executable(name: str, value: str) -> str:
    return f"{name} ({value.rsplit(' ', 1)[0]})" if " " in value else name


def _files(what: str, where: str, before: dict[str, str], now: dict[str, str], describe=None) -> list[str]:
    """'file x changed', 'file y is new', 'file z is gone', at most SHOWN of them."""
    said = []
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name), now.get(name)
        if old == new:
            continue
        shown = describe(name, new or old) if describe else name
        change = "is new" if old is None else "is gone" if new is None else "changed"
        said.append(f"{what} {shown}{' ' + where if where else ''} {change}")
    if len(said) > SHOWN:
        said = [*said[:SHOWN], f"and {len(said) - SHOWN} more"]
    return said
