"""A cache of parsed, valid specs, kept in the output directory.

Re-running a suite is the common case, and most of its specs have not
changed since the last run. A spec whose file has the same inode, size and
modification time (to the nanosecond) as when it was last found valid is
taken from the cache: no YAML parse, no schema validation, and for a fully
cached suite not even the import of PyYAML or jsonschema. suite.yaml is
cached the same way. The cache is keyed by the schemas' contents and the
package version, so a new schema revalidates all.
"""

from __future__ import annotations

import hashlib
import os
import pickle

from run_testsuite import __version__, schemas

CACHE_FILE = "spec-cache.pickle"

Stamp = tuple[int, int, int]  # inode, size, mtime in ns


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
    return f"{__version__}:{digest.hexdigest()}"


class SpecCache:
    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, CACHE_FILE)
        self.key = _key()
        self.entries: dict[str, tuple[Stamp, dict]] = {}
        self.dirty = False
        try:
            with open(self.path, "rb") as handle:
                key, entries = pickle.load(handle)
            if key == self.key:
                self.entries = entries
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError):
            pass  # no cache, or one from another version: start afresh

    def get(self, path: str) -> dict | None:
        """The cached spec for ``path``, if the file has not changed."""
        found = self.entries.get(path)
        if found is None:
            return None
        if stamp(path) != found[0]:
            return None
        return found[1]

    def put(self, path: str, file_stamp: Stamp | None, spec: dict) -> None:
        if file_stamp is None:
            return
        self.entries[path] = (file_stamp, spec)
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as handle:
                pickle.dump((self.key, self.entries), handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time
