"""Buffered messages on the hub link: which subjects, and their wire form (DESIGN §4, §8).

``BufferSubjects`` answers "does this remote buffer this subject?" for the
live path (a live message on a buffered subject is dropped by the uplink: it
reaches the hub through the store) and "can this hub interest release
waiting messages?" for the drain.

``BatchEncoder`` turns rows read from the store into leaf ``HMSG`` lines with
the two headers stamped at send time (DESIGN §8):

* ``Nats-Msg-Id: <leaf id>-<seq>``, unless the client set its own;
* ``Leafnode-Buffered-At: <RFC 3339 UTC of received_at>``.

Hot path: one bytes formatting per message. The common case, a message
published without headers, builds the header block and the line in one
``%`` operation; the RFC 3339 prefix (down to the second) is cached, since a
backlog holds many messages received within the same second.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from leafnode.ipc import stamp_headers
from leafnode.proto import encode_routed_hmsg, is_literal, subject_matches
from leafnode.sublist import subject_intersects

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["BatchEncoder", "BufferSubjects"]

# Subjects remembered by ``BufferSubjects`` before its cache is dropped.
CACHE_MAX: Final = 8192
_PLAIN_HEADERS: Final = b"NATS/1.0\r\nNats-Msg-Id: %b-%d\r\nLeafnode-Buffered-At: %b.%06dZ\r\n\r\n"


class BufferSubjects:
    """A remote's ``buffer.subjects`` (NATS wildcards allowed).

    Args:
        subjects: the configured patterns.
    """

    __slots__ = ("_cache", "_literals", "_wild", "patterns")

    def __init__(self, subjects: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(s.encode() for s in subjects))
        self._literals = frozenset(p for p in self.patterns if is_literal(p))
        self._wild = tuple(p for p in self.patterns if p not in self._literals)
        self._cache: dict[bytes, bool] = {}

    def __contains__(self, subject: bytes) -> bool:
        """Whether the literal ``subject`` is buffered (cached; hot path)."""
        found = self._cache.get(subject)
        if found is None:
            found = subject in self._literals or any(
                subject_matches(p, subject) for p in self._wild
            )
            cache = self._cache
            if len(cache) >= CACHE_MAX:
                cache.clear()
            cache[subject] = found
        return found

    def intersects(self, interest: bytes) -> bool:
        """Whether hub interest on ``interest`` (maybe a wildcard) can match a buffered subject."""
        return any(subject_intersects(p, interest) for p in self.patterns)


class BatchEncoder:
    """Builds the hub-bound ``HMSG`` of stored messages, stamping the headers.

    Args:
        leaf_id: the store's leaf id (``Nats-Msg-Id`` prefix).
    """

    __slots__ = ("_id", "_leaf_id", "_prefix", "_sec")

    def __init__(self, leaf_id: str) -> None:
        self._leaf_id = leaf_id
        self._id = leaf_id.encode()
        self._sec = -1
        self._prefix = b""

    def _second(self, sec: int) -> bytes:
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
        return self._prefix

    def encode(
        self,
        route: bytes,
        seq: int,
        hdr_len: int,
        data: bytes,
        received_at_us: int,
    ) -> bytes:
        """One ``HMSG <route> <hdr_len> <total>`` line with its header block and payload.

        Args:
            route: subject, reply and queue names (``leafnode.proto.encode_leaf_route``).
            seq: the store seq (``Nats-Msg-Id``).
            hdr_len: length of the client's header block at the start of ``data``.
            data: the client's headers (if any) followed by the payload.
            received_at_us: when the router received it.
        """
        sec, micros = divmod(received_at_us, 1_000_000)
        if not hdr_len:
            headers = _PLAIN_HEADERS % (self._id, seq, self._second(sec), micros)
            payload = data
        else:
            headers = stamp_headers(
                data[:hdr_len], msg_id=f"{self._leaf_id}-{seq}", buffered_at_us=received_at_us
            )
            payload = data[hdr_len:]
        return encode_routed_hmsg(route, headers, payload)
