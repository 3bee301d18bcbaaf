"""The ``shell`` driver: a testcase passes when every command exits as expected."""

from run_testsuite.drivers.base import Driver


class ShellDriver(Driver):
    """Run ``cmd`` or ``steps``; PASS when each exits with ``exit_code``."""
