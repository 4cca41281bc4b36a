"""``store { url, sync }`` -> ``StoreSettings`` (DESIGN §4), with the URL checked.

The store opens the URL with SQLAlchemy; the config loader checks it without
importing SQLAlchemy (``leafnode run`` starts faster without it), by the rules
SQLAlchemy applies to the two databases we ship drivers for:

* ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (also
  ``sqlite+pysqlite://``). A URL without a file (``sqlite://``) would be an
  in-memory database, which keeps nothing through a restart: refused. A host
  part (``sqlite://var/db``, two slashes) is SQLAlchemy's "Invalid SQLite URL".
* ``postgresql://``, ``postgresql+psycopg://`` or ``postgresql+psycopg2://``
  (the store uses psycopg 3 for all three). ``postgres://`` is not a
  SQLAlchemy dialect name: refused with the spelling to use.

Errors name the scheme, never the rest of the URL, which may hold a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from ._errors import ConfigError
from ._settings import StoreSettings
from ._values import MAX_PORT, want_duration, want_map, want_str

if TYPE_CHECKING:
    from ._parser import Entry
    from ._values import Context

__all__ = ["build_store", "build_takeover", "check_store_url"]

_SQLITE_SCHEMES: Final = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgresql+psycopg", "postgresql+psycopg2"})
_SYNC_MODES: Final = ("full", "normal")
_ACCEPTED: Final = (
    "sqlite:///PATH (relative) or sqlite:////PATH (absolute), "
    "or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
)


def build_store(entry: Entry, ctx: Context) -> StoreSettings:
    """``store { url, sync: full|normal }``."""
    defaults = StoreSettings()
    url, sync = defaults.url, defaults.sync
    for item in want_map(entry, entry.key).values():
        sub = f"store.{item.key}"
        match item.key.lower():
            case "url":
                url = want_str(item, sub)
                problem = check_store_url(url)
                if problem is not None:
                    raise ConfigError.at(item.pos, f"{sub}: {problem}")
            case "sync":
                sync = want_str(item, sub).lower()
                if sync not in _SYNC_MODES:
                    raise ConfigError.at(
                        item.pos, f"{sub}: expected 'full' or 'normal', got {sync!r}"
                    )
            case _:
                ctx.unknown(item, sub)
    return StoreSettings(url=url, sync=sync)


def build_takeover(entry: Entry, ctx: Context) -> float:
    """The top-level ``buffer { takeover_after }`` (DESIGN §6, §9), in seconds.

    How long a node of a shared PostgreSQL store may be silent before a
    surviving node takes its backlog over; a positive duration. SQLite
    stores are one node's: the key is accepted there and does nothing
    (``leafnode store`` says so at start).
    """
    takeover_after_s = StoreSettings().takeover_after_s
    for item in want_map(entry, entry.key).values():
        sub = f"buffer.{item.key}"
        match item.key.lower():
            case "takeover_after":
                takeover_after_s = want_duration(item, sub, positive=True)
            case _:
                ctx.unknown(item, sub)
    return takeover_after_s


def check_store_url(url: str) -> str | None:
    """Why ``url`` is not a database URL the store can open, or None when it is.

    The reason quotes the scheme only (a URL may carry a password).
    """
    if not url.strip():
        return f"may not be empty (use {_ACCEPTED})"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"not a database URL (use {_ACCEPTED})"
    scheme = scheme.lower()
    if scheme in _SQLITE_SCHEMES:
        return _sqlite_problem(scheme, rest)
    if scheme in _POSTGRES_SCHEMES:
        return _postgres_problem(url)
    if scheme == "postgres":
        return "unsupported database scheme 'postgres://': write postgresql:// or postgresql+psycopg://"
    shown = scheme if scheme.isascii() and scheme.replace("+", "").isalnum() else "?"
    return f"unsupported database scheme '{shown}://' (use {_ACCEPTED})"


def _sqlite_problem(scheme: str, rest: str) -> str | None:
    host, slash, path = rest.partition("/")
    if host:
        return (
            f"invalid SQLite URL: {scheme}:// is followed by a host; use three slashes "
            "before a relative path (sqlite:///buffer.db) and four before an absolute "
            "one (sqlite:////var/lib/leafnode/buffer.db)"
        )
    if not slash or not path.partition("?")[0]:
        return (
            "the SQLite URL names no file (an in-memory database keeps nothing through a "
            "restart); use sqlite:///PATH or sqlite:////ABSOLUTE/PATH"
        )
    return None


def _postgres_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"invalid PostgreSQL URL: the port is not a number in 1..{MAX_PORT}"
    if port == 0:
        return f"invalid PostgreSQL URL: the port is not a number in 1..{MAX_PORT}"
    return None
