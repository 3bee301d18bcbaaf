"""Capturing a fragment's output in bounded memory.

Commands write into a pipe that the worker drains. Output stays in memory
while it is small, which spares a file per fragment; past ``SPILL_AT`` bytes,
or when a driver needs the output on disk (a later step compares it), it is
streamed to the fragment's log file instead. Either way the head and tail
are kept for the result, so memory stays bounded whatever a command prints.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO

HEAD = 8 * 1024
TAIL = 24 * 1024
SPILL_AT = HEAD + TAIL  # whenever the summary is cut, the whole output is on disk


class OutputCapture:
    """The combined stdout and stderr of one fragment's commands."""

    def __init__(self, log_path: str, keep_log: bool = False, tee=None):
        self.log_path = log_path
        self.tee = tee  # called with each chunk as it arrives (--tee)
        self.size = 0
        self._memory: list[bytes] | None = []
        self._head = bytearray()
        self._tail = bytearray()
        self._log: BinaryIO | None = None
        if keep_log:
            self._spill()

    @property
    def spilled(self) -> bool:
        return self._memory is None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.tee is not None:
            self.tee(data)
        self.size += len(data)
        if len(self._head) < HEAD:
            self._head += data[: HEAD - len(self._head)]
        self._tail += data
        if len(self._tail) > 2 * TAIL:  # trim now and then, not on every write
            del self._tail[:-TAIL]
        if self._memory is not None:
            self._memory.append(data)
            if self.size > SPILL_AT:
                self._spill()
        elif self._log is not None:
            try:
                self._log.write(data)
            except OSError as exc:  # a full disk: say which file, for the result
                raise OSError(exc.errno, exc.strerror, self.log_path) from None

    def _spill(self) -> None:
        try:
            # "wb": a retried testcase's fragment starts its log afresh; the
            # attempt before it is not this output.
            log = self._log = open(self.log_path, "wb")
            for chunk in self._memory or ():
                log.write(chunk)
        except OSError as exc:  # a full disk: say which file, for the result
            raise OSError(exc.errno, exc.strerror, self.log_path) from None
        self._memory = None

    def flush(self) -> None:
        """Make the log file hold everything written so far."""
        if self._log is not None:
            self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def data(self) -> bytes:
        """The whole output (read back from the log file when spilled)."""
        if self._memory is not None:
            return b"".join(self._memory)
        self.flush()
        with open(self.log_path, "rb") as handle:
            return handle.read()

    def summary(self) -> str:
        """Head and tail, decoded with replacement characters, for the result."""
        if self.size <= HEAD + TAIL:
            return self.data().decode("utf-8", "replace")
        tail = bytes(self._tail[-TAIL:])
        cut = self.size - HEAD - TAIL
        where = f"; full output in {self.log_path}" if self.spilled else ""
        return (
            bytes(self._head).decode("utf-8", "replace")
            + f"\n[... {cut} bytes cut{where} ...]\n"
            + tail.decode("utf-8", "replace")
        )

    def keep_if_not_text(self) -> None:
        """Output that is not valid UTF-8 is shown with replacement
        characters; its exact bytes go to the log file."""
        if self._memory is None:
            return
        try:
            b"".join(self._memory).decode("utf-8")
        except UnicodeDecodeError:
            self._spill()

    def log_files(self) -> list[str]:
        return [self.log_path] if self.spilled else []
