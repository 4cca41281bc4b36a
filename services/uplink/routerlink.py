"""The data link to the router over ``run_dir/router.sock`` (DESIGN §2).

The link's dialect is documented once, in ``leafnode/proto/_datalink.py``; in
short the router sends a hello INFO, its whole local interest, then interest
changes and hub-bound messages; we send the hubs' interest, messages from the
hubs, ``INFO {"hub_reset": acc}`` and PING/PONG. Messages cross in the leaf
link's own form under ``ACC <acc>`` lines, so a message crosses the uplink
without being rewritten: runs of them leave as one slice of what was read.

Resynchronisation. Either process may restart alone:

* When we (re)attach, the router forgets all hub interest and sends its full
  local interest. We send it the hubs' current interest at once.
* We do not know which local interest disappeared while we were away, so the
  snapshot is collected into fresh tables, and our ``PING`` written right on
  connect marks its end: the router answers it only after it queued the
  snapshot. At that ``PONG`` the fresh tables replace the old ones and the
  hubs get only the difference (``Uplink.local_resync``).

The router may be absent (not started yet, restarting): we retry every
``RETRY_S`` and log once per outage. Lines for the router while it is away are
dropped; the resynchronisation above makes up for them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from leafnode.link import Link, LinkPolicy, OutboundPolicy, Overflow
from leafnode.proto import (
    PING,
    PONG,
    Err,
    Hello,
    Info,
    Kind,
    LSub,
    LUnsub,
    MessageFramer,
    Ping,
    Pong,
    RemoteProtocolError,
    encode_acc,
)
from leafnode.runtime import TRACE

from .framing import LINK_MAX_CONTROL_LINE, LINK_MAX_PAYLOAD
from .interest import LocalInterest

if TYPE_CHECKING:
    from leafnode.link import Outbound
    from leafnode.proto import Event

    from .interfaces import RouterHost

__all__ = ["RouterLink"]

log = logging.getLogger("leafnode.uplink")

RETRY_S: Final = 0.1
# The router link's policy: hub messages queued for a router that does not
# drain are dropped past 128 MiB (control lines never are); no write deadline
# and no keepalive: the peer is a local process, whose death is an EOF.
POLICY: Final = LinkPolicy(
    outbound=OutboundPolicy(max_pending=128 * 1024 * 1024, overflow=Overflow.DROP, stall=False),
    eof_reason="the router closed the link",
    close_grace_s=0,
)


class RouterLink:
    """Our connection to the router, re-established whenever it drops.

    The protocol object of the link (``leafnode.link.LinkProtocol``): the
    shell feeds it what the router sent (``data_received``).
    """

    def __init__(self, path: str, uplink: RouterHost) -> None:
        self.path = path
        self.uplink = uplink
        self.link: Link | None = None
        self.router_name = ""
        self.accounts: tuple[str, ...] = ()
        self.attaches = 0
        # The account our last ACC line named.
        self._acc: bytes | None = None
        self.framer: MessageFramer | None = None
        # MessageFramer.drain's handlers, bound once (data_received runs per read).
        self._handlers = (uplink.local_msg, self._on_event, uplink.local_run, uplink.keep_rule)
        # Local interest being collected from the snapshot, until our PONG.
        self._resync: dict[bytes, LocalInterest] | None = None

    @property
    def attached(self) -> bool:
        return self.link is not None

    @property
    def outbound(self) -> Outbound | None:
        link = self.link
        return link.outbound if link is not None else None

    def write(self, line: bytes) -> None:
        """Queue a control line for the router (dropped while detached)."""
        link = self.link
        if link is not None:
            link.outbound.write(line)

    def write_run(self, account: bytes, data: bytes) -> None:
        """Queue leaf-form messages of ``account``.

        Dropped while detached or backed up.
        """
        link = self.link
        if link is None:
            return
        outbound = link.outbound
        if account != self._acc:
            self._acc = account
            outbound.write(encode_acc(account))
        outbound.write_msg(data)

    async def run(self) -> None:
        """Stay attached to the router; returns only when cancelled."""
        waiting_logged = False
        while True:
            try:
                stream = await trio.open_unix_socket(self.path)
            except OSError as exc:
                if not waiting_logged:
                    log.info("Waiting for the router at %s (%s)", self.path, exc.strerror or exc)
                    waiting_logged = True
                await trio.sleep(RETRY_S)
                continue
            waiting_logged = False
            log.info("Connected to the router at %s", self.path)
            try:
                reason = await self._serve(stream)
            finally:
                self.link = None
                self.framer = None
                self._acc = None
                self._resync = None
            log.warning("Lost the router link at %s (%s); reconnecting", self.path, reason)
            await trio.sleep(RETRY_S)

    async def _serve(self, stream: trio.abc.Stream) -> str:
        link = Link(stream, self.uplink.flusher, POLICY)
        self.framer = MessageFramer(
            Kind.INTERNAL,
            max_payload=LINK_MAX_PAYLOAD,
            max_control_line=LINK_MAX_CONTROL_LINE,
            accounts=True,
        )
        link.outbound.write(PING)  # its PONG marks the end of the interest snapshot
        self._resync = {}
        self.link = link
        self.attaches += 1
        self.uplink.router_attached()
        return await link.run(self)

    # ------------------------------------------------------------ LinkProtocol

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        assert framer is not None
        framer.feed(data)
        try:
            framer.drain(*self._handlers)
        except RemoteProtocolError as exc:
            log.error("Router data link protocol error: %s", exc)
            raise

    def send_ping(self) -> None:
        self.write(PING)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "Router: <<- %r", event)
        if isinstance(event, LSub):
            self._local_sub(event)
        elif isinstance(event, LUnsub):
            self._local_unsub(event)
        elif isinstance(event, Ping):
            self.write(PONG)
        elif isinstance(event, Pong):
            if self._resync is not None:
                tables, self._resync = self._resync, None
                self.uplink.local_resync(tables)
        elif isinstance(event, Info):
            self._hello(event.options)
        elif isinstance(event, Err):
            log.error("Router data link error: %s", event.text)

    def _local_sub(self, event: LSub) -> None:
        account = event.account or b""
        if self._resync is not None:
            table = self._resync.get(account)
            if table is None:
                table = self._resync[account] = LocalInterest()
            table.add(event.subject, event.queue, event.weight)
        else:
            self.uplink.local_sub(account, event.subject, event.queue, event.weight)

    def _local_unsub(self, event: LUnsub) -> None:
        account = event.account or b""
        if self._resync is not None:
            table = self._resync.get(account)
            if table is not None:
                table.remove(event.subject, event.queue)
        else:
            self.uplink.local_unsub(account, event.subject, event.queue)

    def _hello(self, options: dict[str, object]) -> None:
        if not Hello.is_hello(options):
            return
        hello = Hello.from_options(options)
        self.router_name = hello.server_name
        self.accounts = hello.accounts
        self.uplink.router_accounts(self.accounts)
        if hello.lds:
            self.uplink.router_lds(hello.lds)
