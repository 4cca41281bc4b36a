"""One route: a connection to another node of the cluster (DESIGN §9).

The protocol object of a ``leafnode.link.Link``, as a client connection is:
the shell reads and writes, this object parses (``Parser(Kind.ROUTE)``) and
acts. The cluster (``cluster.Cluster``) decides where a route belongs: the
peer server it reaches, its place in that peer's pool, or the account it is
dedicated to.

The handshake (nats-server ``server/route.go`` createRoute, processRouteInfo;
``leafnode/proto/_route_info.py`` has the wire forms), after the TLS
handshake when ``cluster.tls`` is set (``route_tls``: TLS comes first):

- a route we *accept* sends our INFO at once; the dialer's CONNECT (checked
  against ``cluster.authorization``) comes first, then its INFO, whose
  ``route_pool_idx`` or ``route_account`` says where the route belongs;
- a route we *dial* sends CONNECT at once and our INFO only after the
  peer's INFO came and the cluster picked the route's pool index, which our
  INFO then names (``route_pool_idx``), as nats-server delays a pooled
  route's INFO;
- once placed, each side sends its interest for the accounts the route
  carries (``RS+``); the dialer of a pooled route sends a PING, and the PONG
  starts the next route of the pool (``Cluster.fill_pool``).

A later INFO naming another server is gossip: a node the peer just met,
which this node dials too (``Cluster.implicit_route``), so a new node needs
one seed to join the whole cluster.

Messages from a route go to local subscribers only (``route_from_hub``: the
plain ones, and one local member of each queue group the line names): never
back to a route, never to the hub, as nats-server never forwards a routed
message to another route nor out on a leaf connection it solicited.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import trio

from leafnode.link import Expiry, Keepalive, Link, LinkPolicy, OutboundPolicy
from leafnode.proto import (
    PING,
    PONG,
    Connect,
    Err,
    Info,
    Kind,
    Parser,
    Ping,
    Pong,
    RemoteProtocolError,
    RHMsg,
    RLMsg,
    RLSub,
    RLUnsub,
    RMsg,
    RSub,
    RUnsub,
    encode_err,
    route_info,
)

from .route_tls import TLS_HANDSHAKE_ERROR
from .routing import route_from_hub

if TYPE_CHECKING:
    from leafnode.proto import RouteInfo

    from .interfaces import RouteOwner
    from .route_tls import RouteTls

__all__ = ["RouteConnection"]

log = logging.getLogger("leafnode.router")

# A route carries a whole node's traffic: a deep queue before it counts as
# stuck (nats-server's routes have no max_pending of their own either).
ROUTE_MAX_PENDING: Final = 256 * 1024 * 1024
# nats-server's routeMaxPingInterval: a route PINGs at least once a minute.
ROUTE_MAX_PING_INTERVAL_S: Final = 60.0
# nats-server's default route auth timeout (no TLS): 2 s.
DEFAULT_AUTH_TIMEOUT_S: Final = 2.0
_STALE: Final = Expiry("Stale Connection", encode_err("Stale Connection"))
_AUTH_TIMEOUT: Final = Expiry("Authentication Timeout", encode_err("Authentication Timeout"))
# How long a route we dialed waits for the peer's INFO (nats-server's
# route handshake is its TLS timeout plus the first PING's; a few seconds).
SOLICITED_INFO_TIMEOUT_S: Final = 10.0
_NO_INFO: Final = Expiry("No INFO from the route in time")


class RouteConnection:
    """One route connection, accepted or dialed."""

    def __init__(
        self,
        cluster: RouteOwner,
        stream: trio.abc.Stream,
        rid: int,
        host: str,
        port: int,
        *,
        url: str | None = None,
        implicit: bool = False,
    ) -> None:
        self.cluster = cluster
        server = cluster.server
        settings = server.settings
        self.rid = rid
        self.host = host
        self.port = port
        # The URL we dialed (None: accepted), and whether gossip named it.
        self.url = url
        self.solicited = url is not None
        self.implicit = implicit
        # Who dials this route again once it is lost (nats-server's
        # didSolicit/url/routeType after upgradeRouteToSolicited): the URL we
        # dialed, or one a duplicate of ours left with it (``Cluster``'s
        # module doc); ``no_redial``: a duplicate, or a route to ourselves.
        self.redial_url = url
        self.redial_explicit = url is not None and not implicit
        self.no_redial = False
        # The peer sent -ERR (a refused CONNECT, a protocol error).
        self.peer_error = False
        self.parser = Parser(Kind.ROUTE, max_payload=settings.max_payload)
        auth = not self.solicited and cluster.settings.user is not None
        # nats-server's default: the TLS timeout + 1 s on a TLS route, else 2 s.
        tls = cluster.settings.tls
        default_s = tls.timeout_s + 1.0 if tls is not None else DEFAULT_AUTH_TIMEOUT_S
        timeout_s = cluster.settings.auth_timeout_s or default_s
        # A route we dialed must answer with its INFO in time (a peer that is
        # no route port, or hangs, is dropped and dialed again); one we
        # accepted must send CONNECT in time when authorization is required.
        handshake = (timeout_s, _AUTH_TIMEOUT) if auth else None
        if self.solicited:
            handshake = (SOLICITED_INFO_TIMEOUT_S, _NO_INFO)
        policy = LinkPolicy(
            outbound=OutboundPolicy(
                max_pending=ROUTE_MAX_PENDING,
                write_deadline_s=max(settings.write_deadline_s, 10.0),
            ),
            eof_reason="Client Closed",
            keepalive=Keepalive(
                interval_s=min(settings.ping_interval_s, ROUTE_MAX_PING_INTERVAL_S),
                ping_max=settings.ping_max,
                stale=_STALE,
            ),
            handshake=handshake,
            write_error_reason="Write Error",
        )
        self.link = Link(stream, server.flusher, policy)
        self.outbound = self.link.outbound
        self._accounts = server.accounts_by_bytes
        # The peer, once its INFO came.
        self.info: RouteInfo | None = None
        self.remote_id = ""
        self.remote_name = ""
        # Where the cluster placed the route: a pool index, or an account.
        self.pool_idx = -1
        self.account: str | None = None
        # Lines leave the account out (a route dedicated to one account).
        self.pinned = False
        # The peer reads LS+/LMSG with an origin (its INFO's lnoc).
        self.lnoc = False
        self.registered = False
        self.got_connect = self.solicited
        # Send the PING that starts the pool's next route; its PONG does.
        self.fill_on_pong = False
        self.started_at = time.time()
        self.last_activity = self.started_at
        self.in_msgs = self.in_bytes = 0
        self.out_msgs = self.out_bytes = 0

    def __str__(self) -> str:
        return f"{self.host}:{self.port} - rid:{self.rid}"

    async def run(self) -> str:
        """Serve the route until it ends; returns why."""
        self.link.on_close = self._on_close
        tls = self.cluster.tls
        if tls is not None and not await self._start_tls(tls):
            log.info("%s - Route connection closed: %s", self, TLS_HANDSHAKE_ERROR)
            return TLS_HANDSHAKE_ERROR
        if self.solicited:
            self.outbound.write(self.cluster.connect_line(self.url or ""))
        else:
            self.outbound.write(self.cluster.info_line())
        self.cluster.flusher_flush()
        reason = await self.link.run(self)
        log.info("%s - Route connection closed: %s", self, reason)
        return reason

    async def _start_tls(self, tls: RouteTls) -> bool:
        """TLS before anything else (``route_tls`` module doc); False: closed."""
        stream = await tls.handshake(self.link.stream, self.url, str(self))
        if stream is None:
            self.outbound.close_raw()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.link.stream)
            return False
        self.link.stream = stream
        self.outbound.stream = stream
        self.outbound.close_raw()
        return True

    def close(self, reason: str) -> None:
        self.link.close(reason)

    def _on_close(self) -> None:
        self.cluster.unregister(self)

    # ------------------------------------------------------------ LinkProtocol

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        self.last_activity = time.time()
        on_msg = self._on_rmsg
        try:
            while not self.link.closing:
                event = parser.next_route_event(on_msg)
                if event is None:
                    break
                self._event(event)
        except RemoteProtocolError as exc:
            log.error("%s - Route parser ERROR: %s", self, exc)
            if exc.err_text:
                self.outbound.write(encode_err(exc.err_text))
            self.link.close_after_flush("Protocol Violation")
            return
        parser.compact()

    def send_ping(self) -> None:
        self.outbound.write(PING)

    # ------------------------------------------------------------------ events

    def _event(self, event: object) -> None:
        kind = type(event)
        if kind is RMsg:
            assert isinstance(event, RMsg)
            self._deliver(event.account, event.subject, event.reply, event.queues, 0, event.payload)
        elif kind is RHMsg:
            assert isinstance(event, RHMsg)
            self._deliver(
                event.account, event.subject, event.reply, event.queues, event.hdr_len, event.data
            )
        elif kind is RLMsg:
            assert isinstance(event, RLMsg)
            self._deliver(
                event.account,
                event.subject,
                event.reply,
                event.queues,
                event.hdr_len,
                event.data,
                event.origin,
            )
        elif kind is RSub or kind is RLSub:
            assert isinstance(event, RSub | RLSub)
            account = self._accounts.get(event.account)
            if account is not None and self.registered:
                origin = event.origin if isinstance(event, RLSub) else None
                account.routes.add(self, origin, event.subject, event.queue, event.weight)
                if account.leafs is not None:
                    account.leafs.refresh(event.subject, event.queue)
        elif kind is RUnsub or kind is RLUnsub:
            assert isinstance(event, RUnsub | RLUnsub)
            account = self._accounts.get(event.account)
            if account is not None:
                origin = event.origin if isinstance(event, RLUnsub) else None
                account.routes.remove(self, origin, event.subject, event.queue)
                if account.leafs is not None:
                    account.leafs.refresh(event.subject, event.queue)
        elif kind is Ping:
            self.outbound.write(PONG)
        elif kind is Pong:
            self.link.pong()
            if self.fill_on_pong:
                self.fill_on_pong = False
                self.cluster.fill_pool(self)
        elif kind is Info:
            assert isinstance(event, Info)
            self._on_info(event.options)
        elif kind is Connect:
            assert isinstance(event, Connect)
            self._on_connect(event.options)
        elif kind is Err:
            assert isinstance(event, Err)
            self.peer_error = True
            log.error("%s - Route Error '%s'", self, event.text)

    def _deliver(
        self,
        account_name: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        hdr_len: int,
        data: bytes,
        leaf_origin: bytes = b"",
    ) -> None:
        """A peer's message for local subscribers (hot path); ``leaf_origin``: see leaforigin.py."""
        self.in_msgs += 1
        self.in_bytes += len(data)
        account = self._accounts.get(account_name)
        if account is not None:
            route_from_hub(account, subject, reply, queues, hdr_len, data, leaf_origin)

    def _on_rmsg(
        self, account_name: bytes, subject: bytes, reply: bytes | None, data: bytes
    ) -> None:
        """A plain ``RMSG`` (no queue list) from the parser's fast path (hot path)."""
        self.in_msgs += 1
        self.in_bytes += len(data)
        account = self._accounts.get(account_name)
        if account is not None:
            route_from_hub(account, subject, reply, (), 0, data)

    def _on_connect(self, options: dict[str, object]) -> None:
        if self.solicited or self.got_connect:
            return
        problem = self.cluster.check_connect(options)
        if problem is not None:
            log.error("%s - %s", self, problem)
            self.outbound.write(encode_err("Authorization Violation"))
            self.link.close_after_flush("Authentication Failure")
            return
        self.got_connect = True
        self.link.established()

    def _on_info(self, options: dict[str, object]) -> None:
        if not self.got_connect:
            # An accepted route must send CONNECT first (nats-server's expectConnect).
            self.outbound.write(encode_err("Authorization Violation"))
            self.link.close_after_flush("Authentication Failure")
            return
        try:
            info = route_info(options)
        except ValueError as exc:
            log.error("%s - bad route INFO: %s", self, exc)
            self.link.close_after_flush("Protocol Violation")
            return
        if self.info is None:
            self.info = info
            self.lnoc = info.lnoc
            self.remote_id = info.server_id
            self.remote_name = info.server_name
            self.cluster.first_info(self, info)
        elif info.server_id != self.remote_id:
            self.cluster.implicit_route(info)
        else:
            self.cluster.peer_info(self, info)
