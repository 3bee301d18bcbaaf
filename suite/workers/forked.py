"""A child process forked from this one, and the channel to talk to it.

What ``multiprocessing`` offers with its fork context, cut down to what the
scheduler's workers use. Importing multiprocessing and its Connection
(tempfile, random, socket...) cost every run about 7 ms before its first
fragment, and starting a Process about 0.4 ms per worker beyond the fork.
The channel also reads whatever has arrived in one system call, where a
Connection makes two per message.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import traceback
from collections.abc import Callable

from run_testsuite.processes import INTERRUPTS

# Before each pickled message: a mark, then its length. The mark tells a
# message from bytes something else wrote into the pipes (a test can, by
# /proc/$PPID/fd): read as a length, 'junk' asked for 1.8 GB that never
# came, and the run waited on that worker till its watchdog.
_MARK = b"RTS\x01"
_HEADER = len(_MARK) + 4


class ChannelCorrupt(EOFError):
    """What came through the pipe is not a message: the channel is lost."""


_PARENTS_SIGNALS = set(INTERRUPTS)


class Channel:
    """Pickled messages over a pair of pipes: one to read, one to write."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.buffer = bytearray()
        self.eof = False
        self.closed = False
        self.poller = select.poll()  # not select(): descriptors may pass 1023
        self.poller.register(read_fd, select.POLLIN)

    def fileno(self) -> int:
        return self.read_fd

    def send(self, message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_MARK + len(data).to_bytes(_HEADER - len(_MARK), "little") + data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def _complete(self) -> int:
        """The length of the first message if it has fully arrived, else 0."""
        if len(self.buffer) < _HEADER:
            if self.buffer and not _MARK.startswith(bytes(self.buffer[: len(_MARK)])):
                raise ChannelCorrupt(f"not a message: {bytes(self.buffer[:16])!r}")
            return 0
        if self.buffer[: len(_MARK)] != _MARK:
            raise ChannelCorrupt(f"not a message: {bytes(self.buffer[:16])!r}")
        size = int.from_bytes(self.buffer[len(_MARK) : _HEADER], "little")
        return size if len(self.buffer) >= _HEADER + size else 0

    def _fill(self) -> None:
        data = os.read(self.read_fd, 1 << 16)
        if data:
            self.buffer += data
        else:
            self.eof = True

    def poll(self) -> bool:
        """True when ``recv`` will not block: a message, or the end, is here."""
        if self._complete() or self.eof:
            return True
        if self.poller.poll(0):
            self._fill()
        return bool(self._complete()) or self.eof

    def recv(self):
        """The next message, waiting for it; EOFError once the writer is gone."""
        while not self._complete():
            if self.eof:
                raise EOFError
            self._fill()
        size = self._complete()
        try:
            message = pickle.loads(self.buffer[_HEADER : _HEADER + size])
        except Exception as exc:  # bytes written into the middle of a message
            raise ChannelCorrupt(f"a message could not be read: {type(exc).__name__}: {exc}") from None
        del self.buffer[: _HEADER + size]
        return message

    def close(self) -> None:
        """Close both ends; once only: the numbers may be reused after."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def channel_pair() -> tuple[Channel, Channel]:
    """Two connected ends: what one sends, the other receives."""
    down_read, down_write = os.pipe()
    up_read, up_write = os.pipe()
    return Channel(up_read, down_write), Channel(down_read, up_write)


class ForkedProcess:
    """``target(*args)`` in a forked child, which then exits (status 1 if it
    raised, after printing the traceback on its stderr)."""

    def __init__(self, target: Callable, args: tuple, parent_end: Channel, child_end: Channel):
        """The ends of a channel_pair: each side closes the other's."""
        # Whatever waits in our buffers would be written twice, by both.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        # Readable once the child is gone: it holds the write end until it
        # exits (commands it starts do not: pipes are close-on-exec).
        sentinel_read, sentinel_write = os.pipe()
        # Ctrl-C and SIGTERM are held back across the fork: the child would
        # otherwise run this process's handler (a KeyboardInterrupt, and its
        # traceback) if one came before it set its own. It leaves them to
        # the parent: SIGINT ignored, SIGTERM at its default until ``target``
        # says otherwise.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENTS_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller
            code = 0
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent's to handle, as Ctrl-C
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            try:
                os.close(sentinel_read)
                parent_end.close()
                target(*args)
            except BaseException:
                code = 1  # first: printing may fail too (stderr on a full disk)
                try:
                    traceback.print_exc()
                except BaseException:
                    pass
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(sentinel_write)
        child_end.close()
        self.pid = pid
        self.sentinel: int | None = sentinel_read
        self.exitcode: int | None = None

    def _reap(self, flags: int) -> None:
        if self.exitcode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.exitcode = -9
                return
            if pid:
                self.exitcode = os.waitstatus_to_exitcode(status)

    def is_alive(self) -> bool:
        self._reap(os.WNOHANG)
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        if self.exitcode is None and timeout is not None and self.sentinel is not None:
            poller = select.poll()
            poller.register(self.sentinel, select.POLLIN)
            if not poller.poll(timeout * 1000):
                return
        self._reap(0)

    def kill(self) -> None:
        if self.exitcode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Release the sentinel (the child must have been joined)."""
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None
