"""Content hashes of files, remembered by what ``stat`` says of them.

Keys for incremental runs hash every file a testcase may read: its own
directory, the suite's shared files, declared inputs, the executables its
commands run. Reading them all again on each run would make a re-run of a
large suite cost as much as its first run; a file whose device, inode,
size, modification and change times are what they were when it was last
hashed is taken as unchanged, as git's index does. The change time cannot
be set from user space, so a file restored with an old mtime (``touch
-d``, ``cp -p``, an archive) is still read again.

A file modified twice within one tick of the file system's clock keeps its
times, so a hash taken in between could be stale: as git does with
"racily clean" entries, a hash is remembered only for a file whose times
are more than RACY_SECONDS older than the moment it was read.

The cache is JSON in the output directory (``file-hashes.json``), never a
pickle; entries not used by a run are dropped when it saves, so it holds
what the suite has now, not all it ever had.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time

from run_testsuite.jsonio import write_atomic
from run_testsuite.outputs import read_cache, set_aside

CACHE_FILE = "file-hashes.json"
# Each entry one string, "DEV:INO:SIZE:MTIME:CTIME:HASH": as JSON's decoder
# gives it, kept as it is. Lists of numbers cost 10,000 testcases 10 MB of
# the process that workers are forked from.
VERSION = 2
# Coarse file systems keep times to the second (FAT to two): a file
# changed less than this before it was hashed is hashed again next time.
RACY_SECONDS = 2.0
# Bytes read at a time: most files of a suite fit in one read.
BLOCK = 64 * 1024


def stamp_of(info: os.stat_result) -> str:
    """The prefix of a cache entry: device, inode, size, mtime, ctime."""
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:"


def hash_contents(path: str) -> str:
    """The blake2b hash of a file's bytes. Unbuffered, into one reused
    block: ``read(1 MiB)`` on a buffered file allocated (and the kernel
    mapped and unmapped) a megabyte per small file, 0.3 s of 10,000
    testcases' planning."""
    digest = hashlib.blake2b(digest_size=20)
    block = bytearray(BLOCK)
    view = memoryview(block)
    # Non-blocking: a regular file ignores it, and a pseudo-file that would
    # wait for ever (/proc/kmsg, linked into a testcase) has nothing to
    # give at once, where it hung planning and validate: unreadable.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb", buffering=0) as handle:
        while count := handle.readinto(block):
            digest.update(view[:count])
        if count is None:  # it would have waited
            raise BlockingIOError(errno.EAGAIN, "reading it would wait", path)
    return digest.hexdigest()


class FileHashes:
    """``digest(path)``: a regular file's content hash, read only when its
    stat changed; other files get a stable description instead."""

    def __init__(self, output_dir: str | None):
        self.path = os.path.join(output_dir, CACHE_FILE) if output_dir else None
        self.known: dict[str, str] = {}  # path -> "STAMP:HASH" (see VERSION)
        self.used: dict[str, str] = {}  # this run's, saved
        self.memo: dict[str, str] = {}  # this run's other answers: racy hashes, kinds
        self.read_count = 0  # files read this run (for tests)
        self.dirty = False
        self.hashing = True  # until done_hashing
        if self.path:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        data = read_cache(self.path, "file hash cache")
        if data is None:
            return
        try:
            if data["version"] != VERSION:
                return
            entries = data["entries"]
            if not all(isinstance(v, str) for v in entries.values()):
                raise TypeError("entries are not strings")
            self.known = entries
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            set_aside(self.path, "the file hash cache is not one this version wrote")
            self.known = {}

    def digest(self, path: str, info: os.stat_result | None = None) -> str:
        """The hash of ``path`` (followed if a link), or ``missing``,
        ``directory`` or ``unreadable:ERRNO``; ``info`` is its stat when
        the caller has it already."""
        # Asked again in this run: the same answer. A remembered hash is
        # answered from ``used`` alone: a memo of every hash as well cost
        # 100,000 testcases' planning 20 MB.
        known = self.used.get(path)
        if known is not None:
            return known.rpartition(":")[2]
        known = self.memo.get(path)
        if known is not None:
            return known
        value = self._digest(path, info)
        if path not in self.used:
            self.memo[path] = value  # racy, or not a regular file
        return value

    def _digest(self, path: str, info: os.stat_result | None) -> str:
        try:
            info = info or os.stat(path)
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            return f"unreadable:{exc.errno}"
        if not stat.S_ISREG(info.st_mode):
            return _kind(info)
        stamp = stamp_of(info)
        found = self.known.get(path)
        if found is not None and found.startswith(stamp):
            self.used[path] = found
            return found[len(stamp) :]
        hashed_at = time.time()
        try:
            value = hash_contents(path)
        except OSError as exc:
            return f"unreadable:{exc.errno}"
        self.read_count += 1
        if max(info.st_mtime_ns, info.st_ctime_ns) < (hashed_at - RACY_SECONDS) * 1e9:
            self.used[path] = stamp + value
        return value

    def done_hashing(self) -> None:
        """Planning is over: keep only what ``save`` writes. Workers are
        forked from this process, and each would hold what it holds."""
        if self.hashing:
            self.dirty = self.used != self.known
            self.known, self.memo, self.hashing = {}, {}, False

    def save(self) -> None:
        """Write what this run used, if anything is new, and forget it. A
        cache that cannot be written only costs time."""
        self.done_hashing()
        if self.path and self.dirty:
            try:
                write_atomic(self.path, {"version": VERSION, "entries": self.used})
            except OSError:
                pass
        self.used, self.dirty = {}, False


def _kind(info: os.stat_result) -> str:
    """What a file that is not regular is, never its content: opening a
    FIFO to read it waits for a writer, forever."""
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    kind = "char" if stat.S_ISCHR(mode) else "block" if stat.S_ISBLK(mode) else "other"
    return f"{kind} {os.major(info.st_rdev)},{os.minor(info.st_rdev)}"
