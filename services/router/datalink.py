"""The data link: the uplink process attached to ``router.sock`` (DESIGN §2).

The link's dialect is documented once, in ``leafnode/proto/_datalink.py``: a
hello INFO, interest lines with the account first, and messages in the leaf
link's own form under ``ACC <acc>`` lines, both ways. Here the router sends
its hello, its local interest and the hub-bound messages (``HubOutbound``),
and routes the hub's messages to local subscribers, keeping the hub's
interest per account and its hub's protocol level and name (``HubInfo``, for
message tracing).

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
    LMSG_FRAME,
    PONG,
    HubInfo,
    Info,
    Kind,
    LSub,
    LUnsub,
    MessageFramer,
    Ping,
    RemoteProtocolError,
    encode_acc,
    encode_err,
    encode_hello,
    encode_lhmsg,
    encode_lmsg,
    hub_reset_account,
)

from .outbound import Outbound
from .routing import route_from_hub

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from leafnode.proto import Event, MessageFrame

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

    ``write_msg`` encodes a hub-bound message in the leaf link's form, after
    an ``ACC`` line when the account changes (``leafnode/proto/_datalink.py``).
    """

    __slots__ = ("_acc",)

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
        if account != self._acc:
            self._acc = account
            acc = encode_acc(account)
            out.append(acc)
            self.pending += len(acc)
        if hdr_len:
            line = encode_lhmsg(subject, reply, queues, hdr_len, data)
        elif reply is None and not queues:
            # encode_lmsg's common case, inlined (a call per message costs
            # more than the format).
            line = LMSG_FRAME % (subject, len(data), data)
        else:
            line = encode_lmsg(subject, reply, queues, data)
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
        self.outbound.write(encode_hello(server.server_id, server.server_name, server.accounts))
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

    def _on_msg(self, msg: MessageFrame) -> bool:
        """A hub message for local subscribers (hot path)."""
        target = self._accounts.get(msg.account)
        if target is None:
            return False
        args = msg.args
        if len(args) == 2 and not msg.headers:
            # The common case: subject and size only.
            route_from_hub(target, args[0], None, (), 0, msg.buf[msg.body : msg.end])
            return False
        reply, queues = msg.route()
        route_from_hub(target, args[0], reply, queues, msg.hdr_len, msg.data)
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
        hub = HubInfo.from_options(options)
        if hub is not None and (account := self.server.accounts.get(hub.account)) is not None:
            account.hub.proto = hub.proto
            account.hub.server_name = hub.server_name
        reset = hub_reset_account(options)
        if reset is not None:
            account = self.server.accounts.get(reset)
            if account is not None:
                account.hub.clear()
