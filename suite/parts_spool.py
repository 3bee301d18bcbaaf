"""The key parts of a plan's testcases, kept in an unnamed temporary file.

Each testcase's key parts (``KeyParts`` as JSON) are made with its key, and
read again only where history records a key that is new, or ``--explain``
compares one: held in memory they took 100,000 testcases 35 MB for the
whole run. The file has no name (``tempfile.TemporaryFile``, in TMPDIR):
nothing is left of it, even when the run is killed. Written unbuffered, so
what could not be written is known at once: a part the file cannot take
(a full temporary directory) stays in memory, and so do all after it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO


class PartsSpool:
    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._size = 0
        self._in_memory: list[str] = []
        self._broken = False

    def keep(self, text: str) -> int:
        """Keep ``text``; return what ``get`` takes to give it back."""
        data = text.encode()
        if not self._broken:
            try:
                if self._file is None:
                    import tempfile

                    self._file = tempfile.TemporaryFile(prefix="run-testsuite-parts-", buffering=0)
                written = 0
                while written < len(data):
                    written += os.pwrite(self._file.fileno(), data[written:], self._size + written)
            except OSError:
                self._broken = True
            else:
                at = self._size << 32 | len(data)
                self._size += len(data)
                return at
        self._in_memory.append(text)
        return -len(self._in_memory)

    def get(self, at: int) -> str | None:
        """What ``keep`` kept, or None if it cannot be read back."""
        if at < 0:
            return self._in_memory[-at - 1]
        if self._file is None:
            return None
        try:
            return os.pread(self._file.fileno(), at & 0xFFFFFFFF, at >> 32).decode()
        except (OSError, UnicodeDecodeError):
            return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
