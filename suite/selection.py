"""What the command line selects: names and globs, ``-k``, ``--tag``,
``--failed``; and the other choices that shape a plan (``--repeat``,
``--incremental``, ``-D``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from run_testsuite.discovery import Found
from run_testsuite.history import HistoryView
from run_testsuite.plan import NothingSelected, UsageError


def pattern_kinds(found: list[Found], patterns: list[str]) -> dict[str, str]:
    """How each pattern is read (see ``_kind``), once for the whole run:
    choosing testcases and then their variants must read it alike."""
    names = [item.name for item in found]
    return {p: _kind(p, names) for p in patterns}


def select(found: list[Found], patterns: list[str], kinds: dict[str, str]) -> list[Found]:
    """Testcases whose name starts with, or matches the glob of, a pattern
    (see ``_matches``; ``kinds`` from ``pattern_kinds``)."""
    if not patterns:
        return found
    chosen = []
    unmatched = set(patterns)
    for item in found:
        matching = [p for p in patterns if _matches(item.name, p, kinds[p])]
        if matching:
            chosen.append(item)
            unmatched.difference_update(matching)
    if unmatched and chosen:  # a typo beside good names: a usage error
        raise UsageError("no testcase matches " + ", ".join(repr(p) for p in sorted(unmatched)))
    return chosen


def _kind(pattern: str, names: list[str]) -> str:
    """How a pattern is read, as results show names first: 'literal' (a
    testcase or directory of that very name, `br[1]`, that a glob would
    read otherwise), 'variant' (variants of a testcase, `m[opt=O2]`,
    `t#2`), else 'glob' or 'prefix' (`a` is `a`, `a/x` and `ab`)."""
    bare = pattern.rstrip("/")
    globbing = any(c in pattern for c in "*?[")
    if globbing and any(name == bare or name.startswith(bare + "/") for name in names):
        return "literal"
    if any(_names_variant(name, pattern) for name in names):
        return "variant"
    return "glob" if globbing else "prefix"


def _matches(name: str, pattern: str, kind: str) -> bool:
    """A literal name selects that testcase and those below it; a variant
    name its testcase (its variants are chosen later, ``variant_wanted``); a
    glob matches whole names; a plain name is a prefix, and one ending in
    '/' (as shells complete directories) names that directory only."""
    bare = pattern.rstrip("/")
    if kind == "literal":
        return name == bare or name.startswith(bare + "/")
    if kind == "variant":
        return _names_variant(name, pattern)
    if kind == "glob":
        return fnmatch.fnmatchcase(name, bare)
    if pattern.endswith("/"):
        return name == bare or name.startswith(pattern)
    return name.startswith(pattern)


def _names_variant(name: str, pattern: str) -> bool:
    return pattern.startswith(name + "[") or pattern.startswith(name + "#")


def variants_named(name: str, patterns: list[str], kinds: dict[str, str]) -> list[str] | None:
    """The patterns that select only some variants of testcase ``name``
    (`m[opt=O0]`), or None when one selects it whole."""
    named = []
    for pattern in patterns:
        if kinds[pattern] == "variant" and _names_variant(name, pattern):
            named.append(pattern)
        elif _matches(name, pattern, kinds[pattern]):
            return None
    return named or None


def variant_wanted(full_name: str, named: list[str] | None) -> bool:
    """Whether the variant ``full_name`` (`m[opt=O0]#2`) is one of those
    ``named``: a name with a repetition (`m#2`) only that one; a whole
    variant name (`m[opt=O0]`) every repetition of it; a part of one
    (`m[opt=O`) every variant it starts."""
    return named is None or any(_variant_matches(full_name, pattern) for pattern in named)


def _variant_matches(full_name: str, pattern: str) -> bool:
    if "#" in pattern:
        return full_name == pattern
    if pattern.endswith("]"):
        return full_name == pattern or full_name.startswith(pattern + "#")
    return full_name.startswith(pattern)


def unmatched_variants(kinds: dict[str, str], kept: list[str]) -> list[str]:
    """Variant names (`m[opt=O9]`) that named a testcase but none of its
    variants: a typo, as an unknown testcase name is."""
    return [p for p, kind in kinds.items() if kind == "variant" and not any(_variant_matches(k, p) for k in kept)]


@dataclass
class Selection:
    """What the command line asks to run, beyond the suite itself."""

    patterns: list[str] = field(default_factory=list)
    keyword: str | None = None  # -k
    tags: list[str] = field(default_factory=list)  # --tag, any of them
    failed_only: bool = False  # --failed
    incremental: bool = False  # --incremental
    repeat: int = 1  # --repeat
    params: dict[str, str] = field(default_factory=dict)  # -D name=value
    sandbox: bool = False  # --sandbox: what `sandbox:` is where a spec does not say
    rewrite: bool = False  # --rewrite: a missing baseline is made, not an error
    # What a driver may split a testcase into (GoogleTest shards): -j, and
    # on one machine no more than its CPUs (2,000 CPU-bound tests took 16%
    # longer in 16 shards than in 2 on 2 CPUs, as shards contended).
    slots: int = 1
    # --shard: the testcases (variants' full names) this shard runs, or None.
    only: set[str] | None = None
    # Whether testcases' keys are made: a run records them, --incremental
    # and --explain read them; a plain --list needs none (at 100,000
    # testcases they cost 3.5 s of its 12).
    keys: bool = True


def keeper(selection: Selection, history: HistoryView | None) -> Callable[[str, list[str]], bool]:
    """The test of -k, --tag and --failed for one variant (name, tags)."""
    match = None
    if selection.keyword:
        from run_testsuite.keyword_expr import KeywordError, compile_keyword

        try:
            match = compile_keyword(selection.keyword)
        except KeywordError as exc:
            raise UsageError(f"-k: {exc}") from None
    wanted_tags = set(selection.tags)

    def keep(name: str, tags: list[str]) -> bool:
        if match is not None and not match(name, tags):
            return False
        if wanted_tags and not wanted_tags.intersection(tags):
            return False
        # --failed: what did not pass last time.
        return not selection.failed_only or (history is not None and history.did_not_pass(name))

    return keep


def nothing_selected(
    selection: Selection, found: int, root: str, recorded: bool = True, misnamed: list[str] | None = None
) -> NothingSelected:
    """What to say when ``selection`` holds no testcase of the ``found``;
    ``recorded``: whether history holds any earlier verdict; ``misnamed``:
    spec files by a name that is not read."""
    if not found:
        hint = f"; {misnamed[0]} is not read: rename it test.yaml" if misnamed else ""
        return NothingSelected(f"no testcase in {root} (no directory below it holds a test.yaml){hint}")
    if selection.failed_only and not recorded:
        # Not "nothing failed": a misspelt -o in CI would pass in silence.
        return NothingSelected(
            "--failed: no earlier run is recorded in this output directory's history, so nothing is known to have "
            "failed (is -o the output directory of the run to repeat?)"
        )
    if selection.failed_only and not (selection.patterns or selection.keyword or selection.tags):
        return NothingSelected("--failed: nothing to run again, nothing failed last time", exit_status=0)
    parts = []
    if selection.patterns:
        parts.append("names " + ", ".join(repr(p) for p in selection.patterns))
    if selection.keyword:
        parts.append(f"-k {selection.keyword!r}")
    if selection.tags:
        parts.append(" or ".join(f"--tag {t!r}" for t in selection.tags))
    if selection.failed_only:
        parts.append("--failed")
    return NothingSelected(
        f"no testcase selected by {' and '.join(parts)} (of {found} testcase director{'y' if found == 1 else 'ies'} in {root})"
    )
