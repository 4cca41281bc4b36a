"""Service and stream imports between configured accounts (nats-server's accounts.go).

Theory of operation: an import is a subscription-shaped hook in a sublist, so
the routing code does no extra work for accounts without imports; a message
reaches the hook only when its subject matches an imported subject.

* Service import (``{service: {account: S, subject}, to}`` in account A): a
  :class:`ServiceImport` subscription on the local subject in A's sublist.
  A message published there is re-published in S on the mapped subject, with
  a ``Nats-Request-Info: {"acc":"A"...}`` header added (nats-server 2.15).
  Its reply subject is replaced by a one-use ``_R_.<random>.<random>`` reply:
  a :class:`_Response` subscription in S's sublist (``max_msgs`` 1) that
  routes the first answer to the original reply in A and removes itself.
  nats-server also adds the request's header to an answer that has no
  headers of its own; so does this. When nothing in S receives the request,
  the requester (if it asked for no-responders) gets the 503 status on its
  reply subject, naming the subject it published.
* Stream import (``{stream: {account: S, subject}, prefix}`` in A): a
  :class:`StreamImport` subscription on the exported subject in S's sublist
  that routes each message into A on ``prefix.subject``.

Differences from nats-server 2.15, on purpose or for now:

* ``rtt`` in ``Nats-Request-Info`` is left out: the router does not measure
  client round trips (nats-server omits a zero rtt the same way).
* Import hooks are not announced to the hub (no LS+), and a stream import
  counts as a recipient in the exporting account even when the importing
  account has no subscriber (nats-server only subscribes for present interest).
* Export ``accounts`` lists, ``response_type`` and latency tracking are not
  supported.
"""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING, Final, Protocol

from .routing import Delivery, InternalDelivery, Subscription, route_local

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from leafnode.config import AccountSettings

    from .routing import Account

__all__ = ["Requester", "ServiceImport", "StreamImport", "install", "uninstall"]

# nats-server's default response threshold: an unanswered one-use reply is
# dropped after two minutes.
RESPONSE_TTL_S: Final = 120.0

# Imports may chain (A imports from B, which imports from C); this bounds a
# cycle in the configuration to a few hops instead of unbounded recursion.
MAX_HOPS: Final = 4

_REQUEST_INFO: Final = b"Nats-Request-Info: "
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_hops = 0


class Requester(Delivery, Protocol):
    """The client that published the current message, when it is a client."""

    no_responders: bool


def _token(n: int) -> str:
    return "".join(random.choices(_ALPHABET, k=n))


def _add_header(hdr_len: int, data: bytes, line: bytes) -> tuple[int, bytes]:
    """``data`` with the header ``line`` (ending in CRLF) appended to its headers."""
    if hdr_len == 0:
        head = b"NATS/1.0\r\n" + line + b"\r\n"
        return len(head), head + data
    # The header block ends in an empty line: insert before it.
    cut = hdr_len - 2
    return hdr_len + len(line), data[:cut] + line + data[cut:]


def _mapper(local: bytes, remote: bytes) -> Callable[[bytes], bytes] | None:
    """How a local subject becomes the exported one (None: unchanged)."""
    if local == remote:
        return None
    ltoks = local.split(b".")
    rtoks = remote.split(b".")
    wild = [i for i, tok in enumerate(ltoks) if tok in (b"*", b">")]
    if not wild:
        return lambda _subject: remote

    def mapped(subject: bytes) -> bytes:
        toks = subject.split(b".")
        captured = [toks[i] if ltoks[i] == b"*" else b".".join(toks[i:]) for i in wild]
        it = iter(captured)
        return b".".join(next(it) if tok in (b"*", b">") else tok for tok in rtoks)

    return mapped


class _Hook(InternalDelivery):
    """What a hook subscription delivers to (routing.Delivery)."""


class _Response(_Hook):
    """The one-use reply of a service import, in the exporting account."""

    __slots__ = ("expires", "info", "reply", "service", "sub")

    def __init__(self, service: ServiceImport, reply: bytes, info: bytes) -> None:
        self.service = service
        self.reply = reply
        self.info = info
        self.expires = time.monotonic() + RESPONSE_TTL_S
        self.sub: Subscription | None = None

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        if hdr_len == 0:
            hdr_len, data = _add_header(0, data, self.info)
        _route(self, self.service.importer, self.reply, reply, hdr_len, data)

    def auto_unsubscribed(self, sub: Subscription) -> None:
        self.service.drop(sub)


class ServiceImport(_Hook):
    """A service import: requests published in ``importer`` go to ``exporter``."""

    def __init__(
        self,
        importer: Account,
        exporter: Account,
        local: bytes,
        remote: bytes,
        requester: Callable[[], Requester | None],
    ) -> None:
        self.importer = importer
        self.exporter = exporter
        self.local = local
        self.map = _mapper(local, remote)
        self.requester = requester
        self.info = (
            _REQUEST_INFO
            + json.dumps({"acc": importer.name}, separators=(",", ":")).encode()
            + b"\r\n"
        )
        self._prefix = f"_R_.{_token(6)}.".encode()
        # One-use replies in flight, oldest first.
        self.pending: dict[bytes, Subscription] = {}

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        target = subject if self.map is None else self.map(subject)
        hdr_len, data = _add_header(hdr_len, data, self.info)
        response: Subscription | None = None
        if reply is not None:
            self._expire()
            inbox = self._prefix + _token(6).encode()
            hook = _Response(self, reply, self.info)
            response = Subscription(hook, inbox, None, b"")
            response.max_msgs = 1
            hook.sub = response
            self.pending[inbox] = response
            self.exporter.sublist.insert(response)
        delivered = _route(
            self, self.exporter, target, response.subject if response else None, hdr_len, data
        )
        if delivered or reply is None:
            return
        if response is not None:
            self.drop(response)
        requester = self.requester()
        if requester is not None and requester.no_responders:
            for sub in self.importer.sublist.match(reply).psubs:
                if sub.client is requester:
                    # 2.15 form: the status line plus Nats-Subject (leafnode-protocol.md §2).
                    hdr = b"NATS/1.0 503\r\nNats-Subject: " + subject + b"\r\n\r\n"
                    sub.client.send_msg(reply, sub.sid, None, len(hdr), hdr)
                    return

    def drop(self, sub: Subscription) -> None:
        if self.pending.pop(sub.subject, None) is not None:
            self.exporter.sublist.remove(sub)

    def _expire(self) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        for sub in list(self.pending.values()):
            assert isinstance(sub.client, _Response)
            if sub.client.expires > now:
                break
            self.drop(sub)

    def close(self) -> None:
        for sub in list(self.pending.values()):
            self.drop(sub)


class StreamImport(_Hook):
    """A stream import: messages published in ``exporter`` reach ``importer``."""

    def __init__(self, importer: Account, prefix: bytes) -> None:
        self.importer = importer
        self.prefix = prefix + b"." if prefix else b""

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        _route(self, self.importer, self.prefix + subject, reply, hdr_len, data)


def _route(
    hook: _Hook,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
) -> int:
    global _hops
    if _hops >= MAX_HOPS:
        return 0
    _hops += 1
    try:
        return route_local(hook, account, subject, reply, hdr_len, data)
    finally:
        _hops -= 1


def install(
    accounts: Mapping[str, Account],
    settings: Iterable[AccountSettings],
    requester: Callable[[], Requester | None],
) -> list[tuple[Account, Subscription]]:
    """Insert the hook subscriptions of every configured import; returns them."""
    installed: list[tuple[Account, Subscription]] = []
    for acc in settings:
        importer = accounts[acc.name]
        for imp in acc.imports:
            exporter = accounts[imp.account]
            if imp.kind == "service":
                local = imp.local.encode()
                hook: _Hook = ServiceImport(
                    importer, exporter, local, imp.subject.encode(), requester
                )
                sub = Subscription(hook, local, None, b"")
                importer.sublist.insert(sub)
                installed.append((importer, sub))
            else:
                hook = StreamImport(importer, imp.prefix.encode())
                sub = Subscription(hook, imp.subject.encode(), None, b"")
                exporter.sublist.insert(sub)
                installed.append((exporter, sub))
    return installed


def uninstall(installed: Iterable[tuple[Account, Subscription]]) -> None:
    """Remove hooks that :func:`install` inserted (config reload)."""
    for account, sub in installed:
        account.sublist.remove(sub)
        if isinstance(sub.client, ServiceImport):
            sub.client.close()
