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

Removal is done by a helper process at the lowest CPU priority, in the
order results arrive; the main process only writes it each path, without
waiting. A thread would hold the interpreter lock between its system
calls: on 2,000 trivial testcases, a removing thread cost the scheduler's
loop 0.4 s of CPU and the run 1 s of wall time. A directory that cannot
be removed (a test left it read-only, say) is made writable and tried
again; what still stays is named in a warning, never a failure of the run.
A work directory a test replaced with a symbolic link is never followed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

from run_testsuite.results import Result, Status

POLICIES = ("passed", "all", "none")


class WorkCleaner:
    def __init__(self, policy: str, work_dirs: dict[str, list[str]], setups: set[str]):
        """``work_dirs``: testcase name -> the work directories its fragments
        use; ``setups``: the names that are set-ups."""
        self.policy = policy
        self.work_dirs = work_dirs
        self.setups = setups
        self.passed: set[str] = set()
        self.removed: set[str] = set()
        self.helper: subprocess.Popen | None = None
        self.pending = bytearray()  # paths the helper's pipe had no room for yet
        if policy != "none":
            # Started before the scheduler, whose sweep of orphans at the end
            # spares the children the run had before it began.
            # In a session of its own: a Ctrl-C at the terminal is the run's
            # to handle (it would cut the helper's start short, traceback and
            # all); it ends when its input does, however the run ends.
            self.helper = subprocess.Popen(
                [sys.executable, "-c", "from run_testsuite.cleanup import serve; serve()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
            )
            assert self.helper.stdin is not None
            os.set_blocking(self.helper.stdin.fileno(), False)

    def result(self, result: Result) -> None:
        """A testcase was decided: its directory goes now if it passed."""
        if self.policy == "none" or result.status is not Status.PASS or result.cached:
            return
        self.passed.add(result.name)
        if result.name not in self.setups:
            self._remove(result.name)

    def finish(self) -> None:
        """The run is over: set-ups that passed (and, with ``all``, every
        other testcase) lose their directories; wait until all are gone."""
        if self.policy != "none":
            for name in self.work_dirs:
                if (name in self.setups and name in self.passed) or self.policy == "all":
                    self._remove(name)
        helper = self.helper
        if helper is None:
            return
        assert helper.stdin is not None
        try:
            os.set_blocking(helper.stdin.fileno(), True)
            helper.stdin.write(bytes(self.pending))
            helper.stdin.close()
        except OSError:
            pass  # it died: what it did not remove stays
        assert helper.stdout is not None
        said = helper.stdout.read()
        helper.stdout.close()
        helper.wait()
        failures = [line for line in said.decode("utf-8", "replace").splitlines() if line]
        if failures:
            shown = "\n  ".join(failures[:10])
            more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
            print(
                f"run-testsuite: warning: --cleanup {self.policy}: could not remove {len(failures)} "
                f"work director{'y' if len(failures) == 1 else 'ies'}:\n  {shown}{more}",
                file=sys.stderr,
            )

    def _remove(self, name: str) -> None:
        for path in self.work_dirs.get(name, ()):
            if path not in self.removed:
                self.removed.add(path)
                self.pending += os.fsencode(path) + b"\0"
        if self.pending:
            self._hand_over()

    def _hand_over(self) -> None:
        """Write what the pipe takes now; the rest waits for the next call."""
        if self.helper is None or self.helper.stdin is None:
            self.pending.clear()
            return
        try:
            written = os.write(self.helper.stdin.fileno(), self.pending)
        except BlockingIOError:
            return
        except OSError:  # the helper is gone: nothing more is removed
            self.pending.clear()
            return
        del self.pending[:written]


def serve() -> None:
    """The helper: remove each NUL-terminated path read from stdin, say
    on stdout what could not be removed, end at end of input."""
    try:
        os.nice(19)
    except OSError:
        pass
    buffered = b""
    while chunk := os.read(0, 1 << 16):
        *paths, buffered = (buffered + chunk).split(b"\0")
        for raw in paths:
            path = os.fsdecode(raw)
            problem = remove_tree(path)
            if problem:
                shown = raw.decode("utf-8", "backslashreplace")
                os.write(1, f"{shown}: {problem}\n".encode())


def remove_tree(path: str) -> str | None:
    """Remove a work directory; None, or what kept it. A read-only
    directory inside is made writable first; a link is not followed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None  # never made (a SKIP), or a test removed it
    except OSError as exc:
        return exc.strerror
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory any more (a test replaced it); left as it is"

    def writable_and_again(function, failed: str, error: BaseException) -> None:
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if function is os.rmdir or function is os.unlink:
                function(failed)
            elif os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed)
        except OSError:
            raise error from None

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=writable_and_again)
        else:
            shutil.rmtree(path, onerror=lambda f, p, info: writable_and_again(f, p, info[1]))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
