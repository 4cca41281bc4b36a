"""Interest tables of the uplink (leafnode-protocol.md §4.5, DESIGN §3.6).

Three tables, keyed as nats-server keys leaf interest: ``(subject, None)`` for
plain interest and ``(subject, queue)`` for a queue group, whose value is the
group's weight (the number of members behind it).

* ``LocalInterest`` (one per account): what the router told us its clients
  want, already reference-counted by the router. The uplink replays it to
  every hub link of that account when the link comes up.
* ``HubInterest`` (one per remote): what that hub announced with ``LS+``, with
  a sublist so a message can be matched against one remote's interest when
  several remotes serve the same account.
* ``AccountHubInterest`` (one per account): the union over the account's
  remotes, which is what the router is told. A key is announced to the router
  when the first remote announces it and withdrawn when the last one drops it;
  a queue group's weight is the sum over remotes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leafnode.proto import encode_lsub, encode_lunsub
from leafnode.sublist import InvalidSubjectError, Sublist

if TYPE_CHECKING:
    from collections.abc import Iterator

    from leafnode.sublist import SublistResult

__all__ = ["AccountHubInterest", "HubEntry", "HubInterest", "Key", "LocalInterest"]

Key = tuple[bytes, bytes | None]


class LocalInterest:
    """One account's local interest as the router reported it."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[Key, int] = {}

    def add(self, subject: bytes, queue: bytes | None, weight: int | None) -> None:
        self.keys[(subject, queue)] = (weight or 1) if queue is not None else 1

    def remove(self, subject: bytes, queue: bytes | None) -> bool:
        return self.keys.pop((subject, queue), None) is not None

    def __len__(self) -> int:
        return len(self.keys)


class HubEntry:
    """One key of a hub's interest, stored in that hub's sublist."""

    __slots__ = ("queue", "subject", "weight")

    def __init__(self, subject: bytes, queue: bytes | None, weight: int) -> None:
        self.subject = subject
        self.queue = queue
        self.weight = weight


class HubInterest:
    """The interest one hub announced on one link (no reference counts: §4.5)."""

    __slots__ = ("entries", "sublist")

    def __init__(self) -> None:
        self.entries: dict[Key, HubEntry] = {}
        self.sublist: Sublist[HubEntry] = Sublist()

    def add(self, subject: bytes, queue: bytes | None, weight: int | None) -> bool:
        """Record ``LS+``; False when nothing changed."""
        weight = (weight or 1) if queue is not None else 1
        entry = self.entries.get((subject, queue))
        if entry is not None:
            if entry.weight == weight:
                return False
            entry.weight = weight
            return True
        entry = HubEntry(subject, queue, weight)
        try:
            self.sublist.insert(entry)
        except InvalidSubjectError:
            return False  # The hub would not send it; nothing can match it anyway.
        self.entries[(subject, queue)] = entry
        return True

    def remove(self, subject: bytes, queue: bytes | None) -> bool:
        """Record ``LS-``; False when the key was unknown."""
        entry = self.entries.pop((subject, queue), None)
        if entry is None:
            return False
        self.sublist.remove(entry)
        return True

    def match(self, subject: bytes) -> SublistResult[HubEntry]:
        return self.sublist.match(subject)

    def clear(self) -> None:
        self.entries.clear()
        self.sublist.clear()

    def __len__(self) -> int:
        return len(self.entries)


class AccountHubInterest:
    """The union of an account's hubs' interest, as ``LS+``/``LS-`` for the router."""

    __slots__ = ("_account", "_keys")

    def __init__(self, account: bytes) -> None:
        self._account = account
        # key -> {remote index: weight}
        self._keys: dict[Key, dict[int, int]] = {}

    def _line(self, key: Key, owners: dict[int, int] | None) -> bytes:
        subject, queue = key
        if not owners:
            return encode_lunsub(subject, queue, account=self._account)
        if queue is None:
            return encode_lsub(subject, account=self._account)
        return encode_lsub(subject, queue, sum(owners.values()), account=self._account)

    def add(self, remote: int, subject: bytes, queue: bytes | None, weight: int) -> bytes | None:
        """A remote announced a key; returns the line for the router, if any."""
        key = (subject, queue)
        owners = self._keys.get(key)
        if owners is None:
            owners = self._keys[key] = {}
        elif queue is None and owners:
            owners[remote] = weight
            return None  # Plain interest the router already has.
        owners[remote] = weight
        return self._line(key, owners)

    def remove(self, remote: int, subject: bytes, queue: bytes | None) -> bytes | None:
        """A remote withdrew a key; returns the line for the router, if any."""
        key = (subject, queue)
        owners = self._keys.get(key)
        if owners is None or owners.pop(remote, None) is None:
            return None
        if not owners:
            del self._keys[key]
            return self._line(key, None)
        return None if queue is None else self._line(key, owners)

    def drop_remote(self, remote: int, keys: list[Key]) -> list[bytes]:
        """A remote's link went down: the lines that withdraw what only it had."""
        lines: list[bytes] = []
        for subject, queue in keys:
            line = self.remove(remote, subject, queue)
            if line is not None:
                lines.append(line)
        return lines

    def snapshot(self) -> Iterator[bytes]:
        """Every line a freshly attached router needs."""
        for key, owners in self._keys.items():
            yield self._line(key, owners)

    def __len__(self) -> int:
        return len(self._keys)
