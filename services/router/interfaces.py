"""What the router's server and its connections see of each other: ``Protocol``s only.

``server.Server`` owns everything and builds the connections, so it imports
``client_conn``, ``datalink``, ``wsclients`` and ``sysreq``. Those modules,
and the helpers handed a client connection (``closed``, ``msgtrace``), see the
server and the client through the Protocols here instead of importing
``server`` or ``client_conn``, so every import of the router goes one way,
type-only imports included (``scripts/check-import-cycles``; issue 13).
Each Protocol lists what its users read or call, no more: a new use is a new
line here, which is the point. mypy checks ``Server`` and
``ClientConnection`` against them where they are handed over.

Its imports reach only the modules below the connections (``auth``,
``buffering``, ``imports``, ``permissions``, ``route_tls``, ``routing``; and
``leafnode.link``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .imports import Requester

if TYPE_CHECKING:
    import ssl

    import trio

    from leafnode.config import ClusterSettings, RouterSettings
    from leafnode.link import Flusher
    from leafnode.proto import RouteInfo

    from .auth import Authenticator, Identity
    from .buffering import StoreLink
    from .permissions import PermissionChecker
    from .route_tls import RouteTls
    from .routing import Account, Subscription

__all__ = [
    "Client",
    "ClientServer",
    "ClusterServer",
    "LeafServer",
    "LinkServer",
    "RouteOwner",
    "ServerIdentity",
    "SystemPublisher",
    "WebsocketServer",
]


class Client(Requester, Protocol):
    """A client connection (``client_conn.ClientConnection``) as the server's
    bookkeeping (``closed``), message tracing (``msgtrace``) and the ``$SYS``
    services (``sysreq``) read it; routing sees it as a ``Delivery``."""

    cid: int
    host: str
    port: int
    server: ClientServer
    account: Account
    identity: Identity | None
    perms: PermissionChecker | None
    connect_options: dict[str, object]
    name: str
    lang: str
    version: str
    user: str | None
    started_at: float
    last_activity: float
    in_msgs: int
    in_bytes: int
    close_reason: str | None
    closed_subs: tuple[Subscription, ...]
    # /connz's type ("nats", "websocket") and whether the connection is TLS.
    conn_type: str
    tls: bool

    @property
    def out_msgs(self) -> int:
        """Messages delivered to the client."""
        ...

    @property
    def out_bytes(self) -> int:
        """Payload bytes delivered to the client."""
        ...


class SystemPublisher(Protocol):
    """The ``$SYS`` services (``sysreq.SystemServices``) as clients and traces use them."""

    #: The client whose read batch is being routed, or None (sysreq's doc).
    publisher: Client | None

    def publish(self, account: Account, subject: bytes, payload: bytes) -> None: ...

    def server_info(self) -> dict[str, object]: ...


class ServerIdentity(Protocol):
    """Who the server is: what INFO lines and ``$SYS`` answers name."""

    server_id: str
    server_name: str
    settings: RouterSettings


class ClientServer(ServerIdentity, Protocol):
    """What a client connection reads and calls of its server (``server.Server``)."""

    auth: Authenticator
    # The websocket port's clients' (the websocket block's own auth, if any).
    ws_auth: Authenticator
    # bcrypt checks run in threads, this many at once.
    auth_limiter: trio.CapacityLimiter
    ssl_context: ssl.SSLContext | None
    trace: bool
    flusher: Flusher
    default_account: Account
    store_link: StoreLink | None
    info_template: dict[str, object]
    ws_info_template: dict[str, object]
    slow_consumers: int

    @property
    def services(self) -> SystemPublisher: ...

    def account(self, name: str) -> Account: ...

    def remove_client(self, client: Client) -> None: ...


class LinkServer(ServerIdentity, Protocol):
    """What the data link to the uplink (``datalink.DataLink``) reads of its server."""

    flusher: Flusher
    accounts: dict[str, Account]
    accounts_by_bytes: dict[bytes, Account]
    datalink_path: str

    # The attached link: a link that ends checks it is still the one and clears it.
    @property
    def datalink(self) -> object | None: ...

    @datalink.setter
    def datalink(self, link: None) -> None: ...


class LeafServer(ServerIdentity, Protocol):
    """What the leaf port's connections (``leafconn``) use of the server."""

    flusher: Flusher
    auth_limiter: trio.CapacityLimiter
    store_link: StoreLink | None

    def account(self, name: str) -> Account: ...

    def new_cid(self) -> int:
        """The next connection id (clients and leafs share them, as in nats-server)."""
        ...


class WebsocketServer(Protocol):
    """What the websocket port's accept loop (``wsclients``) uses of the server."""

    # Cancelled by lame duck mode: stops accepting, keeps the clients.
    websocket_accepting: trio.CancelScope

    async def serve_websocket_client(
        self, stream: trio.abc.Stream, host: str, port: int, cookies: dict[str, str]
    ) -> None:
        """Serve a client upgraded on the websocket port (``cookies``: CONNECT fields)."""
        ...


class ClusterServer(ServerIdentity, Protocol):
    """What the cluster (``cluster.Cluster``) reads and calls of its server."""

    flusher: Flusher
    accounts: dict[str, Account]
    accounts_by_bytes: dict[bytes, Account]
    # The client port once bound (its URLs go to the peers).
    port: int
    # Whether hub remotes are configured (each node has its own hub link).
    has_remotes: bool

    def cluster_urls_changed(self) -> None:
        """Peers came or went: update the client INFO's ``connect_urls``."""
        ...


class RouteOwner(Protocol):
    """What a route connection (``route_conn.RouteConnection``) uses of the cluster."""

    server: ClusterServer
    settings: ClusterSettings
    # cluster.tls's contexts (None: routes over plain TCP).
    tls: RouteTls | None

    def connect_line(self, url: str) -> bytes: ...

    def info_line(self, pool_idx: int = 0) -> bytes: ...

    def flusher_flush(self) -> None: ...

    def check_connect(self, options: dict[str, object]) -> str | None: ...

    def first_info(self, conn: Any, info: RouteInfo) -> None: ...

    def peer_info(self, conn: Any, info: RouteInfo) -> None: ...

    def implicit_route(self, info: RouteInfo) -> None: ...

    def fill_pool(self, conn: Any) -> None: ...

    def unregister(self, conn: Any) -> None: ...
