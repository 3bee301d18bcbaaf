"""Keys for incremental runs: a hash of what decides a testcase's outcome.

A testcase's key covers its merged spec, its driver, the contents of every
file in its directory (what the work copy is made from) and the keys of
what it depends on, so a change anywhere upstream changes the key.
"""

from __future__ import annotations

import hashlib
import json
import os

from suite.discovery import SPEC_FILE


def digest_tree(directory: str) -> str:
    """Hash of the names and contents of a testcase directory's files,
    skipping hidden entries and nested testcases, as the work copy does."""
    h = hashlib.blake2b(digest_size=20)
    stack = [("", directory)]
    while stack:
        rel, path = stack.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                h.update(b"L" + name.encode() + b"\0" + os.readlink(entry.path).encode() + b"\0")
                if os.path.isfile(entry.path):  # what it points to is an input too
                    _hash_file(h, entry.path)
            elif entry.is_dir():
                if not os.path.exists(os.path.join(entry.path, SPEC_FILE)):
                    subdirs.append((name, entry.path))
            else:
                h.update(b"F" + name.encode() + b"\0")
                _hash_file(h, entry.path)
        stack.extend(reversed(subdirs))
    return h.hexdigest()


def _hash_file(h, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                h.update(block)
    except OSError as exc:
        h.update(f"unreadable:{exc.errno}".encode())
    h.update(b"\0")


def make_key(spec: dict, driver: str, tree: str | None, upstream: list[str]) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    h.update(b"\0" + driver.encode() + b"\0" + (tree or "").encode())
    for key in sorted(upstream):
        h.update(b"\0" + key.encode())
    return h.hexdigest()
