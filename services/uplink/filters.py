"""Which subjects may cross one hub link, in which direction (leafnode-protocol.md §4.9).

A leaf link is restricted from both ends, and the leaf must enforce all of it
itself, because the hub answers a violation by closing the link:

* the remote's ``deny_exports`` (never send these to the hub) and
  ``deny_imports`` (never receive these; also sent to the hub as ``deny_pub``);
* the hub's permissions from the ``connect_info`` INFO: ``export`` is what the
  leaf may publish, ``import`` what it may subscribe to (receive);
* the JetStream API subjects the hub denies on leaf links by default
  (``$JS.API.>``, ``$KV.>``, ``$OBJ.>``), in both directions.

``SubjectFilter`` answers "may this literal subject cross?" with a bounded
per-subject cache, and "may this interest (possibly a wildcard) be announced?",
which follows nats-server: a literal interest must be allowed; a wildcard one
is only withheld when it can never match anything allowed, since the hub
filters what it delivers anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from leafnode.proto import is_literal, subject_is_subset, subject_matches
from leafnode.sublist import subject_intersects

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["JS_DENIES", "SubjectFilter", "permission_lists"]

# Denied on leaf links by default in both directions (§4.9).
JS_DENIES: Final = (b"$JS.API.>", b"$KV.>", b"$OBJ.>")
# Literal subjects remembered per filter before the cache is dropped.
CACHE_MAX: Final = 4096


class SubjectFilter:
    """An intersection of allow lists plus a union of deny lists.

    Args:
        allow_lists: each list must match a subject for it to pass (an empty
            sequence of lists allows everything).
        deny: a subject matched by any of these is refused.
    """

    __slots__ = ("_cache", "_dollar_only", "allow_lists", "deny", "open", "plain_ok")

    def __init__(
        self, allow_lists: Sequence[tuple[bytes, ...]] = (), deny: Iterable[bytes] = ()
    ) -> None:
        self.allow_lists = tuple(allow_lists)
        self.deny = tuple(dict.fromkeys(deny))
        # Nothing to check: the hot path skips the cache lookup.
        self.open = not self.allow_lists and not self.deny
        # Only system subjects denied (the JetStream defaults): most subjects
        # are decided by their first byte, without touching the cache.
        self._dollar_only = not self.allow_lists and all(p[:1] == b"$" for p in self.deny)
        # Every subject that does not start with "$" passes: hot paths test
        # ``plain_ok and subject[0] != 36`` before calling ``allows``.
        self.plain_ok = self._dollar_only
        self._cache: dict[bytes, bool] = {}

    def allows(self, subject: bytes) -> bool:
        """May a message on the literal ``subject`` cross?"""
        if self._dollar_only and subject[:1] != b"$":
            return True
        cached = self._cache.get(subject)
        if cached is not None:
            return cached
        result = self._check(subject)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[subject] = result
        return result

    def _check(self, subject: bytes) -> bool:
        for pattern in self.deny:
            if subject_matches(pattern, subject):
                return False
        return all(
            any(subject_matches(pattern, subject) for pattern in allow)
            for allow in self.allow_lists
        )

    def allows_interest(self, subject: bytes) -> bool:
        """May interest in ``subject`` (wildcards allowed) be announced?"""
        if self._dollar_only and subject[:1] != b"$":
            return True
        if is_literal(subject):
            return self.allows(subject)
        if any(subject_is_subset(subject, pattern) for pattern in self.deny):
            return False
        return all(
            any(subject_intersects(subject, pattern) for pattern in allow)
            for allow in self.allow_lists
        )


def permission_lists(
    value: object,
) -> tuple[tuple[bytes, ...] | None, tuple[bytes, ...]]:
    """``{"allow": [...], "deny": [...]}`` from a connect_info INFO -> (allow, deny).

    ``allow`` is None when the hub sent no allow list (everything allowed).
    Anything malformed is treated as absent: the hub is the authority and
    will tell us with an ``-ERR`` if we misread it.
    """
    if not isinstance(value, dict):
        return None, ()
    perms: Mapping[str, object] = value
    return _subjects(perms.get("allow")), _subjects(perms.get("deny")) or ()


def _subjects(value: object) -> tuple[bytes, ...] | None:
    if isinstance(value, str):
        return (value.encode(),)
    if isinstance(value, list):
        return tuple(item.encode() for item in value if isinstance(item, str))
    return None
