"""The ``diff`` driver: the combined output of the commands, refined, must match a baseline.

The final fragment carries the settings in ``fragment.data``:

``baseline``
    the expected-output file (absolute);
``baseline_mode``
    ``exact``: the refined output must equal the baseline byte for byte;
    ``regex``: each baseline line is a regular expression the same output
    line must match in full, and the line counts must agree;
``refine``
    the refinements (``drivers.refine.settings``), applied to the output only;

On a DIFF failure the worker writes the output as it was compared,
refined, to ``actual_path(fragment)`` (``OUTPUT/new/actual/<safe-name>.out``,
beside ``OUTPUT/new/logs``, derived from ``log_stem`` where it is needed:
kept in every fragment's data, the path cost 100,000 testcases 11 MB), so
that ``--rewrite`` can make it the baseline with ``rewrite_baseline``.
Nothing is written otherwise.
"""

from __future__ import annotations

import difflib
import glob
import itertools
import os
import re
import shlex
from collections.abc import Callable, Iterable

from run_testsuite.drivers.base import Driver, Testcase
from run_testsuite.drivers.refine import TEXT_LIMIT, Refiner, normalise_line_endings, settings
from run_testsuite.fragment import Fragment
from run_testsuite.results import Outcome, Reason, Status

# Outputs larger than this are compared in chunks, and the failure names the
# first differing byte instead of printing a diff nobody would read.
DIFF_LIMIT = 1 << 20
# A unified diff longer than this many lines is cut in the result.
DIFF_MAX_LINES = 400
BLOCK = 1 << 16

# What a comparison leaves for --rewrite: a way to produce the compared
# output again (block by block, so a large one need not stay in memory).
Actual = Callable[[], Iterable[bytes]] | None


class DiffDriver(Driver):
    """Run the commands, then compare stdout+stderr of all steps with the baseline."""

    def fragments(self, test: Testcase) -> list[Fragment]:
        fragments = super().fragments(test)
        baseline_name = baseline_of(test)
        baseline = os.path.normpath(os.path.join(test.source_dir, baseline_name))
        # Lexical, not resolved: a testcase reached through a symlinked
        # directory is inside the suite, while '../../etc/passwd' is not.
        if not _inside(baseline, os.path.normpath(test.suite_root)):
            test.error(f"baseline '{baseline_name}' is outside the suite directory", ["baseline"])
        linked_out = link_out_of(baseline, (test.suite_root, test.source_dir))
        if linked_out:
            test.error(
                f"baseline '{baseline_name}' is a link out of the suite directory (to {linked_out})", ["baseline"]
            )
        data = fragments[-1].data
        if not os.path.lexists(baseline) and test.rewrite:
            data["missing"] = baseline_name  # the run fails on it, and --rewrite makes it
        elif not os.path.isfile(baseline):
            test.error(
                f"baseline '{baseline_name}'{_for_variant(test)} does not exist (expected {baseline});"
                f" `{_rewrite_command(test)}` creates it from a run",
                ["baseline"],
            )
        elif not os.access(baseline, os.R_OK):
            test.error(f"baseline '{baseline_name}' is not readable", ["baseline"])
        data["baseline"] = baseline
        data["inside"] = (test.suite_root, test.source_dir)  # where --rewrite may write
        data["refine"] = settings(test)
        data["baseline_mode"] = test.spec.get("baseline_mode", "exact")
        if data["baseline_mode"] == "regex" and "missing" not in data:
            try:  # a bad pattern is the spec's error, found before anything runs
                baseline_patterns(baseline, data["refine"]["line_endings"])
            except BaselineError as exc:
                from run_testsuite.spec import SpecError

                raise SpecError(exc.path, [exc.problem]) from None
        self.combine_output(fragments)
        return fragments

    def private_files(self, test: Testcase) -> list[str]:
        # Commands never see their own expected output, nor that of the
        # testcase's other variants (``expected-${opt}.out``: every file
        # that pattern can name).
        own = [*super().private_files(test), baseline_of(test)]
        pattern = test.spec.get("baseline", "test.out")
        if "$" in pattern:
            own += _every_variants_baseline(test, pattern)
        return own

    def check(self, fragment: Fragment, ctx) -> Outcome:
        if not fragment.final:
            return Outcome(Status.PASS)
        data = fragment.data
        refiner = Refiner(data.get("refine", {}), fragment.work_dir, fragment.source_dir)
        compare_as = compare_regex if data.get("baseline_mode") == "regex" else compare
        if data.get("missing"):
            return _no_baseline_yet(data, actual_path(fragment), ctx.output_sources(), refiner)
        try:
            outcome, actual = compare_as(data["baseline"], ctx.output_sources(), refiner)
        except BaselineError as exc:  # the baseline changed since the run was planned
            return Outcome(Status.ERROR, Reason.SPEC, str(exc))
        if outcome.status is Status.FAIL and outcome.reason is Reason.DIFF and actual:
            write_blocks(actual_path(fragment), actual())
        return outcome

    def rewrite(self, fragment: Fragment) -> str | None:
        """``--rewrite``: the output compared by the failed run (saved at
        ``actual_path``) becomes the baseline."""
        actual, baseline = actual_path(fragment), fragment.data.get("baseline")
        if not (actual and baseline):
            return None
        # Checked again now: a test may have replaced its baseline with a link.
        linked_out = link_out_of(baseline, tuple(fragment.data.get("inside", ())))
        if linked_out:
            raise ValueError(f"{baseline} is a link out of the suite (to {linked_out}): not written through")
        if fragment.data.get("baseline_mode") == "regex":
            line_endings = bool(fragment.data.get("refine", {}).get("line_endings"))
            return baseline if rewrite_regex_baseline(actual, baseline, line_endings) else None
        return baseline if rewrite_baseline(actual, baseline) else None


def _every_variants_baseline(test: Testcase, pattern: str) -> list[str]:
    """The files ``pattern`` names for each value of the matrix keys it uses
    and any value of the parameters it uses (`-D` may give another): those,
    never a file that merely looks alike (`${opt}.txt` must not hide
    `data.txt`)."""
    from run_testsuite.variants import as_text

    used = [m.group(1) or m.group(2) for m in _VALUE.finditer(pattern)]
    keys = [key for key in dict.fromkeys(used) if key in test.matrix]
    any_value = {key: "\0" for key in used if key and key not in test.matrix}
    names = []
    for combo in itertools.product(*(test.matrix[key] for key in keys)):
        values = {**any_value, **{key: as_text(value) for key, value in zip(keys, combo)}}
        name = _expand(pattern, values)
        if "\0" not in name:
            names.append(name)
            continue
        wildcard = glob.escape(name).replace("\0", "*")
        found = glob.glob(os.path.join(glob.escape(test.source_dir), wildcard))
        names += [os.path.relpath(path, test.source_dir) for path in found]
    return names


def _expand(pattern: str, values: dict[str, str]) -> str:
    """``pattern`` with ``${name}``/``$name`` replaced, ``$$`` a literal ``$``
    (names not in ``values`` are left for the caller to refuse)."""
    return _VALUE.sub(
        lambda m: "$" if m.group(0) == "$$" else values.get(m.group(1) or m.group(2), m.group(0)), pattern
    )


def baseline_of(test: Testcase) -> str:
    """The baseline's file name: ``baseline`` (default test.out) with
    ``${name}`` replaced by the variant's matrix value or the suite
    parameter of that name, so each variant may keep its own."""
    name = test.spec.get("baseline", "test.out")
    if "$" not in name:
        return name
    values = test.values()

    for match in _VALUE.finditer(name):
        key = match.group(1) or match.group(2)
        if key and key not in values:
            known = ", ".join(sorted(values)) or "none"
            test.error(
                f"baseline '{name}': no matrix value or parameter '{key}' (known: {known}; $$ is a literal $)",
                ["baseline"],
            )
    return _expand(name, values)


# ${name} or $name; $$ for a literal $.
_VALUE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _rewrite_command(test: Testcase) -> str:
    """The command that makes this testcase's baseline: its suite, its name,
    and the -D values its baseline's name uses."""
    # A repetition's baseline is the testcase's: `t#2` names it only with --repeat.
    words = ["run-testsuite", test.suite_root, re.sub(r"#\d+$", "", test.name)]
    pattern = test.spec.get("baseline", "test.out")
    variant = test.spec.get("variant", {})
    for match in _VALUE.finditer(pattern):
        key = match.group(1) or match.group(2)
        if key and key in test.params and key not in variant:
            words += ["-D", f"{key}={test.params[key]}"]
    return " ".join(shlex.quote(word) for word in [*words, "--rewrite"])


def _for_variant(test: Testcase) -> str:
    """`` (from 'expected-${opt}.out', for opt=O2)`` when it was expanded."""
    spec_name = test.spec.get("baseline", "test.out")
    if "$" not in spec_name:
        return ""
    from run_testsuite.variants import as_text

    variant = ", ".join(f"{k}={as_text(v)}" for k, v in test.spec.get("variant", {}).items())
    return f" (from '{spec_name}'{', for ' + variant if variant else ''})"


def actual_path(fragment: Fragment) -> str:
    """Where a failed comparison leaves the output it compared."""
    logs, name = os.path.split(fragment.log_stem)
    return os.path.normpath(os.path.join(logs, os.pardir, "actual", name + ".out"))


def _no_baseline_yet(data: dict, actual: str, sources: list[str | bytes], refiner: Refiner) -> Outcome:
    """--rewrite and no baseline: the refined output is what it will hold."""
    if refiner.needs_memory:
        write_blocks(actual, [refiner.apply(b"".join(_blocks(sources)))])
    else:
        write_blocks(actual, refiner.stream(_blocks(sources)))
    return Outcome(Status.FAIL, Reason.DIFF, f"baseline '{data['missing']}' does not exist yet: --rewrite creates it")


def rewrite_baseline(actual_path: str, baseline_path: str) -> bool:
    """Make the baseline hold the output a failed run compared (``--rewrite``).

    Returns whether the baseline changed. Without an actual-output file
    (the testcase did not fail on its output) nothing is written and the
    answer is False. The baseline is written in place, so its permissions
    stay and a symbolic link updates the file it points to.
    """
    if not os.path.isfile(actual_path):
        return False
    if os.path.isfile(baseline_path) and _first_difference(_blocks([actual_path]), _blocks([baseline_path])) is None:
        return False
    write_blocks(baseline_path, _blocks([actual_path]))
    return True


def rewrite_regex_baseline(actual_path: str, baseline_path: str, line_endings: bool = False) -> bool:
    """``--rewrite`` of a ``baseline_mode: regex`` baseline: each pattern
    that matched its line of the output stays as written (``pid \\d+`` is
    not turned into one pid), and each other line of the output becomes a
    pattern matching it literally (``f(x) = [1+2]`` would not match
    itself). Lines are paired by position, as ``compare_regex``
    pairs them, so the next run passes. Returns whether the file changed."""
    if not os.path.isfile(actual_path):
        return False
    patterns = baseline_patterns(baseline_path, line_endings) if os.path.isfile(baseline_path) else []
    lines = _lines(b"".join(_blocks([actual_path])))
    kept = [
        patterns[number].pattern if number < len(patterns) and patterns[number].fullmatch(line) else _literal(line)
        for number, line in enumerate(lines)
    ]
    text = "".join(line + "\n" for line in kept).encode("utf-8", "surrogateescape")
    if os.path.isfile(baseline_path) and _first_difference([text], _blocks([baseline_path])) is None:
        return False
    write_blocks(baseline_path, [text])
    return True


_SPECIAL = re.compile(r"[.^$*+?{}\[\]\\|()]")


def _literal(line: str) -> str:
    """A pattern matching ``line`` only: its metacharacters escaped, and
    nothing else (``re.escape`` escapes spaces too, for readers to wade through)."""
    return _SPECIAL.sub(r"\\\g<0>", line)


# -- exact comparison -----------------------------------------------------------------
def compare(baseline: str, sources: list[str | bytes], refiner: Refiner | None = None) -> tuple[Outcome, Actual]:
    """PASS when the refined output equals the baseline byte for byte.

    Small outputs, and those a refinement needs whole, are compared in
    memory with a unified diff on failure; larger ones in blocks, with
    memory bounded, naming the first differing byte.
    """
    refiner = refiner or Refiner({"work_dir": False})
    try:
        expected_size = os.path.getsize(baseline)
    except OSError as exc:
        return Outcome(Status.ERROR, Reason.SPEC, f"cannot read baseline: {exc}"), None
    actual_size = sum(_size(s) for s in sources)
    actual_blocks: Callable[[], Iterable[bytes]]
    if refiner.needs_memory or actual_size <= DIFF_LIMIT:
        if actual_size > TEXT_LIMIT:
            return _too_large(actual_size), None
        actual = refiner.apply(b"".join(_blocks(sources)))
        actual_blocks = lambda: [actual]  # noqa: E731
    else:
        actual = None
        actual_blocks = lambda: refiner.stream(_blocks(sources))  # noqa: E731
    expected = None
    if refiner.line_endings or expected_size <= DIFF_LIMIT:
        expected = refiner.baseline(_read(baseline))
    if actual is not None and expected is not None:
        if actual == expected:
            return Outcome(Status.PASS), None
        if len(actual) <= DIFF_LIMIT and len(expected) <= DIFF_LIMIT:
            diff = unified_diff(expected, actual, os.path.basename(baseline))
            return Outcome(Status.FAIL, Reason.DIFF, "output differs from the baseline", diff=diff), actual_blocks
    at = _first_difference([expected] if expected is not None else _blocks([baseline]), actual_blocks())
    if at is None:
        return Outcome(Status.PASS), None
    sizes = (
        len(actual) if actual is not None else actual_size,
        len(expected) if expected is not None else expected_size,
    )
    return _large_diff(at, *sizes), actual_blocks


# -- regex comparison -----------------------------------------------------------------
class BaselineError(ValueError):
    """A baseline line that is not a valid regular expression, located like a
    spec error (``file:line:col: message``). Not ``run_testsuite.spec.SpecError``:
    workers need not import YAML to report it."""

    def __init__(self, path: str, line: int, column: int, message: str):
        self.path, self.problem = path, (line, column, message)
        super().__init__(f"{path}:{line}:{column}: {message}")


def baseline_patterns(baseline: str, line_endings: bool = False) -> list[re.Pattern]:
    """The baseline's lines as regular expressions; BaselineError for the
    first one Python cannot compile."""
    text = _read(baseline)
    if line_endings:
        text = normalise_line_endings(text)
    patterns = []
    for number, line in enumerate(_lines(text), start=1):
        try:
            patterns.append(re.compile(line))
        except re.error as exc:
            column = (exc.pos or 0) + 1
            raise BaselineError(baseline, number, column, f"invalid regular expression: {exc.msg}") from None
    return patterns


def compare_regex(baseline: str, sources: list[str | bytes], refiner: Refiner | None = None) -> tuple[Outcome, Actual]:
    """PASS when each refined output line matches its baseline line in full.

    On failure the message names the first line that does not match, with
    its pattern and what was printed; the unified diff shows the output
    against the baseline with every line that did match shown as printed,
    so only the real differences stand out.
    """
    refiner = refiner or Refiner({"work_dir": False})
    patterns = baseline_patterns(baseline, refiner.line_endings)
    actual_size = sum(_size(s) for s in sources)
    if actual_size > TEXT_LIMIT:
        return _too_large(actual_size), None
    actual = refiner.apply(b"".join(_blocks(sources)))
    lines = _lines(actual)
    shown, first = [], None
    for number, (pattern, line) in enumerate(zip(patterns, lines), start=1):
        if pattern.fullmatch(line):
            shown.append(line)
        else:
            shown.append(pattern.pattern)
            first = first or number
    shown += [pattern.pattern for pattern in patterns[len(lines) :]]
    name = os.path.basename(baseline)
    if first is None and len(lines) == len(patterns):
        return Outcome(Status.PASS), None
    if first is not None:
        message = (
            f"output line {first} does not match {name}:{first}\n"
            f"  pattern: {_show(patterns[first - 1].pattern)}\n"
            f"  actual:  {_show(lines[first - 1])}"
        )
    elif len(lines) < len(patterns):
        number = len(lines) + 1
        message = (
            f"output has {len(lines)} lines, {name} {len(patterns)}: line {number} is missing\n"
            f"  pattern: {_show(patterns[number - 1].pattern)}"
        )
    else:
        number = len(patterns) + 1
        message = (
            f"output has {len(lines)} lines, {name} {len(patterns)}: line {number} is extra\n"
            f"  actual:  {_show(lines[number - 1])}"
        )
    expected = "".join(line + "\n" for line in shown).encode("utf-8", "surrogateescape")
    diff = unified_diff(expected, actual, f"{name}, matching lines as printed")
    return Outcome(Status.FAIL, Reason.DIFF, message, diff=diff), lambda: [actual]


def _lines(data: bytes) -> list[str]:
    """The lines of ``data`` without their ends; a last line needs none."""
    text = data.decode("utf-8", "surrogateescape")
    if not text:
        return []
    return (text[:-1] if text.endswith("\n") else text).split("\n")


def _show(text: str) -> str:
    """A line fit for a message: bytes that were not UTF-8 as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# -- helpers --------------------------------------------------------------------------
def link_out_of(path: str, roots: tuple[str, ...]) -> str | None:
    """Where ``path`` leads when it is a link (or lies below one) leading out
    of every one of ``roots`` (each taken resolved too); else None.

    Only links below the last root (the testcase directory) are looked for:
    those above it are the suite's own (a testcase reached through a linked
    directory). Usually that is one lstat, where resolving the whole path
    cost seven (0.4 s of planning 10,000 testcases)."""
    below = roots[-1] if roots else os.sep
    at = path
    while at != below and os.path.dirname(at) != at and not os.path.islink(at):
        at = os.path.dirname(at)
    if at == below or os.path.dirname(at) == at:
        return None  # no link on the way
    real = os.path.realpath(path)
    for root in roots:
        if _inside(real, os.path.realpath(root)) or _inside(real, os.path.normpath(root)):
            return None
    return real


def _inside(path: str, root: str) -> bool:
    """Whether the normalised ``path`` lies under ``root``."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _size(source: str | bytes) -> int:
    if isinstance(source, bytes):
        return len(source)
    return os.path.getsize(source) if os.path.exists(source) else 0


def unified_diff(expected: bytes, actual: bytes, label: str) -> str:
    # backslashreplace: bytes that are not UTF-8 show as \xff, so two
    # outputs that differ only there still show where.
    old = expected.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    new = actual.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, f"{label} (expected)", "output (actual)"))
    if len(lines) > DIFF_MAX_LINES:
        cut = len(lines) - DIFF_MAX_LINES
        lines = lines[:DIFF_MAX_LINES] + [f"[... {cut} more diff lines cut ...]\n"]
    # A line without its newline would glue itself to the next one.
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""


def _blocks(sources: list[str | bytes], size: int = BLOCK):
    for source in sources:
        if isinstance(source, bytes):
            for at in range(0, len(source), size):
                yield source[at : at + size]
        elif os.path.exists(source):
            with open(source, "rb") as handle:
                while block := handle.read(size):
                    yield block


def _first_difference(left: Iterable[bytes], right: Iterable[bytes]) -> int | None:
    """The offset of the first byte where two streams of blocks differ (one
    ending first differs where it ends), or None when they are equal."""
    left, right = (b for b in left if b), (b for b in right if b)
    a = b = b""
    offset = 0
    while True:
        a = a or next(left, b"")
        b = b or next(right, b"")
        if not a or not b:
            return None if a == b else offset
        n = min(len(a), len(b))
        if a[:n] != b[:n]:
            return offset + next(i for i in range(n) if a[i] != b[i])
        offset, a, b = offset + n, a[n:], b[n:]


def write_blocks(path: str, blocks: Iterable[bytes]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as handle:
        for block in blocks:
            handle.write(block)


def _large_diff(at: int, actual_size: int, expected_size: int) -> Outcome:
    return Outcome(
        Status.FAIL,
        Reason.DIFF,
        f"output differs from the baseline at byte {at} "
        f"(output {actual_size} bytes, baseline {expected_size} bytes; too large to diff)",
    )


def _too_large(actual_size: int) -> Outcome:
    return Outcome(
        Status.FAIL,
        Reason.DIFF,
        f"output of {actual_size} bytes is too large to refine (limit {TEXT_LIMIT} bytes): "
        "line_endings, substitute, sort and baseline_mode regex need it in memory",
    )
