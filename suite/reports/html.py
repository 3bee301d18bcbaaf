"""A single-file HTML report made from the report index.

The page must open from disk (``file://``), by mail or as a CI artifact, so
everything is inline and nothing comes from the network. It must also stay
usable with tens of thousands of results, so the page is not one big server-
rendered table: the per-result data travels once, as a JSON string in a
``<script type="application/json">`` block, and ``report.js`` builds the rows
with ``textContent`` (never ``innerHTML``), the details only when a row is
opened, and the timeline as one SVG. What tests print is hostile by nature:
in the JSON block ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., so
no output can close the block, and the rest of the page is rendered by
Jinja2 with autoescaping on.
"""

from __future__ import annotations

import heapq
import json
import os
import posixpath
import shlex
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import quote

from run_testsuite.jsonio import INDEX_FILE, read_index, read_result
from run_testsuite.results import WORST_FIRST, Status, describe_exit

TYPE_CHECKING = False  # not typing's: this module is imported while tests run
if TYPE_CHECKING:  # pragma: no cover
    from markupsafe import Markup

    from run_testsuite.history_view import Strips
    from run_testsuite.jsonio import Index, IndexEntry, ResultData
    from run_testsuite.reporters import SpooledDetails

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
# What the page keeps of a result's output and traceback (their ends: where a
# failure shows) and of its diff (its start: the first difference). The page
# stays a few MiB at 10,000 results; the result file has everything.
OUTPUT_TAIL = 4096
TRACEBACK_TAIL = 8192
DIFF_HEAD = 16384
MESSAGE_MAX = 4096
SUB_OUTPUT_TAIL = 2048
# Names listed per category of changes; more are counted, not listed.
CHANGES_MAX = 200
# Runs of history each result shows a strip of, and names per summary list.
STRIP_RUNS = 10
LISTED = 10
# The order rows start in: what needs attention first.
SEVERITY = [status.value for status in WORST_FIRST]
FAILING = {Status.FAIL.value, Status.ERROR.value}

_environment = None


def write_html(
    index_dir: str,
    path: str,
    old_index_dir: str | None = None,
    details: Mapping[str, dict | str] | SpooledDetails | None = None,
    history: Strips | None = None,
    index: Index | None = None,
    earlier: dict[str, IndexEntry] | None = None,
) -> None:
    """Write the report of the run in ``index_dir`` (``OUTPUT/new``) to ``path``.

    ``old_index_dir`` (``OUTPUT/old``), when it holds an index, adds what
    changed since that run. ``details`` maps result files (as the index
    names them) to their ``details()`` (or its JSON), made as the results
    came in (or gives them in the index's order: ``SpooledDetails``); the
    files of the others are read. ``history`` is ``history_view.strips``
    of the runs before (read here from the output directory's history
    when not given). ``index``: the run's index, when the caller holds it
    (a run at its end: reading it again cost 100,000 results 60 MB more).
    ``earlier``: the old run as ``compare.read_earlier`` reads it, if read.
    """
    from run_testsuite.reports.compare import read_earlier

    if index is None:
        index = read_index(os.path.join(index_dir, INDEX_FILE))
    old_run = earlier if earlier is not None else read_earlier(old_index_dir)
    # Result files are linked relative to the page, so that the two can move
    # together (a CI artifact); the prefix is computed once, relpath is slow.
    prefix = os.path.relpath(index_dir, os.path.dirname(os.path.abspath(path))).replace(os.sep, "/")
    run_start = index.get("start") or 0.0
    details = details or {}
    if history is None:
        from run_testsuite.history_view import strips

        # The runs before this one: it may be in history already (report --html).
        # A merged run's directory is its output directory; a run's is OUT/new.
        output_dir = index_dir if "merged" in index else os.path.dirname(os.path.abspath(index_dir))
        history = strips(output_dir, STRIP_RUNS, before=run_start or None)
    # A merged run (report --merge): each shard's timeline starts at its own
    # start, one group of lanes per shard, so their balance shows.
    shard_starts = {part["shard"]: part.get("start") or 0.0 for part in index.get("merged", ())}
    entries = index["results"]
    offsets = [_offset(entry, shard_starts.get(entry.get("shard", 0), run_start)) for entry in entries]
    counts = {status.value: index["counts"].get(status.value, 0) for status in Status}
    lanes, lane_of = _lanes(index, entries, offsets)
    lists = _lists(entries, offsets, history)
    head = {
        "duration": max([p.get("duration", 0.0) for p in index.get("merged", ())] or [index.get("duration", 0.0)]),
        "lanes": lanes,
        "severity": SEVERITY,
        "lists": lists,  # names are test data: the page builds the lists with textContent
    }
    run = _run_facts(index)
    # Imported here: a run imports this module early, to gather each
    # result's details, and renders the page only at its end.
    from secrets import token_urlsafe

    from markupsafe import Markup

    # Where the results' data goes, written in pieces: a mark no test data can hold.
    place = f"\x00data-{token_urlsafe(12)}\x00"
    html = _template().render(
        run=run,
        css=_asset("report.css"),
        js=_asset("report.js"),
        # Only scripts carrying this nonce run: a test's output that somehow
        # became markup still could not execute (defence in depth).
        nonce=token_urlsafe(18),
        title=f"{run['suite']}: {sum(counts.values())} testcases",
        date=datetime.fromtimestamp(run_start).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if run_start else "",
        command_line=shlex.join(index.get("command_line", [])),
        counts=counts,
        total=sum(counts.values()),
        changes=_changes(index, old_run, index_dir, old_index_dir)
        if old_run is not None or _has_history(index)
        else None,
        lists=lists,
        data_json=Markup(place),
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    before, after = html.split(place, 1)
    # The rows are made and written one by one, never all held at once:
    # at 100,000 results the rows and the page as one string took 300 MB.
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", errors="replace") as handle:
        handle.write(before)
        handle.write(_script_json(head)[:-1] + ',"results":[')
        for number, entry in enumerate(entries):
            found = details.get(entry["result"])
            if isinstance(found, str):
                found = json.loads(found)
            row = _row(entry, found or _read_details(index_dir, entry["result"]), prefix, offsets[number])
            row["flips"] = history.flips.get(row["name"], 0)
            row["lane"] = lane_of(entry)
            # The strip is JSON already (statuses and numbers: nothing to escape).
            strip = history.runs.get(row["name"], "[]")
            handle.write(("," if number else "") + _script_json(row)[:-1] + ',"history":' + strip + "}")
        handle.write("]}")
        handle.write(after)
    os.replace(tmp, path)


def _lanes(index: Index, entries: list[IndexEntry], offsets: list[float | None]) -> tuple[list[dict], Callable]:
    """The timeline's lanes, one per slot, in a group per shard when the
    run was merged from shards; and the key of a result's lane."""
    merged = index.get("merged")
    used: dict[int, set[int]] = {}
    for entry, offset in zip(entries, offsets, strict=True):
        slot = entry.get("slot")
        if slot is not None and offset is not None:
            used.setdefault(entry.get("shard", 0), set()).add(slot)
    if not merged:
        slots = sorted(set(range(1, index.get("jobs", 1) + 1)) | used.get(0, set()))
        return [{"key": s, "label": f"slot {s}", "group": 0} for s in slots], lambda entry: entry.get("slot")
    from run_testsuite.merge import part_name

    lanes = []
    for part in merged:
        shard = part["shard"]
        name = part_name(shard, part.get("of", len(merged)), part.get("sharded", True), short=True)
        for slot in sorted(set(range(1, int(part.get("jobs") or 1) + 1)) | used.get(shard, set())):
            lanes.append({"key": f"{shard}:{slot}", "label": f"{name} · {slot}", "group": shard})

    def lane_of(entry: IndexEntry) -> str | None:
        slot = entry.get("slot")
        return f"{entry.get('shard')}:{slot}" if slot is not None else None

    return lanes, lane_of


def _offset(entry: IndexEntry, run_start: float) -> float | None:
    """When a result started, in seconds into its run (or shard); None
    when it is not on the timeline (not run, or taken from an earlier run)."""
    start = entry.get("start")
    if not start or not run_start or entry.get("cached"):
        return None
    return max(0.0, round(start - run_start, 6))


def _run_facts(index: Index) -> dict:
    """What the page's header says of the run."""
    return {
        "suite": index.get("suite") or "run-testsuite",
        "root": index.get("root", ""),
        "jobs": index.get("jobs", 1),
        "duration": index.get("duration", 0.0),
        "host": index.get("host", ""),
        "python": index.get("python", ""),
        "complete": index.get("complete", True),
        "interrupted": index.get("interrupted", False),
        "rebuilt": index.get("rebuilt", False),
        "cached": index.get("cached", 0),
        "shards": len(index.get("merged", [])),
        "merge_problems": index.get("merge_problems", []),
    }


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def details(result: ResultData) -> dict:
    """What the page shows of a result beyond its index entry, long texts
    cut to what is worth embedding: small enough to keep for every result
    while the run goes on."""
    return {
        "start": result.get("start"),
        "cached": result.get("cached"),
        "kind": result.get("kind"),
        "slot": result.get("slot"),
        "tags": result.get("tags"),
        "attempts": result.get("attempts", 1),
        "description": result.get("description", ""),
        "driver": result.get("driver", ""),
        "full_message": _head(result.get("message", ""), MESSAGE_MAX),
        "commands": [
            [
                c.get("step", ""),
                c["cmd"] if isinstance(c.get("cmd"), str) else shlex.join(c.get("cmd") or []),
                c.get("exit_code"),
                c.get("duration", 0.0),
                bool(c.get("timed_out")),
                describe_exit(c.get("exit_code"), bool(c.get("timed_out")), _seconds(c.get("timeout"))),
            ]
            for c in result.get("commands", [])
        ],
        "output": _tail(result.get("output", ""), OUTPUT_TAIL),
        "diff": _head(result.get("diff"), DIFF_HEAD),
        "traceback": _tail(result.get("traceback"), TRACEBACK_TAIL),
        "logs": result.get("log_files", []),
        "subresults": [_subresult(sub) for sub in result.get("subresults") or ()],
    }


def _subresult(sub: dict) -> list:
    """[name, status, message, duration, output] of a sub-result, its
    output cut to its end: the page lists thousands of them."""
    return [
        sub.get("name", ""),
        sub.get("status", "ERROR"),
        (sub.get("message") or "")[:MESSAGE_MAX],
        sub.get("duration"),
        _tail(sub.get("output"), SUB_OUTPUT_TAIL),
    ]


def _read_details(index_dir: str, rel: str) -> dict | None:
    result = read_result(index_dir, rel)
    if result is None:
        return None  # a run killed mid-write: the index entry is all there is
    try:
        return details(result)
    except (AttributeError, KeyError, TypeError):
        return None


def _row(entry: IndexEntry, result: dict | None, prefix: str, offset: float | None) -> dict:
    """One result as the page needs it: the index entry plus the result's
    ``details`` (None when its file could not be read); ``offset``: see
    ``_offset``."""
    missing = result is None
    result = result or {}
    # --incremental: taken from an earlier run, so not on this run's timeline.
    cached = bool(entry.get("cached") or result.get("cached"))
    # A plain relative path, never a scheme ("javascript:"): "./" or "../" first.
    link = quote(posixpath.normpath(f"{prefix}/{entry['result']}"))
    if not link.startswith(("../", "/")):
        link = "./" + link
    return {
        "name": entry["name"],
        "status": entry["status"],
        "reason": entry.get("reason"),
        "message": entry.get("message", ""),
        "duration": entry.get("duration", 0.0),
        "wall": entry.get("wall"),
        "quarantined": entry.get("quarantined"),
        "t": offset if not cached else None,
        "cached": cached,
        "kind": entry.get("kind") or result.get("kind") or "testcase",
        "slot": entry.get("slot", result.get("slot")),
        "shard": entry.get("shard"),
        "tags": entry.get("tags") or result.get("tags") or [],
        "attempts": entry.get("attempts", result.get("attempts", 1)),
        "file": link,
        "missing": missing,
        "description": result.get("description", ""),
        "driver": result.get("driver", ""),
        "full_message": result.get("full_message"),
        "commands": result.get("commands", []),
        "output": result.get("output"),
        "diff": result.get("diff"),
        "traceback": result.get("traceback"),
        "logs": result.get("logs", []),
        "subresults": result.get("subresults", []),
        "subcounts": (entry.get("subresults") or {}).get("counts") or {},
    }


def seconds(value: float) -> str:
    """A duration as people read it (the page's JS formats the same way)."""
    if value < 0.001:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {rest:02d}s"


def _tail(text: str | None, limit: int) -> list | None:
    """[kept text, characters cut before it] of the last ``limit`` characters."""
    if not text:
        return None
    return [text[-limit:], max(0, len(text) - limit)]


def _head(text: str | None, limit: int) -> list | None:
    """[kept text, characters cut after it] of the first ``limit`` characters."""
    if not text:
        return None
    return [text[:limit], max(0, len(text) - limit)]


def _has_history(index: Index) -> bool:
    return any("previous" in entry for entry in index.get("results", []))


def _changes(new: Index, before: dict[str, IndexEntry] | None, new_dir: str = "", old_dir: str | None = None) -> dict:
    """Names whose failing state differs from (or stays as in) each one's
    latest earlier verdict: the old run's result (``before``, by name, as
    ``compare.read_earlier`` reads it), or history's where the old run has
    none (see ``compare``); a result of an interrupted or stopped run is
    neither a new failure nor a fix."""
    from run_testsuite.reports.compare import NOT_RUN, earlier

    changes: dict[str, list[dict]] = {"new_failures": [], "fixed": [], "still_failing": []}
    for entry in new["results"]:
        name, status = entry["name"], entry["status"]
        if entry.get("reason") in NOT_RUN:
            continue
        earlier_status = earlier(before.get(name) if before else None, entry)
        was = earlier_status.value if earlier_status else None
        if status in FAILING:
            key = "still_failing" if was in FAILING else "new_failures"
        elif was in FAILING:
            key = "fixed"
        else:
            continue
        changes[key].append({"name": name, "status": status, "was": was})
    if before is not None and old_dir:
        from run_testsuite.reports.compare import sub_regressions_since

        changes["sub_regressions"] = [
            {"name": c.testcase, "sub": c.name, "status": c.new.value, "was": c.old.value if c.old else None}
            for c in sub_regressions_since(old_dir, new_dir, new, before)
        ]
    return {
        key: {"entries": sorted(items, key=lambda i: (i["name"], i.get("sub", "")))[:CHANGES_MAX], "total": len(items)}
        for key, items in changes.items()
    }


def _lists(entries: list[IndexEntry], offsets: list[float | None], history: Strips) -> dict:
    """The summary's lists: testcases history finds flaky (most flips
    first), and this run's slowest (wall time where shards ran side by side)."""
    flips = history.flips
    flaky = sorted(
        ((e["name"], e["status"], flips[e["name"]]) for e in entries if e["name"] in flips),
        key=lambda item: (-item[2], item[0]),
    )
    timed = [
        (e["name"], e["status"], e["wall"] if e.get("wall") is not None else e.get("duration", 0.0))
        for e, offset in zip(entries, offsets, strict=True)
        if offset is not None
    ]
    slowest = heapq.nsmallest(LISTED, timed, key=lambda item: (-item[2], item[0]))
    return {
        "flaky": [{"name": name, "status": status, "flips": n} for name, status, n in flaky[:LISTED]],
        "flaky_total": len(flaky),
        "slowest": [{"name": name, "status": status, "took": seconds(took)} for name, status, took in slowest],
    }


def _script_json(data: dict) -> str:
    """JSON that cannot end its ``<script>`` block or open a comment in it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_assets: dict[str, Markup] = {}


def _asset(name: str) -> Markup:
    """CSS or JS to inline as it is: kept out of Jinja so that braces in it
    never need escaping."""
    if name not in _assets:
        with open(os.path.join(TEMPLATES, name), encoding="utf-8") as handle:
            from markupsafe import Markup

            _assets[name] = Markup(handle.read())
    return _assets[name]


def prepare() -> None:
    """Import Jinja2 and compile the template now (a run does it while its
    tests run, not after them)."""
    _template()
    _asset("report.css")
    _asset("report.js")


def _template():
    """The page template, compiled once per process."""
    global _environment
    if _environment is None:
        import jinja2

        _environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _environment.filters["seconds"] = seconds
    return _environment.get_template("report.html.j2")
