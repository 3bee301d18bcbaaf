"""Keys for incremental runs: a hash of what decides a testcase's outcome.

A testcase's key covers its merged spec, its driver, the contents of every
file in its directory (what the work copy is made from) and the keys of
what it depends on, so a change anywhere upstream changes the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable

from run_testsuite.discovery import SPEC_FILE
from run_testsuite.history import HistoryView
from run_testsuite.plan import SETUP_PREFIX, Planned
from run_testsuite.results import Reason, Status


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
            raw = os.fsencode(name)  # names need not be UTF-8
            if entry.is_symlink():
                h.update(b"L" + raw + b"\0" + os.fsencode(os.readlink(entry.path)) + b"\0")
                if os.path.isfile(entry.path):  # what it points to is an input too
                    _hash_file(h, entry.path)
            elif entry.is_dir():
                if not os.path.exists(os.path.join(entry.path, SPEC_FILE)):
                    subdirs.append((name, entry.path))
            elif entry.is_file():
                h.update(b"F" + raw + b"\0")
                _hash_file(h, entry.path)
            else:  # a FIFO, socket or device: its type, never its content
                # (opening a FIFO to read it waits for a writer, forever)
                h.update(b"S" + raw + b"\0" + special_kind(entry.path).encode() + b"\0")
        stack.extend(reversed(subdirs))
    return h.hexdigest()


def special_kind(path: str) -> str:
    """What a file that is neither regular, a directory nor a link is:
    ``fifo``, ``socket``, or ``char 1,3`` / ``block 8,0`` with its device
    numbers."""
    try:
        info = os.lstat(path)
    except OSError:
        return "gone"
    mode = info.st_mode
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    kind = "char" if stat.S_ISCHR(mode) else "block" if stat.S_ISBLK(mode) else "other"
    return f"{kind} {os.major(info.st_rdev)},{os.minor(info.st_rdev)}"


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


def compute_keys(
    testcases: list[Planned], setups: dict[str, dict], resolve: Callable[[str, Planned], list[int]]
) -> None:
    """Each testcase's key, from its spec, files and upstream keys;
    ``resolve(dependency, testcase)`` gives the testcases a name stands for."""
    setup_keys = {SETUP_PREFIX + name: setup_key(setups, name) for name in setups}
    done: dict[int, str | None] = {}

    def key_of(number: int, seen: frozenset[int]) -> str | None:
        if number in done:
            return done[number]
        planned = testcases[number]
        if number in seen or not planned.spec:
            return None  # a cycle, or a spec that did not load
        upstream = [setup_keys.get(SETUP_PREFIX + n, "") for n in planned.needs]
        for dep in planned.depends:
            for other in resolve(dep, planned):
                key = key_of(other, seen | {number})
                if key is None:
                    done[number] = None
                    return None
                upstream.append(key)
        key = make_key(planned.spec, planned.driver, digest_tree(planned.source_dir), upstream)
        done[number] = planned.key = key
        return key

    for number in range(len(testcases)):
        key_of(number, frozenset())


def setup_key(setups: dict[str, dict], name: str, seen: frozenset[str] = frozenset()) -> str:
    """A set-up's key: its spec and the keys of the set-ups it needs."""
    spec = setups[name]
    upstream = [setup_key(setups, n, seen | {name}) for n in spec.get("needs", []) if n in setups and n not in seen]
    return make_key(spec, "setup", None, upstream)


def use_cache(testcases: list[Planned], history: HistoryView) -> None:
    """--incremental: a testcase whose key passed before is not run,
    unless it failed last time."""
    for planned in testcases:
        if planned.result is None and planned.key and planned.key in history.passed_keys:
            if history.failed_last_time(planned.name):
                continue
            run = history.passed_keys[planned.key]
            planned.result = planned.verdict(
                Status.PASS,
                Reason.CACHED,
                f"passed in run {run} with the same key; not run again (--incremental)",
            )
            planned.result.cached = True
