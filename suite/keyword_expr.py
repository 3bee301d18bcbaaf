"""The ``-k EXPR`` selector: pick testcases by name and tags, as in pytest.

Grammar (``not`` binds tighter than ``and``, which binds tighter than ``or``)::

    expr    := and_expr ("or" and_expr)*
    and_expr:= not_expr ("and" not_expr)*
    not_expr:= "not" not_expr | "(" expr ")" | WORD | QUOTED

A word matches a testcase when it is a case-insensitive substring of its
name, or equal (case-insensitively) to one of its tags. Words are made of
letters, digits and ``_ - / . [ ] = ,`` so that names such as
``arith/basic`` and matrix variants such as ``t[opt=O2]`` can be written
bare; anything else goes between single or double quotes (no escapes: use
the other quote). ``and``, ``or`` and ``not`` are operators only in lower
case. An empty expression selects everything, as in pytest.

A tiny recursive-descent parser, not ``eval``: the expression comes from a
command line but is matched against every testcase, and its errors should
say where they are (``KeywordError`` with a 1-based column).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Matcher = Callable[[str, Sequence[str]], bool]
# Parentheses and ``not`` may nest this deep; deeper is an error, not a
# RecursionError.
MAX_DEPTH = 100

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<paren>[()])
  | (?P<quoted>'[^']*'|"[^"]*")
  | (?P<word>[A-Za-z0-9_\-/.\[\]=,]+)
    """,
    re.VERBOSE,
)
_OPERATORS = {"and", "or", "not"}


class KeywordError(Exception):
    """A -k expression that cannot be parsed; ``column`` is 1-based."""

    def __init__(self, problem: str, expression: str, column: int):
        self.problem = problem
        self.expression = expression
        self.column = column
        super().__init__(f"{problem} at column {column} in -k expression: {expression}")


def _tokens(expr: str) -> list[tuple[str, str, int]]:
    """(kind, text, column) for each token, then ("end", "", column)."""
    tokens = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            char = expr[position]
            if char in "'\"":
                raise KeywordError(f"unterminated quoted word (no closing {char})", expr, position + 1)
            raise KeywordError(
                f"unexpected character {char!r} (quote words holding other characters)",
                expr,
                position + 1,
            )
        kind, text = match.lastgroup or "", match.group()
        if kind == "word" and text in _OPERATORS:
            kind = text
        elif kind == "quoted":
            kind, text = "word", text[1:-1]
        elif kind == "paren":
            kind = text
        if kind != "space":
            tokens.append((kind, text, position + 1))
        position = match.end()
    tokens.append(("end", "", len(expr) + 1))
    return tokens


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.tokens = _tokens(expr)
        self.index = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, expected: str) -> KeywordError:
        kind, text, column = self.peek()
        found = "the end of the expression" if kind == "end" else repr(text)
        return KeywordError(f"expected {expected}, found {found}", self.expr, column)

    def parse(self) -> Matcher:
        matcher = self.or_expr()
        if self.peek()[0] != "end":
            raise self.error("'and', 'or' or the end of the expression")
        return matcher

    def or_expr(self) -> Matcher:
        operands = [self.and_expr()]
        while self.peek()[0] == "or":
            self.take()
            operands.append(self.and_expr())
        if len(operands) == 1:
            return operands[0]
        return lambda name, tags: any(operand(name, tags) for operand in operands)

    def and_expr(self) -> Matcher:
        operands = [self.not_expr()]
        while self.peek()[0] == "and":
            self.take()
            operands.append(self.not_expr())
        if len(operands) == 1:
            return operands[0]
        return lambda name, tags: all(operand(name, tags) for operand in operands)

    def not_expr(self) -> Matcher:
        kind, text, column = self.peek()
        if kind in ("not", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise KeywordError(f"nested more than {MAX_DEPTH} levels deep", self.expr, column)
            self.take()
            if kind == "not":
                matcher = _negated(self.not_expr())
            else:
                matcher = self.or_expr()
                if self.peek()[0] != ")":
                    raise self.error(f"')' to close the '(' at column {column}")
                self.take()
            self.depth -= 1
            return matcher
        if kind == "word":
            self.take()
            return _word(text)
        raise self.error("a word, 'not' or '('")


def _word(word: str) -> Matcher:
    folded = word.casefold()

    def matches(name: str, tags: Sequence[str]) -> bool:
        return folded in name.casefold() or any(folded == tag.casefold() for tag in tags)

    return matches


def compile_keyword(expr: str) -> Matcher:
    """Compile a -k expression into ``matcher(name, tags) -> bool``.

    Raises KeywordError, with the column, when it cannot be parsed.
    """
    if not expr.strip():
        return lambda name, tags: True
    return _Parser(expr).parse()


def _negated(operand: Matcher) -> Matcher:
    return lambda name, tags: not operand(name, tags)
