"""The ``run-testsuite`` script's entry point.

The command's modules are loaded here, not by the script before it calls
``main``: a Ctrl-C while they load (the first 60 ms or so) then ends it as
quietly as one a moment later does, not with a KeyboardInterrupt
traceback. A module of its own, tiny, that nothing imports back.
"""

from __future__ import annotations


def main() -> None:
    try:
        from run_testsuite.cli import entry
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("run-testsuite: interrupted\n")
        raise SystemExit(130) from None
    entry()
