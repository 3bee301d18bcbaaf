"""run-testsuite: a declarative, config-driven testsuite framework.

The run flows one way through small modules:
discovery -> spec -> loader (fragments, DAG) -> scheduler (workers)
-> results -> index -> reports.
"""

__version__ = "0.1.0"
