"""Requests the server answers itself: ``$SYS.REQ.USER.INFO``.

nats-server imports this system service into every account: a client sends a
request and gets, in nats-server's ``ServerAPIResponse`` shape, who it is
connected as::

    {"server": {...}, "data": {"user": ..., "account": ..., "account_name": ...,
                               "user_name": ..., "permissions": {...}, "expires": ns}}

Theory of operation: the service is one internal subscription per account
(``SystemServices.install``), inserted in the account's subject trie only, so
it costs nothing to messages on other subjects (the trie caches each subject's
match) and never becomes interest sent to the hub. Routing delivers to it like
to any subscriber; the one thing a subscriber is not told is who published, so
a client connection names itself ``publisher`` for the span of each read batch
it routes (``ClientConnection._process``). A message routed outside such a
batch (from the hub) has no publisher here and gets no answer, as the hub
answers its own clients. The answer is routed at once, in the requester's
account, to the request's reply subject.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from leafnode import SERVER_VERSION

from .routing import InternalDelivery, Subscription, route_local

if TYPE_CHECKING:
    from leafnode.config import Permissions, SubjectPermission

    from .interfaces import Client, ServerIdentity
    from .routing import Account

__all__ = ["USER_INFO_SUBJECT", "SystemServices", "public_permissions"]

USER_INFO_SUBJECT: Final = b"$SYS.REQ.USER.INFO"

NS: Final = 1_000_000_000
# nats-server's DEFAULT_ALLOW_RESPONSE_EXPIRATION: the ttl it reports for
# allow_responses without an expiry.
DEFAULT_RESPONSES_TTL_NS: Final = 2 * 60 * NS


def _subject_permission(perm: SubjectPermission | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if perm is not None and perm.allow:
        out["allow"] = list(perm.allow)
    if perm is not None and perm.deny:
        out["deny"] = list(perm.deny)
    return out


def public_permissions(perms: Permissions) -> dict[str, object]:
    """A user's permissions in nats-server's JSON shape (``publicPermissions``).

    ``publish`` and ``subscribe`` are always there (``{}`` when open);
    ``responses`` only with ``allow_responses``.
    """
    out: dict[str, object] = {
        "publish": _subject_permission(perms.publish),
        "subscribe": _subject_permission(perms.subscribe),
    }
    if perms.allow_responses:
        ttl = round(perms.responses_expires_s * NS) or DEFAULT_RESPONSES_TTL_NS
        out["responses"] = {"max": perms.responses_max, "ttl": ttl}
    return out


def _auth_user(client: Client) -> str:
    """nats-server's ``getRawAuthUser``: the credential's name, never a secret."""
    options = client.connect_options
    if not options.get("nkey") and not options.get("user") and options.get("auth_token"):
        return "[REDACTED]"
    return client.user or ""


class SystemServices(InternalDelivery):
    """The internal subscriber behind ``$SYS.REQ.USER.INFO`` (a ``routing.Delivery``)."""

    def __init__(self, server: ServerIdentity) -> None:
        self.server = server
        # The client whose read batch is being routed, or None (see module doc).
        self.publisher: Client | None = None
        self._seq = 0
        self._answering = False

    def install(self, account: Account) -> None:
        """Subscribe the service in ``account`` (trie only: no hub interest)."""
        account.sublist.insert(Subscription(self, USER_INFO_SUBJECT, None, b"$sys"))

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        client = self.publisher
        if reply is None or client is None:
            return
        body = {"server": self.server_info(), "data": self._user_info(client)}
        self.publish(client.account, reply, json.dumps(body, separators=(",", ":")).encode())

    def publish(self, account: Account, subject: bytes, payload: bytes) -> None:
        """Publish a server message (an answer, a trace event) in ``account``."""
        if self._answering:
            return  # a message of ours that would come back to us
        self._answering = True
        try:
            route_local(self, account, subject, None, 0, payload)
        finally:
            self._answering = False

    def server_info(self) -> dict[str, object]:
        """nats-server's ``ServerInfo`` block; ``seq`` counts the messages it heads."""
        server = self.server
        self._seq += 1
        return {
            "name": server.server_name,
            "host": server.settings.host,
            "id": server.server_id,
            "ver": SERVER_VERSION,
            "jetstream": False,
            "flags": 0,
            "seq": self._seq,
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }

    def _user_info(self, client: Client) -> dict[str, object]:
        now = time.time()
        identity = client.identity
        data: dict[str, object] = {
            "user": _auth_user(client),
            "account": client.account.name,
            "account_name": (identity.account_name if identity else "") or client.account.name,
        }
        if identity is not None and identity.user_name:
            data["user_name"] = identity.user_name
        if identity is not None and identity.permissions is not None:
            data["permissions"] = public_permissions(identity.permissions)
        if identity is not None and identity.expires_at is not None:
            # Whole seconds, as nats-server's claimExpiration.
            data["expires"] = max(int(identity.expires_at - now), 0) * NS
        return data
