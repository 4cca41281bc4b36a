"""The route handshake: INFO and CONNECT between cluster nodes, pooling, compression.

Theory of operation (nats-server 2.15 ``server/route.go``, verified against
2.15.1 by ``tests/proto/test_route_live.py``). The node that dials sends
``CONNECT`` at once (user and password from the route URL, ``name`` = its
server id, ``cluster``, ``lnoc``), then waits for the accepting node's
``INFO`` before sending its own: its INFO answers ours. The accepting node
sends its INFO on accept. After both INFOs, each side sends ``RS+`` for its
interest, ``PING``s, and messages.

What a node must say to join a 2.15 cluster:

- ``compression``: nats-server 2.10+ defaults to ``accept`` and negotiates
  S2 from the two INFOs (``selectCompressionMode``). ``"off"`` in our INFO
  makes every mode pick no compression, so the stream stays plain text.
  (An absent field means "not supported", which works too, but "off" is
  what a current server says when it does not compress.)
- ``route_pool_size``: a 2.10+ server opens a *pool* of routes to each peer
  (default 3), each carrying the accounts whose ``route_pool_index`` is its
  ``route_pool_idx``, plus one route per pinned account; the system account
  ``$SYS`` always gets its own (``route_account`` in the dialer's INFO), and
  on such a route the account token is left out of every line
  (``Parser.route_account``). A peer whose INFO has no ``route_pool_size``
  is an "old server": nats-server then refuses the ``$SYS`` route with
  ``Not possible to have a dedicated route for account "$SYS" between those
  servers``. So a node must announce a pool size (the same as the peer's,
  else the larger one wins on both sides) and accept one connection per
  pool index plus the ``$SYS`` one.
- ``lnoc``/``lnocu``: we read ``LS+``/``LS-`` with an origin cluster, so we
  say both; then every ``LS-`` we receive carries the origin.
- ``cluster`` must equal the peer's, unless one side's name is dynamic
  (``cluster_dynamic``).

Values: ``RouteInfo`` and ``RouteConnect`` type the fields a node reads;
every other field a peer sent is kept in ``extra``. The encoders write
Go's ``encoding/json`` output of nats-server's structs: fields in struct
order, ``omitempty`` ones only when set, ``<``, ``>``, ``&`` escaped, no
blanks; fields in ``extra`` go where nats-server puts them when known, else
at the end. So a peer's line read and written again is byte for byte what
it sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "COMPRESSION_OFF",
    "DEFAULT_POOL_SIZE",
    "SYSTEM_ACCOUNT",
    "RouteConnect",
    "RouteInfo",
    "encode_route_connect",
    "encode_route_info",
    "route_connect",
    "route_info",
    "route_pool_index",
]

COMPRESSION_OFF: Final = "off"
"""What our INFO says about compression: nats-server then never compresses."""
DEFAULT_POOL_SIZE: Final = 3
"""nats-server's DEFAULT_ROUTE_POOL_SIZE."""
SYSTEM_ACCOUNT: Final = "$SYS"
"""nats-server's system account, which 2.10+ always routes on a connection of its own."""

# nats-server's Info struct (server.go), in order: (json name, omitempty).
_INFO_FIELDS: Final = (
    ("server_id", False),
    ("server_name", False),
    ("version", False),
    ("proto", False),
    ("git_commit", True),
    ("go", False),
    ("host", False),
    ("port", False),
    ("headers", False),
    ("auth_required", True),
    ("tls_required", True),
    ("tls_verify", True),
    ("tls_available", True),
    ("max_payload", False),
    ("jetstream", True),
    ("ip", True),
    ("client_id", True),
    ("client_ip", True),
    ("nonce", True),
    ("cluster", True),
    ("cluster_dynamic", True),
    ("domain", True),
    ("connect_urls", True),
    ("ws_connect_urls", True),
    ("ldm", True),
    ("compression", True),
    ("connect_info", True),
    ("remote_account", True),
    ("acc_is_sys", True),
    ("api_lvl", True),
    ("import", True),
    ("export", True),
    ("lnoc", True),
    ("lnocu", True),
    # 2.15.1 sends "ln" here (seen live; not in the 2.15 source we read).
    ("ln", True),
    ("info_on_connect", True),
    ("route_pool_size", True),
    ("route_pool_idx", True),
    ("route_account", True),
    ("route_acc_add_reqid", True),
    ("gossip_mode", True),
    ("gateway", True),
    ("gateway_urls", True),
    ("gateway_url", True),
    ("gateway_cmd", True),
    ("gateway_cmd_payload", True),
    ("gateway_nrp", True),
    ("gateway_iom", True),
    ("leafnode_urls", True),
    ("xkey", True),
)
# nats-server's route connectInfo struct (route.go), in order.
_CONNECT_FIELDS: Final = (
    ("echo", False),
    ("verbose", False),
    ("pedantic", False),
    ("user", True),
    ("pass", True),
    ("tls_required", False),
    ("headers", False),
    ("name", False),
    ("cluster", False),
    ("cluster_dynamic", True),
    ("lnoc", True),
    ("lnocu", True),
    ("ln", True),  # 2.15.1, after lnoc (seen live)
    ("gateway", True),
)


@dataclass(frozen=True)
class RouteInfo:
    """A route's ``INFO``: who the peer is and what its route supports.

    Defaults are Go's zero values, so a field the peer left out stays out
    when written again; our own INFO sets ``compression=COMPRESSION_OFF``,
    ``lnoc``, ``lnocu`` and ``route_pool_size`` (module doc).

    ``extra`` holds every other field the peer sent (``jetstream``,
    ``xkey``, ``import``/``export`` permissions, ...), in its order.
    """

    server_id: str
    server_name: str = ""
    version: str = ""
    proto: int = 1
    go: str = ""
    host: str = ""
    port: int = 0
    headers: bool = True
    max_payload: int = 1024 * 1024
    auth_required: bool = False
    tls_required: bool = False
    nonce: str = ""
    cluster: str = ""
    cluster_dynamic: bool = False
    connect_urls: tuple[str, ...] = ()
    ldm: bool = False
    compression: str = ""
    lnoc: bool = False
    lnocu: bool = False
    info_on_connect: bool = False
    route_pool_size: int = 0
    route_pool_idx: int = 0
    route_account: str = ""
    gossip_mode: int = 0
    leafnode_urls: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteConnect:
    """A route's ``CONNECT``: the dialer's credentials, id and cluster."""

    name: str
    cluster: str
    user: str = ""
    password: str = field(default="", repr=False)
    echo: bool = True
    verbose: bool = False
    pedantic: bool = False
    tls_required: bool = False
    headers: bool = True
    cluster_dynamic: bool = False
    lnoc: bool = False
    lnocu: bool = False
    extra: dict[str, object] = field(default_factory=dict)


# Python attribute -> json name, where they differ.
_CONNECT_JSON: Final = {"password": "pass"}
_TUPLES: Final = frozenset({"connect_urls", "leafnode_urls"})


def route_info(options: Mapping[str, object]) -> RouteInfo:
    """The typed ``INFO`` of a route, from ``Info.options``.

    Raises:
        ValueError: a typed field has the wrong JSON type, or ``server_id`` is missing.
    """
    return _typed(RouteInfo, options, {})


def route_connect(options: Mapping[str, object]) -> RouteConnect:
    """The typed ``CONNECT`` of a route, from ``Connect.options``.

    Raises:
        ValueError: a typed field has the wrong JSON type, or ``name`` is missing.
    """
    return _typed(RouteConnect, options, _CONNECT_JSON)


_T = TypeVar("_T", RouteInfo, RouteConnect)


def _typed(cls: type[_T], options: Mapping[str, object], renamed: Mapping[str, str]) -> _T:
    known: dict[str, object] = {}
    json_names: dict[str, str] = {}
    defaults: dict[str, object] = {}
    for f in fields(cls):
        if f.name != "extra":
            json_names[renamed.get(f.name, f.name)] = f.name
            defaults[f.name] = f.default
    extra: dict[str, object] = {}
    for key, value in options.items():
        name = json_names.get(key)
        if name is None:
            extra[key] = value
            continue
        default = defaults[name]
        if name in _TUPLES:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key}: expected a list of strings")
            known[name] = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false")
            known[name] = value
        elif isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{key}: expected an integer")
            known[name] = value
        else:
            if not isinstance(value, str):
                raise ValueError(f"{key}: expected a string")
            known[name] = value
    try:
        return cls(**known, extra=extra)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{cls.__name__}: a required field is missing") from None


def encode_route_info(info: RouteInfo) -> bytes:
    """``INFO {json} \\r\\n`` as nats-server writes it (field order, omitempty, blank)."""
    return b"INFO " + _go_json(_values(info, {}), info.extra, _INFO_FIELDS) + b" \r\n"


def encode_route_connect(connect: RouteConnect) -> bytes:
    """``CONNECT {json}\\r\\n`` as nats-server writes a route's."""
    values = _values(connect, _CONNECT_JSON)
    return b"CONNECT " + _go_json(values, connect.extra, _CONNECT_FIELDS) + b"\r\n"


def _values(value: RouteInfo | RouteConnect, renamed: Mapping[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in fields(value):
        if f.name != "extra":
            item = getattr(value, f.name)
            out[renamed.get(f.name, f.name)] = list(item) if isinstance(item, tuple) else item
    return out


def _go_json(
    values: dict[str, object], extra: Mapping[str, object], order: tuple[tuple[str, bool], ...]
) -> bytes:
    """The JSON object Go's encoding/json makes of nats-server's struct."""
    extras = dict(extra)
    parts: list[str] = []
    for name, omitempty in order:
        if name in values:
            value = values.pop(name)
        elif name in extras:
            value = extras.pop(name)
        else:
            continue
        if omitempty and value in (False, 0, "", [], None, {}):
            continue
        parts.append(f"{_go_dumps(name)}:{_go_dumps(value)}")
    for name, value in extras.items():
        parts.append(f"{_go_dumps(name)}:{_go_dumps(value)}")
    return ("{" + ",".join(parts) + "}").encode()


def _go_dumps(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # Go escapes HTML characters and the JS line separators in strings.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def route_pool_index(pool_size: int, account: str) -> int:
    """The pooled route an account's traffic uses (nats-server's computeRoutePoolIdx).

    FNV-1a (32 bit) of the account name modulo the pool size; 0 without a
    pool. The same on every server of the cluster, so both ends agree.
    """
    if pool_size <= 1:
        return 0
    h = 0x811C9DC5
    for byte in account.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % pool_size
