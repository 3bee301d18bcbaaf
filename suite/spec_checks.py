"""Checks of a spec against what only the run knows: a driver's options
schema, the suite's resource pools, the variables its inputs name. Each
problem is a SpecError located at its key."""

from __future__ import annotations

from run_testsuite import spec as specs
from run_testsuite.drivers.base import ENV_VARIABLE, Driver, Testcase
from run_testsuite.suite_config import SuiteConfig

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.spec_cache import SpecCache


def check_options(driver: Driver, test: Testcase, cache: SpecCache | None = None) -> None:
    """A testcase's ``options`` against its driver's ``options_schema``;
    ``cache`` remembers the pairs found valid, for the next run."""
    schema = driver.options_schema
    if schema is None:
        return
    options = test.spec.get("options", {})
    digest = _options_digest(schema, options) if cache is not None else None
    if digest is not None and cache is not None and digest in cache.valid_options:
        return
    from jsonschema import Draft202012Validator

    errors = list(Draft202012Validator(schema).iter_errors(options))
    if not errors and digest is not None and cache is not None:
        cache.options_valid(digest)
    if errors:
        if "options" not in test.spec:  # no key to point at, and "{} is not valid" says little
            needed = " or ".join(", ".join(keys) for keys in required_options(schema)) or "see its options_schema"
            line, col = specs.key_position(test.spec_file, [])
            driver_name = test.spec.get("driver", "")
            raise specs.SpecError(
                test.spec_file, [(line, col, f"options: missing; driver '{driver_name}' needs {needed}")]
            )
        # Checked again under an "options" key, so each problem is located
        # and worded as the spec's own are (unknown keys with "did you mean").
        wrapped = {"type": "object", "properties": {"options": schema}}
        errors = list(Draft202012Validator(wrapped).iter_errors({"options": options}))
        raise specs.SpecError(test.spec_file, specs.locate_errors(test.spec_file, errors))


def _options_digest(schema: dict, options: object) -> str | None:
    """What identifies a check of ``options`` against ``schema``; None for
    options JSON cannot say (checked every time)."""
    import hashlib
    import json

    try:
        text = json.dumps([schema, options], sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def required_options(schema: dict) -> list[list[str]]:
    """The sets of keys an options schema requires, one of which is enough:
    its ``required``, or each ``anyOf``/``oneOf`` branch's."""
    if schema.get("required"):
        return [list(schema["required"])]
    branches = schema.get("anyOf") or schema.get("oneOf") or []
    return [list(b["required"]) for b in branches if isinstance(b, dict) and b.get("required")]


def check_resources(suite: SuiteConfig, asked: dict, spec_file: str, at: list | None = None) -> dict:
    """Resources must come from a declared pool, and fit in it."""
    for pool, count in asked.items():
        where = [*(at or []), "resources", pool]
        if pool not in suite.resources:
            known = ", ".join(sorted(suite.resources)) or "none declared in suite.yaml"
            line, col = specs.key_position(spec_file, where)
            raise specs.SpecError(spec_file, [(line, col, f"unknown resource pool '{pool}' (pools: {known})")])
        size = len(suite.pool(pool))
        if count > size:
            line, col = specs.key_position(spec_file, where)
            raise specs.SpecError(
                spec_file, [(line, col, f"asks for {count} of '{pool}' but the pool has only {size}")]
            )
    return dict(asked)


def expand_inputs(patterns: list[str], env: dict[str, str], spec_file: str, at: list) -> list[str]:
    """An ``inputs`` list with $VAR and ${VAR} taken from ``env``; a
    variable that is not set is the spec's mistake (an input that silently
    named nothing would leave the key blind to it)."""
    expanded = []
    for number, pattern in enumerate(patterns):
        missing = [
            m.group(1) or m.group(2) for m in ENV_VARIABLE.finditer(pattern) if (m.group(1) or m.group(2)) not in env
        ]
        if missing:
            line, col = specs.key_position(spec_file, [*at, number])
            raise specs.SpecError(spec_file, [(line, col, f"inputs: ${missing[0]} is not set in '{pattern}'")])
        expanded.append(ENV_VARIABLE.sub(lambda m: env[m.group(1) or m.group(2)], pattern))
    return expanded
