"""The data link: the uplink process attached to ``router.sock`` (DESIGN §2).

Lines are the leaf verbs with the local account first (``Kind.INTERNAL``):

router -> uplink
    ``INFO {"server_id", "server_name", "accounts": [...]}`` once, as a hello;
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
    ``PING``/``PONG``.

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
    PONG,
    Info,
    Kind,
    LHMsg,
    LMsg,
    LSub,
    LUnsub,
    Parser,
    Ping,
    RemoteProtocolError,
    encode_err,
    encode_info,
)

from .outbound import Outbound
from .routing import route_from_hub

if TYPE_CHECKING:
    from collections.abc import Iterator

    from leafnode.proto import Event

    from .server import Server

__all__ = ["DataLink"]

log = logging.getLogger("leafnode.router")

# Must stay within the parser's read slack (BUFFER_SLACK, 64 KiB) per feed.
MAX_RECV = 64 * 1024
# The uplink drains the link as fast as the hub takes it; allow a deep queue
# before treating it as stuck (it then reconnects and resynchronises).
DATALINK_MAX_PENDING = 256 * 1024 * 1024


class DataLink:
    """One attached uplink process."""

    def __init__(self, server: Server, stream: trio.abc.Stream) -> None:
        self.server = server
        self.stream = stream
        self.parser = Parser(Kind.INTERNAL, max_payload=server.settings.max_payload + 64 * 1024)
        self.outbound = Outbound(
            stream,
            server.flusher,
            max_pending=DATALINK_MAX_PENDING,
            write_deadline_s=max(server.settings.write_deadline_s, 30.0),
            on_slow_consumer=self._stuck,
        )
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
        parser = self.parser
        accounts = self.server.accounts_by_bytes
        receive = RawReceiver(self.stream, lambda: self.outbound.raw).receive
        while True:
            data = await receive(MAX_RECV)
            if not data:
                return
            flusher = self.server.flusher
            flusher.batching = True
            try:
                parser.feed(data)
                for event in _events(parser):
                    kind = type(event)
                    if kind is LMsg:
                        assert isinstance(event, LMsg)
                        account = accounts.get(event.account or b"")
                        if account is not None:
                            route_from_hub(
                                account, event.subject, event.reply, event.queues, 0, event.payload
                            )
                    elif kind is LHMsg:
                        assert isinstance(event, LHMsg)
                        account = accounts.get(event.account or b"")
                        if account is not None:
                            route_from_hub(
                                account,
                                event.subject,
                                event.reply,
                                event.queues,
                                event.hdr_len,
                                event.data,
                            )
                    elif kind is LSub:
                        assert isinstance(event, LSub)
                        account = accounts.get(event.account or b"")
                        if account is not None:
                            account.hub.add(event.subject, event.queue, event.weight)
                    elif kind is LUnsub:
                        assert isinstance(event, LUnsub)
                        account = accounts.get(event.account or b"")
                        if account is not None:
                            account.hub.remove(event.subject, event.queue)
                    elif kind is Ping:
                        self.outbound.write(PONG)
                    elif kind is Info:
                        assert isinstance(event, Info)
                        self._on_info(event.options)
            except RemoteProtocolError as exc:
                log.error("Uplink data link protocol error: %s", exc)
                self.outbound.write(encode_err(exc.err_text))
                self.outbound.close_after_flush()
                return
            finally:
                flusher.batching = False
                flusher.flush()
            parser.compact()

    def _on_info(self, options: dict[str, object]) -> None:
        reset = options.get("hub_reset")
        if isinstance(reset, str):
            account = self.server.accounts.get(reset)
            if account is not None:
                account.hub.clear()


def _events(parser: Parser) -> Iterator[Event]:
    """Every complete event, in batches (``Parser.drain``)."""
    while events := parser.drain():
        yield from events
