"""Reading a large JSON object a piece at a time: an index of 100,000
results is 22 MB of text, which ``json.load`` holds whole, with every
entry as a dict, before anything can be let go (60 MB at once).

``read_object`` parses the top-level object member by member, and the
members of one list of it (an index's ``results``) entry by entry, each
given to a function that keeps what it needs. Text is read 1 MB at a time;
what is held at once is that, one entry, and what the function keeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable

CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"
_NUMBER = frozenset("0123456789.eE+-")


class _Reader:
    def __init__(self, handle, decoder: json.JSONDecoder):
        self.handle = handle
        self.decoder = decoder
        self.text = ""
        self.at = 0
        self.done = False

    def _more(self, size: int | None = None) -> bool:
        if self.done:
            return False
        chunk = self.handle.read(size or CHUNK)
        if not chunk:
            self.done = True
            return False
        self.text = self.text[self.at :] + chunk
        self.at = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end)."""
        while True:
            while self.at < len(self.text) and self.text[self.at] in _WHITESPACE:
                self.at += 1
            if self.at < len(self.text):
                return self.text[self.at]
            if not self._more():
                return ""

    def expect(self, characters: str) -> str:
        found = self.peek()
        if not found or found not in characters:
            raise ValueError(f"expected {' or '.join(repr(c) for c in characters)} in JSON, found {found!r}")
        self.at += 1
        return found

    def value(self):
        """The next JSON value. A value the text read so far cuts short
        (or may: a number at its very end) is read again with more."""
        self.peek()
        size = CHUNK
        while True:
            try:
                value, end = self.decoder.raw_decode(self.text, self.at)
            except json.JSONDecodeError:
                if not self._more(size):
                    raise
                size *= 2  # a large value: no re-reading it a megabyte at a time
                continue
            # A number may go on past what was read: `1.` of `1.5`, `2e` of `2e9`.
            if (end == len(self.text) or self.text[end] in _NUMBER) and self._more(size):
                size *= 2
                continue
            self.at = end
            return value


def read_object(handle, list_key: str, each: Callable[[object], object]) -> dict:
    """The JSON object in the text file ``handle``, with the list under
    ``list_key`` made of ``each(item)`` for its items, parsed one at a time.
    ValueError when the text is not one JSON object."""
    reader = _Reader(handle, json.JSONDecoder())
    found: dict = {}
    reader.expect("{")
    if reader.peek() == "}":
        reader.at += 1
    else:
        while True:
            key = reader.value()
            if not isinstance(key, str):
                raise ValueError("expected a key in JSON")
            reader.expect(":")
            if key == list_key and reader.peek() == "[":
                reader.at += 1
                items: list = []
                if reader.peek() == "]":
                    reader.at += 1
                else:
                    while True:
                        items.append(each(reader.value()))
                        if reader.expect(",]") == "]":
                            break
                found[key] = items
            else:
                found[key] = reader.value()
            if reader.expect(",}") == "}":
                break
    if reader.peek():
        raise ValueError("extra data after the JSON object")
    return found
