"""Init's failures reach the user as themselves (issue #11 item 3): the runtime's end of the
Channel after init exited with a message of the runtime's unread.

The kernel reports ECONNRESET to the first recv after the peer closed with data still in its
own receive queue -- before the packets the peer sent first.  Init fails that way whenever it
dies before reading ``cgroup-joined``; the runtime used to print "Connection reset by peer"
instead of init's error report (a race: the test below makes it deterministic)."""

from __future__ import annotations

from pyoci_nb.runtime.init import Channel


def test_the_error_sent_before_closing_is_received_despite_an_unread_message():
    runtime, child = Channel.pair()
    try:
        runtime.send({"type": "cgroup-joined"})  # never read by init
        child.send({"type": "error", "message": "pivot_root: EBUSY", "step": "changing root"})
        child.close()
        message, fds = runtime.receive()
        assert message == {"type": "error", "message": "pivot_root: EBUSY", "step": "changing root"}
        assert fds == []
        assert runtime.receive() == (None, [])  # then the end, as for any closed peer
    finally:
        runtime.close()


def test_a_large_error_sent_before_closing_is_received_whole():
    """The message may span several packets (the Channel's chunks): all of it arrives."""
    runtime, child = Channel.pair()
    try:
        runtime.send({"type": "cgroup-joined"})
        text = "x" * (3 * Channel.CHUNK + 17)
        child.send({"type": "error", "message": text})
        child.close()
        assert runtime.receive()[0] == {"type": "error", "message": text}
    finally:
        runtime.close()
