"""The data link: the uplink process attached to ``router.sock`` (DESIGN §2).

Lines are the leaf verbs with the local account first (``Kind.INTERNAL``):

router -> uplink
    ``INFO {"server_id", "server_name", "accounts": [...], "leaf_msgs": true}``
    once, as a hello;
    ``LS+ <acc> <subj> [<queue> <weight>]`` / ``LS- <acc> <subj> [<queue>]``:
    local interest (the full set right after the hello, then changes);
    ``LMSG <acc> ...`` / ``HMSG <acc> ...``: local publishes the hub wants,
    naming the hub queue groups the router chose.
uplink -> router
    ``LS+``/``LS-`` with the account first: the hub's interest, which the
    router keeps per account (the uplink re-sends all of it after it
    reconnects to the router or the hub; ``LS- <acc> >`` is not special);
    ``LMSG``/``HMSG``: messages from the hub for local subscribers;
    ``INFO {"hub_reset": "<acc>"}``: forget all hub interest of that account
    (the hub link dropped);
    ``INFO {"leaf_msgs": true}``: the uplink reads leaf-form messages;
    ``INFO {"hub": "<acc>", "proto": N, "server_name": "..."}``: the protocol
    level (the hub INFO's ``proto``, the lowest of several hubs; 0: none
    connected) and name of that account's hub, for message tracing;
    ``PING``/``PONG``.

Leaf-form messages (both ways). A side that reads them says so (the hello's
``leaf_msgs``; the uplink's INFO). The other side may then write
``ACC <acc>`` and, after it, message lines exactly as on a leaf link
(``LMSG <subj> [reply | + reply q... | | q...] <size>``, ``HMSG ...``), which
belong to that account until the next ``ACC``: the uplink then relays
messages between us and the hub without rewriting a byte, whole runs of them
as one slice (``leafnode.proto.MessageFramer``). Control lines always carry
their account.

Only one uplink is attached at a time; a new one replaces the old. When it
detaches, every account forgets the hub's interest: with no link nothing can
reach the hub, and the next uplink re-sends what the hub wants.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from leafnode.netio import RawReceiver
from leafnode.proto import (
    HMSG,
    LMSG,
    PONG,
    Info,
    Kind,
    LSub,
    LUnsub,
    MessageFramer,
    Ping,
    RemoteProtocolError,
    encode_acc,
    encode_err,
    encode_info,
    encode_lhmsg,
    encode_lmsg,
)

from .outbound import Outbound
from .routing import route_from_hub

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from leafnode.proto import Event

    from .interfaces import LinkServer
    from .outbound import Flusher

__all__ = ["DataLink", "HubOutbound"]

log = logging.getLogger("leafnode.router")

MAX_RECV = 64 * 1024
# A leaf link's control-line limit (leafnode-protocol.md §1): long queue lists.
MAX_CONTROL_LINE = 64 * 1024
# The uplink drains the link as fast as the hub takes it; allow a deep queue
# before treating it as stuck (it then reconnects and resynchronises).
DATALINK_MAX_PENDING = 256 * 1024 * 1024


class HubOutbound(Outbound):
    """The data link's outbound: also the accounts' ``hub_sink``.

    ``write_msg`` encodes a hub-bound message in the form the uplink reads:
    leaf form under an ``ACC`` line once it said it reads that (module doc).
    """

    __slots__ = ("_acc", "leaf_msgs")

    def __init__(
        self,
        stream: trio.abc.Stream,
        flusher: Flusher,
        *,
        max_pending: int,
        write_deadline_s: float,
        on_slow_consumer: Callable[[str], None],
    ) -> None:
        super().__init__(
            stream,
            flusher,
            max_pending=max_pending,
            write_deadline_s=write_deadline_s,
            on_slow_consumer=on_slow_consumer,
        )
        self.leaf_msgs = False
        self._acc = b""

    def write_msg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: Sequence[bytes],
        hdr_len: int,
        data: bytes,
    ) -> None:
        """Queue one hub-bound message of ``account`` (routing path)."""
        out = self.out
        if self.leaf_msgs:
            if account != self._acc:
                self._acc = account
                acc = encode_acc(account)
                out.append(acc)
                self.pending += len(acc)
            if hdr_len:
                line = encode_lhmsg(subject, reply, queues, hdr_len, data)
            elif reply is None and not queues:
                # The common case, formatted inline (one allocation).
                line = b"LMSG %b %d\r\n%b\r\n" % (subject, len(data), data)
            else:
                line = encode_lmsg(subject, reply, queues, data)
        elif hdr_len:
            line = encode_lhmsg(subject, reply, queues, hdr_len, data, account=account)
        elif reply is None and not queues:
            line = b"LMSG %b %b %d\r\n%b\r\n" % (account, subject, len(data), data)
        else:
            line = encode_lmsg(subject, reply, queues, data, account=account)
        # Outbound.write, inlined: this runs once per hub-bound message.
        out.append(line)
        self.pending += len(line)
        if self.pending > self.max_pending or not self.dirty:
            self.queued()

    def discard(self) -> None:
        """Drop everything queued, and with it what the last ``ACC`` line said."""
        super().discard()
        self._acc = b""


class DataLink:
    """One attached uplink process."""

    def __init__(self, server: LinkServer, stream: trio.abc.Stream) -> None:
        self.server = server
        self.stream = stream
        self.framer = MessageFramer(
            Kind.INTERNAL,
            max_payload=server.settings.max_payload + 64 * 1024,
            max_control_line=MAX_CONTROL_LINE,
            accounts=True,
        )
        self.outbound = HubOutbound(
            stream,
            server.flusher,
            max_pending=DATALINK_MAX_PENDING,
            write_deadline_s=max(server.settings.write_deadline_s, 30.0),
            on_slow_consumer=self._stuck,
        )
        self._accounts = server.accounts_by_bytes
        self._scope: trio.CancelScope | None = None

    def write(self, data: bytes) -> None:
        self.outbound.write(data)

    async def run(self) -> None:
        server = self.server
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self._attach()
                nursery.start_soon(self._write_then_cancel)
                await self._read_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._detach()
            self.outbound.close_raw()
            with trio.CancelScope(shield=True):
                await self.stream.aclose()
            log.info("Uplink detached from %s", server.datalink_path)

    def close(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def _write_then_cancel(self) -> None:
        await self.outbound.run_writer()
        if self._scope is not None:
            self._scope.cancel()

    def _attach(self) -> None:
        server = self.server
        hello = {
            "server_id": server.server_id,
            "server_name": server.server_name,
            "accounts": sorted(server.accounts),
            "leaf_msgs": True,
        }
        self.outbound.write(encode_info(hello))
        for account in server.accounts.values():
            account.hub_sink = self.outbound
            account.hub.clear()
            for line in account.interest.snapshot():
                self.outbound.write(line)
        log.info("Uplink attached on %s", server.datalink_path)

    def _detach(self) -> None:
        for account in self.server.accounts.values():
            if account.hub_sink is self.outbound:
                account.hub_sink = None
                account.hub.clear()
        if self.server.datalink is self:
            self.server.datalink = None

    def _stuck(self, reason: str) -> None:
        log.error("Uplink data link is not draining (%s); detaching it", reason)
        self.outbound.discard()
        self.close()

    async def _read_loop(self) -> None:
        framer = self.framer
        on_msg = self._on_msg
        on_event = self._on_event
        receive = RawReceiver(self.stream, lambda: self.outbound.raw).receive
        while True:
            data = await receive(MAX_RECV)
            if not data:
                return
            flusher = self.server.flusher
            flusher.batching = True
            try:
                framer.feed(data)
                framer.drain(on_msg, on_event)
            except RemoteProtocolError as exc:
                log.error("Uplink data link protocol error: %s", exc)
                self.outbound.write(encode_err(exc.err_text or "Unknown Protocol Operation"))
                self.outbound.close_after_flush()
                return
            finally:
                flusher.batching = False
                flusher.flush()

    def _on_msg(
        self,
        account: bytes | None,
        verb: bytes,
        args: list[bytes],
        buf: bytes,
        start: int,
        body: int,
        end: int,
    ) -> bool:
        """A hub message for local subscribers (``MessageFramer`` explains the arguments)."""
        at = 0
        if account is None:
            account = args[0]  # the classic form names it first
            at = 1
        target = self._accounts.get(account)
        if target is None:
            return False
        if verb is LMSG and len(args) == at + 2:
            # The common case: subject and size only.
            route_from_hub(target, args[at], None, (), 0, buf[body:end])
            return False
        headers = verb is HMSG
        last = len(args) - 2 if headers else len(args) - 1  # the first size
        between = last - at - 1
        reply: bytes | None
        queues: tuple[bytes, ...]
        if between == 0:
            reply, queues = None, ()
        elif between == 1:
            reply, queues = args[at + 1], ()
        elif args[at + 1] == b"+":
            reply, queues = args[at + 2], tuple(args[at + 3 : last])
        elif args[at + 1] == b"|":
            reply, queues = None, tuple(args[at + 2 : last])
        else:
            raise RemoteProtocolError(
                "data link: bad LMSG/HMSG arguments", err_text="", snippet=buf[start:body][:32]
            )
        route_from_hub(
            target, args[at], reply, queues, int(args[-2]) if headers else 0, buf[body:end]
        )
        return False

    def _on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is LSub:
            assert isinstance(event, LSub)
            account = self._accounts.get(event.account or b"")
            if account is not None:
                account.hub.add(event.subject, event.queue, event.weight)
        elif kind is LUnsub:
            assert isinstance(event, LUnsub)
            account = self._accounts.get(event.account or b"")
            if account is not None:
                account.hub.remove(event.subject, event.queue)
        elif kind is Ping:
            self.outbound.write(PONG)
        elif kind is Info:
            assert isinstance(event, Info)
            self._on_info(event.options)

    def _on_info(self, options: dict[str, object]) -> None:
        if options.get("leaf_msgs") is True:
            self.outbound.leaf_msgs = True
        hub = options.get("hub")
        if isinstance(hub, str) and (account := self.server.accounts.get(hub)) is not None:
            proto, name = options.get("proto"), options.get("server_name")
            account.hub.proto = proto if isinstance(proto, int) else 0
            account.hub.server_name = name if isinstance(name, str) else ""
        reset = options.get("hub_reset")
        if isinstance(reset, str):
            account = self.server.accounts.get(reset)
            if account is not None:
                account.hub.clear()
