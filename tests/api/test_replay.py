"""The outage walk-through over the api: backlog, pause, resume, drain to the hub, redrive.

A real hub (nats-server), a real site (store, router, uplink) and the api.
The hub first has no interest in the buffered subject, so the messages wait
in the backlog, as during an outage; then a hub subscriber appears and the
drain delivers them, observed through ``/buffer`` and ``/replay``.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg

from services.uplink.progress import LOG_MIN_MSGS, RATE_WINDOW_S
from tests.api.conftest import ApiSite, SiteFactory
from tests.support import wait_for_log

COUNT = 20


def _poll(condition: object, what: str, timeout: float = 15.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_backlog_pause_resume_drain_and_redrive(site_factory: SiteFactory) -> None:
    site = site_factory(uplink=True)
    assert site.hub is not None
    http = site.http()

    local = await nats.connect(site.router.url)
    for i in range(COUNT):
        await local.publish("tele.x", str(i).encode())
    await local.flush()
    await local.close()

    def replay() -> dict[str, Any]:
        (remote,) = http.get("/replay").json()["remotes"]
        assert isinstance(remote, dict)
        return remote

    _poll(lambda: http.get("/buffer").json()["total"]["msgs"] == COUNT, "the backlog")
    _poll(lambda: replay()["backlog"]["waiting_for_interest"] == COUNT, "waiting for interest")
    assert replay()["state"] == "waiting_for_interest"
    assert replay()["connected"] is True

    paused = http.post("/replay", json={"action": "pause"})
    assert paused.status_code == 200, paused.text
    # The same objects as GET /replay.
    (answer,) = paused.json()["remotes"]
    assert answer["paused"] is True
    assert answer["state"] == "paused"
    assert set(answer) == set(replay())

    hub = await nats.connect(site.hub.url)
    got: list[Msg] = []
    done = asyncio.Event()

    async def collect(msg: Msg) -> None:
        got.append(msg)
        if len(got) == COUNT:
            done.set()

    await hub.subscribe("tele.>", cb=collect)
    await hub.flush()
    resumed = http.post("/replay", json={"action": "resume", "remote": "central"})
    assert resumed.status_code == 200, resumed.text
    await asyncio.wait_for(done.wait(), 20)
    assert [m.data for m in got] == [str(i).encode() for i in range(COUNT)]
    ids = [m.headers["Nats-Msg-Id"] for m in got if m.headers]
    assert len(set(ids)) == COUNT

    _poll(lambda: http.get("/buffer").json()["total"]["msgs"] == 0, "an empty backlog")
    _poll(lambda: replay()["sent"]["msgs"] == COUNT, "the sent count")
    final = replay()
    assert final["eta_s"] == 0.0
    assert final["backlog"]["msgs"] == 0

    # The hub lost them: send the retained copies again, same ids.
    got.clear()
    done.clear()
    redrive = http.post("/replay", json={"action": "redrive", "subject": "tele.x"})
    assert redrive.status_code == 200, redrive.text
    assert redrive.json()["redriven"] == COUNT
    await asyncio.wait_for(done.wait(), 20)
    assert [m.headers["Nats-Msg-Id"] for m in got if m.headers] == ids
    await hub.close()


# A long replay (it logs), of messages whose stored size is known: subject
# "tele.x" (6 bytes) + a 5-byte payload, no reply, no headers.
BACKLOG = LOG_MIN_MSGS + 2000
SIZE = len("tele.x") + 5


def _hub_interest(site: ApiSite, subject: str) -> bool:
    leafz = site.http().get("/leafz", params={"subs": "1"}).json()
    return any(subject in (leaf.get("subscriptions_list") or []) for leaf in leafz["leafs"])


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_replay_figures_are_exact_for_a_counted_backlog(site_factory: SiteFactory) -> None:
    """Every figure of GET /replay, POST /replay, /buffer and the log lines agrees with
    the counted backlog: BACKLOG messages, BACKLOG * SIZE bytes."""
    site = site_factory(uplink=True, buffer='subjects: ["tele.>"]')
    assert site.hub is not None
    assert site.uplink is not None
    http = site.http()
    hub = await nats.connect(site.hub.url)
    got = 0
    done = asyncio.Event()

    async def count(msg: Msg) -> None:
        nonlocal got
        got += 1
        if got == BACKLOG:
            done.set()

    await hub.subscribe("tele.>", cb=count)
    await hub.flush()
    _poll(lambda: _hub_interest(site, "tele.>"), "the hub's interest at the uplink")
    paused = http.post("/replay", json={"action": "pause", "remote": "central"})
    assert paused.status_code == 200, paused.text

    local = await nats.connect(site.router.url)
    for i in range(BACKLOG):
        await local.publish("tele.x", b"%05d" % i)
    await local.flush()
    await local.close()

    def replay() -> dict[str, Any]:
        (remote,) = http.get("/replay").json()["remotes"]
        assert isinstance(remote, dict)
        return remote

    _poll(lambda: http.get("/buffer").json()["total"]["msgs"] == BACKLOG, "the backlog", 30)
    (buffered,) = http.get("/buffer").json()["remotes"]
    assert buffered["backlog"]["msgs"] == BACKLOG
    assert buffered["backlog"]["bytes"] == BACKLOG * SIZE
    before = replay()
    assert before["backlog"]["msgs"] == BACKLOG
    assert before["backlog"]["bytes"] == BACKLOG * SIZE
    assert before["sent"] == {"msgs": 0, "bytes": 0}
    assert before["state"] == "paused"
    assert before["eta_s"] is None  # nothing is being sent

    resumed = http.post("/replay", json={"action": "resume", "remote": "central"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["remotes"][0]["paused"] is False
    await asyncio.wait_for(done.wait(), 60)
    _poll(lambda: (replay()["replay"] or {}).get("ended") == "caught up", "the catch-up", 30)
    after = replay()
    run = after["replay"]
    assert isinstance(run, dict)
    assert run["backlog"] == {"msgs": BACKLOG, "bytes": BACKLOG * SIZE}
    assert run["sent"] == {"msgs": BACKLOG, "bytes": BACKLOG * SIZE}
    assert after["sent"] == {"msgs": BACKLOG, "bytes": BACKLOG * SIZE}
    assert after["backlog"]["msgs"] == 0
    assert after["backlog"]["bytes"] == 0
    assert after["eta_s"] == 0.0
    # The rate is measured from the replay's start up to now: known at once,
    # in messages and bytes of the same messages.
    started = datetime.fromisoformat(str(run["started_at"]).replace("Z", "+00:00"))
    rate = after["rate"]
    assert isinstance(rate, dict)
    if time.time() - started.timestamp() < RATE_WINDOW_S - 1:
        assert rate["msgs_s"] > 0
        assert rate["bytes_s"] == pytest.approx(rate["msgs_s"] * SIZE, rel=1e-3)

    log = wait_for_log(site.uplink, r"replay caught up")
    assert f"replaying {BACKLOG} buffered messages ({BACKLOG * SIZE} bytes)" in log
    caught = re.search(r"replay caught up: sent (\d+) messages \((\d+) bytes\)", log)
    assert caught is not None
    assert (int(caught[1]), int(caught[2])) == (BACKLOG, BACKLOG * SIZE)
    await hub.close()
