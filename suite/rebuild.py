"""Rebuild ``_index.json`` from the result files of a run that died.

The run writes each result file the moment its testcase is decided, but
rewrites the index at most once a second: a run killed with SIGKILL (or
by the OOM killer, or a CI timeout) leaves an index that misses the last
results, says ``complete: false``, or is not there at all. Every result
file that parses is still a verdict, so the index can be rebuilt from them.

A rebuilt index says ``complete: false`` (the run did not finish: some
testcases have no result) and ``rebuilt: true`` (it was not written by the
run itself).
"""

from __future__ import annotations

import os

from run_testsuite.index import FORMAT_VERSION, index_entry
from run_testsuite.jsonio import INDEX_FILE, read_json, write_atomic
from run_testsuite.results import Result, Status

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.jsonio import Index


def rebuild_index(new_dir: str, *, problems: list[str] | None = None, write: bool = True) -> Index:
    """Rebuild, write (atomically, unless ``write`` is false) and return the
    index of the run in ``new_dir`` from its ``results/*.json``.

    Files that cannot be read as a result (a ``*.tmp`` left half-written by
    the kill, a truncated file) are left out and described in ``problems``.
    """
    problems = [] if problems is None else problems
    results = _read_results(os.path.join(new_dir, "results"), problems)
    stale = _read_stale_index(new_dir, problems)
    # What only the run knew (command line, host) comes from its stale
    # index; what the results tell fills in for a lost or damaged one.
    meta = {**_synthesise(new_dir, [r for r, _, _ in results]), **(stale or {})}
    meta = {key: value for key, value in meta.items() if key not in ("counts", "results")}
    entries = [index_entry(result, rel) for result, rel, _ in results]
    counts = {status.value: 0 for status in Status}
    for entry in entries:
        counts[entry["status"]] += 1
    start = float(meta.get("start", 0.0))
    last_written = max((mtime for _, _, mtime in results), default=0) / 1e9
    index: Index = {
        **meta,
        "format": FORMAT_VERSION,
        "start": start,
        "duration": round(max(float(meta.get("duration", 0.0)), last_written - start, 0.0), 6),
        "complete": False,
        "interrupted": bool(meta.get("interrupted", False)),
        "rebuilt": True,
        "counts": counts,
        "results": entries,
    }
    if write:
        write_atomic(os.path.join(new_dir, INDEX_FILE), index)
    return index


def _read_results(results_dir: str, problems: list[str]) -> list[tuple[Result, str, int]]:
    """(result, path relative to the index, mtime in ns) per readable file,
    in the order the run wrote them, which is the order the index has."""
    found: dict[str, tuple[Result, str, int]] = {}
    try:
        names = sorted(os.listdir(results_dir))
    except OSError as exc:
        problems.append(f"cannot list {results_dir}: {exc.strerror}")
        return []
    for file_name in names:
        rel = f"results/{file_name}"
        if not file_name.endswith(".json"):
            problems.append(f"{rel}: not a result file (left half-written?)")
            continue
        path = os.path.join(results_dir, file_name)
        try:
            result = Result.from_json(read_json(path))
            problem = _ill_typed(result)
            if problem:
                raise ValueError(problem)
            mtime = os.stat(path).st_mtime_ns
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            problems.append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
            continue
        previous = found.get(result.name)
        if previous is not None:
            problems.append(f"{rel}: a second result for {result.name!r} (the newer one is kept)")
            if previous[2] > mtime:
                continue
        found[result.name] = (result, rel, mtime)
    return sorted(found.values(), key=lambda item: (item[2], item[0].name))


# What the index and reports read of a result, and the types they need.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "message": str,
    "duration": (int, float),
    "start": (int, float),
    "slot": (int, type(None)),
    "tags": list,
    "attempts": int,
    "kind": str,
    "spec_file": (str, type(None)),
}


def _ill_typed(result: Result) -> str | None:
    """What is wrong with a result file's fields, if anything: a file that
    was not written by a run (edited, or left by a test) must be skipped,
    never crash the report."""
    if not isinstance(result.name, str) or not result.name:
        return "no testcase name"
    for name, kind in _FIELDS.items():
        value = getattr(result, name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in ((int, float), int)):
            return f"field {name!r} holds {type(value).__name__} {str(value)[:40]!r}"
    if not all(isinstance(tag, str) for tag in result.tags):
        return "field 'tags' holds something other than strings"
    return None


def _read_stale_index(new_dir: str, problems: list[str]) -> dict | None:
    path = os.path.join(new_dir, INDEX_FILE)
    if not os.path.exists(path):
        return None
    try:
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as exc:
        problems.append(f"{INDEX_FILE}: unreadable ({exc}); run metadata synthesised")
        return None


def _synthesise(new_dir: str, results: list[Result]) -> dict:
    """Minimal metadata when the index is lost: what the results tell."""
    root = _root_from(results)
    starts = [r.start for r in results if r.start > 0]
    slots = [r.slot for r in results if r.slot]
    return {
        "suite": _suite_name(root) if root else os.path.basename(os.path.dirname(os.path.abspath(new_dir))),
        "root": root or "",
        "command_line": [],
        "jobs": max(slots, default=1),
        "start": min(starts) if starts else os.stat(new_dir).st_mtime,
        "duration": 0.0,
    }


def _root_from(results: list[Result]) -> str | None:
    """The suite root: a spec file is ROOT/NAME/test.yaml."""
    for result in results:
        spec, suffix = result.spec_file, f"/{result.name}/test.yaml"
        if spec and spec.endswith(suffix):
            return spec[: -len(suffix)] or "/"
    return None


def _suite_name(root: str) -> str:
    import yaml

    try:
        with open(os.path.join(root, "suite.yaml"), encoding="utf-8") as handle:
            name = (yaml.safe_load(handle) or {}).get("name")
        if isinstance(name, str) and name:
            return name
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return os.path.basename(root.rstrip("/")) or root
