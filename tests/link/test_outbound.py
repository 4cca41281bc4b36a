"""``Outbound``'s counting, its gate and its direct write, over a real socket pair.

nats-server counts as pending every byte queued and not yet taken by the
kernel, whoever holds it (client.go ``pb``); a consumer past three quarters of
``max_pending`` holds its producer back (``stalledWait``). A socket pair with
small buffers makes the kernel refuse most of a large write, which is what
these need; no network.
"""

from __future__ import annotations

import socket
import time

import pytest
import trio
import trio.testing

from leafnode.link import STALL_TOTAL_S, Flusher, Outbound, OutboundPolicy, Overflow

MiB = 1024 * 1024


def _pair(
    max_pending: int, overflow: Overflow = Overflow.CLOSE
) -> tuple[Outbound, Flusher, trio.socket.SocketType, list[str]]:
    """An Outbound writing into one end of a socket pair with small buffers."""
    ours, theirs = trio.socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    flusher = Flusher()
    cuts: list[str] = []
    policy = OutboundPolicy(max_pending=max_pending, overflow=overflow, write_deadline_s=30)
    outbound = Outbound(trio.SocketStream(ours), flusher, policy, on_slow_consumer=cuts.append)
    return outbound, flusher, theirs, cuts


async def _drain(theirs: trio.socket.SocketType, size: int) -> None:
    got = 0
    while got < size:
        got += len(await theirs.recv(1 << 20))


def test_policy_stall_mark_is_three_quarters_unless_stalls_are_off() -> None:
    assert OutboundPolicy(max_pending=4 * MiB).stall_mark == 3 * MiB
    assert OutboundPolicy(max_pending=4 * MiB, stall=False).stall_mark == 4 * MiB


@pytest.mark.trio
async def test_a_batch_end_flush_writes_straight_to_the_socket() -> None:
    outbound, flusher, theirs, _cuts = _pair(MiB)
    assert outbound.raw is not None
    flusher.batching = True
    outbound.write(b"PING\r\n")
    outbound.write_msg(b"MSG a 1 0\r\n\r\n")
    assert flusher.dirty == [outbound]
    flusher.batching = False
    flusher.flush()
    # No writer task runs: the bytes went out in the flush itself.
    assert outbound.pending == 0
    assert await theirs.recv(100) == b"PING\r\nMSG a 1 0\r\n\r\n"
    outbound.close_raw()


@pytest.mark.trio
async def test_pending_counts_what_the_writer_holds_until_the_kernel_takes_it() -> None:
    outbound, flusher, theirs, cuts = _pair(64 * MiB)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbound.run_writer)
        outbound.write(b"x" * 4 * MiB)
        flusher.flush()  # what the kernel took at once; the rest goes to the writer
        await trio.testing.wait_all_tasks_blocked()
        assert outbound.out == []
        in_flight = outbound.pending
        # nats-server's pb: queued and not yet written, whoever holds it.
        assert 0 < in_flight < 4 * MiB
        await _drain(theirs, 4 * MiB)
        await trio.testing.wait_all_tasks_blocked()
        assert outbound.pending == 0
        nursery.cancel_scope.cancel()
    assert cuts == []


@pytest.mark.trio
async def test_a_consumer_past_three_quarters_holds_its_producer_until_it_drains() -> None:
    outbound, flusher, theirs, cuts = _pair(4 * MiB)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbound.run_writer)
        flusher.batching = True
        # Past 3/4 of 4 MiB even after the kernel took its share (~150 KB).
        outbound.write(b"x" * (4 * MiB - 1))
        flusher.batching = False
        flusher.flush()
        assert flusher.stalled == [outbound]
        gate = outbound.gate
        assert gate is not None
        # Nobody reads: the producer waits STALL_TOTAL_S, then goes on.
        started = time.monotonic()
        await flusher.stall()
        assert STALL_TOTAL_S * 0.9 <= time.monotonic() - started < 5
        assert not gate.is_set()
        # The consumer reads: the gate opens once the writer wrote all it took.
        nursery.start_soon(_drain, theirs, 4 * MiB - 1)
        with trio.fail_after(10):
            await gate.wait()
        assert outbound.gate is None
        flusher.flush()
        assert flusher.stalled == []
        nursery.cancel_scope.cancel()
    assert cuts == []


@pytest.mark.trio
async def test_close_policy_reports_a_slow_consumer_past_max_pending() -> None:
    outbound, _flusher, _theirs, cuts = _pair(MiB)
    outbound.write(b"x" * MiB)
    assert cuts == []
    outbound.write(b"y")
    assert cuts == ["pending bytes"]
    outbound.close_raw()


@pytest.mark.trio
async def test_drop_policy_counts_dropped_messages_and_never_reports() -> None:
    outbound, _flusher, _theirs, cuts = _pair(MiB, Overflow.DROP)
    assert outbound.write_msg(b"x" * (MiB + 1))  # room when it came
    assert not outbound.write_msg(b"y")
    assert not outbound.write_msg(b"z")
    outbound.write(b"PONG\r\n")  # control lines always queue
    assert outbound.dropped == 2
    assert outbound.pending == MiB + 1 + 6
    assert cuts == []
    outbound.close_raw()
