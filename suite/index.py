"""The on-disk report index: one JSON file per result, and ``_index.json``.

Results stream in as they complete. Each is written to its own file at
once, so a run killed half-way keeps everything that finished; the index
itself is rewritten atomically, at most once a second while the run goes on
(less often as it grows) and once at the end, so writing it stays linear in
the number of results.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

from run_testsuite.jsonio import INDEX_FILE, write_atomic, write_new
from run_testsuite.results import Result, Status

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from run_testsuite.jsonio import Index, IndexEntry, Previous


FORMAT_VERSION = 1
FLUSH_INTERVAL = 1.0
FLUSH_SHARE = 20
# Results waiting for the writer thread at most; a run's own pace keeps
# far fewer waiting.
WRITE_AHEAD = 1000


TRASH_PREFIX = ".trash-"


def rotate(output_dir: str) -> str:
    """Move a previous ``new/`` to ``old/``; return a fresh, empty ``new/``.

    The run before that is renamed away and deleted in the background: for
    a large suite, removing its thousands of files took as long as running
    the tests, and nothing needs to wait for it.
    """
    new = os.path.join(output_dir, "new")
    old = os.path.join(output_dir, "old")
    os.makedirs(output_dir, exist_ok=True)
    if os.path.lexists(new):
        if os.path.lexists(old):
            os.rename(old, os.path.join(output_dir, f"{TRASH_PREFIX}{os.getpid()}-{time.time_ns()}"))
        os.rename(new, old)
    os.makedirs(os.path.join(new, "results"))
    os.makedirs(os.path.join(new, "logs"))
    trash = [e.path for e in os.scandir(output_dir) if e.name.startswith(TRASH_PREFIX)]
    if trash:
        _start_emptying(trash)
    return new


# The process deleting old runs, if one was started, and what it deletes.
_trash_deleter: int | None = None
_trash: list[str] = []


def _start_emptying(paths: list[str]) -> None:
    """Delete old runs in a child process at the lowest CPU priority, so the
    tests come first. A process, not a thread: a thread of ours would hold
    the interpreter lock between its system calls, and the scheduler's loop
    would wait for it."""
    global _trash_deleter
    from run_testsuite.processes import INTERRUPTS

    try:
        pid = os.fork()
    except OSError:  # no process to spare: the next run deletes them
        return
    if pid:
        _trash_deleter = pid
        _trash[:] = paths
        return
    try:  # the child: a run interrupted or killed leaves the rest to the next run
        for signum in INTERRUPTS:
            signal.signal(signum, signal.SIG_DFL)
        os.setpriority(os.PRIO_PROCESS, 0, 19)
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        os._exit(0)


def finish_rotation() -> None:
    """Wait for the previous runs' deletion (called once results are out)."""
    global _trash_deleter
    if _trash_deleter is not None:
        finished = False
        try:
            _, status = os.waitpid(_trash_deleter, 0)
            finished = os.WIFEXITED(status)  # not stopped by a Ctrl-C of the run: the next run goes on
        except ChildProcessError:  # reaped already (a sweep of our children)
            pass
        _trash_deleter = None
        # Left after a whole deletion: something no run can remove (an
        # immutable file, a mount point, another user's directory), which
        # would otherwise pile up, a directory per run, without a word.
        left = [path for path in _trash if os.path.lexists(path)] if finished else []
        if left:
            print(
                f"run-testsuite: warning: {len(left)} earlier run{'s' if len(left) != 1 else ''}' directories "
                f"could not be removed ({left[0]}{' and more' if len(left) > 1 else ''}): remove them by hand"
                if len(left) > 1
                else f"run-testsuite: warning: an earlier run's directory could not be removed ({left[0]}): "
                "remove it by hand",
                file=sys.stderr,
            )
        _trash.clear()


class ReportIndex:
    """Writes results and the index of the run under ``OUTPUT/new``."""

    def __init__(self, new_dir: str, meta: dict, on_written: Callable[[str, dict], None] | None = None):
        """``on_written(rel, data)`` is called, on the writer thread, with
        each result file (relative to ``new_dir``) and its data once written."""
        self.dir = new_dir
        self.on_written = on_written
        self.results_dir = os.path.join(new_dir, "results")
        self.meta = meta
        self.entries: list[IndexEntry] = []
        self.counts: Counter = Counter()
        self.cached = 0
        self.started = time.time()
        self.monotonic = time.monotonic()
        self.last_flush = 0.0
        self.flush_interval = FLUSH_INTERVAL
        self.errors: list[str] = []
        self._write_index(complete=False)
        # Files are written by a thread of their own: creating a file can
        # take milliseconds on a busy disk, and the scheduler must not wait
        # for it (it spent most of a 10,000-testcase run there). Only this
        # thread touches entries and counts until finish(). Bounded: results
        # decided all at once (100,000 taken from the cache by
        # --incremental) waited there as dicts, 150 MB of them.
        self._queue: queue.Queue = queue.Queue(maxsize=WRITE_AHEAD)
        self._writer = threading.Thread(target=self._write_loop, name="report-writer", daemon=True)
        self._writer.start()

    def has_room(self) -> bool:
        """Whether ``add`` would not wait for the writer thread now."""
        return self._queue.qsize() < WRITE_AHEAD

    def add(self, result: Result, safe_name: str, previous: Previous | None = None) -> None:
        """Record one result: its file is written at once, in the background.
        ``previous``: the testcase's latest earlier verdict, from history."""
        rel = f"results/{safe_name}.json"
        entry = index_entry(result, rel, previous)
        self._queue.put((rel, result.to_json(), entry, result.status.value, bool(result.cached)))

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._write_one(*item)
            except Exception as exc:  # never: but one bad result must not lose the next ones
                self.errors.append(f"{item[0]}: {type(exc).__name__}: {exc}")

    def _write_one(self, rel: str, data: dict, entry: IndexEntry, status: str, cached: bool) -> None:
        path = os.path.join(self.dir, rel)
        try:
            write_new(path, data)
        except (OSError, ValueError) as exc:  # a full disk, an I/O error
            _remove(path)  # no half-written file is left to be read
            problem = describe_error(exc)
            # The verdict is kept in the index; only the file's details are lost.
            entry["unwritten"] = problem
            self.errors.append(f"{rel} ({entry['name']}): {problem}")
        else:
            if self.on_written is not None:
                try:
                    self.on_written(rel, data)
                except Exception:  # the HTML report's details: it reads the file instead
                    pass
        # Listed once its file exists (or is known lost), so an index read
        # at any time names only result files that are there.
        self.entries.append(entry)
        self.counts[status] += 1
        self.cached += cached
        now = time.monotonic()
        if now - self.last_flush >= self.flush_interval:
            try:
                self._write_index(complete=False)
            except OSError:  # said at the end, if the final index fails too
                pass
            self.last_flush = time.monotonic()
            # Rewriting the index costs in proportion to it (0.4 s at 100,000
            # results): at most a twentieth of the writer's time goes to it.
            self.flush_interval = max(FLUSH_INTERVAL, FLUSH_SHARE * (self.last_flush - now))

    def finish(self, interrupted: bool | Callable[[], bool] = False) -> Index:
        """Wait for every result file, then write the final index.

        ``interrupted`` may be asked only then (a callable): an interrupt
        can arrive while the last files are written, and the index must
        say so like the exit status does."""
        self._queue.put(None)
        self._writer.join()
        if callable(interrupted):
            interrupted = interrupted()
        try:
            return self._write_index(complete=True, interrupted=interrupted)
        except OSError as exc:  # the verdicts are still known: reported, and the exit status says it
            self.errors.append(f"{INDEX_FILE}: {describe_error(exc)}")
            return self.snapshot(complete=True, interrupted=interrupted)

    def _write_index(self, complete: bool, interrupted: bool = False) -> Index:
        index = self.snapshot(complete, interrupted)
        write_atomic(os.path.join(self.dir, INDEX_FILE), index)
        return index

    def snapshot(self, complete: bool, interrupted: bool = False) -> Index:
        """The index as it stands."""
        index: Index = {
            "format": FORMAT_VERSION,
            **self.meta,
            "start": self.started,
            "duration": round(time.monotonic() - self.monotonic, 6),
            "complete": complete,
            "interrupted": interrupted,
            "counts": {status.value: self.counts.get(status.value, 0) for status in Status},
            "cached": self.cached,
            "results": self.entries,
        }
        if self.errors:
            index["write_errors"] = list(self.errors)
        return index


class _Entry:
    """Index entries are its instances' dicts: CPython's key-sharing
    dictionaries (PEP 412), one table of keys for all of them. An entry of
    11 keys (with ``previous``) took 580 bytes as a dict of its own and
    takes 290 so (100,000 results: 29 MB); an entry whose keys come in
    another order is a dict of its own, as it would be anyway."""


def index_entry(result: Result, rel: str, previous: Previous | None = None) -> IndexEntry:
    """A result's entry in the index; ``rel`` is its file, relative to it;
    ``previous``, the testcase's latest earlier verdict, from history."""
    entry: IndexEntry = _Entry().__dict__  # type: ignore[assignment]
    entry["name"] = result.name
    entry["status"] = result.status.value
    entry["reason"] = result.reason.value if result.reason else None
    entry["message"] = result.message.split("\n", 1)[0][:500]
    entry["duration"] = round(result.duration, 6)
    entry["start"] = result.start
    entry["slot"] = result.slot
    entry["tags"] = result.tags
    entry["attempts"] = result.attempts
    entry["result"] = rel
    if previous is not None:
        entry["previous"] = previous
    if result.kind != "testcase":
        entry["kind"] = result.kind
    if result.cached:
        entry["cached"] = True
    if result.wall is not None:
        entry["wall"] = round(result.wall, 6)
    if result.quarantined:
        entry["quarantined"] = result.quarantined
    if result.subresults:
        from run_testsuite.subresults import index_summary

        entry["subresults"] = index_summary(result.subresults)
    return entry


def run_metadata(
    argv: list[str],
    root: str,
    suite_name: str,
    jobs: int,
    partial: bool = False,
    shard: tuple[int, int, bool] | None = None,
) -> dict:
    """``partial``: the selection was narrowed (names, -k, --tag, --failed,
    --shard), so a testcase absent from this run was not removed from the
    suite. ``shard``: (K, N, narrowed) of ``--shard K/N``, narrowed when the
    selection was narrowed besides: ``report --merge`` reads it to tell a
    missing shard, and whether all of them make the whole suite."""
    meta = {
        "partial": partial,
        "suite": suite_name,
        "root": os.path.abspath(root),
        "command_line": argv,
        "jobs": jobs,
        "host": os.uname().nodename,  # socket.gethostname(), without importing socket
        "python": sys.version.split()[0],
    }
    if shard is not None:
        meta["shard"] = {"index": shard[0], "total": shard[1], "narrowed": shard[2]}
    return meta


def describe_error(exc: BaseException) -> str:
    """An OSError as people search for it: ``ENOSPC: No space left on device``."""
    if isinstance(exc, OSError) and exc.errno:
        import errno

        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
