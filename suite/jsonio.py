"""Reading and writing the run's JSON files: one writer, one checked reader.

Every JSON file a run leaves (result files, ``_index.json``,
``status.json``) is written here, and every report (``report``, rebuild,
compare, JUnit, HTML, progress) reads an index or a result file here, so
they agree on what a readable file is.
"""

from __future__ import annotations

import json
import os
import threading
from itertools import islice

from run_testsuite.results import Status

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, TypedDict

    class CommandData(TypedDict, total=False):
        """One command of a result (``schemas/result.schema.json``)."""

        step: str
        cmd: str | list[str]
        exit_code: int | None
        duration: float
        timed_out: bool

    class ResultData(TypedDict, total=False):
        """A result file (``schemas/result.schema.json``)."""

        name: str
        kind: str
        status: str
        reason: str | None
        message: str
        description: str
        driver: str
        tags: list[str]
        start: float
        duration: float
        slot: int | None
        commands: list[CommandData]
        output: str
        diff: str | None
        log_files: list[str]
        traceback: str | None
        attempts: int
        spec_file: str | None
        cached: bool | None
        subresults: list[dict]
        wall: float | None
        quarantined: str | None

    class IndexEntry(TypedDict, total=False):
        """One result in the index; ``result`` is its file, relative to it."""

        name: str
        kind: str
        status: str
        reason: str | None
        message: str
        duration: float
        start: float
        slot: int | None
        tags: list[str]
        attempts: int
        result: str
        cached: bool
        unwritten: str
        previous: Previous
        subresults: dict
        wall: float
        quarantined: str
        shard: int  # a merged run's: the shard it comes from
        shards: list[int]  # a merged run's set-up: the shards it ran in

    class Previous(TypedDict):
        """A testcase's latest earlier verdict, from history: what the
        run's changes are measured from."""

        status: str
        reason: str | None
        run: int

    class Index(TypedDict, total=False):
        """``_index.json`` (``schemas/index.schema.json``)."""

        format: int
        suite: str
        root: str
        command_line: list[str]
        jobs: int
        host: str
        python: str
        start: float
        duration: float
        complete: bool
        interrupted: bool
        rebuilt: bool
        counts: dict[str, int]
        cached: int
        results: list[IndexEntry]
        write_errors: list[str]
        partial: bool
        shard: dict  # --shard K/N: {"index": K, "total": N, "narrowed": bool}
        merged: list[dict]  # report --merge: the runs merged, by shard
        merge_problems: list[str]
        merged_at: float


INDEX_FILE = "_index.json"
CHUNK = 2000  # items of a large list or dict encoded at a time


def dumps(data: Any) -> str:
    """Compact JSON. json.dumps, not json.dump: only the one-shot encoder
    runs in C, and it makes writing a result several times cheaper."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def write_new(path: str, data: Any) -> None:
    """Write a file nobody reads before it is complete (a result file, listed
    in the index only afterwards): straight, with no temporary file and
    rename, which cost as much again on a slow disk."""
    # A path or output that was not UTF-8 holds lone surrogates (Python's
    # surrogateescape): written as JSON's \udcXX escapes, they read back
    # as the same string, and the file stays valid UTF-8.
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as handle:
        if not isinstance(data, dict) or not any(_large(value) for value in data.values()):
            handle.write(dumps(data))
            return
        # A large list or dict (an index's results, a cache's entries) is
        # written a chunk of items at a time: as one string, an index of
        # 100,000 entries took 35 MB more at every rewrite, and the file
        # hash cache 60 MB as planning ended.
        handle.write("{")
        for number, (key, value) in enumerate(data.items()):
            handle.write(("," if number else "") + dumps(key) + ":")
            if not _large(value):
                handle.write(dumps(value))
                continue
            is_dict = isinstance(value, dict)
            items = iter(value.items() if is_dict else value)
            handle.write("{" if is_dict else "[")
            for start in range(0, len(value), CHUNK):
                chunk = list(islice(items, CHUNK))
                handle.write(("," if start else "") + dumps(dict(chunk) if is_dict else chunk)[1:-1])
            handle.write("}" if is_dict else "]")
        handle.write("}")


def _large(value: Any) -> bool:
    return isinstance(value, (list, dict)) and len(value) > CHUNK


def write_atomic(path: str, data: Any) -> None:
    """Write so that readers see the old file or the new, never half of
    one. The temporary file is this process's and thread's own: a ``report``
    rebuilding an index beside a run still writing it never renames the
    other's half-written file into place."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: str) -> Any:
    """The parsed file; OSError or ValueError if it cannot be read."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def index_path(path: str) -> str:
    """The index file for an index file, a run's directory (``new/``) or an
    output directory."""
    if os.path.isdir(path):
        for candidate in (os.path.join(path, INDEX_FILE), os.path.join(path, "new", INDEX_FILE)):
            if os.path.isfile(candidate):
                return candidate
    return path


def read_index(path: str) -> Index:
    """A run's index (``path`` as for ``index_path``), checked to have the
    shape every report relies on: ValueError names what is wrong,
    OSError says it cannot be read."""
    return checked_index(read_json(index_path(path)))


def checked_index(index: Any) -> Index:
    """``index`` if it has the shape every report relies on, else ValueError."""
    results = index.get("results") if isinstance(index, dict) else None
    if not isinstance(results, list):
        raise ValueError("not a report index")
    for entry in results:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("result"), str)
        ):
            raise ValueError(f"malformed entry {json.dumps(entry)[:200]}")
        Status(entry.get("status"))  # ValueError names the bad status
    return index


def read_result(index_dir: str, rel: str) -> ResultData | None:
    """The result file ``rel`` of the run in ``index_dir``, or None when it
    is missing or unreadable (a run killed mid-write): reports then make do
    with the index entry."""
    try:
        data = read_json(os.path.join(index_dir, rel))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    from typing import cast  # reports only: typing is loaded by then

    return cast("ResultData", data)
