"""``--tee``: live output of running fragments, a ``[testcase]`` prefix per line.

Output arrives in chunks that split lines anywhere; each testcase's partial
line is held until its newline, so lines of concurrent testcases never mix.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import TextIO


class Tee:
    def __init__(self, stream: TextIO = sys.stdout, before_write=None):
        self.stream = stream
        self.partial: dict[str, bytes] = {}
        self.before_write = before_write  # e.g. clear a status line first

    def feed(self, name: str, data: bytes) -> None:
        data = self.partial.pop(name, b"") + data
        *lines, rest = data.split(b"\n")
        if rest:
            self.partial[name] = rest
        if lines:
            self._write(name, lines)

    def flush(self, name: str) -> None:
        """The testcase ended: print its unfinished last line."""
        rest = self.partial.pop(name, None)
        if rest:
            self._write(name, [rest])

    def _write(self, name: str, lines: list[bytes]) -> None:
        if self.before_write is not None:
            self.before_write()
        text = "".join(f"[{name}] {line.decode('utf-8', 'replace')}\n" for line in lines)
        self.stream.write(text)
        self.stream.flush()
