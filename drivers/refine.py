"""Refinements: what the diff driver does to the output before comparing it.

Output often holds things that change from run to run without being wrong:
the directory it ran in, timestamps, durations, CRLF from a Windows tool,
lines of parallel work in any order. Refinements turn these into something
stable, so the baseline can say what matters. They rewrite the *output*
only: the baseline already is what the output must become, and is compared
as written (except that ``line_endings`` normalises both sides, since an
editor may have changed the baseline's).

In order, where each applies:

1. ``line_endings: true``: CRLF and lone CR become LF;
2. ``work_dir`` (default on): the working directory's path, and its real
   path, become ``<WORK_DIR>``; the testcase's source directory (and its
   real path) ``<SOURCE_DIR>``. A path is replaced only where it ends a file
   name, so ``/w/t`` is left alone in ``/w/t2`` or ``/w/t.d``;
3. ``substitute``: regular expressions, in order (``^`` and ``$`` match at
   every line);
4. ``sort: true``: the lines, sorted by code point (``LC_ALL=C sort``).

Everything works on bytes and keeps them where nothing matched: output that
is not UTF-8 is decoded with ``surrogateescape`` for the substitutions and
encoded back the same way. The path tokens alone never need the whole
output at once (``stream``), so default refinement keeps a large output's
comparison in bounded memory; the others hold it in memory, up to
``TEXT_LIMIT`` bytes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator

WORK_DIR_TOKEN = "<WORK_DIR>"
SOURCE_DIR_TOKEN = "<SOURCE_DIR>"
# Output larger than this is not read into memory to be refined: a runaway
# command must FAIL, not exhaust the worker's memory.
TEXT_LIMIT = 256 << 20
# A path followed by one of these (or by '.' and one of these) continues
# into a longer name: the sibling testcase 'a2' of 'a', a file 'a.d'.
_NAME_GOES_ON = rb"(?![\w~-]|\.[\w~-])"


_DEFAULTS = {"substitute": [], "work_dir": True, "line_endings": False, "sort": False}


def settings(test) -> dict:
    """The testcase's ``refine`` key as plain data for the fragment.

    Runs in the main process, so a pattern Python cannot compile, or a
    replacement naming a group the pattern lacks, is the spec's error
    (located at that key) before anything runs.
    """
    refine = test.spec.get("refine")
    if not refine:
        return _DEFAULTS  # shared, never changed: 24 MB at 100,000 testcases
    substitute = []
    for number, item in enumerate(refine.get("substitute", ())):
        where = ["refine", "substitute", number]
        try:
            pattern = re.compile(item["pattern"], re.MULTILINE)
        except re.error as exc:
            test.error(f"invalid regular expression: {exc}", [*where, "pattern"])
        try:
            pattern.sub(item["replace"], "")  # parses the replacement, group references included
        except (re.error, IndexError) as exc:
            test.error(f"invalid replacement: {exc}", [*where, "replace"])
        substitute.append((item["pattern"], item["replace"]))
    return {
        "substitute": substitute,
        "work_dir": refine.get("work_dir", True),
        "line_endings": refine.get("line_endings", False),
        "sort": refine.get("sort", False),
    }


class Refiner:
    """A fragment's refinements, ready to apply wherever it runs.

    Real paths are resolved here rather than in the main process: they are
    those of the machine running the commands.
    """

    def __init__(self, settings: dict, work_dir: str = "", source_dir: str = ""):
        self.substitute = [(re.compile(p, re.MULTILINE), r) for p, r in settings.get("substitute", ())]
        self.line_endings = settings.get("line_endings", False)
        self.sort = settings.get("sort", False)
        self.tokens: dict[bytes, bytes] = {}
        if settings.get("work_dir", True):
            for path, token in ((work_dir, WORK_DIR_TOKEN), (source_dir, SOURCE_DIR_TOKEN)):
                for form in (path, _realpath(path)) if path else ():
                    self.tokens.setdefault(os.fsencode(form.rstrip(os.sep) or os.sep), token.encode())
        self._paths: re.Pattern | None = None
        self._reach = max(map(len, self.tokens), default=0) + 2  # a match and its look-ahead

    @property
    def paths(self) -> re.Pattern | None:
        """The paths to replace, as one expression; compiled when first
        needed, since most outputs hold no path and a compilation costs as
        much as running a small command."""
        if self._paths is None and self.tokens:
            # Longest first: a work directory inside the source directory
            # (an output directory inside the suite) gets its own token.
            alternatives = b"|".join(re.escape(p) for p in sorted(self.tokens, key=len, reverse=True))
            self._paths = re.compile(b"(?:" + alternatives + b")" + _NAME_GOES_ON)
        return self._paths

    @property
    def needs_memory(self) -> bool:
        """Whether refining needs the whole output at once."""
        return bool(self.substitute or self.sort or self.line_endings)

    def apply(self, data: bytes) -> bytes:
        """The refined output."""
        if self.line_endings:
            data = normalise_line_endings(data)
        # The expression is compiled only when the output holds a path:
        # compiling it costs as much as running a small command.
        if any(path in data for path in self.tokens):
            paths = self.paths
            if paths is not None:
                data = paths.sub(self._token, data)
        if self.substitute:
            text = data.decode("utf-8", "surrogateescape")
            for pattern, replace in self.substitute:
                text = pattern.sub(replace, text)
            data = text.encode("utf-8", "surrogateescape")
        if self.sort:
            body, end = (data[:-1], b"\n") if data.endswith(b"\n") else (data, b"")
            data = b"\n".join(sorted(body.split(b"\n"))) + end
        return data

    def stream(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """The refined output block by block, for refiners that do not need
        memory: only the path tokens, in memory bounded by a block and the
        longest path. A block's tail that a path could still start in is
        held back until the next block shows how it goes on."""
        assert not self.needs_memory
        if self.paths is None:
            yield from blocks
            return
        pending = b""
        for block in blocks:
            pending += block
            # A match starting before `safe` is decided by the bytes at hand.
            safe = len(pending) - self._reach
            if safe <= 0:
                continue
            parts, done = [], 0
            for match in self.paths.finditer(pending):
                if match.start() >= safe:
                    break
                parts += [pending[done : match.start()], self.tokens[match.group()]]
                done = match.end()
            keep = max(done, safe)
            parts.append(pending[done:keep])
            yield b"".join(parts)
            pending = pending[keep:]
        if pending:
            yield self.paths.sub(self._token, pending)

    def baseline(self, data: bytes) -> bytes:
        """The baseline as compared: as written, line endings aside."""
        return normalise_line_endings(data) if self.line_endings else data

    def _token(self, match: re.Match) -> bytes:
        return self.tokens[match.group()]


@functools.lru_cache(maxsize=1024)
def _real_parent(path: str) -> str:
    return os.path.realpath(path)


def _realpath(path: str) -> str:
    """``os.path.realpath``, with parent directories resolved once per
    process: a run's work directories share theirs, and resolving a path
    afresh costs one system call per component for every testcase."""
    if os.path.islink(path):
        return os.path.realpath(path)
    parent, name = os.path.split(os.path.normpath(path))
    return os.path.join(_real_parent(parent), name) if name else parent


def normalise_line_endings(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
