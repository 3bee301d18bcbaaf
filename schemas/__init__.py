"""JSON Schemas shipped with run-testsuite.

They validate specs at run time and let editors complete ``test.yaml``.
"""

from __future__ import annotations

import json
import os
from functools import cache

# os.path, not pathlib: this is imported at every start, and pathlib's
# imports cost more than the rest of the module.
SCHEMA_DIR = os.path.dirname(os.path.realpath(__file__))


def path(name: str) -> str:
    """The file of the schema ``NAME.schema.json``."""
    return os.path.join(SCHEMA_DIR, f"{name}.schema.json")


@cache
def load(name: str) -> dict:
    """Return the parsed schema ``NAME.schema.json``."""
    with open(path(name), encoding="utf-8") as handle:
        return json.load(handle)
