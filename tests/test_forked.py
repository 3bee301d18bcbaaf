"""The channel and forked child the workers are made of (run_testsuite.workers.forked)."""

from __future__ import annotations

import os
import signal
import time

from run_testsuite.workers.forked import ForkedProcess, channel_pair


def echo(channel) -> None:
    """Send back every message until None."""
    while True:
        message = channel.recv()
        if message is None:
            return
        channel.send(message)


def test_messages_of_any_size_arrive_whole_and_in_order():
    parent, child = channel_pair()
    process = ForkedProcess(echo, (child,), parent, child)
    big = b"x" * (3 << 20)  # several times a pipe's buffer
    messages = [("small", 1), big, {"nested": [1, 2, {"three": 3.0}]}, ("after", big[:10])]
    for message in messages:
        parent.send(message)
        assert parent.recv() == message
    # Several sent at once are read back one by one, none lost in the buffer.
    for number in range(50):
        parent.send(number)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 50 and time.monotonic() < deadline:
        while parent.poll():
            got.append(parent.recv())
    assert got == list(range(50))
    parent.send(None)
    process.join(5)
    assert process.exitcode == 0 and not process.is_alive()
    assert parent.poll()  # the end is news too
    try:
        parent.recv()
    except EOFError:
        pass
    else:
        raise AssertionError("expected EOFError once the child is gone")
    parent.close()
    parent.close()  # once only
    process.close()


def test_child_that_raises_exits_1_and_a_killed_one_reports_its_signal():
    def fail() -> None:
        raise RuntimeError("boom")

    parent, child = channel_pair()
    process = ForkedProcess(fail, (), parent, child)
    process.join(5)
    assert process.exitcode == 1
    process.close()
    parent.close()

    parent, child = channel_pair()
    process = ForkedProcess(echo, (child,), parent, child)
    assert process.is_alive()
    assert not os.waitpid(process.pid, os.WNOHANG)[0]
    process.kill()
    process.join(5)
    assert process.exitcode == -signal.SIGKILL
    process.join(0)  # reaped once: asking again changes nothing
    assert process.exitcode == -signal.SIGKILL
    process.close()
    parent.close()


def test_the_sentinel_becomes_readable_when_the_child_exits():
    import select

    parent, child = channel_pair()
    process = ForkedProcess(time.sleep, (0.2,), parent, child)
    poller = select.poll()
    poller.register(process.sentinel, select.POLLIN)
    assert poller.poll(0) == []
    assert poller.poll(5000)
    process.join()
    assert process.exitcode == 0
    process.close()
    parent.close()


def test_bytes_that_are_not_a_message_make_the_channel_corrupt():
    import pytest

    from run_testsuite.workers.forked import ChannelCorrupt

    here, there = channel_pair()
    try:
        here.send(("ok", 1))
        assert there.recv() == ("ok", 1)
        # What a test writing to /proc/$PPID/fd puts in a worker's pipe.
        os.write(here.write_fd, b"junk\n")
        here.send(("lost", 2))
        with pytest.raises(ChannelCorrupt, match="not a message: b'junk"):
            there.poll()
        with pytest.raises(EOFError):  # a ChannelCorrupt is an end, to whoever waits for one
            there.recv()
        # A mark and a length, then bytes that are no pickle.
        other_here, other_there = channel_pair()
        try:
            os.write(other_here.write_fd, b"RTS\x01" + (4).to_bytes(4, "little") + b"junk")
            with pytest.raises(ChannelCorrupt, match="a message could not be read: UnpicklingError"):
                other_there.recv()
        finally:
            other_here.close()
            other_there.close()
    finally:
        here.close()
        there.close()
