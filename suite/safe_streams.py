"""The terminal's streams, made safe to lose.

A run's results are its output directory; what it prints is only a view of
them. So a reader that goes away (``run-testsuite ... | head``), a closed
descriptor (``>&-``) or a full device (``>/dev/full``) must not stop the
run: stopped there, every result not yet finished was lost, with the index
and history (``| head -3`` on 90 testcases left 1 entry in the index).

``install`` first gives descriptors 0, 1 and 2 a /dev/null where they are
closed: a file the run opens would otherwise take descriptor 1 or 2, and
what is printed would be written into it (an index, a result). Then
``sys.stdout`` and ``sys.stderr`` become ``SafeStream``s: the first write
that fails turns the descriptor into /dev/null, and the run goes on to its
end, printing nowhere.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class SafeStream:
    """A text stream whose writes never raise: one that fails sends this
    and every later write of the descriptor to /dev/null (``lost``)."""

    def __init__(self, stream: TextIO, fd: int):
        self._stream = stream
        self._fd = fd
        self.lost = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # ValueError: the stream was closed
            self._lose()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self._lose()

    def _lose(self) -> None:
        """Point the descriptor at /dev/null, so that what waits in the
        buffer, and the interpreter's last flush at exit, go there too."""
        self.lost = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(devnull, self._fd)
        except OSError:
            pass
        finally:
            os.close(devnull)
        try:
            self._stream.flush()  # what waited in the buffer, now to /dev/null
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, reconfigure...
        return getattr(self._stream, name)


def install() -> None:
    """Open /dev/null on whichever of descriptors 0, 1 and 2 is closed, and
    make ``sys.stdout`` and ``sys.stderr`` SafeStreams."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            _devnull_at(fd)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if isinstance(stream, SafeStream):
            continue
        if stream is None:  # started with the descriptor closed: Python made no stream
            stream = open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        setattr(sys, name, SafeStream(stream, fd))


def _devnull_at(fd: int) -> None:
    opened = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
    if opened != fd:
        os.dup2(opened, fd)
        os.close(opened)
