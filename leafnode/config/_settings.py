"""Typed settings built from a NATS-syntax config file (DESIGN §6).

One frozen dataclass per service; ``Settings`` holds them all plus where the
file came from. Nothing here reads the environment or the file system: the
config parser (``leafnode.config.load``) builds these, services receive them.

Durations are float seconds (``*_s``); sizes are int bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path  # noqa: TC003 - kept at runtime for get_type_hints()
from typing import Literal

__all__ = [
    "DEFAULT_ACCOUNT",
    "AccountSettings",
    "ApiSettings",
    "BufferSettings",
    "ClusterSettings",
    "CpuSetting",
    "LeafAcceptSettings",
    "LeafUserSettings",
    "LeafnodeSettings",
    "LogSettings",
    "OperatorSettings",
    "Permissions",
    "RemoteSettings",
    "RouterSettings",
    "Settings",
    "StoreSettings",
    "SubjectPermission",
    "TlsSettings",
    "UserSettings",
    "WebsocketSettings",
]

# nats-server's global account, used when no account is configured.
DEFAULT_ACCOUNT = "$G"


@dataclass(frozen=True)
class SubjectPermission:
    """``publish``/``subscribe`` block: a bare list means ``allow``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Permissions:
    """``permissions { publish, subscribe, allow_responses }`` of a user."""

    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    # allow_responses: true -> max 1 response, no expiry; or {max, expires}.
    allow_responses: bool = False
    responses_max: int = 1
    responses_expires_s: float = 0.0


@dataclass(frozen=True)
class UserSettings:
    """One entry of ``users: [...]`` (top-level authorization or an account).

    Exactly one of ``user`` and ``nkey`` is set. ``password`` may be plain text
    or a bcrypt hash (``$2a$``/``$2b$``/``$2y$`` prefix).
    """

    account: str = DEFAULT_ACCOUNT
    user: str | None = None
    password: str | None = None
    nkey: str | None = None
    permissions: Permissions | None = None


@dataclass(frozen=True)
class ExportSettings:
    """One ``exports`` entry: ``{service: SUBJECT}`` or ``{stream: SUBJECT}``."""

    kind: str
    """``"service"`` or ``"stream"``."""
    subject: str
    accounts: tuple[str, ...] | None = None
    """The accounts that may import it (``accounts: [...]``); None: any."""


@dataclass(frozen=True)
class ImportSettings:
    """One ``imports`` entry of the importing account.

    ``{service: {account, subject}, to}``: publishes on ``local`` in this
    account are requests to ``subject`` in ``account``.
    ``{stream: {account, subject}, prefix}``: messages on ``subject`` in
    ``account`` reach this account's subscribers on ``local``.
    """

    kind: str
    """``"service"`` or ``"stream"``."""
    account: str
    subject: str
    local: str
    """The subject in the importing account (``to``, or ``prefix.subject``)."""
    prefix: str = ""
    """A stream import's ``prefix`` ("" for none)."""


@dataclass(frozen=True)
class AccountSettings:
    """``accounts { NAME: { users: [...], exports: [...], imports: [...] } }``."""

    name: str
    users: tuple[UserSettings, ...] = ()
    exports: tuple[ExportSettings, ...] = ()
    imports: tuple[ImportSettings, ...] = ()


@dataclass(frozen=True)
class TlsSettings:
    """A ``tls { ... }`` block (client port or a remote)."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    verify: bool = False
    insecure: bool = False
    timeout_s: float = 2.0
    handshake_first: bool = False
    # Client port only (nats-server's top-level allow_non_tls): TLS and plain
    # clients side by side; INFO says tls_available instead of tls_required.
    allow_non_tls: bool = False


@dataclass(frozen=True)
class WebsocketSettings:
    """``websocket { ... }``: NATS clients over WebSocket (browsers, nats.ws)."""

    host: str = "0.0.0.0"
    port: int = 0
    tls: TlsSettings | None = None
    no_tls: bool = False
    same_origin: bool = False
    allowed_origins: tuple[str, ...] = ()
    compression: bool = False
    # nats-server's default handshake_timeout: the TLS timeout, else 2 s.
    handshake_timeout_s: float = 2.0
    # authorization { user, password, token, timeout }: the block's own
    # simple auth. Any of user, token or no_auth_user replaces the server's
    # (nats-server's authOverride); the server's users and nkeys still count.
    user: str | None = None
    password: str | None = None
    token: str | None = None
    # authorization { timeout }; None: the server's auth timeout.
    auth_timeout_s: float | None = None
    no_auth_user: str | None = None
    # Names of the upgrade request's cookies that stand in for a CONNECT
    # without jwt, user, pass or auth_token ("" for none).
    jwt_cookie: str = ""
    user_cookie: str = ""
    pass_cookie: str = ""
    token_cookie: str = ""

    @property
    def auth_override(self) -> bool:
        """The block's own auth replaces the server's for its clients."""
        return bool(self.user or self.token or self.no_auth_user)


@dataclass(frozen=True)
class BufferSettings:
    """``buffer { ... }`` of a remote (DESIGN §4). ``None`` limits are unlimited."""

    subjects: tuple[str, ...] = ()
    max_msgs: int | None = None
    max_bytes: int | None = 1024 * 1024 * 1024
    max_age_s: float | None = None
    discard: str = "old"  # "old" | "new"
    retain_s: float = 0.0


@dataclass(frozen=True)
class RemoteSettings:
    """One entry of ``leafnodes { remotes: [...] }`` (leafnode-protocol.md §7)."""

    name: str
    urls: tuple[str, ...]
    account: str = DEFAULT_ACCOUNT
    credentials: str | None = None
    nkey: str | None = None
    tls: TlsSettings | None = None
    no_randomize: bool = False
    hub: bool = False
    deny_imports: tuple[str, ...] = ()
    deny_exports: tuple[str, ...] = ()
    first_info_timeout_s: float = 1.0
    dial_timeout_s: float = 1.0
    ws_compression: bool = False
    ws_no_masking: bool = False
    buffer: BufferSettings | None = None


@dataclass(frozen=True)
class LeafUserSettings:
    """One ``leafnodes { authorization { users: [...] } }`` entry (nats-server's parseLeafUsers)."""

    user: str
    password: str | None = None
    account: str | None = None
    """The account a leaf logging in as this user binds to; None: ``$G`` (as nats-server,
    the block's ``account`` is for the single user or nkey only)."""


@dataclass(frozen=True)
class LeafAcceptSettings:
    """The accepting side of ``leafnodes``: where downstream leafs dial in, and who may.

    ``port`` None: no ``listen``/``port`` was given and no leaf is accepted;
    -1 asks for a random free port, as in nats-server. The authorization is
    nats-server's leafnode one: a single ``user``/``password`` or ``nkey``
    bound to ``account`` (default ``$G``), or a ``users`` list, each user
    bound to its own ``account``. None of it: a leaf authenticates as a
    client would (the top-level ``authorization``).
    """

    host: str = "0.0.0.0"
    port: int | None = None
    advertise: str | None = None
    no_advertise: bool = False
    user: str | None = None
    password: str | None = None
    nkey: str | None = None
    account: str | None = None
    users: tuple[LeafUserSettings, ...] = ()
    auth_timeout_s: float | None = None
    """None: the default (nats-server: the tls timeout if TLS is on, else 2 s)."""
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class LeafnodeSettings:
    """The ``leafnodes`` block: the remotes we dial, and the leafs we accept (``accept``)."""

    remotes: tuple[RemoteSettings, ...] = ()
    reconnect_s: float = 1.0
    accept: LeafAcceptSettings = LeafAcceptSettings()


@dataclass(frozen=True)
class LogSettings:
    """Logging options shared by every service."""

    debug: bool = False
    trace: bool = False
    logtime: bool = True
    log_file: str | None = None
    pid_file: str | None = None


@dataclass(frozen=True)
class OperatorSettings:
    """Operator mode: ``operator``, ``system_account``, ``resolver``, ``resolver_preload``.

    Clients then authenticate with a user JWT issued by one of the preloaded
    accounts. The config loader has verified every JWT here: each operator
    JWT is signed by its own key (or one of its signing keys), and each
    preloaded account JWT by a trusted operator key.
    """

    operator_jwts: tuple[str, ...]
    """The operator JWTs, read from their files or given inline."""
    system_account: str | None = None
    """Public key (``A...``) of the system account, from the config or the operator JWT."""
    resolver: str = "MEMORY"
    """The account resolver; only ``MEMORY`` (preloaded accounts) is supported."""
    preload: tuple[tuple[str, str], ...] = ()
    """``(account public key, account JWT)`` pairs, in config order."""


@dataclass(frozen=True)
class RouterSettings:
    """The local NATS server: client port, auth, limits."""

    server_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 4222
    max_payload: int = 1024 * 1024
    max_control_line: int = 4096
    max_pending: int = 64 * 1024 * 1024
    max_connections: int = 64 * 1024
    max_subscriptions: int = 0  # 0 = unlimited
    ping_interval_s: float = 120.0
    ping_max: int = 2
    write_deadline_s: float = 10.0
    # authorization { timeout } (nats-server default 2 s; tls timeout + 1 with TLS).
    auth_timeout_s: float = 2.0
    # authorization { user, password } -> one user in $G; { token } -> token auth.
    users: tuple[UserSettings, ...] = ()
    token: str | None = None
    # authorization { permissions } applied to the single user/password or token.
    default_permissions: Permissions | None = None
    accounts: tuple[AccountSettings, ...] = ()
    no_auth_user: str | None = None
    # Operator mode (user JWTs); excludes users, accounts and no_auth_user.
    operator: OperatorSettings | None = None
    tls: TlsSettings | None = None
    lame_duck_duration_s: float = 120.0
    lame_duck_grace_period_s: float = 10.0
    websocket: WebsocketSettings | None = None
    # How many closed connections /connz?state=closed keeps (nats-server's default).
    max_closed_clients: int = 10_000


@dataclass(frozen=True)
class StoreSettings:
    """``store { url, sync }``, and the top-level ``buffer { takeover_after }`` (DESIGN §9)."""

    url: str = "sqlite:///leafnode-buffer.db"
    sync: str = "full"  # "full" | "normal"
    # On a PostgreSQL store shared by several nodes: how long a node's backlog
    # goes undrained (its node dead) before a surviving node takes it over.
    takeover_after_s: float = 30.0


@dataclass(frozen=True)
class ApiSettings:
    """Control plane: ``http``/``http_port``/``api { listen, token }``."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: not served unless configured or run by `leafnode run`
    token: str | None = None


@dataclass(frozen=True)
class ClusterSettings:
    """``cluster { ... }``: this node's routes to the other nodes of a NATS cluster.

    nats-server's keys (``server/opts.go`` parseCluster); ``--cluster``,
    ``--cluster_name`` and ``--routes`` set the same fields. ``port`` 0 opens
    no route port (nats-server's rule), -1 picks a free one.
    """

    name: str | None = None
    host: str = "0.0.0.0"
    port: int = 0
    # Seed routes to dial (nats-route://[user:pass@]host:port), in config order.
    routes: tuple[str, ...] = ()
    # authorization { user, password, timeout }: what dialing nodes present.
    user: str | None = None
    password: str | None = None
    auth_timeout_s: float | None = None  # None: the TLS timeout + 1 s, else 2 s
    tls: TlsSettings | None = None
    advertise: str | None = None
    no_advertise: bool = False
    # Retries for an implicit (gossiped) route; explicit routes retry forever.
    connect_retries: int = 0
    # nats-server's DEFAULT_ROUTE_POOL_SIZE: routes per peer; -1 disables pooling.
    pool_size: int = 3


CpuSetting = Literal["auto", "off"] | int
"""``data_path_cpu``: where the router and the uplink run (see ``leafnode.affinity``)."""


@dataclass(frozen=True)
class Settings:
    """Everything a config file says, per service."""

    router: RouterSettings = field(default_factory=RouterSettings)
    leafnodes: LeafnodeSettings = field(default_factory=LeafnodeSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    cluster: ClusterSettings | None = None  # None: no cluster block, a lone node
    log: LogSettings = field(default_factory=LogSettings)
    run_dir: str = ""  # none: `leafnode run` makes a private one, lone services use ./run
    data_path_cpu: CpuSetting = "auto"
    ports_file_dir: str | None = None
    source: Path | None = None
    # One line per option we accept but do not implement (jetstream, cluster, ...).
    warnings: tuple[str, ...] = ()
