"""NATS config syntax -> typed settings (leafnode-protocol.md §8, DESIGN §6)."""

from __future__ import annotations

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
]
