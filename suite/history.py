"""Run history in SQLite (``OUTPUT/history.sqlite``): what ran, how it ended,
how long it took, and under which key.

It feeds three things: the scheduler's priorities (durations, last
failures first), ``--failed`` (what did not pass last time) and
``--incremental`` (testcases whose key passed before are not run again).
The standard library's sqlite3 is enough: one file, one writer per run,
transactions that survive a crash of the run.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

from run_testsuite.results import Verdict

HISTORY_FILE = "history.sqlite"
KEY_IN_RESULTS = 16  # hex digits of a key kept with each result
# Reasons of results that say nothing of the testcase itself: it was not
# run, or stopped, because of the run (Ctrl-C, --max-failures, -x), a
# dependency that did not pass, or a control entry's skip.
NOT_VERDICTS = frozenset({"INTERRUPTED", "MAX_FAILURES", "DEPENDENCY", "CONTROL"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    start REAL NOT NULL,
    duration REAL,
    command TEXT,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS results (
    run INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    duration REAL NOT NULL,
    attempts INTEGER NOT NULL,
    key TEXT,
    PRIMARY KEY (run, name)
) WITHOUT ROWID;
-- Fragments of testcases with more than one (steps, shards): a lone
-- fragment's row would say what its result says.
CREATE TABLE IF NOT EXISTS fragments (
    run INTEGER NOT NULL REFERENCES runs(id),
    testcase TEXT NOT NULL,
    fragment TEXT NOT NULL,
    status TEXT NOT NULL,
    duration REAL NOT NULL,
    PRIMARY KEY (run, testcase, fragment)
) WITHOUT ROWID;
-- The latest word on each testcase, so reading it stays cheap however
-- many runs the file holds.
CREATE TABLE IF NOT EXISTS latest (
    name TEXT PRIMARY KEY,
    run INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    duration REAL NOT NULL,
    key TEXT
);
-- The latest verdict on each testcase: its latest result that says
-- something of it (not a skip because the run was interrupted or stopped
-- at its failure limit, not a cached PASS). What changes are measured from.
CREATE TABLE IF NOT EXISTS verdicts (
    name TEXT PRIMARY KEY,
    run INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS fragment_durations (
    testcase TEXT NOT NULL,
    fragment TEXT NOT NULL,
    duration REAL NOT NULL,
    PRIMARY KEY (testcase, fragment)
);
CREATE TABLE IF NOT EXISTS passed_keys (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    run INTEGER NOT NULL
);
-- What each testcase's key was made of when it last passed (JSON), and
-- the suite's shared files' manifests those name: what --explain compares.
CREATE TABLE IF NOT EXISTS passed_parts (
    name TEXT PRIMARY KEY,
    run INTEGER NOT NULL,
    key TEXT NOT NULL,
    parts TEXT NOT NULL,
    shared TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS manifests (
    digest TEXT PRIMARY KEY,
    files TEXT NOT NULL
);
"""


@dataclass
class HistoryView:
    """What the next run needs to know, read once at start.

    Kept small, for it lives through the whole run: at 100,000 testcases a
    dict of per-testcase objects (status, reason, duration, key, run) and
    each table's own copy of every name took 85 MB. Names are interned,
    so the plan's and every table's are one string; verdicts alike are one
    tuple; what the run asks of the latest results is kept as it asks it;
    the keys that passed are read only when --incremental asks.
    """

    durations: dict[tuple[str, str], float] = field(default_factory=dict)
    # name -> seconds its latest result took, when that one ran to an end
    last_durations: dict[str, float] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # its latest result is a failure
    unpassed: set[str] = field(default_factory=set)  # --failed: its latest result did not pass
    # name -> (status, reason, run) of its latest verdict (see the verdicts table)
    verdicts: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)

    path: str | None = None  # the history file read

    def failed_last_time(self, name: str) -> bool:
        return name in self.failed

    def passed_runs(self, keys: set[str]) -> dict[str, int]:
        """key -> the run it passed in, of ``keys`` that passed before and
        did not fail since (--incremental). Read from the file as asked:
        every key that passed, held as a dict, took 100,000 testcases 15 MB."""
        if self.path is None or not keys:
            return {}
        try:
            with read_only(self.path) as db:
                return {key: run for key, run in db.execute("SELECT key, run FROM passed_keys") if key in keys}
        except sqlite3.Error:  # read at start already: gone since, nothing is taken from it
            return {}

    def did_not_pass(self, name: str) -> bool:
        """For --failed: failed, or was not run because of something else."""
        return name in self.unpassed


class History:
    def __init__(self, path: str):
        self.path = path
        self.db = sqlite3.connect(path, timeout=30)
        # Write-ahead logging with normal syncing: a crash of the machine may
        # lose the last run's record, never corrupt the file; recording
        # 10,000 results takes a fraction of the time of full syncing.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        fresh = not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'verdicts'").fetchone()
        self.db.executescript(SCHEMA)
        if fresh:  # a history from before verdicts were kept: start from its latest results
            with self.db:
                self.db.execute(
                    "INSERT OR IGNORE INTO verdicts SELECT name, run, status, reason FROM latest "
                    "WHERE reason IS NULL OR reason NOT IN ('INTERRUPTED', 'MAX_FAILURES', 'DEPENDENCY', 'CONTROL')"
                )

    def view(self) -> HistoryView:
        """What the next run needs."""
        from sys import intern

        view = HistoryView(path=self.path)
        for name, status, reason, duration in self.db.execute("SELECT name, status, reason, duration FROM latest"):
            name = intern(name)
            if status in ("PASS", "FAIL", "XFAIL"):
                view.last_durations[name] = duration
            if status in ("FAIL", "ERROR", "XPASS"):
                view.failed.add(name)
            if status not in ("PASS", "XFAIL") and not (status == "SKIP" and reason == "CONTROL"):
                view.unpassed.add(name)
        for testcase, fragment, duration in self.db.execute(
            "SELECT testcase, fragment, duration FROM fragment_durations"
        ):
            view.durations[(intern(testcase), intern(fragment))] = duration
        alike: dict[tuple[str, str | None, int], tuple[str, str | None, int]] = {}
        for name, run, status, reason in self.db.execute("SELECT name, run, status, reason FROM verdicts"):
            verdict = (status, reason, run)
            view.verdicts[intern(name)] = alike.setdefault(verdict, verdict)
        return view

    def record(
        self,
        start: float,
        command: list[str],
        results: list[Verdict],
        keys: dict[str, str | None],
        fragment_durations: list[tuple[str, str, str, float]],
        counts: dict,
        parts: KeyRecord | None = None,
    ) -> int:
        """Store one run in a single transaction; return its number."""
        import json

        with self.db:
            cursor = self.db.execute(
                "INSERT INTO runs (start, duration, command, counts) VALUES (?, ?, ?, ?)",
                (start, time.time() - start, json.dumps(command), json.dumps(counts)),
            )
            run = cursor.lastrowid
            rows = []
            for result in results:
                if result.cached:
                    continue  # a cached verdict says nothing new about the testcase
                reason = result.reason.value if result.reason else None
                rows.append(
                    (
                        run,
                        result.name,
                        result.status.value,
                        reason,
                        result.duration,
                        result.attempts,
                        keys.get(result.name),
                    )
                )
            # A run's results keep the key's first 64 bits: enough to tell
            # whether it changed between runs (what history reports need),
            # and 48 bytes less a result (10,000 testcases: 0.5 MB a run).
            # Generators, not lists: each list of 100,000 rows was 10 MB more
            # at the end of a run, when the main process is at its largest.
            self.db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((*row[:6], row[6][:KEY_IN_RESULTS] if row[6] else None) for row in rows),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO latest VALUES (?, ?, ?, ?, ?, ?)",
                ((name, run, status, reason, duration, key) for run, name, status, reason, duration, _, key in rows),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                (
                    (name, run, status, reason)
                    for run, name, status, reason, _, _, _ in rows
                    if reason not in NOT_VERDICTS
                ),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO passed_keys VALUES (?, ?, ?)",
                ((key, name, run) for run, name, status, _, _, _, key in rows if status == "PASS" and key),
            )
            # A key that failed since it passed proves nothing any more (a
            # flaky testcase, or something outside its key changed).
            self.db.executemany(
                "DELETE FROM passed_keys WHERE key = ?",
                ((key,) for run, name, status, _, _, _, key in rows if status != "PASS" and key),
            )
            if parts is not None and run is not None:
                self._record_parts(run, rows, parts)
            several = _with_several(fragment_durations)
            self.db.executemany(
                "INSERT OR REPLACE INTO fragments VALUES (?, ?, ?, ?, ?)",
                ((run, t, f, s, d) for t, f, s, d in fragment_durations if t in several),
            )
            # Only durations of fragments that ran to the end say how long they take.
            self.db.executemany(
                "INSERT OR REPLACE INTO fragment_durations VALUES (?, ?, ?)",
                ((t, f, d) for t, f, s, d in fragment_durations if s in ("PASS", "FAIL")),
            )
        assert run is not None  # an INSERT into a rowid table always gives one
        return run

    def _record_parts(self, run: int, rows: list[tuple], record: KeyRecord) -> None:
        """The parts of each key that passed, written only where the key is
        new (10,000 unchanged rows rewritten would cost every run)."""
        passed = {name: key for _, name, status, _, _, _, key in rows if status == "PASS" and key}
        if not passed:
            return
        # Those known already are struck off as the table is read: the
        # table as a dict took 100,000 testcases 20 MB at the end of a run.
        for name, key in self.db.execute("SELECT name, key FROM passed_parts"):
            if passed.get(name) == key:
                del passed[name]

        def fresh():  # one at a time: a fresh run's 100,000 were 35 MB at once
            for name, key in passed.items():
                parts = record.parts(name)
                if parts is not None:
                    yield (name, run, key, parts, record.shared_digest)

        if self.db.executemany("INSERT OR REPLACE INTO passed_parts VALUES (?, ?, ?, ?, ?)", fresh()).rowcount <= 0:
            return
        self.db.execute(
            "INSERT OR IGNORE INTO manifests VALUES (?, ?)", (record.shared_digest, record.shared_manifest())
        )
        self.db.execute("DELETE FROM manifests WHERE digest NOT IN (SELECT DISTINCT shared FROM passed_parts)")

    def passed_parts(self) -> dict[str, tuple[int, str, str, str]]:
        """name -> (run, key, parts as JSON, shared files' digest) at its last pass."""
        return {
            name: (run, key, parts, shared)
            for name, run, key, parts, shared in self.db.execute(
                "SELECT name, run, key, parts, shared FROM passed_parts"
            )
        }

    def manifest(self, digest: str) -> str | None:
        row = self.db.execute("SELECT files FROM manifests WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def prune(self, keep: int) -> int:
        """Keep the last ``keep`` runs' details (results, fragments), and
        return how many runs were dropped. The latest word on each testcase
        (latest, verdicts, passed keys) stays, naming runs that may be gone."""
        row = self.db.execute("SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?", (keep,)).fetchone()
        if row is None:
            return 0
        with self.db:
            self.db.execute("DELETE FROM results WHERE run <= ?", (row[0],))
            self.db.execute("DELETE FROM fragments WHERE run <= ?", (row[0],))
            return self.db.execute("DELETE FROM runs WHERE id <= ?", (row[0],)).rowcount

    def close(self) -> None:
        self.db.close()


def _with_several(fragment_durations: list[tuple[str, str, str, float]]) -> set[str]:
    """The testcases with more than one fragment in ``fragment_durations``."""
    seen: set[str] = set()
    several: set[str] = set()
    for testcase, _, _, _ in fragment_durations:
        (several if testcase in seen else seen).add(testcase)
    return several


@dataclass
class KeyRecord:
    """What history keeps of a run's keys: each testcase's parts as JSON,
    and the suite's shared files' manifest (one for the run), each made
    only when a key is new."""

    parts: Callable[[str], str | None]
    shared_digest: str
    shared_manifest: Callable[[], str]


# The process pruning history, if one was started.
_pruner: int | None = None


def start_pruning(path: str, keep: int) -> None:
    """``--history-keep``: drop all but the last ``keep`` runs' details, in
    a child process at the lowest CPU priority while the run writes its
    reports and summary (dropping a backlog of thousands of runs takes
    seconds; the steady state, one run, about 50 ms at 10,000 testcases).
    A prune cut short rolls back: SQLite's transaction is all or nothing."""
    global _pruner
    import signal

    # Ctrl-C is held until the child is known: one arriving between the
    # fork and the assignment would leave a prune no one stops.
    from run_testsuite.processes import INTERRUPTS

    held = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        pid = os.fork()
    except OSError:  # no process to spare: the next run prunes
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return
    if pid:
        _pruner = pid
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return
    try:
        for signum in INTERRUPTS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        # The run's descriptors are not the prune's: the output directory's
        # lock above all, which would keep the next run out while it works.
        os.closerange(3, 1 << 16)
        os.setpriority(os.PRIO_PROCESS, 0, 19)
        history = History(path)
        try:
            history.prune(keep)
        finally:
            history.close()
    except BaseException:  # history is a help: a prune that fails is tried again next run
        pass
    finally:
        os._exit(0)


def finish_pruning() -> None:
    """Wait for the prune started by ``start_pruning``, if any; interrupted
    (Ctrl-C), stop it: it rolls back, and the next run prunes."""
    global _pruner
    if _pruner is not None:
        pid, _pruner = _pruner, None
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        except BaseException:
            _stop(pid)
            raise


def stop_pruning() -> None:
    """Stop the prune at once (the run is being interrupted): it rolls back."""
    global _pruner
    if _pruner is not None:
        pid, _pruner = _pruner, None
        _stop(pid)


def _stop(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def read_only(path: str) -> closing[sqlite3.Connection]:
    """The history file at ``path`` opened read-only, for a ``with`` block
    that closes it. (Its URI escapes a ``#``, ``?`` or ``%`` in the path: as
    plain text they would open another file.)"""
    from pathlib import Path

    return closing(sqlite3.connect(Path(os.path.abspath(path)).as_uri() + "?mode=ro", uri=True, timeout=30))


def history_file_of(output: str) -> str | None:
    """OUTPUT/history.sqlite for an output directory, or for one of its
    runs' directories (``out/new``), if there is one."""
    output = os.path.abspath(output)
    for place in (output, os.path.dirname(output)):
        path = os.path.join(place, HISTORY_FILE)
        if os.path.isfile(path):
            return path
    return None


def read_history(output_dir: str) -> HistoryView | None:
    """What earlier runs in ``output_dir`` recorded, if any. A database that
    cannot be read (damaged, or not SQLite) is set aside with a warning,
    and the run goes on without history; the next one starts a new one."""
    path = os.path.join(output_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return None
    try:
        history = History(path)
        try:
            return history.view()
        finally:
            history.close()
    except sqlite3.DatabaseError as exc:
        from run_testsuite.outputs import set_aside

        for companion in (f"{path}-wal", f"{path}-shm"):  # SQLite's own files of it
            if os.path.exists(companion):
                os.unlink(companion)
        set_aside(path, f"the history cannot be read ({exc})")
        return None
