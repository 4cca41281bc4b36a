"""Per-client publish/subscribe permissions, as nats-server enforces them.

Theory of operation (nats-server ``client.go``: ``setPermissions``,
``canSubscribeInternal``, ``pubAllowedFullCheck``, ``checkDenySub``):

* **Publish.** A literal subject is allowed when the allow list is absent or
  one of its patterns matches, and no deny pattern matches (deny wins). The
  answer is cached per subject in a bounded dict, because this runs per PUB.
* **Subscribe.** Entries may carry a queue group: ``"foo.* v1"``. A plain
  entry allows the subject with or without any queue; when queue entries match
  the subject, a queue subscription must use one of their groups (a queue
  entry's group may itself hold wildcards: ``"foo v.*"`` allows ``v.a``). A
  plain deny entry refuses the subject with or without a queue; a queue deny
  entry refuses only that group.
* **Wildcard subscriptions.** ``foo.*`` is allowed only if it is a subset of an
  allow entry. Deny entries refuse it when they cover it; one that merely
  overlaps (deny ``foo.bar``, SUB ``foo.*`` or ``>``) does not refuse the SUB,
  but messages on denied subjects must not reach that subscription:
  :meth:`PermissionChecker.deliver_filter` returns the predicate for that.
* **Responses** (``allow_responses``). Delivering a message with a reply
  subject to this client lets it publish to that reply ``responses_max`` times
  within ``responses_expires_s``, even where publish is otherwise denied. As in
  nats-server, turning responses on with no publish allow list denies every
  other publish.

One deliberate difference: nats-server matches a wildcard SUB against the
allow list with its sublist, where a SUB token ``>`` is matched by an allow
``*``; nats-server 2.15.1 thus accepts ``SUB foo.>`` under ``allow: foo.*``
and delivers ``foo.a.b`` to it. We require a true subset instead.
"""

from __future__ import annotations

import time
from itertools import islice
from typing import TYPE_CHECKING

from leafnode.proto import is_literal, is_valid_subject, subject_is_subset, subject_matches

if TYPE_CHECKING:
    from collections.abc import Callable

    from leafnode.config import Permissions

__all__ = [
    "DEFAULT_RESPONSES_EXPIRES_S",
    "DEFAULT_RESPONSES_MAX",
    "PermissionChecker",
    "publish_violation_text",
    "removed_subscription_text",
    "subscribe_violation_text",
]

# nats-server's DEFAULT_ALLOW_RESPONSE_MAX_MSGS / _EXPIRATION, used when the
# configured value is 0. A negative value means unlimited / no expiry.
DEFAULT_RESPONSES_MAX = 1
DEFAULT_RESPONSES_EXPIRES_S = 120.0

# Bounded caches (nats-server keeps 128 publish / 256 deny-filter entries per
# client and prunes 32 at a time); we evict the oldest quarter when full.
_PUB_CACHE_MAX = 1024
_FILTER_CACHE_MAX = 256
# Reply allowances are pruned of used-up and expired entries after this many
# insertions or this long (nats-server's replyPermLimit / replyPruneTime), and
# never exceed _REPLIES_MAX (oldest dropped) so a flood of requests is bounded.
_REPLY_PRUNE_COUNT = 4096
_REPLY_PRUNE_S = 1.0
_REPLIES_MAX = 65536

# nats-server reserves this queue group for its own system subscriptions.
_SYS_QUEUE = b"_sys_"

_Tokens = tuple[bytes, ...]


def publish_violation_text(subject: bytes) -> str:
    """The ``-ERR`` text (without quotes) for a refused PUB.

    Verified against nats-server 2.15.1 and 2.9.10:
    ``Permissions Violation for Publish to "foo.bar"``.
    """
    return f"Permissions Violation for Publish to {_go_quote(subject)}"


def subscribe_violation_text(subject: bytes, queue: bytes | None) -> str:
    """The ``-ERR`` text (without quotes) for a refused SUB.

    Verified against nats-server 2.15.1 and 2.9.10:
    ``Permissions Violation for Subscription to "foo"`` and, with a queue,
    ``Permissions Violation for Subscription to "foo" using queue "q"``.
    """
    text = f"Permissions Violation for Subscription to {_go_quote(subject)}"
    if queue:
        text += f" using queue {_go_quote(queue)}"
    return text


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def removed_subscription_text(subject: bytes, queue: bytes | None, sid: bytes) -> str:
    """The ``-ERR`` text for a subscription a reload no longer allows.

    nats-server 2.15 (client.go processSubsOnConfigReload):
    ``Permissions Violation for Subscription to "foo" (sid "1")``, with
    `` using queue "q"`` before the sid for a queue subscription.
    """
    return f"{subscribe_violation_text(subject, queue)} (sid {_go_quote(sid)})"


def _go_quote(value: bytes) -> str:
    """Go's ``%q`` of a byte string: UTF-8 kept, invalid bytes as ``\\xNN``."""
    if value.isascii() and b'"' not in value and b"\\" not in value:
        text = value.decode("ascii")
        if text.isprintable():
            return f'"{text}"'
    out = []
    # surrogateescape maps each invalid byte to U+DC80..U+DCFF, so it survives decoding.
    for ch in value.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _tokens_match(pattern: _Tokens, tokens: list[bytes]) -> bool:
    """``pattern`` (may hold wildcards) matches the literal subject ``tokens``."""
    n = len(tokens)
    for i, ptok in enumerate(pattern):
        if ptok == b">":
            return n > i
        if i >= n or (ptok != b"*" and ptok != tokens[i]):
            return False
    return len(pattern) == n


def _subjects_collide(a: bytes, b: bytes) -> bool:
    """Some literal subject is matched by both ``a`` and ``b`` (nats ``SubjectsCollide``)."""
    ta = a.split(b".")
    tb = b.split(b".")
    for x, y in zip(ta, tb, strict=False):
        if x == b">" or y == b">":
            return True
        if x != y and x != b"*" and y != b"*":
            return False
    return len(ta) == len(tb)


def _queue_matches(queue: bytes, group: bytes) -> bool:
    """nats ``queueMatches``: equal, or ``group`` is a wildcard covering ``queue``."""
    if queue == group:
        return True
    if is_literal(group) or b"" in queue.split(b"."):
        return False
    return subject_is_subset(queue, group)


def _split_entry(entry: str) -> tuple[bytes, bytes | None] | None:
    """``"subject"`` or ``"subject queue"`` -> (subject, queue); None when invalid."""
    parts = entry.encode().split()
    if not 1 <= len(parts) <= 2 or not is_valid_subject(parts[0]):
        return None
    return parts[0], (parts[1] if len(parts) == 2 else None)


class PermissionChecker:
    """Answers publish/subscribe/deliver questions for one authenticated client.

    Entries that are not valid subjects are skipped (nats-server logs and skips
    them too); they are listed in :attr:`invalid_entries` so the caller can log.

    Args:
        permissions: The user's permissions.
        clock: Default time source for :meth:`allow_reply`; it must be the
            clock whose values are passed to :meth:`can_publish_reply`.
    """

    __slots__ = (
        "_clock",
        "_last_prune",
        "_pub_allow",
        "_pub_cache",
        "_pub_deny",
        "_pub_open",
        "_replies",
        "_replies_since_prune",
        "_resp_expires",
        "_resp_max",
        "_sub_allow",
        "_sub_allow_q",
        "_sub_deny",
        "_sub_deny_q",
        "invalid_entries",
    )

    def __init__(
        self, permissions: Permissions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        invalid: list[str] = []
        pub = permissions.publish
        allow = self._publish_patterns(pub.allow if pub else (), invalid, keep_queue=False)
        deny = self._publish_patterns(pub.deny if pub else (), invalid, keep_queue=True)
        # An empty allow list means "no allow list" (allow all), except that
        # allow_responses turns the blanket allow off (nats-server's
        # validateResponsePermissions).
        self._pub_allow: tuple[_Tokens, ...] | None = (
            allow if allow or permissions.allow_responses else None
        )
        if pub is not None and pub.allow and not allow:
            self._pub_allow = ()  # every allow entry was invalid: allow nothing
        self._pub_deny = deny
        self._pub_open = self._pub_allow is None and not deny
        self._pub_cache: dict[bytes, bool] = {}

        sub = permissions.subscribe
        allow_plain, self._sub_allow_q = self._subscribe_entries(sub.allow if sub else (), invalid)
        self._sub_deny, self._sub_deny_q = self._subscribe_entries(sub.deny if sub else (), invalid)
        # None = no allow list. With one, a subject needs a plain entry (or a
        # queue entry, for a queue SUB); if every entry was invalid nothing is
        # allowed, as in nats-server.
        self._sub_allow: tuple[bytes, ...] | None = (
            allow_plain if sub is not None and sub.allow else None
        )

        self._resp_max = 0
        self._resp_expires = 0.0
        if permissions.allow_responses:
            self._resp_max = permissions.responses_max or DEFAULT_RESPONSES_MAX
            self._resp_expires = permissions.responses_expires_s or DEFAULT_RESPONSES_EXPIRES_S
        self._clock = clock
        # reply subject -> [time allowed, responses used]
        self._replies: dict[bytes, list[float]] = {}
        self._replies_since_prune = 0
        self._last_prune = float("-inf")
        self.invalid_entries: tuple[str, ...] = tuple(invalid)

    @staticmethod
    def _publish_patterns(
        entries: tuple[str, ...], invalid: list[str], *, keep_queue: bool
    ) -> tuple[_Tokens, ...]:
        out = []
        for entry in entries:
            parsed = _split_entry(entry)
            # A queue part means nothing for publish: nats-server drops an allow
            # entry that has one but keeps a deny entry's subject (fail closed).
            if parsed is None or (parsed[1] is not None and not keep_queue):
                invalid.append(entry)
                continue
            out.append(tuple(parsed[0].split(b".")))
        return tuple(out)

    @staticmethod
    def _subscribe_entries(
        entries: tuple[str, ...], invalid: list[str]
    ) -> tuple[tuple[bytes, ...], tuple[tuple[bytes, bytes], ...]]:
        plain: list[bytes] = []
        queued: list[tuple[bytes, bytes]] = []
        for entry in entries:
            parsed = _split_entry(entry)
            if parsed is None:
                invalid.append(entry)
            elif parsed[1] is None:
                plain.append(parsed[0])
            else:
                queued.append((parsed[0], parsed[1]))
        return tuple(plain), tuple(queued)

    # ------------------------------------------------------------- publish

    def can_publish(self, subject: bytes) -> bool:
        """Whether the client may publish to the literal ``subject``.

        Does not consider reply allowances: on False, the router asks
        :meth:`can_publish_reply`.
        """
        if self._pub_open:
            return True
        cache = self._pub_cache
        allowed = cache.get(subject)
        if allowed is not None:
            return allowed
        tokens = subject.split(b".")
        allow = self._pub_allow
        allowed = allow is None or any(_tokens_match(p, tokens) for p in allow)
        if allowed:
            allowed = not any(_tokens_match(p, tokens) for p in self._pub_deny)
        if len(cache) >= _PUB_CACHE_MAX:
            for key in list(islice(cache, _PUB_CACHE_MAX // 4)):
                del cache[key]
        cache[subject] = allowed
        return allowed

    @property
    def tracks_replies(self) -> bool:
        """True when ``allow_responses`` is on, i.e. :meth:`allow_reply` matters."""
        return self._resp_max != 0

    def allow_reply(self, reply: bytes, now: float | None = None) -> None:
        """Record that a message with ``reply`` was delivered to this client.

        Args:
            reply: The reply subject of the delivered message.
            now: Current time on the clock used with :meth:`can_publish_reply`;
                defaults to the checker's ``clock``.
        """
        if not self._resp_max or self.can_publish(reply):
            return
        if now is None:
            now = self._clock()
        replies = self._replies
        # A repeated reply starts over (nats-server replaces the entry); pop
        # first so the dict stays ordered by age for the size cap.
        replies.pop(reply, None)
        replies[reply] = [now, 0]
        self._replies_since_prune += 1
        if (
            self._replies_since_prune > _REPLY_PRUNE_COUNT
            or now - self._last_prune > _REPLY_PRUNE_S
            or len(replies) > _REPLIES_MAX
        ):
            self._prune_replies(now)

    def _prune_replies(self, now: float) -> None:
        replies = self._replies
        max_msgs, expires = self._resp_max, self._resp_expires
        for key, (at, used) in list(replies.items()):
            if (max_msgs > 0 and used >= max_msgs) or (expires > 0 and now - at > expires):
                del replies[key]
        overflow = len(replies) - _REPLIES_MAX
        if overflow > 0:
            for key in list(islice(replies, overflow)):
                del replies[key]
        self._replies_since_prune = 0
        self._last_prune = now

    def can_publish_reply(self, subject: bytes, now: float) -> bool:
        """Whether ``subject`` is a reply allowance; consumes one use if so."""
        entry = self._replies.get(subject)
        if entry is None:
            return False
        entry[1] += 1
        if (self._resp_max > 0 and entry[1] > self._resp_max) or (
            self._resp_expires > 0 and now - entry[0] > self._resp_expires
        ):
            del self._replies[subject]
            return False
        return True

    # ----------------------------------------------------------- subscribe

    def can_subscribe(self, subject: bytes, queue: bytes | None) -> bool:
        """Whether the client may subscribe to ``subject`` (wildcards allowed)."""
        if queue == _SYS_QUEUE:
            return False
        allow = self._sub_allow
        if allow is not None:
            allowed = any(subject_is_subset(subject, p) for p in allow)
            if queue:
                groups = [g for p, g in self._sub_allow_q if subject_is_subset(subject, p)]
                # Queue entries for this subject restrict which groups may be
                # used, even when a plain entry matches too.
                if groups:
                    allowed = any(_queue_matches(queue, g) for g in groups)
            if not allowed:
                return False
        # Deny entries use nats-server's sublist match, where the SUB's own
        # wildcard tokens are matched as they are: a deny ``foo.*`` refuses
        # ``foo.>`` too (failing closed).
        if any(subject_matches(p, subject) for p in self._sub_deny):
            return False
        if queue:
            for pattern, group in self._sub_deny_q:
                if subject_matches(pattern, subject) and _queue_matches(queue, group):
                    return False
        return True

    def deliver_filter(
        self, subscription_subject: bytes, queue: bytes | None = None
    ) -> Callable[[bytes], bool] | None:
        """Delivery-time deny check for an allowed subscription.

        Args:
            subscription_subject: The SUB subject.
            queue: The SUB's queue group, if any (queue deny entries apply only
                to their group).

        Returns:
            None when no message on this subscription can hit a deny entry
            (literal subjects, or no overlap: the common case); otherwise a
            predicate ``literal subject -> deliver?``.
        """
        if is_literal(subscription_subject):
            # The only subject it receives was already checked at SUB time.
            return None
        patterns = [
            tuple(p.split(b"."))
            for p in self._sub_deny
            if _subjects_collide(p, subscription_subject)
        ]
        if queue:
            patterns.extend(
                tuple(p.split(b"."))
                for p, g in self._sub_deny_q
                if _queue_matches(queue, g) and _subjects_collide(p, subscription_subject)
            )
        if not patterns:
            return None
        deny = tuple(patterns)
        cache: dict[bytes, bool] = {}

        def deliver(subject: bytes) -> bool:
            ok = cache.get(subject)
            if ok is None:
                tokens = subject.split(b".")
                ok = not any(_tokens_match(p, tokens) for p in deny)
                if len(cache) >= _FILTER_CACHE_MAX:
                    for key in list(islice(cache, _FILTER_CACHE_MAX // 4)):
                        del cache[key]
                cache[subject] = ok
            return ok

        return deliver
