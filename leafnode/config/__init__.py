"""NATS config syntax -> typed settings (leafnode-protocol.md §8, DESIGN §6).

``load(path)`` reads a config file into ``Settings``; ``loads(text)`` does the
same for text; ``parse(text)`` returns the syntax tree as plain values. Every
problem is a ``ConfigError`` whose ``str()`` is ``file:line:column: reason``.

``decode_jwt`` (with ``nkey_verify_key`` and ``operator_signing_keys``) is the
one NATS JWT verifier: the loader checks operator-mode JWTs with it, and the
router checks user JWTs with it.

``restart_needed(old, new)`` says which changes a reload cannot apply (a
reload with any is refused as a whole, as nats-server refuses one).
"""

from __future__ import annotations

from ._build import load, loads
from ._build_auth import (
    DecodedJwt,
    JwtError,
    decode_jwt,
    nkey_verify_key,
    operator_signing_keys,
)
from ._build_cluster import check_route_url
from ._build_store import check_store_url
from ._build_tls import tls_files_problem
from ._errors import ConfigError
from ._parser import parse
from ._reload import RestartNeeded, refusal, restart_needed
from ._settings import (
    DEFAULT_ACCOUNT,
    AccountSettings,
    ApiSettings,
    BufferSettings,
    ClusterSettings,
    CpuSetting,
    ExportSettings,
    ImportSettings,
    LeafAcceptSettings,
    LeafnodeSettings,
    LeafUserSettings,
    LogSettings,
    OperatorSettings,
    Permissions,
    RemoteSettings,
    RouterSettings,
    Settings,
    StoreSettings,
    SubjectPermission,
    TlsSettings,
    UserSettings,
    WebsocketSettings,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "AccountSettings",
    "ApiSettings",
    "BufferSettings",
    "ClusterSettings",
    "ConfigError",
    "CpuSetting",
    "DecodedJwt",
    "ExportSettings",
    "ImportSettings",
    "JwtError",
    "LeafAcceptSettings",
    "LeafUserSettings",
    "LeafnodeSettings",
    "LogSettings",
    "OperatorSettings",
    "Permissions",
    "RemoteSettings",
    "RestartNeeded",
    "RouterSettings",
    "Settings",
    "StoreSettings",
    "SubjectPermission",
    "TlsSettings",
    "UserSettings",
    "WebsocketSettings",
    "check_route_url",
    "check_store_url",
    "decode_jwt",
    "load",
    "loads",
    "nkey_verify_key",
    "operator_signing_keys",
    "parse",
    "refusal",
    "restart_needed",
    "tls_files_problem",
]
