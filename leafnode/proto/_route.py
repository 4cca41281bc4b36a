"""The route part of a leaf message line: subject, reply and queue groups (§4.4).

``LMSG <subject> [reply | + reply q... | | q...] <size>`` and ``HMSG`` with the
same route before its two sizes (leafnode-protocol.md §4.4, nats-server's
``processLeafMsgArgs``): one token after the subject is the reply; more start
with a marker, ``+`` (a reply, then queue names) or ``|`` (queue names only).
Everything that reads or writes that grammar (the parser, the framer's
``MessageFrame``, the uplink's stored-message encoder) goes through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = ["encode_leaf_route", "parse_leaf_route"]

_REPLY_AND_QUEUES: Final = b"+"
_QUEUES_ONLY: Final = b"|"


def parse_leaf_route(
    args: Sequence[bytes], start: int, stop: int
) -> tuple[bytes, bytes | None, tuple[bytes, ...]] | None:
    """``(subject, reply, queues)`` of ``args[start:stop]`` (the sizes left out).

    None when the tokens are not a route: none at all, or three or more
    without a ``+``/``|`` marker (nats-server: "Bad or Missing Reply
    Indicator"). The caller raises its own error for that.
    """
    n = stop - start
    if n == 1:
        return args[start], None, ()
    if n == 2:
        return args[start], args[start + 1], ()
    if n >= 3:
        marker = args[start + 1]
        if marker == _REPLY_AND_QUEUES:
            return args[start], args[start + 2], tuple(args[start + 3 : stop])
        if marker == _QUEUES_ONLY:
            return args[start], None, tuple(args[start + 2 : stop])
    return None


def encode_leaf_route(subject: bytes, reply: bytes | None, queues: Sequence[bytes]) -> bytes:
    """What follows ``LMSG``/``HMSG`` before the sizes.

    ``subject``, ``subject reply``, ``subject + reply q...`` or ``subject | q...``.
    """
    if queues:
        if reply is None:
            return b"%b | %b" % (subject, b" ".join(queues))
        return b"%b + %b %b" % (subject, reply, b" ".join(queues))
    if reply is None:
        return subject
    return b"%b %b" % (subject, reply)
