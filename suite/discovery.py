"""Find testcases: every directory below the root that holds a ``test.yaml``."""

from __future__ import annotations

import os
from dataclasses import dataclass

SPEC_FILE = "test.yaml"
# Spec files by a name that is not read (compared lower-cased).
MISNAMED = frozenset({"test.yml", "test.yaml"})
SUITE_FILE = "suite.yaml"

# Directories that never hold testcases: version control and tool caches.
# Hidden directories (a leading dot) are skipped as well.
SKIPPED_DIRS = frozenset({"CVS", "_darcs", "__pycache__", "node_modules"})


@dataclass(frozen=True)
class Found:
    """A testcase directory as discovery sees it, before its spec is read."""

    name: str
    directory: str
    spec_file: str


def discover(
    root: str,
    exclude: tuple[str, ...] = (),
    shared: list[tuple[str, str]] | None = None,
    misnamed: list[str] | None = None,
) -> list[Found]:
    """Return every testcase under ``root``, sorted by name.

    Symlinked directories are followed; a directory reached twice (a link
    loop, or two links to one place) is visited once, by its real identity.
    ``exclude`` names directories (for example the run's output directory)
    whose copies of testcases must not be found again. ``shared``, when
    given, receives (relative name, path) of each of the suite's shared
    files: those outside every testcase directory, hidden ones aside.
    ``misnamed``, when given, receives the paths of spec files by another
    name (``test.yml``, ``Test.yaml``) in directories without a test.yaml:
    testcases that would otherwise go missing without a word.
    """
    root = os.path.abspath(root)
    # Compared by identity, like `seen`: one stat each here, instead of a
    # realpath (a stat per path component) for every directory of the tree.
    excluded = set()
    for path in exclude:
        try:
            info = os.stat(path)
        except OSError:
            continue  # not made yet: nothing of it to find
        excluded.add((info.st_dev, info.st_ino))
    seen: set[tuple[int, int]] = set()
    found: list[Found] = []
    # An explicit stack instead of recursion: deep trees cannot overflow it.
    # Each directory with whether it lies in a testcase's directory.
    stack: list[tuple[str, str, bool]] = [(root, "", False)]
    while stack:
        directory, rel, owned = stack.pop()
        try:
            info = os.stat(directory)
        except OSError:
            continue
        identity = (info.st_dev, info.st_ino)
        if identity in seen or (rel and identity in excluded):
            continue
        seen.add(identity)
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        subdirs = []
        files = []
        near: list[str] = []
        for entry in entries:
            name = entry.name
            # Whatever it is (a directory, a dangling link, a ring of links),
            # a test.yaml makes a testcase: one that cannot be read is a
            # SPEC error naming it, not a testcase gone without a word.
            if name == SPEC_FILE and rel:
                found.append(Found(printable(rel), directory, entry.path))
                owned = True
                near = []
            elif misnamed is not None and name != SPEC_FILE and name.lower() in MISNAMED and not owned:
                near.append(entry.path)
            elif name.startswith(".") or name in SKIPPED_DIRS:
                continue
            else:
                try:
                    is_dir = entry.is_dir()  # follows symlinks
                except OSError:  # a link to itself, or a ring of links
                    is_dir = False
                if is_dir:
                    subdirs.append(entry)
                elif shared is not None:
                    files.append(entry)
        if misnamed is not None and not owned:
            misnamed.extend(near)
        if shared is not None and not owned and any(e.name == "new" for e in subdirs):
            # Another run's output directory in the suite: its files are no input.
            owned = os.path.exists(os.path.join(directory, "new", "_index.json"))
        if shared is not None and not owned:
            shared.extend((f"{rel}/{e.name}" if rel else e.name, e.path) for e in files)
        for entry in sorted(subdirs, key=lambda e: e.name, reverse=True):
            stack.append((entry.path, f"{rel}/{entry.name}" if rel else entry.name, owned))
    # A test.yaml directly in the root makes the root itself a testcase,
    # named after the directory, so a single testcase can be run alone.
    root_spec = os.path.join(root, SPEC_FILE)
    if os.path.lexists(root_spec) and not os.path.isdir(root_spec):  # one that cannot be read is its error
        found.append(Found(printable(os.path.basename(root)), root, root_spec))
        if shared is not None:
            shared.clear()  # the root is the testcase: nothing is shared
    elif shared is not None:
        shared.sort()
    found.sort(key=lambda f: f.name)
    return found


def printable(rel: str) -> str:
    """A testcase's name from its path: bytes that are not UTF-8 (which
    Python keeps as lone surrogates) become ``\\xNN``, and control
    characters (a newline, an escape) their escapes, so that the name
    can be printed, written to JSON and SQLite, and typed on a command line.
    Only the name changes: the directory is still reached by its path."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        rel = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if rel.isprintable():  # nearly always: the per-character look is for the others
        return rel
    # A newline or an escape sequence in a directory's name would break the
    # terminal's lines, or drive the terminal: control characters (Cc) are
    # shown as \n, \x1b. Other characters str.isprintable refuses (a
    # no-break space, a zero-width joiner in an emoji) stay as they are.
    import unicodedata

    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in rel)
