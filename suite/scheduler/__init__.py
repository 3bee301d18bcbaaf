"""The scheduler: runs a Plan's fragments on N slots, in dependency order.

``dispatch`` hands ready fragments to the slots' workers and waits for
their news in one selector; ``verdicts`` folds each testcase's fragment
outcomes into its result (retries, expected failures, the failure limit,
dependents skipped); ``resources`` hands out the members of the suite's
pools; ``priorities`` orders ready work by the critical path.
"""
