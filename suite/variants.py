"""Variants: one testcase directory run several times under other names.

A ``matrix`` in test.yaml expands a testcase into one variant per
combination of values, named ``name[opt=O2,target=arm]``; ``--repeat N``
runs every testcase N times, named ``name#1`` .. ``name#N``. Each variant is
a testcase of its own in the plan, with its own work directory and result.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    values: tuple[tuple[str, object], ...] = ()  # matrix key -> value, in spec order
    repeat: int | None = None  # 1..N under --repeat N

    @property
    def suffix(self) -> str:
        text = ""
        if self.values:
            text = "[" + ",".join(f"{key}={as_text(value)}" for key, value in self.values) + "]"
        if self.repeat is not None:
            text += f"#{self.repeat}"
        return text

    @property
    def repeat_suffix(self) -> str:
        return f"#{self.repeat}" if self.repeat is not None else ""

    def env(self) -> dict[str, str]:
        """Matrix values reach commands under their keys' names."""
        return {key: as_text(value) for key, value in self.values}


def variants(matrix: dict | None, repeat: int) -> list[Variant]:
    """Every combination of the matrix values, times each repetition."""
    combos: list[tuple[tuple[str, object], ...]] = [()]
    if matrix:
        keys = list(matrix)
        combos = [tuple(zip(keys, values)) for values in itertools.product(*(matrix[k] for k in keys))]
    repeats: list[int | None] = list(range(1, repeat + 1)) if repeat > 1 else [None]
    return [Variant(combo, r) for r in repeats for combo in combos]


def base_name(name: str) -> str:
    """The testcase directory's name behind a variant's name."""
    for mark in ("[", "#"):
        if mark in name:
            name = name[: name.index(mark)]
    return name


def as_text(value: object) -> str:
    """A matrix value as commands see it: `true`, not `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
