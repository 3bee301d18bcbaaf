"""Durations that travel: each fragment's expected duration, from history,
as a small JSON file to commit or cache between CI pipelines.

CI machines start fresh, so the history that orders a run by its critical
path is lost each time. ``run-testsuite report OUTPUT --export-durations
FILE`` writes what history knows; ``run-testsuite ... --durations FILE``
reads it where local history knows nothing of a fragment (local history,
when it has the fragment, is newer and wins).

    {"format": 1, "suite": "calc-example", "exported": 1796000000.0,
     "durations": {"arith/basic": {"run": 0.012}, "lab/flash-1": {"flash": 0.4, "verify": 0.1}}}
"""

from __future__ import annotations

import json
import math
import time

FORMAT = 1


class DurationsError(Exception):
    """A durations file that cannot be used: the message names it, and the
    line and column of a JSON error."""


def export(history_path: str, path: str, suite: str) -> int:
    """Write the fragments' durations history knows to ``path``
    (atomically); return how many fragments."""
    from run_testsuite.history import read_only
    from run_testsuite.jsonio import write_atomic

    with read_only(history_path) as db:
        rows = db.execute("SELECT testcase, fragment, duration FROM fragment_durations ORDER BY testcase").fetchall()
    durations: dict[str, dict[str, float]] = {}
    for testcase, fragment, seconds in rows:
        durations.setdefault(testcase, {})[fragment] = round(seconds, 4)
    write_atomic(path, {"format": FORMAT, "suite": suite, "exported": round(time.time(), 3), "durations": durations})
    return len(rows)


MAX_SIZE = 128 * 2**20


def load(path: str) -> dict[tuple[str, str], float]:
    """(testcase, fragment) -> seconds, from a file ``export`` wrote."""
    try:
        with open(path, encoding="utf-8") as handle:
            # Bounded: /dev/zero, or a file that is no such thing, must not
            # take all memory (a million testcases' durations are ~60 MB).
            text = handle.read(MAX_SIZE + 1)
    except OSError as exc:
        raise DurationsError(f"--durations {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DurationsError(f"{path}: not a durations file (not UTF-8 text: byte {exc.start})") from None
    if len(text) > MAX_SIZE:
        raise DurationsError(f"{path}: not a durations file (over {MAX_SIZE // 2**20} MiB)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        where = f":{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DurationsError(f"{path}{where}: not a durations file ({exc.args[0].split(':')[0]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("durations"), dict):
        raise DurationsError(
            f'{path}: not a durations file (expected {{"format": {FORMAT}, "durations": {{...}}}}, '
            "as 'run-testsuite report --export-durations' writes)"
        )
    found: dict[tuple[str, str], float] = {}
    for testcase, fragments in data["durations"].items():
        if not isinstance(fragments, dict):
            raise DurationsError(f"{path}: durations of '{testcase}' are not a mapping of fragment to seconds")
        for fragment, seconds in fragments.items():
            if (
                not isinstance(seconds, (int, float))
                or isinstance(seconds, bool)
                or not math.isfinite(seconds)
                or seconds < 0
            ):
                raise DurationsError(
                    f"{path}: '{testcase}' fragment '{fragment}': {seconds!r} is not a duration in seconds"
                )
            found[(testcase, fragment)] = float(seconds)
    return found


def merged(local: dict[tuple[str, str], float], travelled: dict[tuple[str, str], float]) -> dict:
    """Local history's durations, with the file's for what it lacks."""
    return {**travelled, **local}
