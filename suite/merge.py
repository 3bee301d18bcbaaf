"""``run-testsuite report --merge OUT1 OUT2 ... -o MERGED``: one run made
of the shards of a suite split between CI jobs (``--shard K/N``).

The merged run is an output directory like any other: ``MERGED/_index.json``
lists every shard's results, and each shard's result files and logs are
kept under ``MERGED/shard-K/``, so ``report``, ``--compare``, ``--html``
and ``--junit-xml`` read it as they read one run, and it can be kept as
one CI artifact. What each shard was (where from, host, start, duration,
whether it finished) is listed under ``merged``.

Nothing is hidden: the index is complete only when every shard 1..N was
given and finished; a missing shard, a shard that did not finish and a
testcase found in two shards are each listed under ``merge_problems``
(and said by the command). A set-up runs in every shard that needs it,
so it is no problem: it is listed once, with its worst result and the
shards it ran in.

The shards' histories give the merged directory a ``history.sqlite`` that
holds their fragments' latest durations, so ``report MERGED
--export-durations FILE`` writes the durations file for the next pipeline.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from run_testsuite.index import FORMAT_VERSION
from run_testsuite.jsonio import INDEX_FILE, read_json, write_atomic
from run_testsuite.plan import SETUP_PREFIX
from run_testsuite.results import WORST_FIRST, Status

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.jsonio import Index, IndexEntry

# The parts of a run a merged directory keeps (not work/ or actual/: the
# working directories of failures stay in the shard's own artifact).
KEPT = ("results", "logs")
# Testcases found in two shards that are named one by one; more are counted.
LISTED = 20


class MergeError(Exception):
    """Runs that cannot be merged into one: the message says why."""


@dataclass
class Part:
    """One run given to ``--merge``: its index, and its shard (K, N) if it
    was run with ``--shard``."""

    path: str  # the directory of its index, as found
    index: Index

    @property
    def shard(self) -> tuple[int, int] | None:
        shard = self.index.get("shard")
        if isinstance(shard, dict) and isinstance(shard.get("index"), int) and isinstance(shard.get("total"), int):
            return shard["index"], shard["total"]
        return None

    @property
    def narrowed(self) -> bool:
        """Its selection was narrowed besides the shard (names, -k, ...)."""
        shard = self.index.get("shard")
        if isinstance(shard, dict):
            return bool(shard.get("narrowed"))
        return bool(self.index.get("partial"))

    @property
    def finished(self) -> bool:
        return bool(self.index.get("complete")) and not self.index.get("interrupted")


def merge(
    parts: list[Part], out_dir: str, command_line: list[str], warn: Callable[[str], None] = print
) -> tuple[Index, list[str]]:
    """Merge ``parts`` into ``out_dir`` (created, or a previous merge there
    replaced); return the merged index and the problems it lists.
    ``warn``: what does not make the merged run less whole (durations
    that could not be carried)."""
    numbers = _numbers(parts)
    _check_destination(out_dir, parts)
    problems = _missing(parts, numbers)
    for part, number in zip(parts, numbers, strict=True):
        if not part.finished:
            why = "was interrupted" if part.index.get("interrupted") else "did not finish"
            problems.append(f"{_label(part, number)} ({part.path}) {why}: testcases it did not reach have no result")
    entries = _entries(parts, numbers, problems)
    _write_files(parts, numbers, out_dir)
    index = _index(parts, numbers, entries, problems, command_line)
    try:
        _merge_durations(parts, out_dir)
    except (sqlite3.Error, OSError) as exc:
        warn(f"the shards' durations could not be kept in {out_dir} ({exc}): --export-durations will lack them")
    write_atomic(os.path.join(out_dir, INDEX_FILE), index)
    return index, problems


def _numbers(parts: list[Part]) -> list[int]:
    """Each part's number in the merged run: its shard's K, or its place
    among runs made without --shard. Shards of different splits, the same
    shard twice, and runs of different suites cannot be merged."""
    for part in parts:
        if "merged" in part.index:
            shards = " ".join(p.get("from", "?") for p in part.index["merged"])
            raise MergeError(f"{part.path} is a merged run: give the runs it was merged from ({shards})")
    places: dict[str, str] = {}
    for part in parts:
        place = os.path.realpath(part.path)
        if place in places:
            also = "" if places[place] == part.path else f" (as {places[place]} too)"
            raise MergeError(f"{part.path} is given twice{also}")
        places[place] = part.path
    suites = {part.index.get("suite") for part in parts}
    if len(suites) > 1:
        raise MergeError("the runs are of different suites: " + ", ".join(sorted(map(str, suites))))
    sharded = [part for part in parts if part.shard is not None]
    if not sharded:
        return list(range(1, len(parts) + 1))
    if len(sharded) != len(parts):
        lone = next(part for part in parts if part.shard is None)
        if lone.index.get("rebuilt"):
            raise MergeError(
                f"{lone.path}: its index was rebuilt from its result files (the run was killed before "
                "writing one), and does not say which shard it was"
            )
        raise MergeError(f"{lone.path} was not run with --shard, and the others were: merge shards of one split")
    totals = {part.shard[1] for part in sharded if part.shard}
    if len(totals) > 1:
        raise MergeError(
            "the runs are shards of different splits: "
            + ", ".join(f"{part.path} is {part.shard[0]}/{part.shard[1]}" for part in sharded if part.shard)
        )
    seen: dict[int, str] = {}
    for part in sharded:
        assert part.shard is not None
        k = part.shard[0]
        if k in seen:
            raise MergeError(f"shard {k}/{part.shard[1]} is given twice: {seen[k]} and {part.path}")
        seen[k] = part.path
    return [part.shard[0] for part in sharded if part.shard]


def _missing(parts: list[Part], numbers: list[int]) -> list[str]:
    shard = parts[0].shard
    if shard is None:
        return []
    total = shard[1]
    return [f"shard {k}/{total} is missing: no run of it was given" for k in range(1, total + 1) if k not in numbers]


def _label(part: Part, number: int) -> str:
    shard = part.shard
    return part_name(number, shard[1] if shard else 0, shard is not None)


def part_name(number: int, of: int, sharded: bool, short: bool = False) -> str:
    """A merged run's part as people read it: ``shard 2/3`` (``2/3``
    short), or ``run 2`` for the second run given without --shard."""
    if not sharded:
        return f"run {number}"
    return f"{number}/{of}" if short else f"shard {number}/{of}"


def _entries(parts: list[Part], numbers: list[int], problems: list[str]) -> list[IndexEntry]:
    """Every part's entries, their files under ``shard-K/``; one entry per
    name: a set-up run in several shards is one entry naming them, a
    testcase found in two shards is a problem, and the worse result kept."""
    kept: dict[str, IndexEntry] = {}
    found_in: dict[str, list[int]] = {}
    for part, number in zip(parts, numbers, strict=True):
        for original in part.index["results"]:
            entry: IndexEntry = {**original, "result": f"{_prefix(number)}/{original['result']}", "shard": number}
            name = entry["name"]
            found_in.setdefault(name, []).append(number)
            before = kept.get(name)
            if before is None or _worse(entry, before):
                kept[name] = entry
    labels = {number: _label(part, number) for part, number in zip(parts, numbers, strict=True)}
    doubled = 0
    for name, where in found_in.items():
        if len(where) < 2:
            continue
        if name.startswith(SETUP_PREFIX):
            kept[name]["shards"] = sorted(where)
            continue
        doubled += 1
        if doubled <= LISTED:
            worse = kept[name]
            problems.append(
                f"'{name}' ran in {' and '.join(labels[n] for n in where)}: "
                f"the worse result is kept ({worse['status']} from {labels[worse['shard']]})"
            )
    if doubled > LISTED:
        problems.append(f"... and {doubled - LISTED} more testcases ran in more than one shard")
    return list(kept.values())


def _worse(entry: IndexEntry, than: IndexEntry) -> bool:
    return WORST_FIRST.index(Status(entry["status"])) < WORST_FIRST.index(Status(than["status"]))


def _prefix(number: int) -> str:
    return f"shard-{number}"


def _check_destination(out_dir: str, parts: list[Part]) -> None:
    """``out_dir`` must be new, empty or a previous merge (replaced), and
    neither inside a run given nor holding one."""
    target = os.path.realpath(out_dir)
    for part in parts:
        source = os.path.realpath(part.path)
        if target == source or target.startswith(source + os.sep) or source.startswith(target + os.sep):
            raise MergeError(f"-o {out_dir}: it overlaps {part.path}, a run to merge; give a directory of its own")
    if not os.path.isdir(out_dir):
        if os.path.lexists(out_dir):
            raise MergeError(f"-o {out_dir}: exists and is not a directory")
        return
    names = set(os.listdir(out_dir))
    if not names:
        return
    try:
        previous = read_json(os.path.join(out_dir, INDEX_FILE))
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and "merged" in previous:
        return
    if all(_left_by_merge(name) for name in names):
        return  # a merge that stopped part-way: its files alone
    raise MergeError(
        f"-o {out_dir}: exists and holds something other than a merged run; give a new directory (or remove it)"
    )


def _left_by_merge(name: str) -> bool:
    return name.startswith(("shard-", "history.sqlite", INDEX_FILE))


def _write_files(parts: list[Part], numbers: list[int], out_dir: str) -> None:
    """Each part's result files and logs under ``out_dir/shard-K/``,
    hard-linked where the file system allows (a 100,000-testcase run is
    as many files), copied where not. A previous merge there goes first."""
    os.makedirs(out_dir, exist_ok=True)
    index = os.path.join(out_dir, INDEX_FILE)
    if os.path.lexists(index):  # first: never an index naming files that are gone
        os.unlink(index)
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if name.startswith("shard-") and os.path.isdir(path):
            shutil.rmtree(path)
    for part, number in zip(parts, numbers, strict=True):
        for kept in KEPT:
            source = os.path.join(part.path, kept)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(out_dir, _prefix(number), kept), copy_function=_link_or_copy)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, destination)


def _index(
    parts: list[Part], numbers: list[int], entries: list[IndexEntry], problems: list[str], command_line: list[str]
) -> Index:
    first = min(parts, key=lambda part: part.index.get("start") or 0.0)
    start = float(first.index.get("start") or 0.0)
    end = max(float(p.index.get("start") or 0.0) + float(p.index.get("duration") or 0.0) for p in parts)
    counts = {status.value: 0 for status in Status}
    for entry in entries:
        counts[entry["status"]] += 1
    shard = parts[0].shard
    narrowed = any(part.narrowed for part in parts)
    missing = shard is not None and len(parts) < shard[1]
    index: Index = {
        "format": FORMAT_VERSION,
        "suite": first.index.get("suite", ""),
        "root": first.index.get("root", ""),
        "command_line": command_line,
        "jobs": sum(max(1, int(p.index.get("jobs") or 1)) for p in parts),
        "host": ", ".join(sorted({str(p.index.get("host")) for p in parts if p.index.get("host")})),
        "python": first.index.get("python", ""),
        "start": start,
        "duration": round(max(0.0, end - start), 6),
        "complete": not missing and all(part.finished for part in parts),
        "interrupted": any(p.index.get("interrupted") for p in parts),
        "partial": narrowed or missing,
        "counts": counts,
        "cached": sum(int(p.index.get("cached") or 0) for p in parts),
        "results": entries,
    }
    index["merged"] = [
        {
            "shard": number,
            "of": part.shard[1] if part.shard else len(parts),
            "sharded": part.shard is not None,
            "from": os.path.abspath(part.path),
            "files": _prefix(number),
            "host": part.index.get("host", ""),
            "jobs": part.index.get("jobs", 1),
            "start": part.index.get("start", 0.0),
            "duration": part.index.get("duration", 0.0),
            "complete": part.finished,
            "counts": part.index.get("counts", {}),
        }
        for part, number in sorted(zip(parts, numbers, strict=True), key=lambda pair: pair[1])
    ]
    index["merge_problems"] = problems
    index["merged_at"] = round(time.time(), 3)
    return index


def _merge_durations(parts: list[Part], out_dir: str) -> None:
    """The fragments' latest durations from each part's history, into
    ``out_dir/history.sqlite`` (a part's run is the latest for its own
    testcases; a set-up's duration comes from the shard that ran it last)."""
    from run_testsuite.history import HISTORY_FILE, SCHEMA, history_file_of

    # The latest run's durations win: set-ups run in several shards.
    ordered = sorted(parts, key=lambda part: part.index.get("start") or 0.0)
    sources = [source for part in ordered if (source := history_file_of(part.path)) is not None]
    target = os.path.join(out_dir, HISTORY_FILE)
    for stale in (target, f"{target}-wal", f"{target}-shm"):
        if os.path.exists(stale):
            os.unlink(stale)
    if not sources:
        return
    db = sqlite3.connect(target, timeout=30)
    try:
        db.executescript(SCHEMA)
        for source in sources:
            try:
                db.execute("ATTACH DATABASE ? AS part", (source,))
            except sqlite3.Error:
                continue
            try:
                with db:
                    db.execute("INSERT OR REPLACE INTO fragment_durations SELECT * FROM part.fragment_durations")
            except sqlite3.Error:
                pass  # a history too old or damaged: its durations are not carried
            finally:
                db.execute("DETACH DATABASE part")
    finally:
        db.close()
