"""Compare two runs' indexes: what broke, what got fixed, what changed.

The point is the question a developer asks after a change: "did I break
anything?". Statuses fall in three groups:

    good  PASS, XFAIL         the outcome the testcase expects
    bad   FAIL, ERROR         the run exits 1 for these
    XPASS                     passed where a failure was expected: the
                              expectation is stale, which someone must look at
    SKIP                      not run: says nothing about the testcase itself

and a testcase present in both runs is classified by (old, new):

    regression     good or XPASS -> bad, and good -> XPASS (of a testcase
                   quarantined as flaky: listed apart, not counted)
    fix            bad -> good or XPASS
    still failing  bad -> bad (FAIL -> ERROR too: both statuses are shown)
    changed        any other change of status, e.g. PASS -> SKIP because a
                   dependency broke (that dependency is the regression),
                   or SKIP -> FAIL (never known to pass, so no regression)

Each testcase of the new run is compared with its latest earlier verdict:
its result in the old run, or, where the old run has none that says
anything (it was not selected, or only skipped because that run was
interrupted or stopped at its failure limit), the ``previous`` verdict the
new run's index carries from history. So a partial run (``-k``, a Ctrl-C)
hides nothing of the full run before it.

A new result that is itself such a skip, or a run's stop (reason
INTERRUPTED or MAX_FAILURES), says nothing of the testcase: it is "not
run", never a regression. Testcases with no earlier verdict are new;
testcases of the old run absent from the new one are removed only when the
new run's selection was the whole suite (its index is not ``partial``), and
never set-ups, which run only when a testcase needs them. A testcase the old
run only skipped, with no verdict in history, was skipped then, not new now.
Only regressions make ``run-testsuite report --compare`` exit 1: a new
testcase that fails has no history to regress from, and is shown as new.

Sub-results (the tests inside a testcase) of testcases in both runs are
compared the same way, by name: a GoogleTest test PASS -> FAIL inside a
binary that failed before too is a sub-result regression, and makes the
exit status 1; a new test that fails is shown apart, as a new testcase that fails is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from run_testsuite.results import Reason, Status

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.jsonio import Index, IndexEntry


GOOD = frozenset({Status.PASS, Status.XFAIL})
BAD = frozenset({Status.FAIL, Status.ERROR})
# Results the run, or a dependency, decided, not the testcase: neither a
# regression nor what the next run is measured from.
NOT_RUN = frozenset({Reason.INTERRUPTED.value, Reason.MAX_FAILURES.value, Reason.DEPENDENCY.value})


@dataclass
class Change:
    """One testcase in the comparison; ``old``/``new`` is None where absent."""

    name: str
    old: Status | None
    new: Status | None
    reason: str | None = None  # the new run's reason (the old one's if removed)
    message: str = ""


@dataclass
class SubChange:
    """A sub-result whose status changed, within a testcase in both runs."""

    testcase: str
    name: str
    old: Status | None  # None: the old run's testcase did not have it
    new: Status
    message: str = ""


@dataclass
class Comparison:
    regressions: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    still_failing: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    new: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    not_run: list[Change] = field(default_factory=list)  # interrupted, or stopped
    unchanged: int = 0
    unselected: int = 0  # in the old run, not in the new one's narrowed selection (or set-ups not needed)
    # Sub-results (TAP points, GoogleTest tests) that broke or were fixed,
    # inside testcases of both runs: a FAIL -> FAIL binary may hide a new
    # failing test, which is a regression all the same.
    sub_regressions: list[SubChange] = field(default_factory=list)
    sub_fixes: list[SubChange] = field(default_factory=list)
    sub_new_failing: list[SubChange] = field(default_factory=list)
    # Regressions of quarantined testcases: said, and not counted.
    quarantined: list[Change] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(self.regressions or self.sub_regressions)


def classify(old: Status, new: Status) -> str | None:
    """The name of the ``Comparison`` list a (old, new) pair belongs in;
    None when nothing changed."""
    if new in BAD:
        if old in BAD:
            return "still_failing"
        return "regressions" if old in GOOD or old is Status.XPASS else "changed"
    if old in BAD:
        return "fixes" if new in GOOD or new is Status.XPASS else "changed"
    if new is Status.XPASS and old in GOOD:
        return "regressions"
    return None if old is new else "changed"


def compare(old: Index, new: Index, old_dir: str | None = None, new_dir: str | None = None) -> Comparison:
    """Compare two indexes (as ``jsonio.read_index`` returns them); ``old``
    may be empty, to compare with history alone. With the directories the
    indexes lie in, sub-results are compared too (see ``compare_subresults``)."""
    before = _by_name(old)
    after = _by_name(new)
    result = Comparison()
    for name, entry in after.items():
        status = Status(entry["status"])
        if entry.get("reason") in NOT_RUN:
            result.not_run.append(_change(name, earlier(before.get(name), entry), status, entry))
            continue
        previous = earlier(before.get(name), entry)
        if previous is None and name in before:
            # In the old run with nothing but a skip of it, and no verdict
            # in history: skipped then, not new now.
            previous = Status.SKIP
        if previous is None:
            result.new.append(_change(name, None, status, entry))
            continue
        kind = classify(previous, status)
        if kind == "regressions" and entry.get("quarantined"):
            kind = "quarantined"  # known flaky: shown, and not counted, as the run did not count it
        if kind is None:
            result.unchanged += 1
        else:
            getattr(result, kind).append(_change(name, previous, status, entry))
    partial = bool(new.get("partial"))
    for name, entry in before.items():
        if name not in after:
            # A set-up runs only when a testcase it serves runs: not needed
            # (its testcases all cached by --incremental) is not removed.
            if partial or entry.get("kind") == "setup":
                result.unselected += 1
            else:
                result.removed.append(_change(name, Status(entry["status"]), None, entry))
    if old_dir is not None and new_dir is not None:
        compare_subresults(before, after, old_dir, new_dir, result)
    for changes in (
        result.quarantined,
        result.regressions,
        result.fixes,
        result.still_failing,
        result.changed,
        result.new,
        result.removed,
        result.not_run,
    ):
        changes.sort(key=lambda change: change.name)
    return result


def compare_subresults(
    before: dict[str, IndexEntry], after: dict[str, IndexEntry], old_dir: str, new_dir: str, result: Comparison
) -> None:
    """Sub-result changes of the testcases run in both, judged as testcases
    are (``classify``). Result files are read only where a sub-result broke
    or was fixed: where either index names one that failed."""
    from run_testsuite.jsonio import read_result

    for name, entry in after.items():
        old_entry = before.get(name)
        if old_entry is None or "subresults" not in entry or "subresults" not in old_entry:
            continue
        if entry.get("reason") in NOT_RUN or old_entry.get("reason") in NOT_RUN:
            continue
        if not (entry["subresults"].get("notable") or old_entry["subresults"].get("notable")):
            continue  # nothing failed in either: nothing broke, nothing was fixed
        new_data = read_result(new_dir, entry["result"])
        old_data = read_result(old_dir, old_entry["result"])
        if new_data is None or old_data is None:
            continue
        was = {sub["name"]: Status(sub["status"]) for sub in old_data.get("subresults", ())}
        # TAP points are named "N - description", and a test inserted
        # before them renumbers them: a name not found is looked up by its
        # description, where that is unique in the old run.
        stable: dict[str, Status | None] = {}
        for old_name, old_status in was.items():
            key = _unnumbered(old_name)
            stable[key] = None if key in stable else old_status
        for sub in new_data.get("subresults", ()):
            status = Status(sub["status"])
            previous = was.get(sub["name"])
            if previous is None:
                previous = stable.get(_unnumbered(sub["name"]))
            if previous is None:
                if status in BAD:  # a new test that fails: no history to regress from
                    result.sub_new_failing.append(SubChange(name, sub["name"], None, status, sub.get("message", "")))
                continue
            kind = classify(previous, status)
            change = SubChange(name, sub["name"], previous, status, sub.get("message", ""))
            if kind == "regressions":
                result.sub_regressions.append(change)
            elif kind == "fixes":
                result.sub_fixes.append(change)


def _unnumbered(name: str) -> str:
    """``2 - parses dates`` -> ``parses dates``; other names as they are."""
    number, dash, rest = name.partition(" - ")
    return rest if dash and number.isdigit() else name


def sub_regressions_since(old_dir: str, new_dir: str, new: Index, before: dict[str, IndexEntry]) -> list[SubChange]:
    """The sub-result regressions of run ``new`` (in ``new_dir``) against the
    run in ``old_dir`` (``before``: its index as ``read_earlier`` reads it):
    what the terminal and the HTML report name beside history's changes."""
    comparison = Comparison()
    compare_subresults(before, _by_name(new), old_dir, new_dir, comparison)
    return sorted(comparison.sub_regressions, key=lambda change: (change.testcase, change.name))


def read_earlier_of(output_dir: str) -> dict[str, IndexEntry] | None:
    """Before a run turns ``OUTPUT/new`` into ``OUTPUT/old``: the run that
    will be its old one, as ``read_earlier`` reads it."""
    import os

    new = os.path.join(output_dir, "new")
    return read_earlier(new if os.path.lexists(new) else os.path.join(output_dir, "old"))


def read_earlier(index_dir: str | None) -> dict[str, IndexEntry] | None:
    """The run in ``index_dir`` as a later run's changes are measured from
    it: each testcase's status and reason by name, with the result file and
    summary of those that have sub-results. None when there is no index, or
    it cannot be read.

    Read a piece at a time (``json_stream``), each entry cut down as it is
    parsed, entries alike one dict: the whole index read as it is took
    100,000 results 60 MB, where this keeps 5 MB."""
    import os
    from sys import intern

    from run_testsuite.json_stream import read_object
    from run_testsuite.jsonio import INDEX_FILE

    if not index_dir:
        return None
    path = os.path.join(index_dir, INDEX_FILE)
    if not os.path.isfile(path):
        return None
    alike: dict[tuple, IndexEntry] = {}

    def cut(entry: object) -> tuple[str, IndexEntry]:
        if not isinstance(entry, dict):
            raise ValueError("malformed entry")
        name, status, rel = entry.get("name"), entry.get("status"), entry.get("result")
        if not isinstance(name, str) or not isinstance(rel, str):
            raise ValueError(f"malformed entry {json.dumps(entry)[:200]}")
        status = Status(status).value  # ValueError names the bad status
        reason = entry.get("reason")
        if entry.get("kind") == "setup":  # few: one dict each
            return intern(name), {"status": status, "reason": reason, "result": rel, "kind": "setup"}
        if "subresults" in entry:
            return intern(name), {"status": status, "reason": reason, "result": rel, "subresults": entry["subresults"]}
        found = alike.get((status, reason))
        if found is None:
            found = alike[(status, reason)] = {"status": status, "reason": reason}
        return intern(name), found

    try:
        with open(path, encoding="utf-8") as handle:
            index = read_object(handle, "results", cut)
    except (OSError, ValueError, TypeError):  # TypeError: a reason that is a list or a dict
        return None
    results = index.get("results")
    return dict(results) if isinstance(results, list) else None


def earlier(old_entry: IndexEntry | None, entry: IndexEntry) -> Status | None:
    """A testcase's latest earlier verdict: the old run's, if it is one,
    else the one history gave the new run."""
    if old_entry is not None and old_entry.get("reason") not in NOT_RUN and old_entry.get("reason") != "CONTROL":
        return Status(old_entry["status"])
    previous = entry.get("previous")
    return Status(previous["status"]) if previous else None


def _by_name(index: Index) -> dict[str, IndexEntry]:
    # A name appears once per run; were it not, the last result is the verdict.
    return {entry["name"]: entry for entry in index.get("results", [])}


def _change(name: str, old: Status | None, new: Status | None, entry: IndexEntry) -> Change:
    return Change(name, old, new, entry.get("reason"), (entry.get("message") or "").split("\n", 1)[0])


SECTIONS = (
    ("regressions", "Regressions"),
    ("quarantined", "Regressions of quarantined testcases (not counted)"),
    ("fixes", "Fixed"),
    ("still_failing", "Still failing"),
    ("changed", "Other changes"),
    ("new", "New testcases"),
    ("removed", "Removed testcases"),
    ("not_run", "Not run (the run was interrupted or stopped, or a dependency did not pass)"),
)


def render_text(comparison: Comparison, old_label: str = "old", new_label: str = "new") -> str:
    """A plain-text report, regressions first."""
    lines = [f"Comparing {old_label} -> {new_label}"]
    for attribute, title in SECTIONS:
        rows = []
        for change in getattr(comparison, attribute):
            text = change.name + (f" [{change.reason}]" if change.reason else "")
            if change.message and change.new is not None and change.new not in GOOD:
                text += f": {change.message}"
            rows.append((_transition(change), text))
        _section(lines, title, rows)
    for changes, title in (
        (comparison.sub_regressions, "Sub-result regressions"),
        (comparison.sub_fixes, "Sub-results fixed"),
        (comparison.sub_new_failing, "New sub-results that fail"),
    ):
        rows = []
        for sub in changes:
            text = f"{sub.testcase} :: {sub.name}"
            if sub.message and sub.new not in GOOD:
                text += f": {sub.message.splitlines()[0]}"
            rows.append((_sub_transition(sub), text))
        _section(lines, title, rows)
    lines.append("")
    lines.append(summary_line(comparison))
    return "\n".join(lines) + "\n"


def _section(lines: list[str], title: str, rows: list[tuple[str, str]]) -> None:
    """``Title (N):`` and a row per change, transitions aligned; nothing if none."""
    if not rows:
        return
    lines.append("")
    lines.append(f"{title} ({len(rows)}):")
    width = max(len(transition) for transition, _ in rows)
    lines.extend(f"  {transition:<{width}}  {text}" for transition, text in rows)


def _sub_transition(change: SubChange) -> str:
    return f"{change.old.value if change.old else 'new'} -> {change.new.value}"


def summary_line(comparison: Comparison) -> str:
    counts = [
        (len(comparison.regressions), "regression", "regressions"),
        (len(comparison.fixes), "fix", "fixes"),
        (len(comparison.still_failing), "still failing", "still failing"),
        (len(comparison.changed), "other change", "other changes"),
        (len(comparison.new), "new", "new"),
        (len(comparison.removed), "removed", "removed"),
        (len(comparison.not_run), "not run", "not run"),
        (comparison.unchanged, "unchanged", "unchanged"),
    ]
    if comparison.sub_regressions:
        counts.insert(1, (len(comparison.sub_regressions), "sub-result regression", "sub-result regressions"))
    if comparison.quarantined:
        counts.insert(1, (len(comparison.quarantined), "quarantined regression", "quarantined regressions"))
    if comparison.sub_fixes:
        counts.insert(-6, (len(comparison.sub_fixes), "sub-result fixed", "sub-results fixed"))
    text = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts if n or one != "not run")
    if comparison.unselected:
        text += f" ({comparison.unselected} of the old run not selected in the new one)"
    return text


def changes_line(comparison: Comparison, limit: int = 5) -> str | None:
    """One line for the terminal's summary: what changed since each
    testcase's latest earlier verdict, regressions named; None if nothing."""
    parts = []
    if comparison.regressions:
        named = ", ".join(c.name for c in comparison.regressions[:limit])
        more = f" and {len(comparison.regressions) - limit} more" if len(comparison.regressions) > limit else ""
        count = len(comparison.regressions)
        parts.append(f"{count} regression{'s' if count != 1 else ''} ({named}{more})")
    if comparison.fixes:
        parts.append(f"{len(comparison.fixes)} fixed")
    if comparison.still_failing:
        parts.append(f"{len(comparison.still_failing)} still failing")
    failing_new = [c for c in comparison.new if c.new in BAD]
    if failing_new:
        parts.append(f"{len(failing_new)} new failing")
    if comparison.sub_regressions:
        count = len(comparison.sub_regressions)
        named = ", ".join(f"{c.testcase} :: {c.name}" for c in comparison.sub_regressions[:limit])
        more = f" and {count - limit} more" if count > limit else ""
        parts.append(f"{count} sub-result regression{'s' if count != 1 else ''} ({named}{more})")
    if not parts:
        return None
    return "since the previous results: " + ", ".join(parts)


def _transition(change: Change) -> str:
    if change.old is None or change.new is None:
        return (change.new or change.old or Status.SKIP).value
    return f"{change.old.value} -> {change.new.value}"
