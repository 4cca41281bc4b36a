"""Interest the router advertises to the hub, and interest the hub advertised to us.

Theory of operation (DESIGN §3.6, leafnode-protocol.md §4.5):

*Local interest* is what site clients subscribed to. The uplink must see one
``LS+`` per distinct key, reference-counted like nats-server does on a leaf
link: a plain subject is announced when its count goes 0 -> 1 and withdrawn
(``LS-``) when it drops back to 0; a queue group is re-announced with its new
weight (the number of local members) on every membership change and withdrawn
at 0. ``LocalInterest`` turns subscription changes into the exact lines to
send, so the router only has to forward them to the data link.

*Hub interest* is what the uplink relays from the hub's ``LS+``/``LS-``. The
hub keys leaf interest by ``"subject"`` or ``"subject queue"`` without
reference counting: a repeated ``LS+`` changes nothing (or updates a queue
weight in place) and one ``LS-`` removes the key. ``HubInterest`` keeps that
table in a sublist so a publish can ask "does the hub want this?" in one match.
"""

from __future__ import annotations

from leafnode.proto import encode_lsub, encode_lunsub
from leafnode.sublist import Sublist

__all__ = ["HubInterest", "HubInterestEntry", "LocalInterest"]


class LocalInterest:
    """Reference counts of one account's local subscriptions, as LS+/LS- lines."""

    __slots__ = ("_account", "_plain", "_queues")

    def __init__(self, account: bytes) -> None:
        self._account = account
        self._plain: dict[bytes, int] = {}
        self._queues: dict[tuple[bytes, bytes], int] = {}

    def add(self, subject: bytes, queue: bytes | None) -> bytes | None:
        """Count one more subscription; return the line to send, if any."""
        if queue is None:
            count = self._plain.get(subject, 0) + 1
            self._plain[subject] = count
            return encode_lsub(subject, account=self._account) if count == 1 else None
        key = (subject, queue)
        weight = self._queues.get(key, 0) + 1
        self._queues[key] = weight
        return encode_lsub(subject, queue, weight, account=self._account)

    def remove(self, subject: bytes, queue: bytes | None) -> bytes | None:
        """Count one subscription less; return the line to send, if any."""
        if queue is None:
            count = self._plain.get(subject, 0) - 1
            if count > 0:
                self._plain[subject] = count
                return None
            self._plain.pop(subject, None)
            return encode_lunsub(subject, account=self._account) if count == 0 else None
        key = (subject, queue)
        weight = self._queues.get(key, 0) - 1
        if weight > 0:
            self._queues[key] = weight
            return encode_lsub(subject, queue, weight, account=self._account)
        self._queues.pop(key, None)
        return encode_lunsub(subject, queue, account=self._account) if weight == 0 else None

    def add_weight(self, subject: bytes, queue: bytes | None, delta: int) -> bytes | None:
        """A downstream leaf's key changed by ``delta`` (leafinterest.py); the line, if any.

        A plain key counts one per leaf, as a subscription does; a queue key
        adds the leaf's weight, so the hub sees the group's size below us.
        """
        if queue is None:
            if delta > 0:
                return self.add(subject, None)
            return self.remove(subject, None) if delta < 0 else None
        key = (subject, queue)
        old = self._queues.get(key, 0)
        weight = old + delta
        if weight == old:
            return None
        if weight > 0:
            self._queues[key] = weight
            return encode_lsub(subject, queue, weight, account=self._account)
        self._queues.pop(key, None)
        return encode_lunsub(subject, queue, account=self._account) if old > 0 else None

    def count(self, subject: bytes, queue: bytes | None) -> int:
        """A key's count: subscriptions (plain) or members (queue), leafs' shares included."""
        if queue is None:
            return self._plain.get(subject, 0)
        return self._queues.get((subject, queue), 0)

    def keys(self) -> list[tuple[bytes, bytes | None]]:
        """Every key with interest."""
        keys: list[tuple[bytes, bytes | None]] = [(s, None) for s in self._plain]
        keys.extend(self._queues)
        return keys

    def counts(self) -> list[tuple[bytes, bytes | None, int]]:
        """Every key with its count: what a new route is told (``RS+``)."""
        keys: list[tuple[bytes, bytes | None, int]] = [(s, None, n) for s, n in self._plain.items()]
        keys.extend((s, q, w) for (s, q), w in self._queues.items())
        return keys

    def snapshot(self) -> list[bytes]:
        """Every line needed to tell a fresh uplink the whole interest."""
        lines = [encode_lsub(subject, account=self._account) for subject in self._plain]
        lines.extend(
            encode_lsub(subject, queue, weight, account=self._account)
            for (subject, queue), weight in self._queues.items()
        )
        return lines


class HubInterestEntry:
    """One key of the hub's interest: a subject, or a subject and a queue group."""

    __slots__ = ("queue", "subject", "weight")

    def __init__(self, subject: bytes, queue: bytes | None, weight: int) -> None:
        self.subject = subject
        self.queue = queue
        self.weight = weight

    def __repr__(self) -> str:
        return f"HubInterestEntry({self.subject!r}, {self.queue!r}, {self.weight})"


class HubInterest:
    """The hub's interest for one account, keyed as the hub keys it.

    The routing path reads ``entries`` (is there any interest at all?) and
    ``sublist`` (what matches) directly: no method call per message.
    """

    __slots__ = ("entries", "proto", "server_name", "sublist")

    def __init__(self) -> None:
        self.entries: dict[tuple[bytes, bytes | None], HubInterestEntry] = {}
        self.sublist: Sublist[HubInterestEntry] = Sublist()
        # The hub's protocol level (its INFO's ``proto``; 0: unknown or no
        # hub) and server name, as the uplink reports them (datalink.py).
        self.proto = 0
        self.server_name = ""

    def add(self, subject: bytes, queue: bytes | None, weight: int | None) -> None:
        key = (subject, queue)
        entry = self.entries.get(key)
        if entry is not None:
            entry.weight = weight or 1
            return
        entry = HubInterestEntry(subject, queue, weight or 1)
        self.sublist.insert(entry)
        self.entries[key] = entry

    def remove(self, subject: bytes, queue: bytes | None) -> None:
        entry = self.entries.pop((subject, queue), None)
        if entry is not None:
            self.sublist.remove(entry)

    def clear(self) -> None:
        self.entries.clear()
        self.sublist.clear()
        self.proto = 0
        self.server_name = ""
