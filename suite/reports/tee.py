"""``--tee``: live output of running fragments, a ``[testcase]`` prefix per line.

Output arrives in chunks that split lines anywhere; each testcase's partial
line is held until its newline, so lines of concurrent testcases never mix.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import TextIO


# A line longer than this is shown in pieces, each marked as going on:
# memory stays bounded and the work linear whatever a test prints.
LINE_LIMIT = 64 * 1024


class Tee:
    def __init__(self, stream: TextIO | None = None, before_write=None):
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.partial: dict[str, bytearray] = {}
        self.before_write = before_write  # e.g. clear a status line first

    def feed(self, name: str, data: bytes) -> None:
        held = self.partial.get(name)
        end = data.rfind(b"\n")
        if end < 0:  # no line ends here: held, and shown in pieces if long
            if held is None:
                held = self.partial[name] = bytearray()
            held += data
            if len(held) >= LINE_LIMIT:
                pieces = [bytes(held[at : at + LINE_LIMIT]) for at in range(0, len(held) - LINE_LIMIT + 1, LINE_LIMIT)]
                del held[: len(pieces) * LINE_LIMIT]
                self._write(name, [piece + b" [line goes on]" for piece in pieces])
            return
        lines = data[:end].split(b"\n")
        if held:
            lines[0] = bytes(held) + lines[0]
            held.clear()
        rest = data[end + 1 :]
        if rest:
            self.partial.setdefault(name, bytearray()).extend(rest)
        self._write(name, lines)

    def flush(self, name: str) -> None:
        """The testcase ended: print its unfinished last line."""
        rest = self.partial.pop(name, None)
        if rest:
            self._write(name, [bytes(rest)])

    def _write(self, name: str, lines: list[bytes]) -> None:
        if self.before_write is not None:
            self.before_write()
        text = "".join(f"[{name}] {line.decode('utf-8', 'replace')}\n" for line in lines)
        self.stream.write(text)
        self.stream.flush()
