"""Find testcases: every directory below the root that holds a ``test.yaml``."""

from __future__ import annotations

import os
from dataclasses import dataclass

SPEC_FILE = "test.yaml"
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


def discover(root: str, exclude: tuple[str, ...] = ()) -> list[Found]:
    """Return every testcase under ``root``, sorted by name.

    Symlinked directories are followed; a directory reached twice (a link
    loop, or two links to one place) is visited once, by its real identity.
    ``exclude`` names directories (for example the run's output directory)
    whose copies of testcases must not be found again.
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
    stack: list[tuple[str, str]] = [(root, "")]
    while stack:
        directory, rel = stack.pop()
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
        for entry in entries:
            name = entry.name
            if name == SPEC_FILE and rel and entry.is_file():
                found.append(Found(printable(rel), directory, entry.path))
            elif name.startswith(".") or name in SKIPPED_DIRS:
                continue
            else:
                try:
                    is_dir = entry.is_dir()  # follows symlinks
                except OSError:  # a link to itself, or a ring of links
                    continue
                if not is_dir:
                    continue
                subdirs.append(entry)
        for entry in sorted(subdirs, key=lambda e: e.name, reverse=True):
            stack.append((entry.path, f"{rel}/{entry.name}" if rel else entry.name))
    # A test.yaml directly in the root makes the root itself a testcase,
    # named after the directory, so a single testcase can be run alone.
    root_spec = os.path.join(root, SPEC_FILE)
    if os.path.isfile(root_spec):
        found.append(Found(printable(os.path.basename(root)), root, root_spec))
    found.sort(key=lambda f: f.name)
    return found


def printable(rel: str) -> str:
    """A testcase's name from its path: bytes that are not UTF-8 (which
    Python keeps as lone surrogates) become ``\\xNN``, so that the name can
    be printed, written to JSON and SQLite, and typed on a command line.
    Only the name changes: the directory is still reached by its path."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
