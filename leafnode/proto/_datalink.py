"""The data link between the router and the uplink (``router.sock``, DESIGN §2).

This is the one description of the link's dialect; the router
(``services/router/datalink.py``) and the uplink
(``services/uplink/routerlink.py``) both speak it through this package.

Lines are leaf-link verbs (leafnode-protocol.md §4.4) parsed as
``Kind.INTERNAL`` and cut by ``MessageFramer(..., accounts=True)``.

Control lines carry the local account first
    ``LS+ <acc> <subj> [<queue> <weight>]`` and ``LS- <acc> <subj> [<queue>]``
    (``encode_lsub``/``encode_lunsub`` with ``account``).

Messages are in the leaf link's own form, under an ``ACC`` line
    ``ACC <acc>`` (``encode_acc``) says which account the message lines that
    follow belong to, until the next ``ACC``; the messages themselves are
    byte for byte what a hub sends or expects (``LMSG <subj> [reply | +
    reply q... | | q...] <size>``, ``HMSG ...``: ``encode_lmsg``,
    ``encode_lhmsg``). So the uplink relays messages between the router and
    a hub without rewriting a byte, whole runs of them as one slice of what
    it read (``MessageFramer``'s runs). A message line before any ``ACC`` is
    a framing error.

Runs of hub-bound messages (router -> uplink)
    ``RUN <bytes> <msgs> <size> <largest>`` (``encode_run``) may come before
    messages: the next ``<bytes>`` bytes are ``<msgs>`` whole message lines of
    the current account, ``<size>`` payload bytes in all, none larger than
    ``<largest>``, no subject starting with ``$``. It is a hint that changes
    nothing in what follows: a reader whose checks pass for every such
    message (``MessageFramer.drain``'s keep rule) takes the run as one piece
    without cutting it into messages; any other reader skips the line and
    reads the messages one by one. The router sends no ``RUN`` before a
    single message (``HubSink.end_run``): a reader keeps a bare message line
    the keep rule covers as a run of one all the same.

router -> uplink
    ``INFO {"server_id", "server_name", "accounts": [...], "lds": {...}}``
    once, as a hello (``encode_hello``/``Hello``; ``lds``: each account's
    loop-detection subject, which the uplink announces to its hubs, so the
    router's accepted leafs and the hubs see one ``$LDS`` per account, as
    nats-server has); then ``LS+``/``LS-`` for the full local
    interest and later its changes; hub-bound messages, naming the hub queue
    groups the router chose, in ``RUN``s where it can; ``PONG`` for the
    uplink's ``PING``.
uplink -> router
    ``PING`` right after connecting (the router answers once it queued the
    interest snapshot, which marks the snapshot's end); ``LS+``/``LS-``: the
    hubs' interest per account (sent again in full after either side
    reconnects; ``LS- <acc> >`` is not special); messages from the hubs for
    local subscribers; ``INFO {"hub_reset": "<acc>"}`` (``encode_hub_reset``/
    ``hub_reset_account``): forget all hub interest of that account, its
    hub link dropped; ``INFO {"hub": "<acc>", "proto": n, "server_name":
    "..."}`` (``encode_hub_info``/``HubInfo``): the protocol level and name
    of the account's hub (0 and "" with none connected), for message
    tracing, on hub up/down and router attach; ``PONG`` for the router's
    ``PING``.

There is no ``CONNECT`` and no verbose mode (no ``+OK``); a framing error is
answered with ``-ERR`` and the link is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._writer import encode_info

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = [
    "Hello",
    "HubInfo",
    "encode_acc",
    "encode_hello",
    "encode_hub_info",
    "encode_hub_reset",
    "encode_run",
    "hub_reset_account",
]

# INFO fields of the data link (module doc).
_SERVER_ID: Final = "server_id"
_SERVER_NAME: Final = "server_name"
_ACCOUNTS: Final = "accounts"
_LDS: Final = "lds"
_HUB_RESET: Final = "hub_reset"
_HUB: Final = "hub"
_PROTO: Final = "proto"


def encode_acc(account: bytes) -> bytes:
    """``ACC <account>``: the message lines that follow belong to ``account``."""
    return b"ACC %b\r\n" % account


def encode_run(size_bytes: int, msgs: int, size: int, largest: int) -> bytes:
    """``RUN <bytes> <msgs> <size> <largest>``: the message lines that follow (module doc)."""
    return b"RUN %d %d %d %d\r\n" % (size_bytes, msgs, size, largest)


@dataclass(frozen=True)
class Hello:
    """The router's hello INFO: who it is and its accounts."""

    server_id: str = ""
    server_name: str = ""
    accounts: tuple[str, ...] = ()
    # account -> its $LDS subject (module doc); empty from an older router.
    lds: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Hello:
        """Read a hello INFO's options; fields missing or of the wrong type stay empty."""
        server_id = options.get(_SERVER_ID)
        name = options.get(_SERVER_NAME)
        accounts = options.get(_ACCOUNTS)
        lds = options.get(_LDS)
        return cls(
            server_id if isinstance(server_id, str) else "",
            name if isinstance(name, str) else "",
            tuple(a for a in accounts if isinstance(a, str)) if isinstance(accounts, list) else (),
            tuple((a, s) for a, s in lds.items() if isinstance(s, str))
            if isinstance(lds, dict)
            else (),
        )

    @staticmethod
    def is_hello(options: Mapping[str, object]) -> bool:
        """Whether an INFO from the router is its hello (it names the accounts)."""
        return isinstance(options.get(_ACCOUNTS), list)


def encode_hello(
    server_id: str,
    server_name: str,
    accounts: Iterable[str],
    lds: Mapping[str, str] | None = None,
) -> bytes:
    """The router's hello: ``INFO {"server_id", "server_name", "accounts", "lds"}``."""
    fields: dict[str, object] = {
        _SERVER_ID: server_id,
        _SERVER_NAME: server_name,
        _ACCOUNTS: sorted(accounts),
    }
    if lds:
        fields[_LDS] = dict(lds)
    return encode_info(fields)


def encode_hub_reset(account: str) -> bytes:
    """``INFO {"hub_reset": "<account>"}``: the router forgets that account's hub interest."""
    return encode_info({_HUB_RESET: account})


def hub_reset_account(options: Mapping[str, object]) -> str | None:
    """The account an uplink INFO resets, or None."""
    account = options.get(_HUB_RESET)
    return account if isinstance(account, str) else None


@dataclass(frozen=True)
class HubInfo:
    """An account's hub as the uplink announces it: protocol level and server name."""

    account: str
    proto: int = 0
    server_name: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> HubInfo | None:
        """Read an uplink INFO; None unless it names a hub's account.

        A level or name of the wrong type reads as none (0, "").
        """
        account = options.get(_HUB)
        if not isinstance(account, str):
            return None
        proto = options.get(_PROTO)
        name = options.get(_SERVER_NAME)
        return cls(
            account,
            proto if isinstance(proto, int) else 0,
            name if isinstance(name, str) else "",
        )


def encode_hub_info(account: str, proto: int, server_name: str) -> bytes:
    """``INFO {"hub": "<account>", "proto": n, "server_name": "..."}`` (``HubInfo``)."""
    return encode_info({_HUB: account, _PROTO: proto, _SERVER_NAME: server_name})
