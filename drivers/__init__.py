"""The built-in drivers (``shell``, ``diff``), the Driver base class and the
registry that finds a driver from its name or reference.

Driver authors import ``run_testsuite.api``, not these modules.
"""
