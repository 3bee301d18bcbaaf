#!/usr/bin/env python3
"""calc: the small program under test in the example suite.

Reads arithmetic from files (or stdin), one statement a line, and prints
each expression's value:

    1 + 2 * 3          -> 7
    let r = 2          (binds r, prints nothing)
    pi * r ^ 2         -> 12.566371

Exit status: 0 on success, 1 on a runtime error (division by zero, unknown
name), 2 on a syntax error. CALC_PRECISION sets the digits after the point.
"""

import math
import os
import re
import sys

TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_]\w*)|(\*\*|[-+*/^%()=]))")


class CalcError(Exception):
    status = 1


class CalcSyntaxError(CalcError):
    status = 2


def tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match:
            raise CalcSyntaxError(f"unexpected character {text[pos:].strip()[0]!r} at column {pos + 1}")
        number, name, op = match.groups()
        tokens.append(("num", float(number)) if number else ("name", name) if name else ("op", op))
        pos = match.end()
    return tokens


class Parser:
    def __init__(self, tokens, names):
        self.tokens, self.pos, self.names = tokens, 0, names

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", None)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, value):
        kind, got = self.take()
        if got != value:
            raise CalcSyntaxError(f"expected {value!r}, found {got if got is not None else 'end of line'!r}")

    def expression(self):
        value = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            value = value + self.term() if op == "+" else value - self.term()
        return value

    def term(self):
        value = self.power()
        while self.peek()[0] == "op" and self.peek()[1] in "*/%":
            op = self.take()[1]
            right = self.power()
            if op == "*":
                value *= right
            elif right == 0:
                raise CalcError("division by zero")
            else:
                value = value / right if op == "/" else math.fmod(value, right)
        return value

    def power(self):
        base = self.unary()
        if self.peek() in (("op", "^"), ("op", "**")):
            self.take()
            return base ** self.power()  # right-associative
        return base

    def unary(self):
        if self.peek() == ("op", "-"):
            self.take()
            return -self.unary()
        return self.atom()

    def atom(self):
        kind, value = self.take()
        if kind == "num":
            return value
        if kind == "name":
            if self.peek() == ("op", "("):
                self.take()
                argument = self.expression()
                self.expect(")")
                return call(value, argument)
            if value not in self.names:
                raise CalcError(f"unknown name '{value}'")
            return self.names[value]
        if (kind, value) == ("op", "("):
            inner = self.expression()
            self.expect(")")
            return inner
        raise CalcSyntaxError(f"unexpected {value if value is not None else 'end of line'!r}")


def call(function, argument):
    functions = {"sqrt": math.sqrt, "abs": abs, "floor": math.floor}
    if function not in functions:
        raise CalcError(f"unknown function '{function}'")
    if function == "sqrt" and argument < 0:
        raise CalcError("square root of a negative number")
    return functions[function](argument)


def render(value, precision):
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{precision}f}".rstrip("0").rstrip(".")


def run(lines, source, precision, names):
    for number, line in enumerate(lines, start=1):
        statement = line.split("#", 1)[0].strip()
        if not statement:
            continue
        try:
            tokens = tokenize(statement)
            if len(tokens) >= 2 and tokens[0] == ("name", "let"):
                if len(tokens) < 4 or tokens[1][0] != "name" or tokens[2] != ("op", "="):
                    raise CalcSyntaxError("expected 'let NAME = EXPRESSION'")
                parser = Parser(tokens[3:], names)
                value = parser.expression()
                if parser.peek()[0] != "end":
                    raise CalcSyntaxError(f"unexpected {parser.peek()[1]!r}")
                names[tokens[1][1]] = value
                continue
            parser = Parser(tokens, names)
            value = parser.expression()
            if parser.peek()[0] != "end":
                raise CalcSyntaxError(f"unexpected {parser.peek()[1]!r}")
            print(render(value, precision))
        except CalcError as exc:
            sys.stdout.flush()
            print(f"calc: {source}:{number}: {exc}", file=sys.stderr)
            return exc.status
    return 0


def main(argv):
    precision = int(os.environ.get("CALC_PRECISION", "6"))
    names = {"pi": math.pi, "e": math.e}
    sources = argv or ["-"]
    for source in sources:
        if source == "-":
            status = run(sys.stdin.read().splitlines(), "<stdin>", precision, names)
        else:
            try:
                with open(source, encoding="utf-8") as handle:
                    lines = handle.read().splitlines()
            except OSError as exc:
                print(f"calc: cannot read {source}: {exc.strerror}", file=sys.stderr)
                return 1
            status = run(lines, source, precision, names)
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
