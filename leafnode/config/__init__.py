"""NATS config syntax -> typed settings (leafnode-protocol.md §8, DESIGN §6).

``load(path)`` reads a config file into ``Settings``; ``loads(text)`` does the
same for text; ``parse(text)`` returns the syntax tree as plain values. Every
problem is a ``ConfigError`` whose ``str()`` is ``file:line:column: reason``.
"""

from __future__ import annotations

from ._build import load, loads
from ._errors import ConfigError
from ._parser import parse
from ._settings import (
    DEFAULT_ACCOUNT,
    AccountSettings,
    ApiSettings,
    BufferSettings,
    LeafnodeSettings,
    LogSettings,
    Permissions,
    RemoteSettings,
    RouterSettings,
    Settings,
    StoreSettings,
    SubjectPermission,
    TlsSettings,
    UserSettings,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "AccountSettings",
    "ApiSettings",
    "BufferSettings",
    "ConfigError",
    "LeafnodeSettings",
    "LogSettings",
    "Permissions",
    "RemoteSettings",
    "RouterSettings",
    "Settings",
    "StoreSettings",
    "SubjectPermission",
    "TlsSettings",
    "UserSettings",
    "load",
    "loads",
    "parse",
]
