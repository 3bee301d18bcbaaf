"""``python -m run_testsuite``: the same as the ``run-testsuite`` command."""

from run_testsuite.cli import entry

entry()
