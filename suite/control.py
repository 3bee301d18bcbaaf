"""The ``control`` entries of a testcase: skip, or expect a failure, under
conditions (compiled by ``conditions``) over the names below.

Names (what ``condition_names`` provides):

| name | value |
| --- | --- |
| `os` | the host's operating system, as e3 names it: `'linux'`, `'windows'`, `'darwin'`, ... |
| `arch` | the host's CPU, as e3 names it: `'x86_64'`, `'aarch64'`, ... |
| `platform` | e3's platform string: `'x86_64-linux'`, `'aarch64-darwin'`, ... |
| `cpus` | the number of CPU cores (an int) |
| `python` | the Python version running the suite, a tuple: `python >= (3, 12)` |
| `hostname` | the host's name, without its domain |
| `env` | the environment: `env.CI`, `env['CI']` (a string, or `None` when unset), `'CI' in env` |
| `params` | the suite parameters (`params` in suite.yaml, `-D name=value`): `params.opt`, `'opt' in params`; an unknown one is an error |
| `tags` | the testcase's tags, a tuple: `'slow' in tags` |
| `which` | programs on PATH: `which.bwrap`, `which['g++']` (its path, or `None` when it is not found), `'gcc' in which` |
| `exists` | files and directories, by absolute path: `exists['/usr/include/gtest/gtest.h']` (the path, or `None`), `'/dev/kvm' in exists` |
| *parameter* | each suite parameter by its bare name: `opt == 'O2'` |
| *matrix key* | each matrix value of this variant by its key: `compiler == 'clang'` |

Host facts come from e3-core: ``os``, ``arch``, ``cpus`` and ``hostname``
describe ``Env().build`` (the machine running the suite), ``platform`` is
``Env().platform`` (the same unless e3 was set up for a cross target);
``python`` is ``sys.version_info[:3]``. They are computed once per process.

When names collide the more specific wins: a matrix value over a suite
parameter over a host fact; ``env``, ``params``, ``which``, ``exists`` and ``tags`` always mean the
namespaces. Environment values are strings: compare ``env.JOBS == '4'``, not
``env.JOBS == 4``.
"""

from __future__ import annotations

import difflib
import functools
import os
import platform as _platform
import shutil
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from run_testsuite.conditions import ExpressionError, Namespace, compared_values, compile_condition

HOST_FACTS = ("os", "arch", "platform", "cpus", "python", "hostname")


@functools.cache
def _host_facts() -> tuple[tuple[str, Any], ...]:
    facts: dict[str, Any] = {}
    try:
        from e3.env import Env  # costs ~100 ms: only when conditions are used

        env = Env()
        build = env.build  # the machine running the suite
        facts = {
            "os": build.os.name,
            "arch": build.cpu.name,
            "platform": env.platform,
            "cpus": build.cpu.cores,
            "hostname": build.machine,
        }
    except Exception:  # pragma: no cover - e3 is a dependency; be robust anyway
        pass
    if not facts.get("os"):
        facts["os"] = _platform.system().lower() or sys.platform
    if not facts.get("arch"):
        facts["arch"] = _platform.machine().lower() or "unknown"
    if not facts.get("platform"):
        facts["platform"] = f"{facts['arch']}-{facts['os']}"
    if not isinstance(facts.get("cpus"), int) or facts["cpus"] < 1:
        facts["cpus"] = os.cpu_count() or 1
    if not facts.get("hostname"):
        facts["hostname"] = socket.gethostname().split(".")[0]
    facts["python"] = tuple(sys.version_info[:3])
    return tuple((name, facts[name]) for name in HOST_FACTS)


def host_facts() -> dict[str, Any]:
    """The host's facts (see the table above), computed once per process."""
    return dict(_host_facts())


def condition_names(
    tags: Sequence[str] = (),
    env: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    matrix: Mapping[str, Any] | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """Every name a testcase's conditions may use (the table above).

    ``env`` defaults to ``os.environ``; ``matrix`` holds this variant's
    values, key -> value; ``path`` is where ``which`` looks (the testcase's
    own PATH, when it sets one; else ``env``'s).
    """
    env = os.environ if env is None else env
    params = params or {}
    names = host_facts()
    names.update(params)
    names.update(matrix or {})
    names["env"] = Namespace("env", env, missing_ok=True)
    names["params"] = Namespace("params", params, missing_ok=False)
    names["tags"] = tuple(tags)
    names["which"] = Programs(path or env.get("PATH", os.defpath))
    names["exists"] = Files()
    return names


class Files(Mapping):
    """``exists``: an absolute path that exists (its own value), or missing
    (``None`` in a condition). A relative path is never found: relative to
    what would differ between the places a suite runs from."""

    missing_ok = True

    def __getitem__(self, path: str) -> str:
        if not (isinstance(path, str) and os.path.isabs(path) and os.path.exists(path)):
            raise KeyError(path)
        return path

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and os.path.isabs(path) and os.path.exists(path)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


class Programs(Mapping):
    """``which``: a program's path on PATH, looked up when a condition asks
    (once per process and PATH), or missing (``None`` in a condition)."""

    missing_ok = True

    def __init__(self, path: str):
        self.path = path

    def __getitem__(self, name: str) -> str:
        found = _which(name, self.path)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _which(name, self.path) is not None

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


@functools.lru_cache(maxsize=256)
def _which(name: str, path: str) -> str | None:
    return shutil.which(name, path=path) if os.sep not in name else None


# -- values a name never takes ---------------------------------------------------
def never_true(text: str, shadowed: Iterable[str] = ()) -> list[str]:
    """Why comparisons in ``text`` can never hold: ``os == 'Linux'`` (e3's
    names are lower case), ``arch == 'amd64'``. One message each; empty when
    all is well. Names in ``shadowed`` (a parameter or matrix key called
    ``os``) are not the host's, and are not checked."""
    known = _known_values()
    problems = []
    for name, value in compared_values(text, set(known) - set(shadowed)):
        values = known[name]
        if value in values:
            continue
        if value.lower() in values:
            hint = f"; did you mean '{value.lower()}'? (e3's names are lower case)"
        elif ALIASES.get(value.lower()) in values:
            hint = f"; did you mean '{ALIASES[value.lower()]}'? (e3's name for it)"
        else:
            close = difflib.get_close_matches(value, sorted(values), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"{name} is never '{value}' (it is one of {', '.join(sorted(values))}){hint}")
    return problems


# What other tools call systems and CPUs that e3 names otherwise.
ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "aarch64",
    "i386": "x86",
    "i686": "x86",
    "win32": "windows",
    "win": "windows",
    "macos": "darwin",
    "osx": "darwin",
}


@functools.cache
def _known_values() -> dict[str, frozenset[str]]:
    """The values ``os`` and ``arch`` can take: e3's knowledge base, and
    this host's own in case e3 does not list it."""
    from e3.platform_db import get_knowledge_base

    base = get_knowledge_base()
    facts = host_facts()
    return {
        "os": frozenset(base.os_info) | {facts["os"]},
        "arch": frozenset(base.cpu_info) | {facts["arch"]},
    }


# -- decisions -------------------------------------------------------------------
@dataclass
class Decision:
    """What the control entries say: ``action`` is 'skip', 'xfail' or None.

    ``reason`` is the entry's reason, or its expression when it gives none,
    so a result always says why; ``expression`` is the condition that held.
    """

    action: str | None
    reason: str
    expression: str


def decide(control: Sequence[Mapping[str, Any]], names: Mapping[str, Any]) -> Decision:
    """The first entry whose condition holds decides; none: Decision(None, '', '')."""
    for entry in control or ():
        actions = [action for action in ("skip", "xfail") if action in entry]
        if len(actions) != 1:
            raise ExpressionError(f"a control entry needs exactly one of 'skip' or 'xfail', got {dict(entry)!r}")
        action = actions[0]
        condition = compile_condition(entry[action])
        if condition.evaluate(names):
            return Decision(action, entry.get("reason") or condition.text, condition.text)
    return Decision(None, "", "")
