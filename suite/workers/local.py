"""Local workers: a forked process per slot (the default), or the main
process itself (``--no-multiprocessing``)."""

from __future__ import annotations

import faulthandler
import gc
import os
import signal
import sys

from run_testsuite.commands import KILL_GRACE, kill_active
from run_testsuite.execution import execute
from run_testsuite.fragment import Fragment
from run_testsuite.processes import descendants, die_with_parent
from run_testsuite.results import Outcome, Reason, Status
from run_testsuite.runner import adopt_orphans, become_sole_runner, pin_to
from run_testsuite.workdir import discard_spare
from run_testsuite.workers.base import Event, Worker
from run_testsuite.workers.forked import ChannelCorrupt, ForkedProcess, channel_pair

# How much of a dead worker's stderr its fragment's result quotes.
LAST_WORDS = 4096


class InlineWorker(Worker):
    """Runs each fragment in the main process, so a debugger can follow it."""

    max_slots = 1

    def __init__(self, slot: int, on_output=None, stderr_dir=None, cpus=None):
        super().__init__(slot, on_output, stderr_dir, cpus)
        self.pending: list[Event] = []
        self.affinity = None
        if cpus:
            self.affinity = os.sched_getaffinity(0)
            pin_to(cpus)
        # Orphans of commands are killed after each; children this process
        # already had (a host program's own) are left alone.
        adopt_orphans(keep=frozenset(descendants()))

    def _send(self, job: int, fragment: Fragment) -> None:
        hook = self.on_output
        tee = (lambda data: hook(job, data)) if hook is not None else None
        self.pending.append((job, execute(fragment, self.slot, tee)))

    def stop(self) -> None:
        if self.affinity is not None:
            os.sched_setaffinity(0, self.affinity)
            pin_to(None)

    def events(self) -> list[Event]:
        if not self.pending:
            return []
        self._finish()
        events, self.pending = self.pending, []
        return events


class ProcessWorker(Worker):
    """A long-lived child process, fed fragments over a pipe.

    Workers are forked from the main process once the plan is loaded, so
    they start in milliseconds with every driver already imported; no
    Python start-up is paid per fragment. A worker that dies is replaced in
    its slot and the fragment it held becomes an ERROR with reason CRASH.
    """

    takes_ahead = True

    def __init__(self, slot: int, on_output=None, stderr_dir=None, cpus=None):
        super().__init__(slot, on_output, stderr_dir, cpus)
        self.stderr_path = os.path.join(stderr_dir, f"worker-{slot}.stderr") if stderr_dir else None
        self.expired = False
        self.corrupt = ""  # why its channel could not be read, once it could not
        self._spawn()  # sets process and conn

    def _spawn(self) -> None:
        self.generation += 1
        self.released = False
        parent, child = channel_pair()
        self.process = ForkedProcess(
            _serve,
            (child, self.slot, os.getpid(), self.stderr_path, self.on_output is not None, self.cpus),
            parent,
            child,
        )
        self.conn = parent

    def _send(self, job: int, fragment: Fragment) -> None:
        ahead = self.queued is not None and self.queued[0] == job
        try:
            self.conn.send(("run", job, fragment, ahead))
        except OSError:  # it died: its sentinel says so, and the fragment is a CRASH
            pass

    def _withdraw(self, job: int) -> None:
        try:
            self.conn.send(("withdraw", job))
        except OSError:  # dead: the fragment comes back with the crash
            pass

    def waitables(self) -> list:
        return [self.conn.fileno(), self.process.sentinel]

    def events(self) -> list[Event]:
        # Every message that has arrived, not one: those read ahead into the
        # channel's buffer would not wake the scheduler's selector again.
        events = []
        try:
            while self.conn.poll():
                kind, job, payload = self.conn.recv()
                if kind == "out":
                    if self.on_output is not None:
                        self.on_output(job, payload)
                    continue
                self._finish()
                events.append((job, payload))  # payload: None if withdrawn
        except ChannelCorrupt as exc:  # nothing more can be read from it: the worker is lost
            self.corrupt = str(exc)
            self.process.kill()
            self.process.join()
            return events + self._crashed()
        except (EOFError, OSError):
            pass
        if events or self.process.is_alive():
            return events
        return self._crashed()  # also respawns an idle worker that died

    def _crashed(self) -> list[Event]:
        self.process.join()
        code = self.process.exitcode
        self.process.close()  # release its sentinel now, not at garbage collection
        self.conn.close()
        if self.corrupt:
            message = (
                f"the worker's channel to run-testsuite was corrupted ({self.corrupt}): something wrote into "
                "its pipes (a command writing to /proc/$PPID/fd?), so the worker was killed"
            )
        elif self.expired:
            message = "the worker stopped answering past the fragment's timeouts and was killed"
        elif code is not None and code < 0:
            message = f"the worker process died from signal {signal.Signals(-code).name}"
        else:
            message = f"the worker process exited unexpectedly with status {code}"
        last_words = self._last_words()
        if last_words and not self.corrupt:  # a corrupt channel's own words say the same again
            # The message stays one line; the whole of them is the output.
            message += f" (its last words: {last_words.splitlines()[-1][:200]})"
        events: list[Event] = []
        if self.job is not None:
            crash = Outcome(Status.ERROR, Reason.CRASH, message, slot=self.slot, output=last_words)
            events.append((self.job, crash))
        if self.queued is not None:  # never started: it can run elsewhere
            events.append((self.queued[0], None))
        self.job = self.deadline = self.queued = None
        self.expired = False
        self.corrupt = ""
        self._spawn()
        return events

    def _last_words(self) -> str:
        """The end of what the dead worker wrote to stderr (a Python fatal
        error, a traceback), and a fresh file for the next one."""
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - LAST_WORDS))
                words = handle.read().decode("utf-8", "replace").strip()
            os.unlink(self.stderr_path)
        except OSError:
            return ""
        return words

    def expire(self) -> list[Event]:
        self.expired = True
        self.process.kill()
        self.process.join()
        return self._crashed()

    def interrupt(self) -> None:
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()

    def release(self) -> None:
        if not self.released:
            self.released = True
            try:
                self.conn.send(None)
            except OSError:
                pass

    def stop(self) -> None:
        self.release()
        self.process.join(timeout=KILL_GRACE + 1)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.process.close()
        self.conn.close()
        # A worker that said nothing leaves no file behind.
        if self.stderr_path and os.path.exists(self.stderr_path) and not os.path.getsize(self.stderr_path):
            os.unlink(self.stderr_path)


def _serve(conn, slot: int, parent: int, stderr_path: str | None, tee: bool, cpus: list[int] | None) -> None:
    """A worker process's life: run fragments until told to stop."""
    if cpus:
        pin_to(cpus)  # commands inherit the affinity
    if stderr_path:
        # What a dying worker says (a fatal error, a traceback) goes to a
        # file the main process quotes in the fragment's CRASH result.
        try:
            fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError:  # no room for it (a full disk): its last words go to the run's stderr
            pass
        else:
            os.dup2(fd, 2)
            os.close(fd)
        faulthandler.enable()
    # Ctrl-C (and the hang-up of a closed terminal) reaches the whole
    # foreground process group; the main process decides what happens, and
    # tells workers with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    die_with_parent(signal.SIGTERM, parent)
    adopt_orphans()
    become_sole_runner()
    # What the worker inherited from the main process lives as long as it
    # does: keep the garbage collector from walking it again and again.
    gc.freeze()
    try:
        _take_messages(conn, slot, tee)
    finally:
        discard_spare()


def _take_messages(conn, slot: int, tee: bool) -> None:
    """Run the fragments the main process sends, until told to stop."""
    inbox: list = []  # messages read, in order, not yet acted on
    # A fragment sent ahead was sent not knowing how the one before it would
    # end: after one that did not pass, it is given back unrun, so that the
    # main process decides again (--max-failures may stop the run there).
    last_passed = True
    while True:
        try:
            if not inbox:
                inbox.append(conn.recv())
            # A withdrawal of the next fragment may already be behind it.
            while conn.poll():
                inbox.append(conn.recv())
        except ChannelCorrupt as exc:  # its last words, for the main process's report
            print(f"run-testsuite worker: the channel from run-testsuite was corrupted ({exc})", file=sys.stderr)
            return
        except (EOFError, OSError):  # the main process is gone
            return
        message = inbox.pop(0)
        if message is None:
            return
        if message[0] == "withdraw":
            continue  # too late: that fragment already ran
        _, job, fragment, ahead = message
        if ("withdraw", job) in inbox:
            inbox.remove(("withdraw", job))
            reply: tuple[str, int, Outcome | None] = ("done", job, None)
        elif ahead and not last_passed:
            reply = ("done", job, None)
        else:
            on_output = (lambda data, job=job: conn.send(("out", job, data))) if tee else None
            reply = ("done", job, execute(fragment, slot, on_output))
        last_passed = reply[2] is None or reply[2].status is Status.PASS
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def _terminate(signum, frame) -> None:
    kill_active()
    discard_spare()
    os._exit(128 + signum)
