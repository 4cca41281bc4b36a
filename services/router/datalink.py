"""The data link: the uplink process attached to ``router.sock`` (DESIGN §2).

The link's dialect is documented once, in ``leafnode/proto/_datalink.py``: a
hello INFO, interest lines with the account first, and messages in the leaf
link's own form under ``ACC <acc>`` lines, both ways. Here the router sends
its hello, its local interest and the hub-bound messages (``HubSink``, in
``leafnode/proto/_hubsink.py``, compiled with the parser),
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

from leafnode.link import Link, LinkPolicy, OutboundPolicy
from leafnode.proto import (
    PING,
    PONG,
    HubInfo,
    HubSink,
    Info,
    Kind,
    LSub,
    LUnsub,
    MessageFramer,
    Ping,
    RemoteProtocolError,
    encode_err,
    encode_hello,
    hub_reset_account,
)

from .routing import route_from_hub

if TYPE_CHECKING:
    import trio

    from leafnode.proto import Event, MessageFrame

    from .interfaces import LinkServer
    from .routing import Account

__all__ = ["DataLink"]

log = logging.getLogger("leafnode.router")

# A leaf link's control-line limit (leafnode-protocol.md §1): long queue lists.
MAX_CONTROL_LINE = 64 * 1024
# The uplink drains the link as fast as the hub takes it; allow a deep queue
# before treating it as stuck (it then reconnects and resynchronises).
DATALINK_MAX_PENDING = 256 * 1024 * 1024


def forget_hub(account: Account) -> None:
    """Clear the account's hub interest; its downstream leafs hear what they lose."""
    keys = list(account.hub.entries) if account.leafs is not None else ()
    account.hub.clear()
    if account.leafs is not None:
        for subject, queue in keys:
            account.leafs.refresh(subject, queue)


class DataLink:
    """One attached uplink process: the protocol object of its ``Link``.

    The shell (``leafnode.link``) reads, writes and closes; ``data_received``
    feeds the framer. No keepalive: the uplink is a local process, whose
    death is an EOF.
    """

    def __init__(self, server: LinkServer, stream: trio.abc.Stream) -> None:
        self.server = server
        self.framer = MessageFramer(
            Kind.INTERNAL,
            max_payload=server.settings.max_payload + 64 * 1024,
            max_control_line=MAX_CONTROL_LINE,
            accounts=True,
        )
        policy = LinkPolicy(
            outbound=OutboundPolicy(
                max_pending=DATALINK_MAX_PENDING,
                write_deadline_s=max(server.settings.write_deadline_s, 30.0),
            ),
            eof_reason="the uplink closed the link",
        )
        self.link = Link(stream, server.flusher, policy)
        self.outbound = self.link.outbound
        self.outbound.on_slow_consumer = self._stuck
        self.hub_sink = HubSink(self.outbound)
        self._accounts = server.accounts_by_bytes

    def write(self, data: bytes) -> None:
        self.hub_sink.write(data)

    async def run(self) -> None:
        server = self.server
        reason = "closed"
        try:
            self._attach()
            reason = await self.link.run(self)
        finally:
            self._detach()
            log.info("Uplink detached from %s: %s", server.datalink_path, reason)

    def close(self, reason: str = "replaced by a new uplink") -> None:
        self.link.close(reason)

    def _attach(self) -> None:
        server = self.server
        lds = {name: account.lds.decode() for name, account in server.accounts.items()}
        self.write(encode_hello(server.server_id, server.server_name, server.accounts, lds))
        for account in server.accounts.values():
            account.hub_sink = self.hub_sink
            forget_hub(account)
            for line in account.interest.snapshot():
                self.write(line)
        log.info("Uplink attached on %s", server.datalink_path)

    def _detach(self) -> None:
        for account in self.server.accounts.values():
            if account.hub_sink is self.hub_sink:
                account.hub_sink = None
                forget_hub(account)
        if self.server.datalink is self:
            self.server.datalink = None

    def _stuck(self, reason: str) -> None:
        log.error("Uplink data link is not draining (%s); detaching it", reason)
        self.hub_sink.discard()
        self.link.close(f"not draining ({reason})")

    # ------------------------------------------------------------ LinkProtocol

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        framer.feed(data)
        try:
            framer.drain(self._on_msg, self._on_event)
        except RemoteProtocolError as exc:
            log.error("Uplink data link protocol error: %s", exc)
            self.write(encode_err(exc.err_text or "Unknown Protocol Operation"))
            self.link.close_after_flush(f"protocol error: {exc}")

    def send_ping(self) -> None:
        self.write(PING)

    # ------------------------------------------------------------------ events

    def _on_msg(self, msg: MessageFrame) -> bool:
        """A hub message for local subscribers (hot path)."""
        target = self._accounts.get(msg.account)
        if target is None:
            return False
        args = msg.args
        if len(args) == 2:
            # The common case: subject and size only (an HMSG has three or
            # more arguments: the framer refuses one without its header size).
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
                if account.leafs is not None:
                    account.leafs.refresh(event.subject, event.queue)
        elif kind is LUnsub:
            assert isinstance(event, LUnsub)
            account = self._accounts.get(event.account or b"")
            if account is not None:
                account.hub.remove(event.subject, event.queue)
                if account.leafs is not None:
                    account.leafs.refresh(event.subject, event.queue)
        elif kind is Ping:
            self.write(PONG)
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
                forget_hub(account)
