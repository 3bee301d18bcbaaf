"""suite.yaml: the suite's defaults, drivers, set-ups, resource pools and
parameters, read (or taken from the spec cache) and validated once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from run_testsuite.discovery import SUITE_FILE
from run_testsuite.spec import load_and_validate
from run_testsuite.spec_cache import SpecCache, stamp


@dataclass
class SuiteConfig:
    """What suite.yaml says, with defaults filled in."""

    root: str
    name: str
    defaults: dict
    drivers: dict
    path: str | None = None
    setup: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    cpus_per_slot: int | None = None
    params: dict = field(default_factory=dict)
    max_variants: int = 10_000
    key_ignore: list = field(default_factory=list)  # globs of shared files in no key
    # name -> why: testcases whose failures do not fail the run (suite.yaml `quarantine`)
    quarantine: dict = field(default_factory=dict)
    cluster: dict = field(default_factory=dict)  # the batch jobs of --dask slurm:N, pbs:N

    def pool(self, name: str) -> list[str]:
        """The members of a resource pool: its names, or numbered ones."""
        members = self.resources[name]
        if isinstance(members, int):
            return [f"{name}-{number}" for number in range(1, members + 1)]
        return list(members)


def load_suite_config(root: str, cache: SpecCache | None = None) -> SuiteConfig:
    path = os.path.join(root, SUITE_FILE)
    name = os.path.basename(os.path.abspath(root))
    if not os.path.isfile(path):
        return SuiteConfig(root, name, {}, {})
    data = cache.get(path) if cache is not None else None
    if data is None:
        file_stamp = stamp(path)
        data = load_and_validate(path, "suite")
        if cache is not None:
            cache.put(path, file_stamp, data)
    return SuiteConfig(
        root,
        data.get("name", name),
        data.get("defaults", {}),
        data.get("drivers", {}),
        path,
        setup=data.get("setup", {}),
        params=data.get("params", {}),
        resources=data.get("resources", {}),
        cpus_per_slot=data.get("cpus_per_slot"),
        max_variants=data.get("max_variants", 10_000),
        key_ignore=data.get("key_ignore", []),
        quarantine=_quarantine(data.get("quarantine", {})),
        cluster=data.get("cluster", {}),
    )


def _quarantine(value: list | dict) -> dict[str, str]:
    """suite.yaml's ``quarantine``, a list of names or names with reasons."""
    if isinstance(value, list):
        return {name: "in suite.yaml's quarantine" for name in value}
    return {name: reason or "in suite.yaml's quarantine" for name, reason in value.items()}
