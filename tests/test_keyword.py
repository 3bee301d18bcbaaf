"""The -k selector: words against names and tags, operators, errors."""

from __future__ import annotations

import pytest

from run_testsuite.keyword_expr import MAX_DEPTH, KeywordError, compile_keyword

TESTCASES = {
    "arith/basic": ("fast",),
    "arith/division": ("slow", "Math"),
    "parse/errors": (),
    "parse/unicode": ("slow",),
    "opt/t[opt=O2]": ("codegen",),
    "opt/t[opt=O0]": ("codegen",),
    "io/big file": ("io",),
    "c++/templates": ("cpp",),
}


def selected(expr: str) -> list[str]:
    matcher = compile_keyword(expr)
    return [name for name, tags in TESTCASES.items() if matcher(name, tags)]


@pytest.mark.parametrize(
    "expr, expected",
    [
        # a word: case-insensitive substring of the name
        ("arith", ["arith/basic", "arith/division"]),
        ("ARITH", ["arith/basic", "arith/division"]),
        ("Basic", ["arith/basic"]),
        ("arith/b", ["arith/basic"]),
        ("t[opt=O2]", ["opt/t[opt=O2]"]),
        ("opt=o0", ["opt/t[opt=O0]"]),
        ("[opt", ["opt/t[opt=O2]", "opt/t[opt=O0]"]),
        ("nothing-matches", []),
        # ... or equal to a tag, case-insensitively, but not a substring of one
        ("slow", ["arith/division", "parse/unicode"]),
        ("SLOW", ["arith/division", "parse/unicode"]),
        ("math", ["arith/division"]),
        ("codegen", ["opt/t[opt=O2]", "opt/t[opt=O0]"]),
        ("codege", []),
        ("cp", []),
        # operators
        ("not slow", ["arith/basic", "parse/errors", "opt/t[opt=O2]", "opt/t[opt=O0]",
                      "io/big file", "c++/templates"]),
        ("arith and not slow", ["arith/basic"]),
        ("arith or parse", ["arith/basic", "arith/division", "parse/errors", "parse/unicode"]),
        ("slow and parse", ["parse/unicode"]),
        # precedence: not > and > or
        ("parse or arith and slow", ["arith/division", "parse/errors", "parse/unicode"]),
        ("arith and slow or parse", ["arith/division", "parse/errors", "parse/unicode"]),
        ("not arith and slow", ["parse/unicode"]),
        ("not arith or slow", ["arith/division", "parse/errors", "parse/unicode",
                               "opt/t[opt=O2]", "opt/t[opt=O0]", "io/big file", "c++/templates"]),
        # parentheses
        ("(parse or arith) and slow", ["arith/division", "parse/unicode"]),
        ("not (arith or parse or opt)", ["io/big file", "c++/templates"]),
        ("((arith))", ["arith/basic", "arith/division"]),
        ("not not arith", ["arith/basic", "arith/division"]),
        # quoted words hold anything but their own quote
        ("'big file'", ["io/big file"]),
        ('"big file"', ["io/big file"]),
        ("'c++'", ["c++/templates"]),
        ("'and'", []),
        ("'t[opt=O2]' or 'C++'", ["opt/t[opt=O2]", "c++/templates"]),
        # operators are lower case only; otherwise they are words
        ("AND", []),
        ("Or", ["parse/errors"]),  # a substring of "errors"
    ],
)
def test_selection(expr, expected):
    assert selected(expr) == expected


def test_upper_case_operator_is_a_word():
    matcher = compile_keyword("NOT")
    assert matcher("cannot/parse", [])
    assert not matcher("other", [])


def test_empty_expression_selects_everything():
    for expr in ("", "   "):
        assert selected(expr) == list(TESTCASES)


def test_whitespace_is_optional_around_parentheses():
    assert selected("(arith)and(slow)") == ["arith/division"]
    assert selected("not(arith)and slow") == ["parse/unicode"]


def test_a_tag_matches_exactly_not_as_substring_of_the_name_only():
    matcher = compile_keyword("gpu")
    assert matcher("x", ["GPU"])
    assert not matcher("x", ["gpus"])
    assert matcher("gpu-tests/a", [])


@pytest.mark.parametrize(
    "expr, column, problem",
    [
        ("arith and", 10, "expected a word, 'not' or '(', found the end of the expression"),
        ("and arith", 1, "expected a word, 'not' or '(', found 'and'"),
        ("arith or or slow", 10, "found 'or'"),
        ("not", 4, "found the end of the expression"),
        ("(arith", 7, "expected ')' to close the '(' at column 1"),
        ("((arith) and slow", 18, "expected ')' to close the '(' at column 1"),
        ("arith)", 6, "expected 'and', 'or' or the end of the expression, found ')'"),
        ("arith slow", 7, "found 'slow'"),
        ("()", 2, "found ')'"),
        ("c++", 2, "unexpected character '+' (quote words holding other characters)"),
        ("a * b", 3, "unexpected character '*'"),
        ("'big file", 1, "unterminated quoted word (no closing ')"),
        ('x and "y', 7, "unterminated quoted word"),
    ],
)
def test_errors_give_the_problem_and_the_column(expr, column, problem):
    with pytest.raises(KeywordError) as error:
        compile_keyword(expr)
    assert error.value.column == column
    assert problem in str(error.value)
    assert str(error.value).endswith(f"at column {column} in -k expression: {expr}")


@pytest.mark.parametrize("expr", ["not " * 10_000 + "a", "(" * 10_000 + "a" + ")" * 10_000])
def test_deep_nesting_is_a_keyword_error_not_a_recursion_error(expr):
    with pytest.raises(KeywordError, match=f"nested more than {MAX_DEPTH} levels deep"):
        compile_keyword(expr)


def test_nesting_within_the_limit_works():
    assert selected("(" * MAX_DEPTH + "arith" + ")" * MAX_DEPTH) == ["arith/basic", "arith/division"]
    assert selected("not " * (MAX_DEPTH - 1) + "arith") == [
        name for name in TESTCASES if not name.startswith("arith")
    ]


def test_long_flat_expressions_are_fine():
    expr = " or ".join(f"w{i}" for i in range(5000)) + " or basic"
    assert selected(expr) == ["arith/basic"]
