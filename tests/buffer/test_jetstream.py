"""JetStream de-duplication of replayed messages (issue 4 item 5, DESIGN §4, §8).

A hub ``nats-server`` with JetStream has a stream on the buffered subjects
with a duplicate window; its subjects are hub interest, so the backlog flows
into it. In the middle of the replay the store is frozen (SIGSTOP) until
the uplink has a batch confirmed by the hub's PONG and not acked; then the
uplink and the frozen store are killed with SIGKILL, so that ack is lost.
The restarted store still holds the batch as pending (checked: otherwise the
attempt is repeated), so the restarted uplink sends it again, and
``Nats-Msg-Id`` makes the stream keep each message once.
"""

from __future__ import annotations

import operator
import signal
from functools import partial
from typing import TYPE_CHECKING

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from tests.buffer.conftest import apoll, apoll_async, poll
from tests.support import restart_process

if TYPE_CHECKING:
    from tests.buffer.conftest import Sites

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e, pytest.mark.slow]

COUNT = 40_000


def ints(buffer: dict[str, object]) -> tuple[int, int]:
    """``(sent, acked)`` of an ``uplink.ctl`` buffer object."""
    sent, acked = buffer["sent"], buffer["acked"]
    assert isinstance(sent, int)
    assert isinstance(acked, int)
    return sent, acked


async def test_interrupted_replay_leaves_no_duplicate_in_a_stream(
    sites: Sites, hub_binary: str
) -> None:
    hub = sites.hub(binary=hub_binary, jetstream=True)
    site = sites.site(hub)
    site.wait_ready_link()
    nc = await nats.connect(hub.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="TELE", subjects=["tele.>"], duplicate_window=300.0))
    await apoll(
        site.subscriptions,
        lambda subs: any(s.startswith("tele.>") for s in subs),
        timeout=15,
        what="the stream's interest at the leaf",
    )
    hub.stop()
    poll(site.status, lambda s: s["connected"] is False, timeout=15, what="link down")
    site.publish([(f"tele.{i % 5}", b"%d" % i) for i in range(COUNT)])
    await nc.close()
    hub.start()
    nc = await nats.connect(hub.url)
    js = nc.jetstream()

    async def stored() -> int:
        info = await js.stream_info("TELE")
        return info.state.messages

    await apoll_async(stored, lambda n: n > 0, timeout=30, what="the replay under way")
    # Pending when the current uplink started: it sends them in seq order, so
    # the first ``sent`` of them reached the stream.
    at_start = COUNT
    for _attempt in range(20):
        store = site.store.proc
        store.send_signal(signal.SIGSTOP)
        try:
            status = await apoll(
                site.buffer, lambda b: ints(b)[0] > ints(b)[1], timeout=1.5, what="an unacked batch"
            )
        except AssertionError:
            store.send_signal(signal.SIGCONT)
            continue
        site.uplink.kill()
        site.restart_store()  # SIGKILL: the queued ack is lost
        sent_before = ints(status)[0]
        pending = site.backlog()
        assert pending > 0, "the replay finished before the kill"
        if pending > at_start - sent_before:
            break  # messages the hub confirmed are still pending: they go again
        at_start = pending
        restart_process(site.uplink)
        site.wait_uplink()
        progress = await stored()
        await apoll_async(stored, partial(operator.lt, progress), timeout=30, what="more replay")
    else:
        pytest.fail("never lost the ack of a batch the hub confirmed")
    restart_process(site.uplink)
    site.wait_uplink()
    await apoll(site.backlog, lambda n: n == 0, timeout=60, what="the backlog replayed")
    # The stream stores asynchronously after the hub's PONG; it ingests in
    # order, so once it holds COUNT any duplicate would already be in.
    await apoll_async(stored, lambda n: n >= COUNT, timeout=30, what="the stream caught up")
    info = await js.stream_info("TELE")
    assert info.state.messages == COUNT
    # The restarted uplink sent everything pending, including what the hub
    # had already confirmed (and the stream dropped as duplicates).
    assert site.buffer()["sent"] == pending
    sub = await js.pull_subscribe(
        "tele.>", durable="check", config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    payloads: list[bytes] = []
    while len(payloads) < COUNT:
        batch = await sub.fetch(min(1000, COUNT - len(payloads)), timeout=10)
        payloads += [m.data for m in batch]
    assert payloads == [b"%d" % i for i in range(COUNT)]
    await nc.close()
