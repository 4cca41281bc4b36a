"""Tests for leafnode.sublist; each behaviour runs with and without the match cache."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leafnode.proto import subject_matches
from leafnode.sublist import (
    InvalidSubjectError,
    Sublist,
    SublistResult,
    SublistStats,
    subject_intersects,
)


@dataclass(frozen=True, eq=False)
class Sub:
    """A subscription compared by identity, like the router's."""

    subject: bytes
    queue: bytes | None = None
    name: str = ""

    def __repr__(self) -> str:
        return f"Sub({self.name or ''}{self.subject!r}, {self.queue!r})"


def sub(subject: str, queue: str | None = None, name: str = "") -> Sub:
    return Sub(subject.encode(), queue.encode() if queue is not None else None, name)


@pytest.fixture(params=[4096, 0], ids=["cache", "nocache"])
def sl(request: pytest.FixtureRequest) -> Sublist[Sub]:
    return Sublist(cache_size=request.param)


def groups(result: SublistResult[Sub]) -> dict[bytes, set[Sub]]:
    return {name: set(g) for name, g in zip(result.queue_names, result.qsubs, strict=True)}


class TestLiteral:
    def test_match_single(self, sl: Sublist[Sub]) -> None:
        s = sub("foo")
        sl.insert(s)
        assert sl.match(b"foo").psubs == (s,)
        assert sl.match(b"foo").qsubs == ()
        assert sl.count() == 1

    def test_no_match(self, sl: Sublist[Sub]) -> None:
        sl.insert(sub("foo.bar"))
        assert not sl.match(b"foo")
        assert not sl.match(b"foo.bar.baz")
        assert not sl.match(b"foo.baz")

    def test_multiple_tokens(self, sl: Sublist[Sub]) -> None:
        a, b = sub("foo.bar"), sub("foo.bar")
        sl.insert(a)
        sl.insert(b)
        sl.insert(sub("foo.baz"))
        assert set(sl.match(b"foo.bar").psubs) == {a, b}

    def test_empty_token_matches_nothing(self, sl: Sublist[Sub]) -> None:
        sl.insert(sub(">"))
        sl.insert(sub("*.*"))
        assert not sl.match(b"a..b")
        assert not sl.match(b".a")
        assert not sl.match(b"a.")
        assert not sl.match(b"")
        assert not sl.has_interest(b"a..b")

    def test_wildcard_like_tokens_are_literal(self, sl: Sublist[Sub]) -> None:
        s = sub("a*.b>")
        sl.insert(s)
        assert sl.match(b"a*.b>").psubs == (s,)
        assert not sl.match(b"ax.b>")


class TestWildcards:
    def test_pwc(self, sl: Sublist[Sub]) -> None:
        s = sub("foo.*")
        sl.insert(s)
        assert sl.match(b"foo.bar").psubs == (s,)
        assert not sl.match(b"foo")
        assert not sl.match(b"foo.bar.baz")

    def test_pwc_middle_and_first(self, sl: Sublist[Sub]) -> None:
        a, b = sub("*.bar.*"), sub("*")
        sl.insert(a)
        sl.insert(b)
        assert sl.match(b"x.bar.y").psubs == (a,)
        assert sl.match(b"x").psubs == (b,)
        assert not sl.match(b"x.baz.y")

    def test_fwc_needs_one_token(self, sl: Sublist[Sub]) -> None:
        s = sub("foo.>")
        sl.insert(s)
        assert not sl.match(b"foo")
        assert sl.match(b"foo.bar").psubs == (s,)
        assert sl.match(b"foo.bar.baz.qux").psubs == (s,)

    def test_full_wildcard_alone(self, sl: Sublist[Sub]) -> None:
        s = sub(">")
        sl.insert(s)
        assert sl.match(b"a").psubs == (s,)
        assert sl.match(b"a.b.c").psubs == (s,)

    def test_mixed(self, sl: Sublist[Sub]) -> None:
        subs = [sub(p) for p in ("a.b.c", "a.*.c", "a.>", "*.b.>", ">", "a.*", "*.*.*", "a.b.d")]
        for s in subs:
            sl.insert(s)
        got = sl.match(b"a.b.c").psubs
        assert len(got) == len(set(got)) == 6
        assert {s.subject for s in got} == {b"a.b.c", b"a.*.c", b"a.>", b"*.b.>", b">", b"*.*.*"}

    def test_overlapping_subs_each_once(self, sl: Sublist[Sub]) -> None:
        a, b = sub("a.*"), sub("a.>")
        sl.insert(a)
        sl.insert(b)
        got = sl.match(b"a.x").psubs
        assert sorted(got, key=id) == sorted([a, b], key=id)


class TestQueues:
    def test_queue_group(self, sl: Sublist[Sub]) -> None:
        q1, q2, p = sub("foo", "workers"), sub("foo", "workers"), sub("foo")
        for s in (q1, q2, p):
            sl.insert(s)
        r = sl.match(b"foo")
        assert r.psubs == (p,)
        assert groups(r) == {b"workers": {q1, q2}}
        assert r.queue_names == (b"workers",)

    def test_two_groups(self, sl: Sublist[Sub]) -> None:
        a, b = sub("foo.*", "x"), sub("foo.bar", "y")
        sl.insert(a)
        sl.insert(b)
        assert groups(sl.match(b"foo.bar")) == {b"x": {a}, b"y": {b}}

    def test_same_queue_merged_across_levels(self, sl: Sublist[Sub]) -> None:
        a, b, c = sub("a.*", "q"), sub("a.>", "q"), sub("a.b", "q")
        for s in (a, b, c):
            sl.insert(s)
        r = sl.match(b"a.b")
        assert len(r.qsubs) == 1
        assert groups(r) == {b"q": {a, b, c}}
        assert not r.psubs

    def test_plain_and_queue_on_same_subject_separate(self, sl: Sublist[Sub]) -> None:
        p, q = sub("foo"), sub("foo", "q")
        sl.insert(p)
        sl.insert(q)
        assert sl.remove(p)
        r = sl.match(b"foo")
        assert r.psubs == ()
        assert groups(r) == {b"q": {q}}

    def test_queue_only_result_is_truthy(self, sl: Sublist[Sub]) -> None:
        sl.insert(sub("foo", "q"))
        assert sl.match(b"foo")
        assert sl.has_interest(b"foo")

    def test_remove_queue_member(self, sl: Sublist[Sub]) -> None:
        q1, q2 = sub("foo", "q"), sub("foo", "q")
        sl.insert(q1)
        sl.insert(q2)
        assert sl.remove(q1)
        assert groups(sl.match(b"foo")) == {b"q": {q2}}
        assert sl.remove(q2)
        assert not sl.match(b"foo")
        assert not sl.remove(q2)


class TestRemove:
    def test_remove(self, sl: Sublist[Sub]) -> None:
        s = sub("foo.bar")
        sl.insert(s)
        assert sl.remove(s)
        assert sl.count() == 0
        assert not sl.match(b"foo.bar")

    def test_remove_not_present(self, sl: Sublist[Sub]) -> None:
        s = sub("foo.bar")
        sl.insert(s)
        assert not sl.remove(sub("foo.bar"))
        assert not sl.remove(sub("foo.baz"))
        assert not sl.remove(sub("foo.bar.baz"))
        assert not sl.remove(sub("foo"))
        assert not sl.remove(sub("foo.*"))
        assert not sl.remove(sub("foo.bar", "q"))
        assert sl.count() == 1
        assert sl.match(b"foo.bar").psubs == (s,)

    def test_remove_twice(self, sl: Sublist[Sub]) -> None:
        s = sub("a.*")
        sl.insert(s)
        assert sl.remove(s)
        assert not sl.remove(s)

    def test_prune_all(self, sl: Sublist[Sub]) -> None:
        subs = [sub(p) for p in ("a.b.c", "a.*.c", "a.>", ">", "*", "x.y", "x.y.z")]
        subs.append(sub("a.b.c", "q"))
        for s in subs:
            sl.insert(s)
        for s in subs:
            assert sl.remove(s)
        root = sl._root
        assert root.nodes == {}
        assert root.pwc is None
        assert root.fwc is None

    def test_prune_keeps_shared_prefix(self, sl: Sublist[Sub]) -> None:
        short, long = sub("a.b"), sub("a.b.c.d")
        sl.insert(short)
        sl.insert(long)
        assert sl.remove(long)
        node = sl._root.nodes[b"a"].next
        assert node is not None
        assert node.nodes[b"b"].next is None
        assert sl.match(b"a.b").psubs == (short,)
        assert sl.remove(short)
        assert sl._root.nodes == {}


class TestInsert:
    def test_same_sub_twice_stored_once(self, sl: Sublist[Sub]) -> None:
        s, q = sub("foo.*"), sub("foo.*", "q")
        for _ in range(2):
            sl.insert(s)
            sl.insert(q)
        assert sl.count() == 2
        r = sl.match(b"foo.x")
        assert r.psubs == (s,)
        assert r.qsubs == ((q,),)
        assert sl.remove(s)
        assert not sl.remove(s)

    @pytest.mark.parametrize(
        "subject",
        [b"", b".", b"a.", b".a", b"a..b", b"a.>.b", b">.a", b"a b", b"a\tb", b"a\r\n"],
    )
    def test_invalid_subject_refused(self, sl: Sublist[Sub], subject: bytes) -> None:
        with pytest.raises(InvalidSubjectError):
            sl.insert(Sub(subject))
        assert sl.count() == 0
        assert sl.genid == 0

    @pytest.mark.parametrize("queue", [b"", b"a b", b"q\n"])
    def test_invalid_queue_refused(self, sl: Sublist[Sub], queue: bytes) -> None:
        with pytest.raises(InvalidSubjectError):
            sl.insert(Sub(b"foo", queue))
        assert sl.count() == 0

    def test_error_is_value_error(self) -> None:
        assert issubclass(InvalidSubjectError, ValueError)

    def test_negative_cache_size_refused(self) -> None:
        with pytest.raises(ValueError, match="cache_size"):
            Sublist(cache_size=-1)


class TestCacheInvalidation:
    @pytest.mark.parametrize(
        ("pattern", "affected", "unaffected"),
        [
            ("a.b", "a.b", "a.c"),
            ("a.*", "a.b", "b.a"),
            ("a.>", "a.b.c", "a"),
            ("*.b", "a.b", "a.c"),
            (">", "x.y", ""),
            ("a.*.c", "a.b.c", "a.b.d"),
        ],
    )
    def test_insert_and_remove_between_matches(
        self, sl: Sublist[Sub], pattern: str, affected: str, unaffected: str
    ) -> None:
        base = sub("a.b.c")
        sl.insert(base)
        hit, miss = affected.encode(), unaffected.encode()
        before_hit = sl.match(hit)
        before_miss = sl.match(miss) if miss else None
        new = sub(pattern)
        sl.insert(new)
        assert new in sl.match(hit).psubs
        assert sl.has_interest(hit)
        if miss:
            assert sl.match(miss) == before_miss
            assert new not in sl.match(miss).psubs
        assert sl.remove(new)
        assert new not in sl.match(hit).psubs
        assert sl.match(hit) == before_hit

    def test_cached_empty_result_invalidated(self, sl: Sublist[Sub]) -> None:
        assert not sl.match(b"foo.bar")
        assert not sl.has_interest(b"foo.bar")
        s = sub("foo.*", "q")
        sl.insert(s)
        assert sl.has_interest(b"foo.bar")
        assert sl.match(b"foo.bar").qsubs == ((s,),)

    def test_result_shared_from_cache(self) -> None:
        sl: Sublist[Sub] = Sublist()
        sl.insert(sub("a"))
        assert sl.match(b"a") is sl.match(b"a")

    def test_cache_bounded(self) -> None:
        sl: Sublist[Sub] = Sublist(cache_size=8)
        sl.insert(sub(">"))
        for i in range(100):
            assert sl.match(b"s.%d" % i)
            assert sl.stats().num_cache <= 8
        # The newest survive an eviction.
        assert b"s.99" in sl._cache

    def test_cache_disabled_stays_empty(self) -> None:
        sl: Sublist[Sub] = Sublist(cache_size=0)
        sl.insert(sub("a"))
        sl.match(b"a")
        assert sl.stats().num_cache == 0
        assert sl.stats().cache_hit_rate == 0.0


class TestGenid:
    def test_genid_changes(self, sl: Sublist[Sub]) -> None:
        g0 = sl.genid
        s = sub("a.*")
        sl.insert(s)
        g1 = sl.genid
        assert g1 > g0
        sl.match(b"a.b")
        assert sl.genid == g1
        assert sl.remove(s)
        g2 = sl.genid
        assert g2 > g1
        sl.clear()
        assert sl.genid > g2

    def test_noop_changes_keep_genid(self, sl: Sublist[Sub]) -> None:
        s = sub("a")
        sl.insert(s)
        g = sl.genid
        sl.insert(s)
        assert not sl.remove(sub("a"))
        assert sl.genid == g


class TestIntrospection:
    def test_subscribers(self, sl: Sublist[Sub]) -> None:
        subs = [sub("a"), sub("a.b"), sub("a.*"), sub(">"), sub("a", "q"), sub("a", "q"), sub("*")]
        for s in subs:
            sl.insert(s)
        sl.insert(subs[0])
        got = list(sl.subscribers())
        assert len(got) == len(subs)
        assert set(got) == set(subs)
        assert sl.count() == len(subs)

    def test_subscribers_is_snapshot(self, sl: Sublist[Sub]) -> None:
        for i in range(5):
            sl.insert(sub(f"s.{i}"))
        for s in sl.subscribers():
            sl.remove(s)
        assert sl.count() == 0
        assert list(sl.subscribers()) == []

    def test_clear(self, sl: Sublist[Sub]) -> None:
        sl.insert(sub("a"))
        sl.insert(sub("b.>", "q"))
        sl.match(b"a")
        sl.clear()
        assert sl.count() == 0
        assert not sl.match(b"a")
        assert not sl.match(b"b.c")
        assert list(sl.subscribers()) == []

    def test_stats(self, sl: Sublist[Sub]) -> None:
        cached = sl._cache_size > 0
        s1, s2, q = sub("a.*"), sub("a.b"), sub("a.>", "q")
        for s in (s1, s2, q):
            sl.insert(s)
        sl.insert(s1)
        sl.remove(s2)
        sl.remove(s2)
        for _ in range(4):
            sl.match(b"a.b")
        sl.match(b"zz")
        st_ = sl.stats()
        assert isinstance(st_, SublistStats)
        assert st_.num_subs == 2
        assert st_.num_inserts == 3
        assert st_.num_removes == 1
        assert st_.num_matches == 5
        if cached:
            assert st_.num_cache == 2
            assert st_.cache_hit_rate == pytest.approx(3 / 5)
            assert st_.max_fanout == 2  # a.* plus group q
            assert st_.avg_fanout == pytest.approx(1.0)
        else:
            assert st_.num_cache == 0
            assert st_.cache_hit_rate == 0.0
            assert st_.max_fanout == 0
            assert st_.avg_fanout == 0.0

    def test_stats_empty(self, sl: Sublist[Sub]) -> None:
        assert sl.stats() == SublistStats(0, 0, 0, 0, 0, 0.0, 0, 0.0)


class TestResult:
    def test_bool_and_queue_names(self) -> None:
        a, q = sub("a"), sub("a", "q")
        # Not SublistResult[Sub](...): CPython 3.11 cannot set __orig_class__ on a
        # frozen slotted dataclass, so annotate instead.
        empty: SublistResult[Sub] = SublistResult((), ())
        assert not empty
        assert SublistResult((a,), ())
        r = SublistResult((), ((q,),))
        assert r
        assert r.queue_names == (b"q",)


class TestSubjectIntersects:
    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            (b"a.b", b"a.b", True),
            (b"a.b", b"a.c", False),
            (b"a.*", b"*.b", True),
            (b"a.>", b"a", False),
            (b">", b"a", True),
            (b"a.>", b"*.b.c", True),
            (b"a.*", b"a.b.c", False),
            (b"*", b"a.b", False),
            (b"a.*.c", b"a.b.>", True),
            (b"x.>", b"a.>", False),
        ],
    )
    def test_examples(self, a: bytes, b: bytes, expected: bool) -> None:
        assert subject_intersects(a, b) is expected
        assert subject_intersects(b, a) is expected


# --- property tests against brute force -------------------------------------------------

_PATTERN_TOKENS = [b"a", b"b", b"*"]
patterns = st.builds(
    lambda toks, fwc: b".".join(toks + ([b">"] if fwc else [])),
    st.lists(st.sampled_from(_PATTERN_TOKENS), min_size=0, max_size=3),
    st.booleans(),
).filter(bool)
literals = st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=4).map(b".".join)
# Every literal subject over {a, b, c} up to 4 tokens; `c` stands for "any other token".
ALL_LITERALS = [
    b".".join(t) for n in range(1, 5) for t in itertools.product([b"a", b"b", b"c"], repeat=n)
]


@settings(max_examples=300, deadline=None)
@given(a=patterns, b=patterns)
def test_subject_intersects_brute_force(a: bytes, b: bytes) -> None:
    expected = any(subject_matches(a, s) and subject_matches(b, s) for s in ALL_LITERALS)
    assert subject_intersects(a, b) is expected


# An op: ("ins" | "rem", sub index) or ("match", subject).
_SUB_POOL_SIZE = 12
sub_specs = st.lists(
    st.tuples(patterns, st.sampled_from([None, b"q1", b"q2"])),
    min_size=1,
    max_size=_SUB_POOL_SIZE,
)
ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ins", "rem"]), st.integers(0, _SUB_POOL_SIZE - 1)),
        st.tuples(st.just("match"), literals),
    ),
    max_size=60,
)


@pytest.mark.parametrize("cache_size", [4096, 3, 0])
@settings(max_examples=150, deadline=None)
@given(specs=sub_specs, script=ops)
def test_match_against_brute_force(
    cache_size: int, specs: list[tuple[bytes, bytes | None]], script: list[tuple[str, object]]
) -> None:
    sl: Sublist[Sub] = Sublist(cache_size=cache_size)
    pool = [Sub(p, q, name=str(i)) for i, (p, q) in enumerate(specs)]
    stored: set[Sub] = set()
    for op, arg in script:
        if op == "match":
            assert isinstance(arg, bytes)
            subj = arg
            expected_p = {s for s in stored if s.queue is None and subject_matches(s.subject, subj)}
            expected_q: dict[bytes, set[Sub]] = {}
            for s in stored:
                if s.queue is not None and subject_matches(s.subject, subj):
                    expected_q.setdefault(s.queue, set()).add(s)
            r = sl.match(subj)
            assert len(r.psubs) == len(set(r.psubs))
            assert set(r.psubs) == expected_p
            assert len(r.queue_names) == len(set(r.queue_names))
            assert sum(len(g) for g in r.qsubs) == sum(len(g) for g in expected_q.values())
            assert groups(r) == expected_q
            assert sl.has_interest(subj) is bool(expected_p or expected_q)
        else:
            assert isinstance(arg, int)
            s = pool[arg % len(pool)]
            if op == "ins":
                sl.insert(s)
                stored.add(s)
            else:
                assert sl.remove(s) is (s in stored)
                stored.discard(s)
        assert sl.count() == len(stored)
    assert set(sl.subscribers()) == stored
    for s in stored:
        assert sl.remove(s)
    assert sl._root.nodes == {}
    assert sl._root.pwc is None
    assert sl._root.fwc is None
