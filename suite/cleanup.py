"""--cleanup: removing work directories as their testcases pass.

A 10,000-testcase run used to leave 10,000 work directories behind; what
a passing testcase left in its work directory is rarely read, while a
failing one's is where its author looks first. So, as e3-testsuite does:

- ``passed`` (the default): a testcase's work directory goes as soon as
  it PASSes; set-ups' directories, which the testcases that need them
  read, go at the end of the run if the set-up passed;
- ``all``: every work directory the run made goes, the passing ones as
  they pass and the others at the end (logs and results stay);
- ``none``: all stay.

The removing is done by the workers, off the slots' critical path: the
scheduler hands the directories of testcases that passed to the next
fragment it sends (``Fragment.discard``), and the worker removes them
while that fragment's command runs, or, where one is empty, renames it to
be one of its spare directories (see ``workdir``): a pass then costs the
directory of work no more operations than before, where a separate
remover cost 2,000 trivial testcases 0.3 s of wall time and 1 s of
system time in contention on that directory. What is left at the end
(the last passes, set-ups, and with ``all`` the rest) is removed by the
main process. A directory that cannot be removed (a test left it
read-only, say) is made writable and tried again; what still stays is
named in a warning, never a failure of the run. A work directory a test
replaced with a symbolic link is never followed.
"""

from __future__ import annotations

import os
import sys
from collections import deque

from run_testsuite.results import Result, Status
from run_testsuite.workdir import remove_tree

# A worker keeps the empty directories it is handed as spares, for its next
# work directories (see ``workdir``). Handing over all that had piled up let
# one worker's spares overflow (an rmdir) while another's ran dry (a mkdir):
# 1,650 of each in 10,000 trivial testcases at -j 16, against 50 handing one
# per fragment sent, which matches what a fragment takes. A testcase is at
# least one fragment, so the passes never outrun the fragments: what waits
# is the few passes not yet known when the next fragments were sent.


class WorkCleaner:
    def __init__(self, policy: str, work_dirs: dict[str, list[str]], setups: set[str]):
        """``work_dirs``: testcase name -> the work directories its fragments
        use; ``setups``: the names that are set-ups."""
        self.policy = policy
        self.work_dirs = work_dirs
        self.setups = setups
        self.passed: set[str] = set()
        self.handed: list[str] = []  # given to workers to remove
        self.pending: deque[str] = deque()  # to give to the fragments sent next

    def result(self, result: Result) -> None:
        """A testcase was decided: its directory goes if it passed."""
        if self.policy == "none" or result.status is not Status.PASS or result.cached:
            return
        self.passed.add(result.name)
        if result.name not in self.setups:
            self.pending.extend(self.work_dirs.get(result.name, ()))

    def take(self) -> tuple[str, ...]:
        """For the scheduler: the directory the next fragment's worker is
        to remove, the oldest first."""
        if not self.pending:
            return ()
        taken = self.pending.popleft()
        self.handed.append(taken)
        return (taken,)

    def finish(self) -> None:
        """The run is over and its workers gone: remove what they did not
        (the last passes, set-ups that passed, and with ``all`` every other
        directory), and say what could not be removed."""
        if self.policy == "none":
            return
        left = [path for path in self.handed if os.path.lexists(path)] + list(self.pending)
        for name, dirs in self.work_dirs.items():
            if (name in self.setups and name in self.passed) or (self.policy == "all" and name not in self.passed):
                left.extend(dirs)
        failures = []
        for path in dict.fromkeys(left):
            problem = remove_tree(path)
            if problem:
                failures.append(f"{path}: {problem}")
        if failures:
            shown = "\n  ".join(failures[:10])
            more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
            print(
                f"run-testsuite: warning: --cleanup {self.policy}: could not remove {len(failures)} "
                f"work director{'y' if len(failures) == 1 else 'ies'}:\n  {shown}{more}",
                file=sys.stderr,
            )
