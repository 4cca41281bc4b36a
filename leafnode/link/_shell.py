"""The one trio shell every connection kind runs on (STYLE §3.5).

A ``Link`` serves one byte stream for one protocol object. The protocol
object (one per connection kind: a client, the router's end of the data link,
the uplink's hub session, the uplink's router link) holds the connection's
logic: it is fed what one read returned (``data_received``) and answers by
queueing bytes on ``Link.outbound`` and calling into its service. It never
reads nor sleeps; the shell owns every task and every clock:

reader
    reads up to ``LinkPolicy.max_recv`` bytes at a time (``RawReceiver``: one
    scheduler pass per read), and hands each read to the protocol as one
    *batch* of the process's ``Flusher``: whatever the batch queued, on this
    connection or any other, is written once at its end. A protocol that must
    wait before the next read (a CONNECT checked in a thread) returns an
    awaitable, awaited after the flush. With ``LinkPolicy.stalls``
    (client connections, as nats-server) the reader then waits for the
    consumers its batch left past their stall mark (``Flusher.stall``).
writer
    ``Outbound.run_writer``: what the direct write at batch end could not
    send, under the policy's write deadline.
keepalive (``LinkPolicy.keepalive``)
    the first PING after ``first_s``, then one every ``interval_s``
    (``LinkProtocol.send_ping`` queues it); when ``ping_max`` are unanswered
    the peer is stale and the link closes. The protocol reports each PONG
    with ``Link.pong``. Each tick reads ``Link.policy`` afresh, so a new
    policy (a config reload) applies from the next PING on.
handshake deadline (``LinkPolicy.handshake``)
    the peer must complete its handshake (a client's CONNECT) in time; the
    protocol says it did with ``Link.established``.

Closing. Every way a link ends records one reason, the first one given, and
``run`` returns it: ``close(reason)`` ends it now (EOF, a slow consumer, a
stale peer); ``close_after_flush(reason)`` stops reading and ends it once
what is queued (an ``-ERR`` line, say) has been written; EOF from the peer is
``LinkPolicy.eof_reason``. A timer that expires may send a last line first
(``Expiry.err``). The stream is closed on the way out, in any case.
``Link.on_close`` runs once as the link starts closing (a client drops its
subscriptions then); ``Link.nursery`` holds a protocol's own timers.

Testing. The shell needs no socket: over ``trio.testing.memory_stream_pair``
(or ``lockstep_stream_pair``, whose writes block until read) and
``trio.testing.MockClock(autojump_threshold=0)`` every timer above runs in
virtual time (tests/link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import trio

from leafnode.netio import RawReceiver
from leafnode.proto import RemoteProtocolError

from ._outbound import Flusher, Outbound, OutboundPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Expiry", "Keepalive", "Link", "LinkPolicy", "LinkProtocol"]

# Below glibc's default mmap threshold (128 KiB): a larger read buffer is
# mmapped and unmapped on every read, three extra system calls per message
# when messages come one at a time.
MAX_RECV: Final = 64 * 1024
# Longest the final close of a stream may take by default (a TLS close_notify
# to a peer that does not read must not hold the task forever).
CLOSE_GRACE_S: Final = 1.0


class LinkProtocol(Protocol):
    """What a connection kind gives the shell."""

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        """Handle one read (never empty): parse, act, queue replies on the outbound.

        May raise ``RemoteProtocolError``; the link then closes with the
        error as its reason (a protocol that owes the peer an ``-ERR`` catches
        it itself). Returns an awaitable when the connection must wait before
        the next read; the shell awaits it after the batch's flush.
        """
        ...

    def send_ping(self) -> None:
        """Queue a keepalive PING (only with ``LinkPolicy.keepalive``)."""
        ...


@dataclass(frozen=True, slots=True)
class Expiry:
    """How a timer closes the link: the reason, and a last line for the peer.

    Attributes:
        reason: the close reason ``Link.run`` returns.
        err: written before closing (an ``-ERR``), or None to close at once.
    """

    reason: str
    err: bytes | None = None


@dataclass(frozen=True, slots=True)
class Keepalive:
    """PING every ``interval_s``; stale after ``ping_max`` unanswered (§4.8)."""

    interval_s: float
    ping_max: int
    stale: Expiry
    # The first PING's delay (None: ``interval_s``); a leaf sends it after ~1 s.
    first_s: float | None = None


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """One connection kind's policy, as data (module doc)."""

    outbound: OutboundPolicy
    eof_reason: str = "connection closed by the peer"
    keepalive: Keepalive | None = None
    # The handshake deadline and how it expires (a client's auth timeout).
    handshake: tuple[float, Expiry] | None = None
    # The reason when the writer fails (None: the writer's own words).
    write_error_reason: str | None = None
    # Whether this reader waits for the consumers its batch left past their
    # stall mark (``Flusher.stall``): client connections, as nats-server.
    stalls: bool = False
    # How long the final close may take to say goodbye (TLS close_notify);
    # 0 closes at once (a link that reconnects as soon as it can).
    close_grace_s: float = CLOSE_GRACE_S
    max_recv: int = MAX_RECV


class Link:
    """The shell around one stream: reader, writer, timers, close with a reason."""

    __slots__ = (
        "_draining",
        "_established",
        "_handshake_scope",
        "_scope",
        "closing",
        "flusher",
        "nursery",
        "on_close",
        "outbound",
        "pings_out",
        "policy",
        "reason",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        flusher: Flusher,
        policy: LinkPolicy,
        *,
        outbound_type: Callable[[trio.abc.Stream, Flusher, OutboundPolicy], Outbound] = Outbound,
    ) -> None:
        self.stream = stream
        self.flusher = flusher
        self.policy = policy
        self.outbound = outbound_type(stream, flusher, policy.outbound)
        self.outbound.on_slow_consumer = self._slow_consumer
        # Why the link ended (the first reason given); None while it is up.
        self.reason: str | None = None
        # Set once no more is read: the link ends when the writer is done.
        self.closing = False
        self.pings_out = 0
        # Called once, when the link starts closing (a client drops its
        # subscriptions then, so nothing more is routed to it).
        self.on_close: Callable[[], None] | None = None
        # The link's nursery while it runs: the protocol's own timers go there.
        self.nursery: trio.Nursery | None = None
        # close_after_flush was asked: the writer ends the link.
        self._draining = False
        self._established = False
        self._handshake_scope: trio.CancelScope | None = None
        self._scope: trio.CancelScope | None = None

    # ------------------------------------------------------------- protocol API

    def pong(self) -> None:
        """The peer answered a PING: it is alive."""
        self.pings_out = 0

    def established(self) -> None:
        """The peer completed its handshake: the handshake deadline no longer applies."""
        self._established = True
        if self._handshake_scope is not None:
            self._handshake_scope.cancel()

    def close(self, reason: str) -> None:
        """End the link now (from any task); the first reason given is kept."""
        self._closing(reason)
        if self._scope is not None:
            self._scope.cancel()

    def close_after_flush(self, reason: str) -> None:
        """Stop reading; end the link once what is queued now has been written."""
        self._closing(reason)
        self._draining = True
        self.outbound.close_after_flush()

    def _closing(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if not self.closing:
            self.closing = True
            if self.on_close is not None:
                self.on_close()

    def expire(self, expiry: Expiry) -> None:
        """Close as ``expiry`` says: after its last line, or at once."""
        if expiry.err is None:
            self.close(expiry.reason)
        else:
            self.outbound.write(expiry.err)
            self.close_after_flush(expiry.reason)

    def _slow_consumer(self, reason: str) -> None:
        """The default slow-consumer action: discard what is queued and close."""
        self.outbound.discard()
        self.close(f"Slow Consumer ({reason})")

    # --------------------------------------------------------------------- tasks

    async def run(
        self,
        protocol: LinkProtocol,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> str:
        """Serve the stream until the link ends; returns why. Always closes the stream."""
        policy = self.policy
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self.nursery = nursery
                if self.closing and not self._draining:
                    nursery.cancel_scope.cancel()  # closed before it ran
                nursery.start_soon(self._writer)
                if policy.keepalive is not None:
                    nursery.start_soon(self._keepalive, protocol, policy.keepalive)
                if policy.handshake is not None and not self._established:
                    self._handshake_scope = trio.CancelScope()
                    nursery.start_soon(self._handshake_timer, *policy.handshake)
                task_status.started()
                await self._read_loop(protocol)
                if not self.closing:
                    self.close(policy.eof_reason)
        finally:
            self._scope = None
            self.nursery = None
            self.closing = True
            self.outbound.close_raw()
            with trio.CancelScope(shield=True):
                if policy.close_grace_s > 0:
                    with trio.move_on_after(policy.close_grace_s):
                        await self.stream.aclose()
                else:
                    await trio.aclose_forcefully(self.stream)
        return self.reason or policy.eof_reason

    async def _read_loop(self, protocol: LinkProtocol) -> None:
        outbound = self.outbound
        receive = RawReceiver(self.stream, outbound).receive
        flusher = self.flusher
        data_received = protocol.data_received
        max_recv = self.policy.max_recv
        stalls = self.policy.stalls
        while not self.closing:
            data = await receive(max_recv)
            if not data or self.closing:
                return
            flusher.batching = True
            try:
                wait = data_received(data)  # type: ignore[arg-type]
            except RemoteProtocolError as exc:
                self.close_after_flush(f"protocol error: {exc}")
                return
            finally:
                flusher.batching = False
                flusher.flush()
            if wait is not None:
                await wait
            if stalls and flusher.stalled:
                # A consumer we fed is behind: let it drain before reading on.
                await flusher.stall()

    async def _writer(self) -> None:
        error = await self.outbound.run_writer()
        if error is not None and self.policy.write_error_reason is not None:
            error = self.policy.write_error_reason
        self.close(error or self.reason or "closed")

    async def _keepalive(self, protocol: LinkProtocol, keepalive: Keepalive) -> None:
        first_s = keepalive.first_s
        await trio.sleep(keepalive.interval_s if first_s is None else first_s)
        while True:
            # Read at every tick: a reload may hand the link a new policy.
            current = self.policy.keepalive
            if current is None:
                return
            if self.pings_out >= current.ping_max:
                self.expire(current.stale)
                return
            self.pings_out += 1
            protocol.send_ping()
            await trio.sleep(current.interval_s)

    async def _handshake_timer(self, timeout_s: float, expiry: Expiry) -> None:
        assert self._handshake_scope is not None
        with self._handshake_scope:
            await trio.sleep(timeout_s)
            if not self._established:
                self.expire(expiry)
