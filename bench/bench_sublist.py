"""Micro-benchmark for leafnode.sublist: match rate with and without the cache.

Run: ``python -m bench.bench_sublist``. Not a test: it prints numbers only.

Workload (STYLE.md §2): 10k subscriptions (~15% wildcards, ~10% queue subs)
over 4-token subjects, 200k publishes drawn from 1k hot subjects. The churn
runs add one literal subscribe/unsubscribe pair every 100 publishes and a
wildcard pair every 1000, comparing targeted cache invalidation with
clear-on-mutate.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leafnode.sublist import Sublist

if TYPE_CHECKING:
    from collections.abc import Callable

NUM_SUBS = 10_000
WILDCARD_FRACTION = 0.15
QUEUE_FRACTION = 0.10
NUM_HOT = 1_000
NUM_PUBLISHES = 200_000
# Distinct values per token position: 10 * 20 * 50 * 20 = 200k literal subjects.
VOCAB = (10, 20, 50, 20)


@dataclass(frozen=True, eq=False)
class BenchSub:
    subject: bytes
    queue: bytes | None = None


class ClearOnMutate(Sublist[BenchSub]):
    """The STYLE.md baseline: any insert or remove flushes the whole cache."""

    def _changed(self, subject: bytes, toks: list[bytes]) -> None:
        self.genid += 1
        self._cache.clear()


def random_literal(rng: random.Random) -> bytes:
    return b".".join(b"t%d_%d" % (i, rng.randrange(n)) for i, n in enumerate(VOCAB))


def random_wildcard(rng: random.Random, hot: list[bytes]) -> bytes:
    toks = rng.choice(hot).split(b".")
    if rng.random() < 0.5:
        toks[rng.randrange(len(toks))] = b"*"
    else:
        toks = [*toks[: rng.randrange(2, len(toks))], b">"]
    return b".".join(toks)


def make_subs(rng: random.Random, hot: list[bytes], n: int) -> list[BenchSub]:
    subs: list[BenchSub] = []
    for _ in range(n):
        if rng.random() < WILDCARD_FRACTION:
            subject = random_wildcard(rng, hot)
        else:
            # Half the literal subs listen on hot subjects, so publishes have fan-out.
            subject = rng.choice(hot) if rng.random() < 0.5 else random_literal(rng)
        queue = b"q%d" % rng.randrange(4) if rng.random() < QUEUE_FRACTION else None
        subs.append(BenchSub(subject, queue))
    return subs


def run_matches(sl: Sublist[BenchSub], publishes: list[bytes], repeat: int = 3) -> float:
    """Best of ``repeat`` passes: the first pass also fills the cache."""
    match = sl.match
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for subject in publishes:
            match(subject)
        best = max(best, len(publishes) / (time.perf_counter() - start))
    return best


def run_churn(
    sl: Sublist[BenchSub], publishes: list[bytes], rng: random.Random, hot: list[bytes]
) -> float:
    # Mutations are prepared up front so only sublist work is timed.
    literal = [BenchSub(rng.choice(hot)) for _ in range(len(publishes) // 100 + 1)]
    wild = [BenchSub(random_wildcard(rng, hot)) for _ in range(len(publishes) // 1000 + 1)]
    match, insert, remove = sl.match, sl.insert, sl.remove
    start = time.perf_counter()
    for i, subject in enumerate(publishes):
        if i % 100 == 0:
            s = literal[i // 100]
            insert(s)
            match(subject)
            remove(s)
        if i % 1000 == 0:
            w = wild[i // 1000]
            insert(w)
            match(subject)
            remove(w)
        match(subject)
    return len(publishes) / (time.perf_counter() - start)


def build(factory: Callable[[], Sublist[BenchSub]], subs: list[BenchSub]) -> Sublist[BenchSub]:
    sl = factory()
    for s in subs:
        sl.insert(s)
    return sl


def main() -> None:
    rng = random.Random(1)
    hot = list({random_literal(rng) for _ in range(NUM_HOT)})
    subs = make_subs(rng, hot, NUM_SUBS)
    publishes = [rng.choice(hot) for _ in range(NUM_PUBLISHES)]

    start = time.perf_counter()
    cached = build(lambda: Sublist(cache_size=4096), subs)
    insert_rate = NUM_SUBS / (time.perf_counter() - start)
    uncached = build(lambda: Sublist(cache_size=0), subs)
    wildcards = sum(1 for s in subs if b"*" in s.subject or s.subject.endswith(b">"))
    print(f"subs={cached.count()} wildcards={wildcards} hot={len(hot)} publishes={NUM_PUBLISHES}")
    print(f"insert:            {insert_rate / 1e3:8.1f} k subs/s")

    print(f"match uncached:    {run_matches(uncached, publishes) / 1e6:8.3f} M/s")
    print(f"match cached:      {run_matches(cached, publishes) / 1e6:8.3f} M/s")
    st = cached.stats()
    print(
        f"  hit rate {st.cache_hit_rate:.3f}, avg fan-out {st.avg_fanout:.1f}, max {st.max_fanout}"
    )

    targeted = build(lambda: Sublist(cache_size=4096), subs)
    flushing = build(lambda: ClearOnMutate(cache_size=4096), subs)
    for name, sl in (("targeted", targeted), ("clear-on-mutate", flushing)):
        rate = run_churn(sl, publishes, random.Random(2), hot)
        hit = sl.stats().cache_hit_rate
        print(f"churn {name + ':':16} {rate / 1e6:8.3f} M matches/s (hit rate {hit:.3f})")


if __name__ == "__main__":
    main()
