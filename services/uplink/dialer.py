"""Where to dial and how: URL rotation, TCP, TLS (leafnode-protocol.md §4.1, §6, §7).

``UrlList`` keeps a remote's URLs in the order nats-server uses them: shuffled
once at start unless ``no_randomize``, each attempt takes the first URL and
moves it to the back, and URLs the hub advertises in ``leafnode_urls`` are
appended (they inherit the userinfo of the configured URLs, as nats-server's
``saveUserPassword`` does, since an advertised ``host:port`` carries none).

``dial`` opens TCP within ``dial_timeout`` and, for ``ws``/``wss`` URLs,
performs the WebSocket upgrade (``websocket.py``); ``start_tls`` wraps a stream
in TLS with the remote's ``tls {}`` settings, verifying the hub's certificate
against the URL host.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import trio

from .auth import url_userinfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from leafnode.config import TlsSettings

__all__ = ["DialError", "HubUrl", "UrlList", "dial", "start_tls", "tls_context"]

DEFAULT_LEAF_PORT = 7422
WEBSOCKET_SCHEMES = frozenset({"ws", "wss"})


class DialError(Exception):
    """The hub could not be reached (TCP, TLS or WebSocket upgrade failed)."""


@dataclass(frozen=True)
class HubUrl:
    """One place to dial.

    Attributes:
        url: the URL as configured (may contain userinfo; never log it).
        scheme: ``nats-leaf``, ``nats``, ``tls``, ``ws`` or ``wss``.
        host: host name or address, without brackets.
        port: TCP port.
        path: URL path (WebSocket only).
        userinfo: ``(user, password)`` from the URL (or inherited).
    """

    url: str
    scheme: str
    host: str
    port: int
    path: str
    userinfo: tuple[str | None, str | None]

    @classmethod
    def parse(cls, url: str, inherit: tuple[str | None, str | None] = (None, None)) -> HubUrl:
        parts = urlsplit(url)
        scheme = parts.scheme.lower() or "nats-leaf"
        userinfo = url_userinfo(url)
        if userinfo == (None, None):
            userinfo = inherit
        port = parts.port or (
            443 if scheme == "wss" else 80 if scheme == "ws" else DEFAULT_LEAF_PORT
        )
        return cls(url, scheme, parts.hostname or "", port, parts.path, userinfo)

    @property
    def websocket(self) -> bool:
        return self.scheme in WEBSOCKET_SCHEMES

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def redacted(self) -> str:
        """The URL for log lines: scheme, host and port, never credentials."""
        return urlunsplit((self.scheme, self.address, self.path, "", ""))


class UrlList:
    """A remote's URLs in dialing order (§7 ``no_randomize``)."""

    def __init__(self, urls: Iterable[str], *, randomize: bool) -> None:
        self._urls = [HubUrl.parse(url) for url in urls]
        if randomize:
            random.shuffle(self._urls)
        self._inherit: tuple[str | None, str | None] = next(
            (u.userinfo for u in self._urls if u.userinfo != (None, None)), (None, None)
        )

    def next(self) -> HubUrl:
        """The URL to try now; it moves to the back of the list."""
        url = self._urls.pop(0)
        self._urls.append(url)
        return url

    def add_discovered(self, addresses: Iterable[object], scheme: str) -> list[HubUrl]:
        """Append advertised ``host:port`` addresses not known yet; returns the new ones."""
        known = {u.address for u in self._urls}
        added: list[HubUrl] = []
        for address in addresses:
            if not isinstance(address, str) or not address or address in known:
                continue
            url = HubUrl.parse(f"{scheme}://{address}", self._inherit)
            if not url.host:
                continue
            known.add(address)
            self._urls.append(url)
            added.append(url)
        return added

    def __len__(self) -> int:
        return len(self._urls)

    def __iter__(self) -> Iterator[HubUrl]:
        return iter(list(self._urls))


def tls_context(tls: TlsSettings | None) -> ssl.SSLContext:
    """A client TLS context from a remote's ``tls {}`` block (system roots by default).

    Raises:
        OSError, ssl.SSLError: a certificate, key or CA file cannot be loaded.
    """
    ctx = ssl.create_default_context(cafile=tls.ca_file if tls is not None else None)
    if tls is not None:
        if tls.cert_file is not None:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def dial(url: HubUrl, *, timeout_s: float) -> trio.abc.Stream:
    """Open TCP to ``url`` within ``timeout_s``.

    Raises:
        DialError: refused, unreachable, or too slow.
    """
    try:
        with trio.fail_after(timeout_s):
            return await trio.open_tcp_stream(url.host, url.port)
    except trio.TooSlowError:
        raise DialError(f"dial timeout after {timeout_s:g}s") from None
    except OSError as exc:
        raise DialError(_os_reason(exc)) from None


def _os_reason(exc: OSError) -> str:
    """The first underlying error (trio wraps one per address tried in a group)."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        first = cause.exceptions[0]
        if isinstance(first, OSError):
            return first.strerror or str(first)
    return exc.strerror or str(exc)


async def start_tls(
    stream: trio.abc.Stream, ctx: ssl.SSLContext, host: str, *, timeout_s: float
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the client TLS handshake on ``stream``.

    Raises:
        DialError: the handshake failed or took longer than ``timeout_s``.
    """
    tls = trio.SSLStream(stream, ctx, server_hostname=host or None)
    try:
        with trio.fail_after(timeout_s):
            await tls.do_handshake()
    except trio.TooSlowError:
        raise DialError(f"TLS handshake timeout after {timeout_s:g}s") from None
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise DialError(f"TLS handshake failed: {cause}") from None
    return tls
