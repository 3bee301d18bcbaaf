"""Conditions of a testcase's ``control`` entries: parsed safely, evaluated
without running Python (``control`` decides what they say).

``test.yaml`` is written by people who never touch Python, and a suite may
come from anywhere, so a condition must be able to *read* a few facts and
nothing else. We parse it with ``ast.parse(text, mode="eval")`` (Python's
grammar is familiar and gives good syntax errors), refuse every construct
outside a small whitelist at compile time, and turn the accepted tree into
closures that only look names up, compare and combine truth values. There is
no ``eval``/``exec``/``compile`` anywhere: a node type the compiler does not
know is an error, so even a hole in the checks cannot reach a call.

Accepted:

* literals: strings, numbers, ``True``/``False``/``None``, ``-`` before a
  number, tuples and lists of literals (both become tuples, so
  ``python >= [3, 12]`` works like ``python >= (3, 12)``);
* names (below), ``and``, ``or``, ``not``, parentheses;
* comparisons ``== != < <= > >= in``, ``not in``, chained as in Python
  (``1 < cpus <= 8``);
* ``env.NAME``, ``env['NAME']``, ``params.NAME``, ``params['NAME']``: a key
  of a namespace, never an attribute of an arbitrary value.

Refused: calls, other attribute or subscript access, names starting with
``__``, arithmetic, ``is``, lambdas, comprehensions, f-strings, starred
expressions, ``:=``, conditional expressions (``a if b else c``: use
``and``/``or``), dict and set displays. A condition is at most
``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels of syntax tree deep, so
no input can exhaust the parser's or our stack. Newlines count as spaces, so
a condition may span lines in a YAML block scalar.

The names a condition may use, and their values, come from ``control``.
"""

from __future__ import annotations

import ast
import difflib
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

MAX_LENGTH = 1000
MAX_DEPTH = 50
# Names whose values are namespaces: only these take `.KEY` and `['KEY']`.
NAMESPACES = frozenset({"env", "params", "which", "exists"})


class ExpressionError(Exception):
    """A condition that cannot be compiled or evaluated.

    The message is one line: the problem, then the expression. ``problem``,
    ``expression`` and (when known, 1-based) ``column`` are kept apart for
    callers that locate the error themselves.
    """

    def __init__(self, problem: str, expression: str = "", column: int | None = None):
        self.problem = problem
        self.expression = expression
        self.column = column
        shown = _shown(expression)
        super().__init__(f"{problem}: {shown}" if shown else problem)


def _shown(text: str, limit: int = 120) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Namespace(Mapping):
    """A read-only mapping that conditions reach with ``ns.KEY``/``ns['KEY']``.

    A missing key is ``None`` when ``missing_ok`` (the environment: an unset
    variable is simply falsy), an error otherwise (parameters are declared,
    so a missing one is a typo).
    """

    def __init__(self, name: str, values: Mapping[str, Any], missing_ok: bool):
        self._name = name
        self._values = dict(values)
        self.missing_ok = missing_ok

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<{self._name}: {len(self._values)} names>"


def _unknown(kind: str, unknown: Iterable[str], known: Iterable[str], text: str) -> ExpressionError:
    """Name every unknown name, the known ones (abridged) and likely fixes."""
    known = sorted(known)
    listed = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        parts.append(f"unknown {kind} '{name}' (known: {listed or 'none'}{hint})")
    return ExpressionError(", ".join(parts), text)


def compared_values(text: str, names: Iterable[str]) -> list[tuple[str, str]]:
    """Each (name, string) a condition compares one of ``names`` with
    (``os == 'linux'``, ``arch in ('x86', 'arm')``), for checks of values a
    name can never take. A condition that does not parse compares nothing
    (compiling it says why)."""
    wanted = frozenset(names)
    try:
        tree = ast.parse(text.replace("\n", " ").strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, (left, right) in zip(node.ops, itertools.pairwise(operands)):
            pairs = [(left, right)]
            if not isinstance(op, (ast.In, ast.NotIn)):  # `'64' in arch` is a substring test
                pairs.append((right, left))
            for name_side, value_side in pairs:
                if isinstance(name_side, ast.Name) and name_side.id in wanted:
                    found += [(name_side.id, value) for value in _strings(value_side)]
    return found


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


# -- compiling -----------------------------------------------------------------
Scope = Mapping[str, Any]
Evaluator = Callable[[Scope], Any]

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_SYMBOL = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_REFUSED = {  # node type -> what to call it in the message
    ast.Call: "function calls",
    ast.Lambda: "lambda expressions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Starred: "starred expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.BinOp: "arithmetic and bitwise operators",
    ast.IfExp: "conditional expressions (x if c else y)",
    ast.Dict: "dict displays",
    ast.Set: "set displays",
    ast.Slice: "slices",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_LITERAL_TYPES = (str, int, float, bool, type(None))


class Condition:
    """A compiled condition: ``evaluate(names)`` gives its truth.

    ``names`` is the set of top-level names it uses, so a validator can
    check them (``check_names``) without evaluating anything.
    """

    __slots__ = ("_evaluate", "names", "text")

    def __init__(self, text: str, names: frozenset[str], evaluate: Evaluator):
        self.text = text
        self.names = names
        self._evaluate = evaluate

    def check_names(self, known: Iterable[str]) -> None:
        """Raise ExpressionError naming every used name not in ``known``."""
        known = set(known)
        missing = self.names - known
        if missing:
            raise _unknown("name", missing, known, self.text)

    def evaluate(self, names: Mapping[str, Any]) -> bool:
        self.check_names(names.keys())
        return bool(self._evaluate(names))

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"


def compile_condition(text: str) -> Condition:
    """Parse and check ``text``; raise ExpressionError if it is not allowed.

    Cached by text: a suite repeats the same few conditions in many
    testcases, and a Condition is immutable.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"a condition must be a string, not {type(text).__name__}", repr(text))
    return _compile(text)


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Condition:
    source = text.replace("\r", " ").replace("\n", " ").strip()
    if not source:
        raise ExpressionError("empty condition", text)
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"condition longer than {MAX_LENGTH} characters ({len(source)})", source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        column = error.offset if error.lineno == 1 else None
        if column is not None and not 0 < column <= len(source):
            column = len(source) + 1  # CPython says 0 for "ended too soon"
        where = f" at column {column}" if column else ""
        raise ExpressionError(f"syntax error{where}: {error.msg}", source, column) from None
    except (RecursionError, MemoryError, ValueError) as error:
        # CPython's own limits on nesting surface as these.
        raise ExpressionError(f"condition too deeply nested ({type(error).__name__})", source) from None
    _check_depth(tree, source)
    names: set[str] = set()
    evaluate = _Compiler(source, names).build(tree.body)
    return Condition(source, frozenset(names), evaluate)


def _check_depth(tree: ast.AST, source: str) -> None:
    """Refuse trees deeper than MAX_DEPTH, without recursing ourselves."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"condition nested more than {MAX_DEPTH} levels deep", source)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Compiler:
    """Turn an accepted tree into closures; refuse anything else.

    Each accepted node type has its own method and builds only lookups,
    comparisons and truth tests. There is no fallback that could run code.
    """

    def __init__(self, source: str, names: set[str]):
        self.source = source
        self.names = names

    def refuse(self, node: ast.AST, problem: str) -> ExpressionError:
        column = getattr(node, "col_offset", None)
        return ExpressionError(problem, self.source, None if column is None else column + 1)

    def build(self, node: ast.AST) -> Evaluator:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            what = _REFUSED.get(type(node), f"'{type(node).__name__}' expressions")
            raise self.refuse(node, f"{what} are not allowed in conditions")
        return method(node)

    # literals
    def literal(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, _LITERAL_TYPES):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.literal(element) for element in node.elts)
        if isinstance(node, ast.Constant):
            raise self.refuse(node, f"{type(node.value).__name__} literals are not allowed in conditions")
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
            raise self.refuse(
                node, "arithmetic and bitwise operators are not allowed in conditions ('-' only before a number)"
            )
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
            raise self.refuse(node, "tuples and lists may hold only literals in conditions")
        self.build(node)  # raises with the node's own message
        raise self.refuse(node, "tuples and lists may hold only literals in conditions")

    def _constant(self, node: ast.AST) -> Evaluator:
        value = self.literal(node)
        return lambda scope: value

    _Constant = _Tuple = _List = _constant

    # names and namespaces
    def name(self, node: ast.AST) -> str:
        if not isinstance(node, ast.Name):
            raise self.refuse(
                node, "attribute and subscript access is only allowed on env and params (env.NAME, params['NAME'])"
            )
        if node.id.startswith("__"):
            raise self.refuse(node, f"names starting with '__' are not allowed in conditions ('{node.id}')")
        self.names.add(node.id)
        return node.id

    def _Name(self, node: ast.Name) -> Evaluator:
        name = self.name(node)
        return lambda scope: scope[name]

    def _Attribute(self, node: ast.Attribute) -> Evaluator:
        return self.namespace_key(node, node.value, node.attr)

    def _Subscript(self, node: ast.Subscript) -> Evaluator:
        key = node.slice
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise self.refuse(node, "subscripts must be a quoted name in conditions (env['NAME'])")
        return self.namespace_key(node, node.value, key.value)

    def namespace_key(self, node: ast.AST, base: ast.AST, key: str) -> Evaluator:
        name = self.name(base)
        if name not in NAMESPACES:
            raise self.refuse(
                node,
                f"attribute and subscript access is only allowed on env, params, which and"
                f" exists (env.NAME, params['NAME'], which['g++'], exists['/dev/kvm']), not on '{name}'",
            )
        if key.startswith("__"):
            raise self.refuse(node, f"names starting with '__' are not allowed in conditions ('{key}')")
        source = self.source

        def lookup(scope: Scope) -> Any:
            namespace = scope[name]
            if not isinstance(namespace, Mapping):
                raise ExpressionError(f"'{name}' is not a namespace", source)
            if key in namespace:
                return namespace[key]
            if getattr(namespace, "missing_ok", True):
                return None
            kind = "parameter" if name == "params" else f"{name} key"
            raise _unknown(kind, [key], namespace.keys(), source)

        return lookup

    # logic
    def _BoolOp(self, node: ast.BoolOp) -> Evaluator:
        operands = [self.build(value) for value in node.values]
        if isinstance(node.op, ast.And):

            def evaluate(scope: Scope) -> Any:
                value = True
                for operand in operands:
                    value = operand(scope)
                    if not value:
                        break
                return value
        else:

            def evaluate(scope: Scope) -> Any:
                value = False
                for operand in operands:
                    value = operand(scope)
                    if value:
                        break
                return value

        return evaluate

    def _UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        if not isinstance(node.op, ast.Not):
            return self._constant(node)  # a negative number, or refused there
        operand = self.build(node.operand)
        return lambda scope: not operand(scope)

    def _Compare(self, node: ast.Compare) -> Evaluator:
        for op in node.ops:
            if type(op) not in _COMPARE:
                symbol = "is not" if isinstance(op, ast.IsNot) else "is"
                raise self.refuse(node, f"'{symbol}' is not allowed in conditions; use == or !=")
        left = self.build(node.left)
        steps = [(type(op), _COMPARE[type(op)], self.build(right)) for op, right in zip(node.ops, node.comparators)]
        source = self.source

        def evaluate(scope: Scope) -> bool:
            a = left(scope)
            for op, compare, right in steps:
                b = right(scope)
                try:
                    if not compare(a, b):
                        return False
                except TypeError:
                    raise ExpressionError(
                        f"cannot apply '{_SYMBOL[op]}' to {_describe(a)} and {_describe(b)}", source
                    ) from None
                a = b
            return True

        return evaluate


def _describe(value: Any) -> str:
    if isinstance(value, Namespace):
        return repr(value)
    return f"{type(value).__name__} {_shown(repr(value), 40)}"
