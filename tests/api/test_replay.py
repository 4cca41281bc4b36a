"""The outage walk-through over the api: backlog, pause, resume, drain to the hub, redrive.

A real hub (nats-server), a real site (store, router, uplink) and the api.
The hub first has no interest in the buffered subject, so the messages wait
in the backlog, as during an outage; then a hub subscriber appears and the
drain delivers them, observed through ``/buffer`` and ``/replay``.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.aio.msg import Msg

from tests.api.conftest import SiteFactory

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

    def replay() -> dict[str, object]:
        (remote,) = http.get("/replay").json()["remotes"]
        assert isinstance(remote, dict)
        return remote

    _poll(lambda: http.get("/buffer").json()["total"]["msgs"] == COUNT, "the backlog")
    _poll(lambda: replay()["waiting_for_interest"] == COUNT, "waiting for interest")
    assert replay()["state"] == "waiting_for_interest"
    assert replay()["connected"] is True

    paused = http.post("/replay", json={"action": "pause"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["remotes"][0]["paused"] is True
    assert replay()["state"] == "paused"

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
    _poll(lambda: replay()["sent_msgs"] == COUNT, "the sent count")
    final = replay()
    assert final["eta_s"] == 0.0
    assert final["remaining_msgs"] == 0

    # The hub lost them: send the retained copies again, same ids.
    got.clear()
    done.clear()
    redrive = http.post("/replay", json={"action": "redrive", "subject": "tele.x"})
    assert redrive.status_code == 200, redrive.text
    assert redrive.json()["redriven"] == COUNT
    await asyncio.wait_for(done.wait(), 20)
    assert [m.headers["Nats-Msg-Id"] for m in got if m.headers] == ids
    await hub.close()
