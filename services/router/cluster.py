"""The node's place in a NATS cluster: route listener, dialers, peers, gossip (DESIGN §9).

Theory of operation (nats-server ``server/route.go``; the wire forms are in
``leafnode/proto/_route_info.py``):

Listener and dialers
    ``cluster { listen }`` accepts routes; every URL of ``cluster { routes }``
    is an *explicit* route, dialed until it answers. A route named by
    gossip is *implicit*: dialed ``connect_retries`` + 1 times at most.

Lost routes and duplicates (nats-server's ``handleDuplicateRoute``,
``upgradeRouteToSolicited`` and the reconnect in ``closeConnection``)
    Two nodes that dial each other at the same instant (both ways explicit,
    or gossip racing a configured route) may each place its own route
    first and close the other's as a duplicate: each side keeps a
    connection the other just closed. So a duplicate that we dialed leaves
    its URL (and explicitness) to the route kept in its place, and a route
    we accepted takes the URL of any route we dialed to the same peer: a
    pool either side dialed is the dialer's to keep full. Whenever a route
    with a URL is lost, it is dialed again while the peer's pool has a free
    slot: after up to 100 ms (plus one second for an explicit route), plus
    half a second on the node with the larger server id, so after a
    collision between two of our nodes the smaller one redials first and
    the other finds the pool full; with nats-server (which draws its own
    0-100 ms) a repeated collision is only less likely, and each one is
    redialed again. An explicit route redials until it answers; an
    implicit one ``connect_retries`` + 1 times. A duplicate itself is never
    redialed (its URL lives on in the kept route).

Peers and pools
    Each peer server (by server id) gets a *pool* of routes, of the larger of
    the two ``pool_size``s (nats-server's default 3); an account's interest
    and messages always travel on the route at its pool index (FNV-1a of its
    name, ``route_pool_index``), or on a route dedicated to it (2.15's
    ``$SYS`` route, which we accept and never dial). The dialer of the first
    route fills the pool: each pooled route it dials, once placed, starts
    the next one after a PING/PONG. A route for a slot already taken, or
    beyond the pool, is a duplicate and closes; the node that dials it again
    later (explicit routes) finds its peer connected and stops.

Gossip
    When a peer's first route is placed, its INFO (with the address it
    dialed from, ``ip``) goes to every other peer, unless this node dialed
    it because of gossip (nats-server's rule, which keeps a full mesh without
    storms). A peer receiving it dials the new node unless it knows it.

Interest and clients
    Local interest changes reach each peer on the account's route
    (``interest_changed``, the accounts' ``route_sink``); a new route gets the
    interest of the accounts it carries. Clients learn every node's client
    URL: once peers are known, the client INFO carries ``connect_urls`` (ours
    first, then each peer's), and every connected client that announced
    protocol 1 gets an updated INFO when a node comes or goes.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import random
import socket as _stdsocket
import time
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio

from leafnode import SERVER_VERSION
from leafnode.clientport import WILDCARD_HOSTS, bind_client_port, peer_address
from leafnode.proto import (
    COMPRESSION_OFF,
    PING,
    SYSTEM_ACCOUNT,
    RouteConnect,
    RouteInfo,
    encode_err,
    encode_rlsub,
    encode_rlunsub,
    encode_route_connect,
    encode_route_info,
    encode_rsub,
    encode_runsub,
    route_pool_index,
)
from leafnode.redact import redact_url

from .route_conn import RouteConnection
from .route_tls import RouteTls

if TYPE_CHECKING:
    from leafnode.config import ClusterSettings

    from .interfaces import ClusterServer
    from .routing import Account

__all__ = ["Cluster"]

log = logging.getLogger("leafnode.router")

# nats-server's DEFAULT_ROUTE_CONNECT (the pause between dials) and
# DEFAULT_ROUTE_RECONNECT (before dialing an explicit route again).
ROUTE_CONNECT_DELAY_S: Final = 1.0
ROUTE_RECONNECT_DELAY_S: Final = 1.0
# Random extra delay before a redial: two nodes that dial each other and
# each keep the other's connection as a duplicate must not collide forever.
ROUTE_JITTER_S: Final = 0.1
# Extra delay before the node with the larger server id redials a lost
# route: after a collision between two of our nodes, the other one redials
# first and this one then finds the pool full (module doc).
ROUTE_DEFER_S: Final = 0.5
# nats-server's DEFAULT_ROUTE_DIAL.
ROUTE_DIAL_TIMEOUT_S: Final = 1.0
# The route protocol level we announce (nats-server's RouteProtoInfo: INFO
# updates understood; no message tracing headers expected).
ROUTE_PROTO: Final = 1


class Peer:
    """Another server of the cluster: its routes and what it told us."""

    def __init__(self, info: RouteInfo, pool_size: int) -> None:
        self.server_id = info.server_id
        self.info = info
        self.slots: list[RouteConnection | None] = [None] * pool_size
        self.dedicated: dict[str, RouteConnection] = {}
        self.connected_at = time.time()

    def conns(self) -> list[RouteConnection]:
        return [c for c in (*self.slots, *self.dedicated.values()) if c is not None]

    def conn_for(self, account: str) -> RouteConnection | None:
        """The route that carries ``account`` to this peer (None: not up yet)."""
        conn = self.dedicated.get(account)
        if conn is not None:
            return conn
        if account == SYSTEM_ACCOUNT and len(self.slots) > 1:
            return None  # a pooling peer routes $SYS on its dedicated route only
        return self.slots[route_pool_index(len(self.slots), account)]


def _take_url(conn: RouteConnection, url: str, *, explicit: bool) -> None:
    """``conn`` is dialed again at ``url`` once lost; an explicit URL wins over a gossiped one."""
    if conn.redial_url is None or (explicit and not conn.redial_explicit):
        conn.redial_url = url
    if explicit:
        conn.redial_explicit = True


def _nuid() -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[b % len(alphabet)] for b in os.urandom(22))


def client_urls(host: str, port: int) -> list[str]:
    """Our client port's URLs as nats-server advertises them (host:port)."""
    if host not in WILDCARD_HOSTS:
        return [f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"]
    found: list[str] = []
    try:
        infos = _stdsocket.getaddrinfo(_stdsocket.gethostname(), None, _stdsocket.AF_INET)
    except OSError:
        infos = []
    for info in infos:
        ip = str(info[4][0])
        if not ip.startswith("127.") and f"{ip}:{port}" not in found:
            found.append(f"{ip}:{port}")
    return found or [f"127.0.0.1:{port}"]


class Cluster:
    """The router's routes (module doc); the accounts' ``route_sink``."""

    def __init__(self, server: ClusterServer, settings: ClusterSettings) -> None:
        self.server = server
        self.settings = settings
        self.dynamic = not settings.name
        self.name = settings.name or _nuid()
        self.pool_size = settings.pool_size
        self.peers: dict[str, Peer] = {}
        self.conns: set[RouteConnection] = set()
        self.port = settings.port
        self._rid = 0
        self._nursery: trio.Nursery | None = None
        self._dialing: set[str] = set()
        # Configured routes that reached this very node.
        self._self_urls: set[str] = set()
        self.listening = trio.Event()
        # cluster.tls: every route does a TLS handshake first (route_tls.py).
        self.tls = RouteTls(settings.tls, settings.routes) if settings.tls is not None else None

    # ---------------------------------------------------------------- serving

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen for routes (when a port is set) and dial the seed routes."""
        settings = self.settings
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if settings.port != 0:
                try:
                    sock = bind_client_port(settings.host, settings.port)
                except OSError as exc:
                    log.error("Error listening on router port: %d - %s", max(settings.port, 0), exc)
                    raise
                self.port = sock.getsockname()[1]
                listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                nursery.start_soon(self._accept_loop, listener)
                log.info("Cluster name is %s", self.name)
                if self.dynamic:
                    log.warning("Cluster name was dynamically generated, consider setting one")
                    if self.server.has_remotes:
                        # The uplink's leaf CONNECT names the configured cluster only.
                        log.warning(
                            "cluster.name is not set: the hub links cannot name the cluster,"
                            " and a hub may deliver a message twice to a site's nodes"
                        )
                log.info("Listening for route connections on %s:%d", settings.host, self.port)
            self.listening.set()
            task_status.started()
            for url in settings.routes:
                nursery.start_soon(self._redial, url, True, None)

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        assert self._nursery is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                log.error("Error accepting route connection: %s", exc)
                await trio.sleep(ROUTE_CONNECT_DELAY_S)
                continue
            host, port = peer_address(stream.socket)
            conn = self._new_conn(stream, host, port)
            log.info("%s - Route connection created", conn)
            self._nursery.start_soon(self._run, conn)

    def _new_conn(
        self,
        stream: trio.abc.Stream,
        host: str,
        port: int,
        url: str | None = None,
        *,
        implicit: bool = False,
    ) -> RouteConnection:
        self._rid += 1
        conn = RouteConnection(self, stream, self._rid, host, port, url=url, implicit=implicit)
        self.conns.add(conn)
        return conn

    async def _run(self, conn: RouteConnection) -> str:
        try:
            return await conn.run()
        finally:
            self.conns.discard(conn)
            self.unregister(conn)
            self._after_close(conn)

    def redial_plan(self, conn: RouteConnection) -> tuple[str, bool, float] | None:
        """Whether a closed route is dialed again: (URL, explicit, delay), or None.

        The module doc's rule: a route with a URL that is no duplicate;
        one that never reached a peer only when explicit (a dial that
        failed its handshake, tried again each second).
        """
        url = conn.redial_url
        if url is None or conn.no_redial or url in self._self_urls:
            return None
        explicit = conn.redial_explicit
        if not conn.remote_id or (conn.peer_error and not explicit):
            # Refused, or no peer reached: an implicit route gives up, an
            # explicit one tries again each second.
            return (url, True, ROUTE_CONNECT_DELAY_S) if explicit else None
        delay = random.random() * ROUTE_JITTER_S
        if explicit:
            delay += ROUTE_RECONNECT_DELAY_S
        if self.server.server_id > conn.remote_id:
            delay += ROUTE_DEFER_S
        return url, explicit, delay

    def _after_close(self, conn: RouteConnection) -> None:
        plan = self.redial_plan(conn)
        if plan is None or self._nursery is None:
            return
        url, explicit, delay = plan
        log.debug("%s - Attempting reconnect for route %s", conn, redact_url(url))
        self._nursery.start_soon(self._redial, url, explicit, conn.remote_id or None, delay)

    def has_free_slot(self, server_id: str) -> bool:
        """Whether a route to ``server_id`` is missing (no peer, or a free pool slot)."""
        peer = self.peers.get(server_id)
        return peer is None or any(c is None for c in peer.slots)

    async def _redial(
        self, url: str, explicit: bool, server_id: str | None, delay: float = 0.0
    ) -> None:
        """Dial ``url`` while ``server_id``'s pool has a free slot, then serve the route.

        ``server_id`` None: a seed route, dialed until it answers. An
        explicit route is dialed until it answers, an implicit one
        ``connect_retries`` + 1 times. What happens once the route closes
        is ``_after_close``'s.
        """
        if delay:
            await trio.sleep(delay)
        attempts = 0
        while url not in self._self_urls:
            if server_id is not None and not self.has_free_slot(server_id):
                return
            conn = await self._dial(url, implicit=not explicit)
            if conn is not None:
                await self._run(conn)
                return
            attempts += 1
            if not explicit and attempts > self.settings.connect_retries:
                return
            if attempts == 1 or attempts % 30 == 0:
                log.error(
                    "Error trying to connect to route %s (attempt %d)", redact_url(url), attempts
                )
            await trio.sleep(ROUTE_CONNECT_DELAY_S)

    async def _dial(self, url: str, *, implicit: bool) -> RouteConnection | None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 0
        try:
            with trio.fail_after(ROUTE_DIAL_TIMEOUT_S):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            log.debug("Error trying to connect to route %s: %s", redact_url(url), exc)
            return None
        sock = stream.socket
        if sock.getsockname() == sock.getpeername():
            # A TCP self-connect: nothing listened on the port, and the kernel
            # gave this dial the port itself as its own (simultaneous open).
            await trio.aclose_forcefully(stream)
            log.debug("Route %s: connected to itself, nothing listens there", redact_url(url))
            return None
        conn = self._new_conn(stream, host, port, url, implicit=implicit)
        log.info("%s - Route connection created", conn)
        return conn

    async def _solicit_implicit(self, url: str, server_id: str) -> None:
        """Dial a route gossip named: ``connect_retries`` + 1 attempts."""
        try:
            for attempt in range(self.settings.connect_retries + 1):
                if server_id in self.peers:
                    return
                if attempt:
                    await trio.sleep(ROUTE_CONNECT_DELAY_S)
                conn = await self._dial(url, implicit=True)
                if conn is not None:
                    await self._run(conn)
                    return
        finally:
            self._dialing.discard(server_id)

    # --------------------------------------------------------------- handshake

    def flusher_flush(self) -> None:
        self.server.flusher.flush()

    def connect_line(self, url: str) -> bytes:
        """Our CONNECT on a route we dialed (credentials from the URL, else ours)."""
        parts = urlsplit(url)
        user = parts.username or self.settings.user or ""
        password = parts.password or (self.settings.password if not parts.username else "") or ""
        connect = RouteConnect(
            name=self.server.server_id,
            cluster=self.name,
            user=user,
            password=password,
            tls_required=self.tls is not None,
            cluster_dynamic=self.dynamic,
            lnoc=True,
            lnocu=True,
        )
        return encode_route_connect(connect)

    def route_info(self, pool_idx: int = 0) -> RouteInfo:
        settings = self.settings
        extra: dict[str, object] = {}
        host, port = settings.host, self.port
        if settings.advertise:
            adv_host, _, adv_port = settings.advertise.rpartition(":")
            if adv_host and adv_port.isdigit():
                host, port = adv_host, int(adv_port)
            else:
                host = settings.advertise
            extra["ip"] = f"nats-route://{host}:{port}/"
        if self.tls is not None:
            extra["tls_verify"] = True  # routes are always mutual TLS (route_tls.py)
        return RouteInfo(
            server_id=self.server.server_id,
            server_name=self.server.server_name,
            version=SERVER_VERSION,
            proto=ROUTE_PROTO,
            go="python",
            host=host,
            port=port,
            headers=True,
            max_payload=self.server.settings.max_payload,
            auth_required=settings.user is not None,
            tls_required=self.tls is not None,
            cluster=self.name,
            cluster_dynamic=self.dynamic,
            connect_urls=() if settings.no_advertise else tuple(self.own_client_urls()),
            compression=COMPRESSION_OFF,
            lnoc=True,
            lnocu=True,
            route_pool_size=max(self.pool_size, 0),
            route_pool_idx=pool_idx,
            extra=extra,
        )

    def info_line(self, pool_idx: int = 0) -> bytes:
        return encode_route_info(self.route_info(pool_idx))

    def check_connect(self, options: dict[str, object]) -> str | None:
        """Why a dialing node's CONNECT is refused, or None."""
        settings = self.settings
        if settings.user is None:
            return None
        user, password = options.get("user"), options.get("pass")
        if not isinstance(user, str) or not isinstance(password, str):
            return "route authorization: no user and password"
        ok_user = hmac.compare_digest(user.encode(), settings.user.encode())
        ok_pass = hmac.compare_digest(password.encode(), (settings.password or "").encode())
        if not (ok_user and ok_pass):
            return f"route authorization: user {user!r} refused"
        return None

    def first_info(self, conn: RouteConnection, info: RouteInfo) -> None:
        """The peer's first INFO: check it, then place the route (module doc)."""
        if info.server_id == self.server.server_id:
            # A route to ourselves (a config listing every node, this one
            # too, as nats-server's allow): never dialed again.
            if conn.url is not None:
                self._self_urls.add(conn.url)
            conn.no_redial = True
            log.debug("%s - Detected route to self, ignoring %s", conn, redact_url(conn.url or ""))
            conn.close("Duplicate Route")
            return
        if info.cluster and info.cluster != self.name:
            if self.dynamic and (not info.cluster_dynamic or self.name < info.cluster):
                log.info("Cluster name changed from %s to %s", self.name, info.cluster)
                self.name = info.cluster
                self.dynamic = info.cluster_dynamic
            else:
                log.error(
                    "%s - Rejecting connection, cluster name %r does not match %r",
                    conn,
                    info.cluster,
                    self.name,
                )
                conn.no_redial = conn.implicit  # explicit: dialed again each second
                conn.close("Cluster Name Conflict")
                return
        conn.link.established()
        self._place(conn, info)

    def _place(self, conn: RouteConnection, info: RouteInfo) -> None:
        peer = self.peers.get(info.server_id)
        new_peer = peer is None
        pooled = self.pool_size > 0 and info.route_pool_size > 0
        size = max(self.pool_size, info.route_pool_size) if pooled else 1
        if info.route_account:
            if not pooled:
                conn.outbound.write(
                    encode_err(
                        f'Not possible to have a dedicated route for account "{info.route_account}"'
                        " between those servers"
                    )
                )
                conn.link.close_after_flush("Protocol Violation")
                return
            if peer is None:
                peer = Peer(info, size)
            if info.route_account in peer.dedicated:
                self._duplicate(conn, peer.dedicated[info.route_account])
                return
            peer.dedicated[info.route_account] = conn
            conn.account = info.route_account
            conn.pinned = True
            conn.parser.route_account = info.route_account.encode()
        else:
            if peer is None:
                peer = Peer(info, size)
            elif len(peer.slots) < size:
                peer.slots.extend([None] * (size - len(peer.slots)))
            self._share_url(peer, conn)
            if conn.solicited:
                idx = next((i for i, c in enumerate(peer.slots) if c is None), -1)
            else:
                idx = info.route_pool_idx if pooled else 0
                if not 0 <= idx < len(peer.slots):
                    conn.outbound.write(
                        encode_err(
                            f"Invalid route pool index: {idx} - pool size is {info.route_pool_size}"
                        )
                    )
                    conn.link.close_after_flush("Protocol Violation")
                    return
                if peer.slots[idx] is not None:
                    self._duplicate(conn, peer.slots[idx])
                    return
            if idx < 0:
                self._duplicate(conn, None)
                return
            peer.slots[idx] = conn
            conn.pool_idx = idx
        self.peers[info.server_id] = peer
        conn.registered = True
        if conn.solicited:
            # Our INFO, delayed until the pool index was known.
            conn.outbound.write(self.info_line(max(conn.pool_idx, 0)))
        log.info(
            "%s - Route registered: %s (%s)%s",
            conn,
            info.server_name or info.server_id,
            info.server_id,
            f" for account {conn.account}" if conn.account else f" pool index {conn.pool_idx}",
        )
        self._send_interest(peer, conn)
        if new_peer:
            self._peer_added(peer, conn, info)
        if conn.solicited and conn.account is None and any(c is None for c in peer.slots):
            conn.fill_on_pong = True
            conn.outbound.write(PING)

    def _duplicate(self, conn: RouteConnection, kept: RouteConnection | None) -> None:
        """Close ``conn``, a duplicate of ``kept`` (None: the pool is full).

        nats-server's handleDuplicateRoute: the peer may have kept ``conn``
        and closed ``kept`` at the same instant, so ``kept`` takes
        ``conn``'s URL to dial the peer again if it is lost (module doc).
        """
        log.debug("%s - Detected duplicate remote route %s", conn, conn.remote_id)
        conn.no_redial = True
        if kept is not None and conn.redial_url is not None:
            _take_url(kept, conn.redial_url, explicit=conn.redial_explicit)
        conn.close("Duplicate Route")

    @staticmethod
    def _share_url(peer: Peer, conn: RouteConnection) -> None:
        """A pool either side dialed is redialed by us if we dialed any of it.

        nats-server's hasSolicitedRoute/upgradeRouteToSolicited: a route we
        dialed gives its URL to the pool's accepted routes; an accepted one
        takes the URL of a route we dialed.
        """
        pool = [c for c in peer.slots if c is not None]
        if conn.redial_url is not None:
            for other in pool:
                _take_url(other, conn.redial_url, explicit=conn.redial_explicit)
            return
        source = next((c for c in pool if c.redial_url is not None), None)
        if source is not None and source.redial_url is not None:
            _take_url(conn, source.redial_url, explicit=source.redial_explicit)

    def fill_pool(self, conn: RouteConnection) -> None:
        """The PONG after a placed pooled route: dial the pool's next route."""
        peer = self.peers.get(conn.remote_id)
        if peer is None or conn.url is None or self._nursery is None:
            return
        if any(c is None for c in peer.slots):
            self._nursery.start_soon(self._redial, conn.url, not conn.implicit, peer.server_id)

    def _send_interest(self, peer: Peer, conn: RouteConnection) -> None:
        """A new route's ``RS+`` (and ``LS+`` of leaf clusters, leaforigin.py) for its accounts."""
        lines: list[bytes] = []
        lnoc = peer.info.lnoc
        for account in self.server.accounts.values():
            if peer.conn_for(account.name) is not conn:
                continue
            acc = None if conn.pinned else account.name_bytes
            for subject, queue, count in account.interest.counts():
                if lnoc:
                    count -= account.origins.share(subject, queue)
                if count > 0:
                    lines.append(encode_rsub(acc, subject, queue, count if queue else None))
            if lnoc:
                for (origin, subject, queue), count in account.origins.counts.items():
                    lines.append(
                        encode_rlsub(origin, acc, subject, queue, count if queue else None)
                    )
        if lines:
            conn.outbound.write(b"".join(lines))

    def _peer_added(self, peer: Peer, conn: RouteConnection, info: RouteInfo) -> None:
        # Gossip: every other peer learns the new one, unless gossip brought it.
        if not (conn.solicited and conn.implicit):
            ip = info.extra.get("ip")
            if not isinstance(ip, str) or not ip:
                ip = f"nats-route://{conn.host}:{info.port}/"
            extra = {k: v for k, v in info.extra.items() if k not in ("nonce", "ip")}
            extra["ip"] = ip
            gossip = dataclasses.replace(
                info, nonce="", route_pool_idx=0, route_account="", gossip_mode=0, extra=extra
            )
            line = encode_route_info(gossip)
            for other in self.peers.values():
                if other is peer:
                    continue
                target = next(iter(other.conns()), None)
                if target is not None:
                    target.outbound.write(line)
        self.server.cluster_urls_changed()

    def peer_info(self, conn: RouteConnection, info: RouteInfo) -> None:
        """An INFO update from a peer about itself: its client URLs, lame duck mode.

        A peer in lame duck mode is about to go: its client URLs leave our
        clients' ``connect_urls`` at once (nats-server's processRouteInfo).
        """
        peer = self.peers.get(conn.remote_id)
        if peer is None:
            return
        urls = () if info.ldm else info.connect_urls
        if info.ldm != peer.info.ldm or urls != peer.info.connect_urls:
            peer.info = dataclasses.replace(peer.info, connect_urls=urls, ldm=info.ldm)
            self.server.cluster_urls_changed()

    def lame_duck(self) -> None:
        """We enter lame duck mode: tell every peer (an INFO with ``ldm``)."""
        line = encode_route_info(dataclasses.replace(self.route_info(), ldm=True))
        for peer in self.peers.values():
            for conn in peer.conns():
                conn.outbound.write(line)

    def implicit_route(self, info: RouteInfo) -> None:
        """Gossip named a server: dial it unless it is known or configured."""
        sid = info.server_id
        if sid == self.server.server_id or sid in self.peers or sid in self._dialing:
            return
        if info.route_account:
            return  # dedicated routes are the other side's to dial
        ip = info.extra.get("ip")
        url = ip if isinstance(ip, str) and ip else f"nats-route://{info.host}:{info.port}/"
        parts = urlsplit(url)
        for configured in self.settings.routes:
            c = urlsplit(configured)
            if (c.hostname, c.port) in ((parts.hostname, parts.port), (info.host, info.port)):
                return
        if self.settings.user is not None and info.auth_required:
            url = (
                f"nats-route://{self.settings.user}:{self.settings.password or ''}"
                f"@{parts.hostname}:{parts.port}/"
            )
        if self._nursery is not None:
            self._dialing.add(sid)
            self._nursery.start_soon(self._solicit_implicit, url, sid)

    def unregister(self, conn: RouteConnection) -> None:
        """A route closed: forget its interest, and the peer with its last route."""
        if not conn.registered:
            return
        conn.registered = False
        for account in self.server.accounts.values():
            if account.routes.entries:
                gone = account.routes.drop_route(conn)
                if account.leafs is not None:
                    for subject, queue in gone:
                        account.leafs.refresh(subject, queue)
        peer = self.peers.get(conn.remote_id)
        if peer is None:
            return
        if conn.account is not None and peer.dedicated.get(conn.account) is conn:
            del peer.dedicated[conn.account]
        elif 0 <= conn.pool_idx < len(peer.slots) and peer.slots[conn.pool_idx] is conn:
            peer.slots[conn.pool_idx] = None
        if not peer.conns():
            del self.peers[conn.remote_id]
            log.info("Route to %s (%s) is gone", peer.info.server_name, peer.server_id)
            self.server.cluster_urls_changed()

    # ---------------------------------------------------------------- interest

    def interest_changed(self, account: Account, subject: bytes, queue: bytes | None) -> None:
        """``RouteSink``: tell every peer the account's new count of a key."""
        if not self.peers:
            return
        local = account.local_count(subject, queue)
        total = account.interest.count(subject, queue)
        name = account.name
        for peer in self.peers.values():
            conn = peer.conn_for(name)
            if conn is None or not conn.registered:
                continue
            acc = None if conn.pinned else account.name_bytes
            # A peer without lnoc hears leaf clusters' interest as ours.
            count = local if peer.info.lnoc else total
            if count:
                conn.outbound.write(encode_rsub(acc, subject, queue, count if queue else None))
            else:
                conn.outbound.write(encode_runsub(acc, subject, queue))

    def leaf_interest_changed(
        self, account: Account, origin: bytes, subject: bytes, queue: bytes | None, old: int
    ) -> None:
        """``RouteSink``: leaf cluster ``origin``'s count of a key changed (leaforigin.py)."""
        if not self.peers:
            return
        new = account.origins.counts.get((origin, subject, queue), 0)
        if new == old or (queue is None and old and new):
            return  # a plain key is told when it comes and when it goes
        name = account.name
        for peer in self.peers.values():
            conn = peer.conn_for(name)
            if conn is None or not conn.registered:
                continue
            acc = None if conn.pinned else account.name_bytes
            if not peer.info.lnoc:
                total = account.interest.count(subject, queue)
                if total:
                    conn.outbound.write(encode_rsub(acc, subject, queue, total if queue else None))
                else:
                    conn.outbound.write(encode_runsub(acc, subject, queue))
            elif new:
                conn.outbound.write(
                    encode_rlsub(origin, acc, subject, queue, new if queue else None)
                )
            else:
                # LS- names the origin only to a peer that said lnocu.
                lunsub_origin = origin if peer.info.lnocu else b""
                conn.outbound.write(encode_rlunsub(lunsub_origin, acc, subject, queue))

    # -------------------------------------------------------------- monitoring

    def own_client_urls(self) -> list[str]:
        return client_urls(self.server.settings.host, self.server.port)

    def connect_urls(self) -> list[str]:
        """Client URLs of the whole cluster: ours, then each peer's (once peers exist)."""
        if self.settings.no_advertise or not self.peers:
            return []
        urls = self.own_client_urls()
        for peer in self.peers.values():
            for url in peer.info.connect_urls:
                if url not in urls:
                    urls.append(url)
        return urls
