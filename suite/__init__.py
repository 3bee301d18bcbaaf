"""run-testsuite: a declarative, config-driven testsuite framework.

The run flows one way through small modules:
discovery -> spec -> loader (fragments, DAG) -> scheduler (workers)
-> results -> index -> reports.
"""

__version__ = "0.1.0"


def main() -> None:
    """The ``run-testsuite`` command. Its modules are loaded here, not by
    the script before it calls this: a Ctrl-C while they load (the first
    60 ms or so) then ends it as quietly as one a moment later does, not
    with a KeyboardInterrupt traceback."""
    try:
        from run_testsuite.cli import entry
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("run-testsuite: interrupted\n")
        raise SystemExit(130) from None
    entry()
