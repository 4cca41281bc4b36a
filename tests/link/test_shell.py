"""The connection shell in-process: timers in virtual time, close reasons (issue 13).

Every test runs one ``Link`` over ``trio.testing.memory_stream_pair`` (or
``lockstep_stream_pair``, whose writes block until the peer reads) under
``MockClock(autojump_threshold=0)`` (pytest-trio's ``autojump_clock``): a
30-second auth timeout takes microseconds, and ``trio.current_time()`` says
exactly when the shell acted. No sockets, no wall-clock waits.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from leafnode.link import (
    Expiry,
    Flusher,
    Keepalive,
    Link,
    LinkPolicy,
    OutboundPolicy,
    Overflow,
)

from .conftest import LineProtocol

AUTH_ERR = b"-ERR 'Authentication Timeout'\r\n"
STALE_ERR = b"-ERR 'Stale Connection'\r\n"


def _policy(**changes: object) -> LinkPolicy:
    fields: dict[str, object] = {
        "outbound": OutboundPolicy(max_pending=1024 * 1024, write_deadline_s=10.0),
        "eof_reason": "Client Closed",
    }
    fields.update(changes)
    return LinkPolicy(**fields)  # type: ignore[arg-type]


async def _read_until_eof(stream: trio.abc.ReceiveStream) -> list[tuple[float, bytes]]:
    """Everything the peer gets, each read stamped with the virtual time it came."""
    got: list[tuple[float, bytes]] = []
    while data := await stream.receive_some():
        got.append((trio.current_time(), bytes(data)))
    return got


async def _serve(link: Link, protocol: LineProtocol, result: list[str]) -> None:
    result.append(await link.run(protocol))


# ----------------------------------------------------------- handshake deadline


@pytest.mark.trio
async def test_auth_timeout_sends_its_err_then_closes(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    policy = _policy(handshake=(2.0, Expiry("Authentication Timeout", AUTH_ERR)))
    link = Link(ours, flusher, policy)
    start = trio.current_time()
    reason = ""
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            nonlocal reason
            reason = await link.run(LineProtocol(link))

        nursery.start_soon(serve)
        got = await _read_until_eof(theirs)
    assert reason == "Authentication Timeout"
    assert b"".join(data for _, data in got) == AUTH_ERR
    assert got[0][0] - start == pytest.approx(2.0)


@pytest.mark.trio
async def test_a_peer_that_completes_its_handshake_is_not_timed_out(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    policy = _policy(handshake=(2.0, Expiry("Authentication Timeout", AUTH_ERR)))
    link = Link(ours, flusher, policy)
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        await theirs.send_all(b"CONNECT\r\n")
        await trio.sleep(60)
        assert not link.closing
        await theirs.aclose()
    assert result == ["Client Closed"]


# ------------------------------------------------------------ keepalive, stale


@pytest.mark.trio
async def test_pings_every_interval_then_stale_after_ping_max_unanswered(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stale = Expiry("Stale Connection", STALE_ERR)
    policy = _policy(keepalive=Keepalive(interval_s=5.0, ping_max=2, stale=stale, first_s=1.0))
    link = Link(ours, flusher, policy)
    start = trio.current_time()
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        got = await _read_until_eof(theirs)
    assert result == ["Stale Connection"]
    # First PING after first_s, the next one interval later; at the third
    # tick ping_max are unanswered: the -ERR, then EOF.
    assert [(round(t - start, 6), data) for t, data in got] == [
        (1.0, b"PING\r\n"),
        (6.0, b"PING\r\n"),
        (11.0, STALE_ERR),
    ]


@pytest.mark.trio
async def test_a_peer_that_answers_its_pings_stays(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stale = Expiry("Stale Leaf Node Connection")
    policy = _policy(keepalive=Keepalive(interval_s=5.0, ping_max=2, stale=stale))
    link = Link(ours, flusher, policy)
    result: list[str] = []
    pings = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        with trio.move_on_after(120):
            while data := await theirs.receive_some():
                pings += data.count(b"PING\r\n")
                await theirs.send_all(b"PONG\r\n")
        assert not link.closing
        await theirs.aclose()
    assert result == ["Client Closed"]
    assert pings in (120 // 5 - 1, 120 // 5)


@pytest.mark.trio
async def test_stale_without_a_last_line_closes_at_once(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stale = Expiry("Stale Leaf Node Connection")
    policy = _policy(keepalive=Keepalive(interval_s=3.0, ping_max=1, stale=stale))
    link = Link(ours, flusher, policy)
    result: list[str] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        got = await _read_until_eof(theirs)
    assert result == ["Stale Leaf Node Connection"]
    assert [(round(t - start, 6), data) for t, data in got] == [(3.0, b"PING\r\n")]
    assert trio.current_time() - start == pytest.approx(6.0)


# --------------------------------------------------------------- slow consumers


@pytest.mark.trio
async def test_past_max_pending_the_peer_is_a_slow_consumer(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    # Lockstep: the writer's send blocks until the peer reads, which it never does.
    ours, _theirs = trio.testing.lockstep_stream_pair()
    policy = _policy(outbound=OutboundPolicy(max_pending=100, write_deadline_s=30.0))
    link = Link(ours, flusher, policy)
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        await trio.testing.wait_all_tasks_blocked()
        link.outbound.write(b"x" * 60)
        await trio.testing.wait_all_tasks_blocked()
        # The writer holds the 60 bytes in flight: they still count.
        assert link.outbound.out == []
        assert link.outbound.pending == 60
        link.outbound.write(b"y" * 60)
    assert result == ["Slow Consumer (pending bytes)"]
    assert trio.current_time() < 30.0  # cut at once, not at the deadline
    assert link.outbound.pending == 0  # discarded


@pytest.mark.trio
async def test_a_write_blocked_past_the_deadline_is_a_slow_consumer(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, _theirs = trio.testing.lockstep_stream_pair()
    policy = _policy(outbound=OutboundPolicy(max_pending=1000, write_deadline_s=2.0))
    link = Link(ours, flusher, policy)
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        link.outbound.write(b"x" * 10)
    assert result == ["Slow Consumer (write deadline exceeded)"]
    assert trio.current_time() - start == pytest.approx(2.0)


@pytest.mark.trio
async def test_drop_policy_drops_messages_but_keeps_control_lines(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.lockstep_stream_pair()
    policy = _policy(outbound=OutboundPolicy(max_pending=100, overflow=Overflow.DROP))
    link = Link(ours, flusher, policy)
    outbound = link.outbound
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        await trio.testing.wait_all_tasks_blocked()
        assert outbound.write_msg(b"a" * 60)
        await trio.testing.wait_all_tasks_blocked()  # in flight, the peer reads nothing
        assert outbound.write_msg(b"b" * 60)  # 60 pending: still room
        assert not outbound.write_msg(b"c" * 10)  # 120 pending: dropped
        assert not outbound.write_msg(b"cc")
        outbound.write(b"LS+ foo\r\n")  # a control line is never dropped
        assert outbound.dropped == 2
        await trio.sleep(3600)  # no write deadline: the peer may take its time
        assert not link.closing
        got = b""
        while len(got) < 129:
            got += await theirs.receive_some()
        assert got == b"a" * 60 + b"b" * 60 + b"LS+ foo\r\n"
        await theirs.aclose()
    assert result == ["Client Closed"]


# ---------------------------------------------------------------- close reasons


@pytest.mark.trio
async def test_eof_closes_with_the_policy_reason(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy(eof_reason="connection closed by the hub"))
    protocol = LineProtocol(link)
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, protocol, result)
        await theirs.send_all(b"hello\r\n")
        await theirs.send_eof()
        await _read_until_eof(theirs)
    assert result == ["connection closed by the hub"]
    assert protocol.lines == [b"hello"]


@pytest.mark.trio
async def test_a_protocol_error_closes_with_it_as_the_reason(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy())
    protocol = LineProtocol(link)
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, protocol, result)
        await theirs.send_all(b"one\r\nBAD\r\nnever\r\n")
        got = await _read_until_eof(theirs)
    assert result == ["protocol error: unknown verb"]
    assert protocol.lines == [b"one", b"BAD"]
    # What the batch queued before the error is still written.
    assert b"".join(d for _, d in got) == b"one\r\n"


@pytest.mark.trio
async def test_close_after_flush_delivers_the_err(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy())
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        await trio.testing.wait_all_tasks_blocked()
        link.outbound.write(b"-ERR 'Authorization Violation'\r\n")
        link.close_after_flush("Authentication Failure")
        link.close_after_flush("a later reason does not replace the first")
        await theirs.send_all(b"PING\r\n")  # not read any more
        got = await _read_until_eof(theirs)
    assert result == ["Authentication Failure"]
    assert b"".join(d for _, d in got) == b"-ERR 'Authorization Violation'\r\n"


@pytest.mark.trio
async def test_a_peer_that_stops_reading_ends_the_writer_with_a_reason(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy())
    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, LineProtocol(link), result)
        await trio.testing.wait_all_tasks_blocked()
        assert isinstance(theirs, trio.StapledStream)
        await theirs.receive_stream.aclose()  # our writes now fail; no EOF to read
        link.outbound.write(b"late\r\n")
    assert result == ["write failed: this pipe was closed"] or result[0].startswith("write failed")


# ------------------------------------------------------------ batches and flush


@pytest.mark.trio
async def test_one_batch_flushes_every_link_it_wrote_to_once(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    a_ours, a_theirs = trio.testing.memory_stream_pair()
    b_ours, b_theirs = trio.testing.memory_stream_pair()
    a = Link(a_ours, flusher, _policy())
    b = Link(b_ours, flusher, _policy())

    class Fanout(LineProtocol):
        """Everything read on ``a`` is queued on ``b`` too (a routing path)."""

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            b.outbound.write_msg(bytes(data))
            assert flusher.batching
            assert flusher.dirty == [a.outbound, b.outbound]

    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, a, Fanout(a), result)
        nursery.start_soon(_serve, b, LineProtocol(b), result)
        await a_theirs.send_all(b"one\r\ntwo\r\n")
        got = await b_theirs.receive_some()
        assert flusher.dirty == []
        assert not flusher.batching
        assert got == b"one\r\ntwo\r\n"
        await a_theirs.aclose()
        await b_theirs.aclose()
    assert sorted(result) == ["Client Closed", "Client Closed"]


@pytest.mark.trio
async def test_an_awaitable_from_the_protocol_holds_the_next_read(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy())
    reads_at: list[float] = []

    class Slow(LineProtocol):
        def data_received(self, data: bytes) -> trio.lowlevel.Awaitable[None]:  # type: ignore[name-defined]
            reads_at.append(trio.current_time())
            super().data_received(data)
            return trio.sleep(5)

    result: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, link, Slow(link), result)
        start = trio.current_time()
        await theirs.send_all(b"a\r\n")
        await trio.testing.wait_all_tasks_blocked()
        await theirs.send_all(b"b\r\n")
        got = b""
        while len(got) < 6:
            got += await theirs.receive_some()
        await theirs.aclose()
    # The echo of the first read went out before the wait, the second read after it.
    assert got == b"a\r\nb\r\n"
    assert [t - start for t in reads_at] == [pytest.approx(0.0), pytest.approx(5.0)]


@pytest.mark.trio
async def test_a_link_closed_before_it_runs_ends_at_once(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy())
    link.close("refused")
    with trio.fail_after(1):
        assert await link.run(LineProtocol(link)) == "refused"
    assert await theirs.receive_some() == b""  # the stream is closed


@pytest.mark.trio
async def test_a_link_closed_after_flush_before_it_runs_writes_first(
    autojump_clock: trio.abc.Clock, flusher: Flusher
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    link = Link(ours, flusher, _policy())
    link.outbound.write(b"-ERR 'maximum connections exceeded'\r\n")
    link.close_after_flush("Maximum Connections Exceeded")
    with trio.fail_after(1):
        assert await link.run(LineProtocol(link)) == "Maximum Connections Exceeded"
    got = await _read_until_eof(theirs)
    assert b"".join(d for _, d in got) == b"-ERR 'maximum connections exceeded'\r\n"


class _SlowGoodbye(trio.abc.Stream):
    """A stream whose graceful close never finishes (a TLS peer that never reads)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            await trio.aclose_forcefully(self.inner)


@pytest.mark.trio
@pytest.mark.parametrize(("grace_s", "took_s"), [(1.0, 1.0), (0.0, 0.0)])
async def test_the_final_close_takes_at_most_its_grace(
    autojump_clock: trio.abc.Clock, flusher: Flusher, grace_s: float, took_s: float
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stream = _SlowGoodbye(ours)
    link = Link(stream, flusher, _policy(close_grace_s=grace_s))
    link.close("bye")
    start = trio.current_time()
    assert await link.run(LineProtocol(link)) == "bye"
    assert trio.current_time() - start == pytest.approx(took_s)
    assert await theirs.receive_some() == b""
