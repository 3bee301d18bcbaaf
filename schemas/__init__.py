"""JSON Schemas shipped with run-testsuite.

They validate specs at run time and let editors complete ``test.yaml``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


@cache
def load(name: str) -> dict:
    """Return the parsed schema ``NAME.schema.json``."""
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as handle:
        return json.load(handle)
