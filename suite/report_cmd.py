"""``run-testsuite report``: reports from a run already on disk.

    run-testsuite report [OUTPUT] [--junit-xml FILE] [--html FILE] [--rebuild]
    run-testsuite report --compare OLD NEW [--junit-xml FILE] [--html FILE]
    run-testsuite report --merge OUT1 OUT2 ... -o MERGED [--junit-xml FILE] [--html FILE]

Everything is made from the report index and result files, never by
running anything, so a report can be made again, later, elsewhere (a CI
job that collects artifacts), or from a run that was killed: an index that
is missing or says ``complete: false`` is first rebuilt from the result
files (see ``suite.rebuild``).

Exit status: 0, or 1 when ``--compare`` finds regressions (of sub-results
too) or ``--merge`` finds a shard missing, unfinished or overlapping
another, 2 for bad usage (no run where one was named, an unreadable index,
runs that cannot be merged, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from run_testsuite.jsonio import INDEX_FILE, checked_index, read_json, write_atomic
from run_testsuite.outputs import running_in
from run_testsuite.plan import SETUP_PREFIX
from run_testsuite.rebuild import rebuild_index
from run_testsuite.reports.text import TextReport
from run_testsuite.results import WORST_FIRST, Reason, Result, Status, SubResult
from run_testsuite.subresults import describe_counts

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.jsonio import Index, IndexEntry


EXIT_OK, EXIT_REGRESSIONS, EXIT_USAGE = 0, 1, 2
PROG = "run-testsuite report"


# The most runs --history reads: SQLite's integers end at 2**63.
MAX_LAST = 1_000_000_000


class ReportError(Exception):
    """A problem the user can fix; printed without a traceback, exit 2."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Report on a finished (or killed) run from its report index and result files.",
    )
    p.add_argument(
        "output",
        nargs="?",
        metavar="OUTPUT",
        help="an output directory, its new/ (or old/) directory, or an _index.json (default: out)",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="list regressions, fixes, still failing, new and removed testcases between two runs; exit 1 on regressions",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="OUT",
        help="merge the runs of the shards of one suite (--shard K/N, one CI job each) into one run in -o MERGED; "
        "exit 1 when a shard is missing, did not finish, or shares a testcase with another",
    )
    p.add_argument(
        "-o", "--output-dir", metavar="MERGED", help="with --merge: the directory of the merged run (new, or replaced)"
    )
    p.add_argument(
        "--junit-xml",
        metavar="FILE",
        help="write JUnit XML for CI test reporters (of NEW with --compare, of the merged run with --merge)",
    )
    p.add_argument(
        "--html", metavar="FILE", help="write an HTML report (of NEW with --compare, showing changes from OLD)"
    )
    p.add_argument(
        "--rebuild", action="store_true", help="rebuild _index.json from the result files even if the run completed"
    )
    p.add_argument(
        "--history",
        nargs="?",
        const="",
        metavar="NAME",
        help="summarise the last runs from history (flaky, failing since, slowest, grew slower, totals); "
        "with NAME, that testcase's runs",
    )
    p.add_argument(
        "--last", type=int, default=20, metavar="N", help="with --history: how many runs to read (default 20)"
    )
    p.add_argument(
        "--export-durations",
        metavar="FILE",
        help="write each fragment's expected duration from history as JSON, for 'run-testsuite --durations FILE' "
        "on a machine without this history (a CI cache)",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.command_line = ["run-testsuite", "report", *argv]
    if args.compare and args.output:
        parser().error("give OUTPUT or --compare OLD NEW, not both")
    if args.merge and (args.output or args.compare or args.rebuild):
        parser().error("--merge takes the runs to merge alone: not with OUTPUT, --compare or --rebuild")
    if bool(args.merge) != bool(args.output_dir):
        parser().error("--merge OUT1 OUT2 ... and -o MERGED go together")
    if args.history is not None and (args.compare or args.merge or args.junit_xml or args.html):
        parser().error("--history reports on history alone: not with --compare, --merge, --junit-xml or --html")
    if args.export_durations and (
        args.compare or args.merge or args.junit_xml or args.html or args.history is not None
    ):
        parser().error("--export-durations reads history alone: give it with OUTPUT only")
    if not 1 <= args.last <= MAX_LAST:
        parser().error(f"--last must be from 1 to {MAX_LAST}")
    try:
        return _report(args, sys.stdout)
    except ReportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _history(args: argparse.Namespace, out: TextIO) -> int:
    """``--history [NAME]``: read from OUTPUT/history.sqlite."""
    import sqlite3

    from run_testsuite.history import HISTORY_FILE, history_file_of
    from run_testsuite.history_view import read_window
    from run_testsuite.reports.history_text import render_summary, render_testcase

    output = os.path.abspath(args.output or "out")
    path = history_file_of(output)
    if path is None:
        raise ReportError(
            f"no history in {output}: {os.path.join(output, HISTORY_FILE)} does not exist (a run records it)"
        )
    try:
        window = read_window(path, args.last, args.history or None)
    except sqlite3.Error as exc:
        raise ReportError(f"{path}: the history cannot be read ({exc})") from None
    if args.history:
        text = render_testcase(window, args.history)
        if not text:
            import difflib

            known = sorted(read_window(path, args.last).series)  # only now: every testcase's rows
            close = difflib.get_close_matches(args.history, known, 1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ReportError(f"'{args.history}' has no result in the last {len(window.runs)} runs{hint}")
        out.write(text)
    else:
        out.write(render_summary(window))
    out.flush()
    return EXIT_OK


def _export_durations(args: argparse.Namespace, out: TextIO) -> int:
    import sqlite3

    from run_testsuite.durations_file import export
    from run_testsuite.history import history_file_of

    output = args.output or "out"
    path = history_file_of(output)
    if path is None:
        raise ReportError(f"no history in {os.path.abspath(output)} (a run records it)")
    suite = ""
    try:
        suite = read_json(find_run(output)[1]).get("suite", "")
    except (ReportError, OSError, ValueError):
        pass  # the name is a courtesy: the durations are what matter
    try:
        count = export(path, args.export_durations, suite)
    except sqlite3.Error as exc:
        raise ReportError(f"{path}: the history cannot be read ({exc})") from None
    except OSError as exc:
        raise ReportError(f"{args.export_durations}: {exc.strerror or exc}") from None
    out.write(f"durations of {count} fragments: {args.export_durations}\n")
    return EXIT_OK


def _report(args: argparse.Namespace, out: TextIO) -> int:
    if args.history is not None:
        return _history(args, out)
    if args.export_durations:
        return _export_durations(args, out)
    status = EXIT_OK
    old_dir = None
    if args.merge:
        index_dir, index, complete = _merge(args, out)
        if not complete:
            status = EXIT_REGRESSIONS
    elif args.compare:
        from run_testsuite.reports.compare import compare, render_text

        old_dir, old = load_run(args.compare[0], args.rebuild)
        index_dir, index = load_run(args.compare[1], args.rebuild)
        comparison = compare(old, index, old_dir, index_dir)
        out.write(render_text(comparison, _label(old_dir, old), _label(index_dir, index)))
        if comparison.regressed:
            status = EXIT_REGRESSIONS
    else:
        index_dir, index = load_run(args.output or "out", args.rebuild)
        # The run before, when it sits beside this one, gives the HTML
        # report its section of changes.
        sibling = os.path.join(os.path.dirname(os.path.abspath(index_dir)), "old")
        if os.path.basename(os.path.abspath(index_dir)) == "new" and os.path.isdir(sibling):
            old_dir = sibling
        if not (args.junit_xml or args.html):
            print_summary(index, index_dir, out)
    if args.junit_xml:
        from run_testsuite.reports.junit import write_junit

        _writing(args.junit_xml, lambda: write_junit(index, index_dir, args.junit_xml))
        out.write(f"JUnit XML: {args.junit_xml}\n")
    if args.html:
        write_html = _html_writer()
        _writing(args.html, lambda: write_html(index_dir, args.html, old_index_dir=old_dir))
        out.write(f"HTML report: {args.html}\n")
    out.flush()
    return status


def _merge(args: argparse.Namespace, out: TextIO) -> tuple[str, Index, bool]:
    """--merge OUT1 OUT2 ... -o MERGED: (MERGED, its index, whether it is
    whole: every shard there, finished, and none sharing a testcase)."""
    from run_testsuite.merge import MergeError, Part, merge

    parts = [Part(*load_run(path)) for path in args.merge]
    try:
        index, problems = merge(
            parts, args.output_dir, args.command_line, lambda text: print(f"{PROG}: warning: {text}", file=sys.stderr)
        )
    except MergeError as exc:
        raise ReportError(str(exc)) from None
    except OSError as exc:
        raise ReportError(f"cannot write {exc.filename or args.output_dir}: {exc.strerror or exc}") from None
    shards = ", ".join(_part_label(part, short=True) for part in index["merged"])
    out.write(f"merged {len(parts)} run{'s' if len(parts) != 1 else ''} ({shards}) into {args.output_dir}\n")
    for problem in problems:
        print(f"{PROG}: {problem}", file=sys.stderr)
    if not (args.junit_xml or args.html):
        print_summary(index, args.output_dir, out)
    return args.output_dir, index, not problems


# -- finding and loading a run ----------------------------------------------------
def find_run(path: str) -> tuple[str, str]:
    """(directory of the index, path of the index file) for what the user
    named: an output directory, a ``new/``-like directory or an index file."""
    if os.path.isfile(path):
        return os.path.dirname(os.path.abspath(path)), path
    if not os.path.isdir(path):
        raise ReportError(f"{path}: no such file or directory")
    for directory in (path, os.path.join(path, "new")):
        index = os.path.join(directory, INDEX_FILE)
        if os.path.isfile(index) or os.path.isdir(os.path.join(directory, "results")):
            return directory, index
    raise ReportError(
        f"no run in {path}: expected {os.path.join(path, 'new', INDEX_FILE)} or {os.path.join(path, INDEX_FILE)}"
    )


def load_run(path: str, force_rebuild: bool = False, notes: TextIO | None = None) -> tuple[str, Index]:
    """Find and read a run's index; rebuild it from the result files when
    it is missing, unreadable, incomplete, or ``force_rebuild``. What was
    done goes to ``notes`` (stderr), so the report itself stays clean."""
    notes = notes or sys.stderr
    index_dir, index_path = find_run(path)
    index, why = None, None
    try:
        index = checked_index(read_json(index_path))
        if force_rebuild:
            why = "rebuilding as asked"
        elif not index.get("complete", False):
            why = "the index is incomplete (the run was killed, or is still going)"
    except FileNotFoundError:
        why = "no index (the run was killed before writing one)"
    except (OSError, ValueError) as exc:
        why = f"the index is unreadable ({exc})"
    if why is None and index is not None:
        return index_dir, index
    if index is not None and "merged" in index:  # its problems say why it is incomplete
        if force_rebuild:
            raise ReportError(f"{index_path}: a merged run is not rebuilt: merge its shards again")
        return index_dir, index
    if not os.path.isdir(os.path.join(index_dir, "results")):
        if index is not None:
            notes.write(f"{PROG}: {index_path}: {why}; no result files to rebuild it from\n")
            return index_dir, index
        raise ReportError(f"{index_path}: {why}, and there is no results/ directory to rebuild it from")
    problems: list[str] = []
    index = rebuild_index(index_dir, problems=problems, write=False)
    running = running_in(os.path.dirname(os.path.abspath(index_dir)))
    if running is not None:  # its index is the run's own: read, never rewritten
        why = f"a run is still going there ({running})"
        written = "read what it has written so far"
    else:
        written = f"rebuilt {os.path.join(index_dir, INDEX_FILE)}"
        try:
            write_atomic(os.path.join(index_dir, INDEX_FILE), index)
        except OSError as exc:
            written = f"rebuilt it in memory (cannot write {INDEX_FILE}: {exc.strerror})"
    notes.write(f"{PROG}: {why}: {written} from {len(index['results'])} result files\n")
    for problem in problems:
        notes.write(f"{PROG}:   skipped {problem}\n")
    notes.flush()
    return index_dir, index


# -- the summary ------------------------------------------------------------------------
def print_summary(index: Index, index_dir: str, out: TextIO) -> None:
    """The run's metadata, one line per non-passing result, the counts."""
    text = TextReport(stream=out)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(index.get("start", 0)))
    duration = float(index.get("duration", 0.0))
    where = f"-j {index['jobs']}" if "jobs" in index else ""
    if index.get("host"):
        where += f" on {index['host']}"
    out.write(f"suite {index.get('suite', '?')}: run of {when}, {duration:.2f} s, {where.strip()}\n")
    if index.get("root"):
        out.write(f"root: {index['root']}\n")
    for part in index.get("merged", []):
        state = "" if part.get("complete") else ", did not finish"
        out.write(
            f"  {_part_label(part)}: {part.get('duration', 0.0):.2f} s, -j {part.get('jobs')}"
            f" on {part.get('host') or '?'}{state} ({part.get('from')})\n"
        )
    for problem in index.get("merge_problems", []):
        out.write(f"merge: {problem}\n")
    if index.get("interrupted"):
        out.write("the run was interrupted: testcases it did not reach have no result\n")
    elif not index.get("complete", False) and "merged" in index:
        out.write("the merged run is incomplete: testcases of a missing or unfinished shard have no result\n")
    elif not index.get("complete", False):
        out.write("the run did not finish: testcases it did not reach have no result\n")
    entries = [e for e in index["results"] if e["status"] != Status.PASS]
    entries.sort(key=lambda e: (WORST_FIRST.index(Status(e["status"])), e["name"]))
    if entries:
        out.write("\n")
    for entry in entries:
        text.result(_as_result(entry), entry.get("subresults", {}).get("counts", {}))
    for entry in index["results"]:  # passes count their sub-results too
        if entry["status"] == Status.PASS:
            text.result(_as_result(entry), entry.get("subresults", {}).get("counts", {}))
    text.write_not_run()
    counts = {status.value: 0 for status in Status}
    for entry in index["results"]:
        counts[entry["status"]] += 1
    setups: dict[str, int] = {}
    for entry in index["results"]:
        if entry["name"].startswith(SETUP_PREFIX):
            setups[entry["status"]] = setups.get(entry["status"], 0) + 1
    out.write("\n" + text.counts_line(counts, setups, duration) + "\n")
    if text.sub_counts:
        out.write(describe_counts(text.sub_counts) + "\n")
    if text.quarantined:
        out.write(text.quarantine_line() + "\n")
    out.write(f"report index: {os.path.join(index_dir, INDEX_FILE)}\n")
    out.flush()


def _part_label(part: dict, short: bool = False) -> str:
    """A merged run's part (an item of its index's ``merged``), named."""
    from run_testsuite.merge import part_name

    return part_name(part["shard"], part["of"], part.get("sharded", True), short)


def _as_result(entry: IndexEntry) -> Result:
    reason = entry.get("reason")
    return Result(
        name=entry["name"],
        status=Status(entry["status"]),
        reason=Reason(reason) if reason in Reason._value2member_map_ else None,
        message=entry.get("message") or "",
        quarantined=entry.get("quarantined"),
        subresults=[
            SubResult(sub["name"], Status(sub["status"]), None, sub.get("message", ""))
            for sub in entry.get("subresults", {}).get("notable", ())
        ],
    )


def _label(index_dir: str, index: Index) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(index.get("start", 0)))
    return f"{index_dir} ({when})"


# -- writing files ------------------------------------------------------------------
def _writing(path: str, write) -> None:
    try:
        write()
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None


def _html_writer():
    """``suite.reports.html.write_html``, imported only when asked for."""
    try:
        from run_testsuite.reports import html
    except ImportError as exc:
        if getattr(exc, "name", None) == "run_testsuite.reports.html":
            raise ReportError(
                "HTML reports are not available: this installation has no suite/reports/html.py"
            ) from None
        raise ReportError(f"cannot load the HTML report writer: {exc}") from None
    write_html = getattr(html, "write_html", None)
    if write_html is None:
        raise ReportError("run_testsuite.reports.html has no write_html(index_dir, path, old_index_dir=None)")
    return write_html
