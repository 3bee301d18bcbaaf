"""A cache of parsed, valid specs, kept in the output directory.

Re-running a suite is the common case, and most of its specs have not
changed since the last run. A spec whose file has the same inode, size and
modification time (to the nanosecond) as when it was last found valid is
taken from the cache: no YAML parse, no schema validation, and for a fully
cached suite not even the import of PyYAML or jsonschema. suite.yaml is
cached the same way. The cache is keyed by the schemas' contents and the
package version, so a new schema revalidates all.

The cache is JSON, never a pickle: the output directory is writable by the
tests, and unpickling what a test left there would run its code in the
next run. A spec holding what JSON cannot say (a date, a binary) is simply
not cached. A cache that cannot be read is set aside with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os

from run_testsuite import __version__, schemas
from run_testsuite.jsonio import write_atomic
from run_testsuite.outputs import read_cache, set_aside

CACHE_FILE = "spec-cache.json"
# Earlier versions' cache, never read: a pickle a test could have written.
LEGACY_FILE = "spec-cache.pickle"

Stamp = tuple[int, int, int]  # inode, size, mtime in ns
# Bumped when the entries' form changes: an older cache is simply not used.
FORMAT = 2


def stamp(path: str) -> Stamp | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _key() -> str:
    digest = hashlib.sha256()
    for name in ("testcase", "suite"):  # suite.yaml is cached too
        with open(schemas.path(name), "rb") as handle:
            digest.update(handle.read())
    return f"{__version__}:{FORMAT}:{digest.hexdigest()}"


class SpecCache:
    """Each entry one string, "INO SIZE MTIME_NS JSON": as JSON's decoder
    gives it, kept as it is, and decoded when asked for. Entries as
    (stamp, dict) held 100,000 testcases' planning 37 MB more."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, CACHE_FILE)
        self.key = _key()
        self.entries: dict[str, str] = {}
        # Digests of (a driver's options schema, options) found valid: a
        # re-run checks them without importing jsonschema (90 ms here).
        self.valid_options: set[str] = set()
        self.dirty = False
        data = read_cache(self.path, "spec cache")
        if not isinstance(data, dict) or data.get("key") != self.key:
            return  # another version's, or none: every spec is parsed again
        if isinstance(data.get("options", []), list):
            self.valid_options = {digest for digest in data.get("options", []) if isinstance(digest, str)}
        entries = data.get("entries")
        if isinstance(entries, dict) and all(isinstance(v, str) for v in entries.values()):
            self.entries = entries
        else:
            set_aside(self.path, "the spec cache is not one this version wrote")

    def get(self, path: str) -> dict | None:
        """The cached spec for ``path``, if the file has not changed."""
        found = self.entries.get(path)
        if found is None:
            return None
        now = stamp(path)
        if now is None:
            return None
        if not found.startswith(f"{now[0]} {now[1]} {now[2]} "):
            return None
        return self.again(path)

    def again(self, path: str) -> dict | None:
        """The spec ``get`` or ``put`` had for ``path`` in this run, decoded
        again without looking at the file: one version of it per run."""
        found = self.entries.get(path)
        try:
            spec = json.loads(found.split(" ", 3)[3]) if found is not None else None
        except (ValueError, IndexError):
            return None
        return spec if isinstance(spec, dict) else None

    def put(self, path: str, file_stamp: Stamp | None, spec: dict) -> None:
        if file_stamp is None or not _plain(spec):
            self.entries.pop(path, None)  # what JSON cannot hold as it is, is parsed again
            return
        ino, size, mtime = file_stamp
        self.entries[path] = f"{ino} {size} {mtime} {json.dumps(spec, separators=(',', ':'))}"
        self.dirty = True

    def options_valid(self, digest: str) -> None:
        if digest not in self.valid_options:
            self.valid_options.add(digest)
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        data = {"key": self.key, "entries": self.entries, "options": sorted(self.valid_options)}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomic(self.path, data)
            legacy = os.path.join(os.path.dirname(self.path), LEGACY_FILE)
            if os.path.exists(legacy):
                os.unlink(legacy)
        except OSError:
            pass  # a cache that cannot be written only costs time


def _plain(value: object) -> bool:
    """Whether ``value`` reads back from JSON as it is: str keys, and
    strings, numbers, booleans, None, lists and dicts of them."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return value is None or isinstance(value, (str, int))
