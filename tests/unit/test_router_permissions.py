"""Tests for services.router.permissions.

Every allow/refuse outcome below was observed on nats-server 2.15.1 with the
same permissions (raw-socket PUB/SUB), except where a test says it differs.
The -ERR texts were checked on nats-server 2.15.1 and 2.9.10.
"""

from __future__ import annotations

import pytest

from leafnode.config import Permissions, SubjectPermission
from services.router.permissions import (
    DEFAULT_RESPONSES_EXPIRES_S,
    PermissionChecker,
    publish_violation_text,
    subscribe_violation_text,
)


def checker(
    pub_allow: tuple[str, ...] = (),
    pub_deny: tuple[str, ...] = (),
    sub_allow: tuple[str, ...] = (),
    sub_deny: tuple[str, ...] = (),
    **responses: float | bool,
) -> PermissionChecker:
    perms = Permissions(
        publish=SubjectPermission(pub_allow, pub_deny) if pub_allow or pub_deny else None,
        subscribe=SubjectPermission(sub_allow, sub_deny) if sub_allow or sub_deny else None,
        **responses,  # type: ignore[arg-type]
    )
    return PermissionChecker(perms)


class TestViolationTexts:
    """Exact -ERR texts (inside the quotes) of nats-server 2.15.1 and 2.9.10."""

    def test_publish(self) -> None:
        assert (
            publish_violation_text(b"foo.bad") == 'Permissions Violation for Publish to "foo.bad"'
        )

    def test_subscribe(self) -> None:
        assert (
            subscribe_violation_text(b"foo.secret", None)
            == 'Permissions Violation for Subscription to "foo.secret"'
        )

    def test_subscribe_with_queue(self) -> None:
        assert (
            subscribe_violation_text(b"foo.secret", b"g")
            == 'Permissions Violation for Subscription to "foo.secret" using queue "g"'
        )

    @pytest.mark.parametrize(
        ("subject", "quoted"),
        [
            (b'zz"q\\z', '"zz\\"q\\\\z"'),
            ("été".encode(), '"été"'),
            (b"a\x01b", '"a\\x01b"'),
            (b"\xff\xfe", '"\\xff\\xfe"'),
            ("xé\\".encode(), '"xé\\\\"'),
        ],
    )
    def test_go_quoting(self, subject: bytes, quoted: str) -> None:
        # Go's %q, as the real servers sent them for these subjects.
        assert publish_violation_text(subject) == f"Permissions Violation for Publish to {quoted}"

    def test_queue_quoting(self) -> None:
        assert (
            subscribe_violation_text(b"q", b'v"2')
            == 'Permissions Violation for Subscription to "q" using queue "v\\"2"'
        )


class TestPublish:
    def test_no_rules_allow_everything(self) -> None:
        perms = checker(sub_allow=("x",))
        assert perms.can_publish(b"anything.at.all")

    def test_allow_and_deny(self) -> None:
        perms = checker(pub_allow=("foo.*", "bar.>"), pub_deny=("foo.bad",))
        assert perms.can_publish(b"foo.x")
        assert not perms.can_publish(b"foo.bad")  # deny wins
        assert not perms.can_publish(b"bar")
        assert perms.can_publish(b"bar.a.b")
        assert not perms.can_publish(b"zip")
        assert not perms.can_publish(b"foo.x.y")

    def test_deny_only(self) -> None:
        perms = checker(pub_deny=(">",))
        assert not perms.can_publish(b"x")
        perms = checker(pub_deny=("secret.*",))
        assert perms.can_publish(b"secret")
        assert not perms.can_publish(b"secret.a")

    def test_cached_answer_is_stable(self) -> None:
        perms = checker(pub_allow=("ok.*",))
        for _ in range(2):
            assert perms.can_publish(b"ok.1")
            assert not perms.can_publish(b"no.1")

    def test_cache_eviction_keeps_answers(self) -> None:
        perms = checker(pub_allow=("ok.*",))
        for i in range(3000):
            assert perms.can_publish(b"ok.%d" % i)
            assert not perms.can_publish(b"no.%d" % i)
        assert perms.can_publish(b"ok.0")
        assert not perms.can_publish(b"no.0")

    def test_invalid_allow_entries_allow_nothing(self) -> None:
        perms = checker(pub_allow=("foo bar", "a..b"))
        assert perms.invalid_entries == ("foo bar", "a..b")
        assert not perms.can_publish(b"foo")

    def test_deny_entry_with_queue_keeps_subject(self) -> None:
        perms = checker(pub_deny=("foo q",))
        assert not perms.can_publish(b"foo")


class TestSubscribe:
    ALLOW = ("foo.*", "q.* v1", "w.* v.*", "both", "both v2")
    DENY = ("foo.secret", "foo.qd g1")

    @pytest.mark.parametrize(
        ("subject", "queue", "allowed"),
        [
            ("foo.*", None, True),
            ("foo.x", None, True),
            ("foo.secret", None, False),
            ("foo.secret", "g", False),
            (">", None, False),
            ("*", None, False),
            ("*.*", None, False),
            ("foo.*.x", None, False),
            ("foo.qd", "g1", False),
            ("foo.qd", "g2", True),
            ("foo.qd", None, True),
            ("q.x", None, False),  # only queue subscriptions allowed on q.*
            ("q.x", "v1", True),
            ("q.x", "v2", False),
            ("q.*", "v1", True),
            ("w.x", "v.a", True),  # the allowed group is itself a wildcard
            ("w.x", "v", False),
            ("w.x", "v.a.b", False),
            ("both", None, True),
            ("both", "v2", True),
            ("both", "v3", False),  # a queue entry restricts groups despite "both"
            ("foo.*", "v9", True),
            ("foo.x", "_sys_", False),
        ],
    )
    def test_as_nats_server(self, subject: str, queue: str | None, allowed: bool) -> None:
        perms = checker(sub_allow=self.ALLOW, sub_deny=self.DENY)
        q = queue.encode() if queue is not None else None
        assert perms.can_subscribe(subject.encode(), q) is allowed

    @pytest.mark.parametrize(("subject", "queue"), [("foo.>", None), ("q.>", "v1")])
    def test_full_wildcard_under_partial_allow_differs_from_nats_server(
        self, subject: str, queue: str | None
    ) -> None:
        # nats-server 2.15.1 accepts these (its sublist matches the SUB's ">"
        # with the allow "*") and then delivers foo.a.b; we require a subset.
        perms = checker(sub_allow=self.ALLOW, sub_deny=self.DENY)
        q = queue.encode() if queue is not None else None
        assert not perms.can_subscribe(subject.encode(), q)

    def test_wildcard_must_be_subset_of_allow(self) -> None:
        perms = checker(sub_allow=("a.>",))
        assert perms.can_subscribe(b"a.*", None)
        assert perms.can_subscribe(b"a.>", None)
        assert perms.can_subscribe(b"a.*.c", None)
        assert not perms.can_subscribe(b"a", None)
        assert not perms.can_subscribe(b"*.b", None)
        assert not perms.can_subscribe(b">", None)

    def test_deny_covering_wildcard_refuses(self) -> None:
        perms = checker(sub_deny=("foo.>",))
        assert not perms.can_subscribe(b"foo.*", None)
        assert not perms.can_subscribe(b"foo.>", None)
        assert perms.can_subscribe(b"foo", None)
        # nats-server's sublist matches a SUB ">" token with a deny "*".
        assert not checker(sub_deny=("foo.*",)).can_subscribe(b"foo.>", None)

    def test_overlapping_deny_does_not_refuse(self) -> None:
        perms = checker(sub_deny=("foo.bar", "baz.> g"))
        assert not perms.can_subscribe(b"foo.bar", None)
        assert perms.can_subscribe(b">", None)
        assert perms.can_subscribe(b"foo.*", None)
        assert not perms.can_subscribe(b"baz.*", b"g")
        assert perms.can_subscribe(b"baz.*", b"h")
        assert perms.can_subscribe(b"baz.*", None)

    def test_deny_with_wildcard_queue_group(self) -> None:
        perms = checker(sub_deny=("jobs v.*",))
        assert not perms.can_subscribe(b"jobs", b"v.1")
        assert perms.can_subscribe(b"jobs", b"v")
        assert perms.can_subscribe(b"jobs", None)

    def test_invalid_allow_entries_allow_nothing(self) -> None:
        perms = checker(sub_allow=("a b c",))
        assert perms.invalid_entries == ("a b c",)
        assert not perms.can_subscribe(b"a", b"b")


class TestDeliverFilter:
    def test_none_when_not_needed(self) -> None:
        perms = checker(sub_deny=("foo.bar", "baz.> g"))
        assert perms.deliver_filter(b"foo.ok") is None  # literal
        assert perms.deliver_filter(b"other.*") is None  # no overlap
        assert perms.deliver_filter(b"baz.*", b"h") is None  # queue deny for another group
        assert checker(sub_allow=("a.>",)).deliver_filter(b"a.*") is None

    @pytest.mark.parametrize("subject", [b">", b"foo.*", b"*.bar"])
    def test_drops_denied_subjects(self, subject: bytes) -> None:
        perms = checker(sub_deny=("foo.bar", "baz.> g"))
        deliver = perms.deliver_filter(subject)
        assert deliver is not None
        assert not deliver(b"foo.bar")
        assert not deliver(b"foo.bar")  # cached
        assert deliver(b"foo.ok")
        assert deliver(b"x.bar")

    def test_plain_wildcard_still_gets_queue_denied_subjects(self) -> None:
        # As observed: SUB > (no queue) received baz.x despite deny "baz.> g".
        deliver = checker(sub_deny=("foo.bar", "baz.> g")).deliver_filter(b">")
        assert deliver is not None
        assert deliver(b"baz.x")

    def test_queue_deny_applies_to_its_group(self) -> None:
        deliver = checker(sub_deny=("foo.bar", "baz.> g")).deliver_filter(b">", b"g")
        assert deliver is not None
        assert not deliver(b"baz.x")
        assert not deliver(b"foo.bar")
        assert deliver(b"baz")

    def test_wildcard_deny(self) -> None:
        deliver = checker(sub_deny=("*.secret.>",)).deliver_filter(b"a.>")
        assert deliver is not None
        assert not deliver(b"a.secret.x")
        assert deliver(b"a.secret")
        assert deliver(b"a.public.x")

    def test_cache_eviction_keeps_answers(self) -> None:
        deliver = checker(sub_deny=("a.*.deny",)).deliver_filter(b"a.>")
        assert deliver is not None
        for i in range(1000):
            assert not deliver(b"a.%d.deny" % i)
            assert deliver(b"a.%d.ok" % i)
        assert not deliver(b"a.0.deny")


class TestResponses:
    def test_responses_turn_off_blanket_publish(self) -> None:
        perms = checker(sub_allow=(">",), allow_responses=True)
        assert not perms.can_publish(b"x")
        assert perms.tracks_replies

    def test_without_allow_responses_nothing_is_tracked(self) -> None:
        perms = checker(pub_allow=("ok",))
        assert not perms.tracks_replies
        perms.allow_reply(b"inbox.1", now=0.0)
        assert not perms.can_publish_reply(b"inbox.1", 0.0)

    def test_max_responses(self) -> None:
        # As observed with max: 2, publish allow ["ok"]: two replies pass, the third is refused.
        perms = checker(pub_allow=("ok",), allow_responses=True, responses_max=2)
        perms.allow_reply(b"inbox.1", now=10.0)
        assert not perms.can_publish(b"inbox.1")
        assert perms.can_publish_reply(b"inbox.1", 10.5)
        assert perms.can_publish_reply(b"inbox.1", 10.5)
        assert not perms.can_publish_reply(b"inbox.1", 10.5)
        assert not perms.can_publish_reply(b"inbox.2", 10.5)

    def test_default_is_one_response_within_two_minutes(self) -> None:
        perms = checker(allow_responses=True)
        perms.allow_reply(b"r.1", now=0.0)
        assert perms.can_publish_reply(b"r.1", 1.0)
        assert not perms.can_publish_reply(b"r.1", 1.0)
        perms.allow_reply(b"r.2", now=0.0)
        assert not perms.can_publish_reply(b"r.2", DEFAULT_RESPONSES_EXPIRES_S + 0.001)

    def test_expiry(self) -> None:
        perms = checker(allow_responses=True, responses_max=5, responses_expires_s=1.0)
        perms.allow_reply(b"r", now=100.0)
        assert perms.can_publish_reply(b"r", 101.0)  # not yet past the limit
        assert not perms.can_publish_reply(b"r", 101.01)
        assert not perms.can_publish_reply(b"r", 101.02)  # entry was dropped

    def test_repeated_reply_starts_over(self) -> None:
        perms = checker(allow_responses=True)
        perms.allow_reply(b"r", now=0.0)
        assert perms.can_publish_reply(b"r", 0.0)
        perms.allow_reply(b"r", now=50.0)
        assert perms.can_publish_reply(b"r", 51.0)

    def test_unlimited_when_negative(self) -> None:
        perms = checker(allow_responses=True, responses_max=-1, responses_expires_s=-1.0)
        perms.allow_reply(b"r", now=0.0)
        for _ in range(10):
            assert perms.can_publish_reply(b"r", 1e9)

    def test_statically_allowed_reply_is_not_tracked(self) -> None:
        perms = checker(pub_allow=("ok",), allow_responses=True)
        perms.allow_reply(b"ok", now=0.0)
        assert not perms.can_publish_reply(b"ok", 0.0)
        assert perms.can_publish(b"ok")

    def test_default_clock(self) -> None:
        ticks = iter([5.0, 5.0])
        perms = PermissionChecker(Permissions(allow_responses=True), clock=lambda: next(ticks))
        perms.allow_reply(b"r")
        assert perms.can_publish_reply(b"r", 6.0)

    def test_pruning_drops_used_and_expired(self) -> None:
        perms = checker(allow_responses=True, responses_expires_s=10.0)
        perms.allow_reply(b"used", now=0.0)
        assert perms.can_publish_reply(b"used", 0.0)
        perms.allow_reply(b"old", now=0.0)
        perms.allow_reply(b"fresh", now=20.0)  # over a second since the last prune
        assert list(perms._replies) == [b"fresh"]  # the table stays bounded
        assert not perms.can_publish_reply(b"old", 20.0)
        assert perms.can_publish_reply(b"fresh", 20.0)
