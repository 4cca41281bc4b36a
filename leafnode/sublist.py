"""Subject trie: which subscriptions does a published subject reach?

Theory of operation
-------------------
The structure follows nats-server's ``sublist.go``: a trie with one ``_Level``
per subject token. A level maps literal tokens to ``_Node`` objects in
``nodes`` and keeps the two wildcard tokens apart, ``pwc`` for ``*`` and
``fwc`` for ``>``. A node holds the subscriptions whose subject ends at it,
plain ones in ``psubs`` and queue ones in ``qsubs`` (queue name -> members),
and the level of the next token in ``next``.

Every subscription is stored at exactly one node (the path spelled by its
subject), and matching a literal subject visits each node at most once: a
node is reached through a literal key, ``pwc`` or ``fwc``, and no literal key
is ever ``*`` or ``>``. So a match lists each subscription at most once
without any de-duplication pass. Queue members reached through several nodes
(``a.*`` and ``a.>`` both with queue ``q``) are merged into one group per queue
name, as nats-server does.

Match cache. ``match()`` keeps a bounded ``dict`` from literal subject to
result. Results hold only tuples, so one result object is shared by every
caller that asks for the same subject. An insert or remove only invalidates
the cached subjects the changed subscription's subject can match: one ``pop``
for a literal subject, a prefix-filtered scan for a wildcard subject whose
first token is literal, and a full clear only for subjects starting with a
wildcard. A wildcard change thus costs one pass over the cache keys (about
0.3 ms at 4096 entries), still far cheaper than refilling a flushed cache:
under subscribe churn bench/bench_sublist.py measures ~4x the match rate of
clear-on-mutate. When the cache is full the older half is dropped (``dict`` keeps
insertion order), like nats-server's sweep from 1024 down to 256.

``genid`` is bumped on every change to the stored set, so per-connection L1
caches can detect staleness with one integer comparison.

The structure is synchronous and not thread-safe: its owner must touch it
from one thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from mypy_extensions import mypyc_attr

from leafnode.proto import is_valid_queue, is_valid_subject, subject_matches

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "InvalidSubjectError",
    "S",
    "Sublist",
    "SublistResult",
    "SublistStats",
    "Subscriber",
    "subject_intersects",
]

# nats-server keeps 1024 (slCacheMax); in CPython a miss costs ~30x a hit
# (bench/bench_sublist.py), so a larger cache pays for itself.
DEFAULT_CACHE_SIZE = 4096

_PWC = b"*"
_FWC = b">"


class InvalidSubjectError(ValueError):
    """A subscription had an invalid subject or queue name."""


class Subscriber(Protocol):
    """Anything stored in a :class:`Sublist`: a subject and an optional queue name.

    Both must stay unchanged while the object is stored, since ``remove``
    finds the subscription again by its subject and queue.
    """

    @property
    def subject(self) -> bytes: ...

    @property
    def queue(self) -> bytes | None: ...


S = TypeVar("S", bound=Subscriber)


# mypyc (pyproject's [tool.leafnode.compile]) cannot build a generic dataclass
# as a native class: this one stays a Python class in the compiled module.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class SublistResult(Generic[S]):
    """The subscriptions a literal subject reaches. Immutable and shared.

    Attributes:
        psubs: Plain subscriptions, each at most once.
        qsubs: One non-empty tuple of members per matching queue group; the
            same queue name reached through several wildcard levels is one group.
    """

    psubs: tuple[S, ...]
    qsubs: tuple[tuple[S, ...], ...]

    def __bool__(self) -> bool:
        return bool(self.psubs) or bool(self.qsubs)

    @property
    def queue_names(self) -> tuple[bytes, ...]:
        """The queue name of each group, in ``qsubs`` order."""
        # Members of a group always have a queue; the filter only narrows the type.
        return tuple(q for group in self.qsubs if (q := group[0].queue) is not None)


@dataclass(frozen=True, slots=True)
class SublistStats:
    """Counters in the shape of nats-server's ``/subsz`` monitoring endpoint.

    Attributes:
        num_subs: Subscriptions currently stored.
        num_cache: Subjects currently in the match cache.
        num_inserts: Inserts that added a subscription (since creation).
        num_removes: Removes that found their subscription (since creation).
        num_matches: Calls to ``match()``.
        cache_hit_rate: Fraction of ``match()`` calls answered from the cache.
        max_fanout: Largest ``len(psubs) + len(qsubs)`` among cached results.
        avg_fanout: Mean of that fan-out over cached results.
    """

    num_subs: int
    num_cache: int
    num_inserts: int
    num_removes: int
    num_matches: int
    cache_hit_rate: float
    max_fanout: int
    avg_fanout: float


class _Node(Generic[S]):
    __slots__ = ("next", "psubs", "qsubs")

    def __init__(self) -> None:
        self.next: _Level[S] | None = None
        # dicts used as insertion-ordered sets: stable match order, O(1) remove.
        self.psubs: dict[S, None] = {}
        self.qsubs: dict[bytes, dict[S, None]] = {}


class _Level(Generic[S]):
    __slots__ = ("fwc", "nodes", "pwc")

    def __init__(self) -> None:
        self.nodes: dict[bytes, _Node[S]] = {}
        self.pwc: _Node[S] | None = None
        self.fwc: _Node[S] | None = None

    def is_empty(self) -> bool:
        return not self.nodes and self.pwc is None and self.fwc is None


def _match_level(level: _Level[S], toks: list[bytes], i: int, out: list[_Node[S]]) -> None:
    # Walk the literal path iteratively and recurse only into `*` branches,
    # as sublist.go's matchLevel does; `>` needs no walk, it matches the rest.
    # Only nodes are gathered here (a cheap append); match() reads their subs
    # in one loop, which costs fewer calls than collecting node by node.
    last = len(toks) - 1
    while True:
        fwc = level.fwc
        if fwc is not None:
            out.append(fwc)
        pwc = level.pwc
        if pwc is not None:
            if i == last:
                out.append(pwc)
            elif pwc.next is not None:
                _match_level(pwc.next, toks, i + 1, out)
        node = level.nodes.get(toks[i])
        if node is None:
            return
        if i == last:
            out.append(node)
            return
        nxt = node.next
        if nxt is None:
            return
        level = nxt
        i += 1


def _has_match(node: _Node[S]) -> bool:
    return bool(node.psubs) or bool(node.qsubs)


def _any_level(level: _Level[S], toks: list[bytes], i: int) -> bool:
    last = len(toks) - 1
    while True:
        fwc = level.fwc
        if fwc is not None and _has_match(fwc):
            return True
        pwc = level.pwc
        if pwc is not None:
            if i == last:
                if _has_match(pwc):
                    return True
            elif pwc.next is not None and _any_level(pwc.next, toks, i + 1):
                return True
        node = level.nodes.get(toks[i])
        if node is None:
            return False
        if i == last:
            return _has_match(node)
        nxt = node.next
        if nxt is None:
            return False
        level = nxt
        i += 1


def _walk(level: _Level[S], out: list[S]) -> None:
    nodes = list(level.nodes.values())
    if level.pwc is not None:
        nodes.append(level.pwc)
    if level.fwc is not None:
        nodes.append(level.fwc)
    for node in nodes:
        out.extend(node.psubs)
        for members in node.qsubs.values():
            out.extend(members)
        if node.next is not None:
            _walk(node.next, out)


# Compiled, it may still be subclassed by Python code (bench/bench_sublist.py).
@mypyc_attr(allow_interpreted_subclasses=True)
class Sublist(Generic[S]):
    """A subject trie with a bounded match cache (nats-server's sublist).

    Args:
        cache_size: Most subjects kept in the match cache; 0 disables it.

    Attributes:
        genid: Bumped whenever the stored set changes (insert, remove, clear);
            compare it to know whether a result obtained earlier is still current.
    """

    def __init__(self, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, not {cache_size}")
        self.genid = 0
        self._root: _Level[S] = _Level()
        self._count = 0
        self._cache: dict[bytes, SublistResult[S]] = {}
        self._cache_size = cache_size
        # Entries kept when the cache is full: the newer half survives.
        self._cache_keep = cache_size // 2
        self._empty: SublistResult[S] = SublistResult((), ())
        self._inserts = 0
        self._removes = 0
        self._matches = 0
        self._misses = 0

    def insert(self, sub: S) -> None:
        """Store ``sub`` under its subject; storing the same object again is a no-op.

        Raises:
            InvalidSubjectError: The subject is not a valid subscribe subject or
                the queue name is empty or contains whitespace.
        """
        subject = sub.subject
        queue = sub.queue
        if not is_valid_subject(subject):
            raise InvalidSubjectError(f"invalid subject {subject[:32]!r}")
        if queue is not None and not is_valid_queue(queue):
            raise InvalidSubjectError(f"invalid queue name {queue[:32]!r}")
        toks = subject.split(b".")
        level = self._root
        node: _Node[S] | None = None
        for tok in toks:
            if node is not None:
                if node.next is None:
                    node.next = _Level()
                level = node.next
            if tok == _PWC:
                node = level.pwc
                if node is None:
                    node = level.pwc = _Node()
            elif tok == _FWC:
                node = level.fwc
                if node is None:
                    node = level.fwc = _Node()
            else:
                node = level.nodes.get(tok)
                if node is None:
                    node = level.nodes[tok] = _Node()
        assert node is not None  # a valid subject has at least one token
        members = node.psubs if queue is None else node.qsubs.setdefault(queue, {})
        if sub in members:
            return
        members[sub] = None
        self._changed(subject, toks)
        self._count += 1
        self._inserts += 1

    def remove(self, sub: S) -> bool:
        """Remove ``sub`` and prune nodes left empty.

        Returns:
            True if ``sub`` was stored, False if it was not (nothing changes).
        """
        subject = sub.subject
        queue = sub.queue
        toks = subject.split(b".")
        # (level, token) for every step, to prune bottom-up afterwards.
        path: list[tuple[_Level[S], bytes]] = []
        level: _Level[S] | None = self._root
        node: _Node[S] | None = None
        for tok in toks:
            if level is None:
                return False
            if tok == _PWC:
                node = level.pwc
            elif tok == _FWC:
                node = level.fwc
            else:
                node = level.nodes.get(tok)
            if node is None:
                return False
            path.append((level, tok))
            level = node.next
        if node is None:
            return False
        if queue is None:
            members = node.psubs
        else:
            qmembers = node.qsubs.get(queue)
            if qmembers is None:
                return False
            members = qmembers
        if sub not in members:
            return False
        del members[sub]
        if queue is not None and not members:
            del node.qsubs[queue]
        self._prune(path)
        self._changed(subject, toks)
        self._count -= 1
        self._removes += 1
        return True

    def _prune(self, path: list[tuple[_Level[S], bytes]]) -> None:
        # Deepest first: a node goes once it holds nothing and leads nowhere.
        for level, tok in reversed(path):
            if tok == _PWC:
                node = level.pwc
            elif tok == _FWC:
                node = level.fwc
            else:
                node = level.nodes.get(tok)
            if node is None:
                return
            if node.next is not None and node.next.is_empty():
                node.next = None
            if node.psubs or node.qsubs or node.next is not None:
                return
            if tok == _PWC:
                level.pwc = None
            elif tok == _FWC:
                level.fwc = None
            else:
                del level.nodes[tok]

    def _changed(self, subject: bytes, toks: list[bytes]) -> None:
        """Bump ``genid`` and drop every cached result ``subject`` can match."""
        self.genid += 1
        cache = self._cache
        if not cache:
            return
        first_wc = 0
        for tok in toks:
            if tok in (_PWC, _FWC):
                break
            first_wc += 1
        if first_wc == len(toks):
            # A literal subscription only changes the result for that subject.
            cache.pop(subject, None)
        elif first_wc == 0:
            # `*.x` or `>`: no prefix to filter on, and such patterns tend to
            # match much of the cache anyway.
            cache.clear()
        else:
            # Cached subjects are literal, so a wildcard pattern can only match
            # those sharing its literal prefix; startswith() filters in C.
            prefix = b".".join(toks[:first_wc]) + b"."
            stale = [s for s in cache if s.startswith(prefix) and subject_matches(subject, s)]
            for s in stale:
                del cache[s]

    def match(self, subject: bytes) -> SublistResult[S]:
        """Return the subscriptions a message published to ``subject`` reaches.

        Args:
            subject: A literal publish subject (not validated here; a subject
                with an empty token matches nothing, as in nats-server).

        Returns:
            An immutable result, possibly shared with other callers.
        """
        self._matches += 1
        cached = self._cache.get(subject)
        if cached is not None:
            return cached
        self._misses += 1
        toks = subject.split(b".")
        if b"" in toks:
            return self._empty
        nodes: list[_Node[S]] = []
        _match_level(self._root, toks, 0, nodes)
        psubs: list[S] = []
        qgroups: dict[bytes, list[S]] = {}
        for node in nodes:
            if node.psubs:
                psubs += node.psubs
            if node.qsubs:
                for name, members in node.qsubs.items():
                    group = qgroups.get(name)
                    if group is None:
                        qgroups[name] = list(members)
                    else:
                        group += members
        if qgroups:
            result = SublistResult(tuple(psubs), tuple(map(tuple, qgroups.values())))
        elif psubs:
            result = SublistResult(tuple(psubs), ())
        else:
            result = self._empty
        if self._cache_size:
            cache = self._cache
            if len(cache) >= self._cache_size:
                for old in list(islice(cache, len(cache) - self._cache_keep)):
                    del cache[old]
            cache[subject] = result
        return result

    def has_interest(self, subject: bytes) -> bool:
        """True when ``match(subject)`` would be non-empty; never fills the cache."""
        cached = self._cache.get(subject)
        if cached is not None:
            return bool(cached)
        toks = subject.split(b".")
        if b"" in toks:
            return False
        return _any_level(self._root, toks, 0)

    def count(self) -> int:
        """Number of subscriptions stored."""
        return self._count

    def subscribers(self) -> Iterator[S]:
        """Iterate over every stored subscription (a snapshot: safe to mutate meanwhile)."""
        out: list[S] = []
        _walk(self._root, out)
        return iter(out)

    def clear(self) -> None:
        """Drop every subscription and the cache; counters other than ``num_subs`` remain."""
        self._root = _Level()
        self._cache.clear()
        self._count = 0
        self.genid += 1

    def stats(self) -> SublistStats:
        """Current counters, as nats-server's ``/subsz`` reports them."""
        fanouts = [len(r.psubs) + len(r.qsubs) for r in self._cache.values()]
        matches = self._matches
        return SublistStats(
            num_subs=self._count,
            num_cache=len(self._cache),
            num_inserts=self._inserts,
            num_removes=self._removes,
            num_matches=matches,
            cache_hit_rate=(matches - self._misses) / matches if matches else 0.0,
            max_fanout=max(fanouts, default=0),
            avg_fanout=sum(fanouts) / len(fanouts) if fanouts else 0.0,
        )


def subject_intersects(a: bytes, b: bytes) -> bool:
    """True when some literal subject is matched by both ``a`` and ``b``.

    Both may contain wildcards and are assumed valid. ``a.*`` and ``*.b``
    intersect (``a.b``); ``a.>`` and ``a`` do not, since ``>`` needs one token.
    """
    if a == b:
        return True
    atoks = a.split(b".")
    btoks = b.split(b".")
    for atok, btok in zip(atoks, btoks, strict=False):
        if atok == _FWC or btok == _FWC:
            # Both have a token here, so `>` can take this one and any rest.
            return True
        if atok != btok and atok != _PWC and btok != _PWC:
            return False
    return len(atoks) == len(btoks)
