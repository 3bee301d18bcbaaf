"""calc's Python API: Parser, tokenize and render, as a program embedding it uses them."""

import importlib.util
import math
import os
import sys

import pytest

spec = importlib.util.spec_from_file_location("calc", os.path.join(os.environ["TEST_SUITE_ROOT"], "program", "calc.py"))
calc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calc)


def evaluate(text, names=None):
    return calc.Parser(calc.tokenize(text), names or {}).expression()


def test_precedence():
    assert evaluate("1 + 2 * 3") == 7


@pytest.mark.parametrize("text, value", [("2 ^ 10", 1024), ("2 ^ 3 ^ 2", 512), ("-2 ^ 2", 4)])
def test_power(text, value):
    assert evaluate(text) == value


def test_names_are_looked_up():
    assert evaluate("pi * r ^ 2", {"pi": math.pi, "r": 2}) == pytest.approx(12.566371, abs=1e-6)


def test_unknown_name_is_an_error():
    with pytest.raises(calc.CalcError, match="unknown name 'x'"):
        evaluate("x + 1")


def test_render_trims_zeros():
    assert calc.render(2.5, 6) == "2.5"
    assert calc.render(3.0, 6) == "3"


def test_modulo_follows_the_divisor():
    assert evaluate("-7 % 3") == 2


@pytest.mark.skipif(sys.platform != "win32", reason="console code pages exist on Windows only")
def test_windows_console_encoding():
    assert calc.render(1.5, 2) == "1.5"
