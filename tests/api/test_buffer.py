"""``/buffer``, ``/buffer/messages``, ``DELETE /buffer`` and ``/replay`` over a real store.

Messages are published with nats-py to the real router, which stores them
(the hub is unreachable, so they stay in the backlog); acks are sent to the
store directly, as the uplink sends them after the hub's PONG.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import nats
import pytest
import pytest_asyncio

from tests.api.conftest import ApiSite, SiteFactory


def _backlog(site: ApiSite) -> int:
    body = site.http().get("/buffer").json()
    msgs = body["total"]["msgs"]
    assert isinstance(msgs, int)
    return msgs


def _wait_backlog(site: ApiSite, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _backlog(site)) != count:
        assert time.monotonic() < deadline, f"backlog stayed at {seen}, expected {count}"
        time.sleep(0.02)


async def _publish(site: ApiSite, subject: str, count: int) -> None:
    nc = await nats.connect(site.router.url)
    try:
        for i in range(count):
            headers = {"X-Seq": str(i)}
            if subject == "tele.b" and i == 0:
                headers["Nats-Msg-Id"] = "client-chosen"
            await nc.publish(subject, f"{subject}-{i}".encode(), headers=headers)
        await nc.flush()
    finally:
        await nc.close()


@pytest_asyncio.fixture
async def filled(site: ApiSite) -> ApiSite:
    """The site with 5 messages on tele.a then 3 on tele.b in the backlog."""
    await _publish(site, "tele.a", 5)
    await _publish(site, "tele.b", 3)
    _wait_backlog(site, 8)
    return site


@pytest.mark.asyncio
async def test_buffer_shows_the_backlog_per_remote(filled: ApiSite) -> None:
    body = filled.http().get("/buffer").json()
    (remote,) = body["remotes"]
    assert remote["name"] == "central"
    assert remote["account"] == "$G"
    assert remote["urls"] == ["nats-leaf://127.0.0.1:1"]
    assert remote["backlog"]["msgs"] == 8
    assert remote["backlog"]["bytes"] > 0
    assert remote["backlog"]["oldest_age_s"] >= 0
    assert remote["connected"] is None  # no uplink answers: unknown, not guessed
    assert body["total"] == {"msgs": 8, "bytes": remote["backlog"]["bytes"]}


@pytest.mark.asyncio
async def test_messages_filters_and_paging(filled: ApiSite) -> None:
    http = filled.http()
    page = http.get("/buffer/messages").json()
    assert [m["subject"] for m in page["messages"]] == ["tele.a"] * 5 + ["tele.b"] * 3
    first = page["messages"][0]
    assert base64.b64decode(first["payload"]) == b"tele.a-0"
    assert "X-Seq: 0" in first["headers"]
    assert first["msg_id"].endswith(f"-{first['seq']}")
    assert first["acked_at"] is None
    datetime.fromisoformat(first["received_at"])

    only_b = http.get("/buffer/messages", params={"subject": "tele.b"}).json()
    assert len(only_b["messages"]) == 3
    assert only_b["messages"][0]["msg_id"] == "client-chosen"
    assert http.get("/buffer/messages", params={"remote": "other"}).status_code == 404

    seqs = []
    after = 0
    while True:
        part = http.get("/buffer/messages", params={"limit": 3, "after": after}).json()
        seqs += [m["seq"] for m in part["messages"]]
        after = part["next"]
        if not part["more"]:
            break
    assert seqs == [m["seq"] for m in page["messages"]]

    assert len(http.get("/buffer/messages", params={"since": "1h"}).json()["messages"]) == 8
    assert http.get("/buffer/messages", params={"until": "1h"}).json()["messages"] == []
    before = datetime(2000, 1, 1, tzinfo=UTC).isoformat()
    assert http.get("/buffer/messages", params={"until": before}).json()["messages"] == []
    assert len(http.get("/buffer/messages", params={"since": "0"}).json()["messages"]) == 8


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "12 parsecs"},
        {"subject": "bad subject"},
        {"subject": "a..b"},
        {"limit": "0"},
        {"limit": "100000"},
        {"after": "-1"},
        {"retained": "perhaps"},
    ],
)
def test_bad_filters_are_400(site: ApiSite, params: dict[str, str]) -> None:
    resp = site.http().get("/buffer/messages", params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]


@pytest.mark.asyncio
async def test_delete_purges_by_filter_and_counts_drops(filled: ApiSite) -> None:
    http = filled.http()
    resp = http.delete("/buffer", params={"subject": "tele.b"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"purged": 3}
    body = http.get("/buffer").json()
    assert body["remotes"][0]["backlog"]["msgs"] == 5
    assert body["remotes"][0]["dropped"]["purged"] == 3
    assert http.delete("/buffer", params={"until": "2000-01-01T00:00:00Z"}).json() == {"purged": 0}
    assert http.delete("/buffer").json() == {"purged": 5}
    assert _backlog(filled) == 0


@pytest.mark.asyncio
async def test_redrive_sends_retained_messages_again(filled: ApiSite) -> None:
    http = filled.http()
    last = http.get("/buffer/messages").json()["messages"][-1]["seq"]
    filled.store_request("ack", remote="central", upto=last)
    assert _backlog(filled) == 0
    retained = http.get("/buffer/messages", params={"retained": "true"}).json()["messages"]
    assert len(retained) == 8
    assert all(m["acked_at"] for m in retained)

    resp = http.post(
        "/replay", json={"action": "redrive", "remote": "central", "subject": "tele.a"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"action": "redrive", "redriven": 5, "remotes": {"central": 5}}
    assert _backlog(filled) == 5
    everything = http.post("/replay", json={"action": "redrive", "since": "1h"}).json()
    assert everything["redriven"] == 3
    assert _backlog(filled) == 8

    missing = http.post("/replay", json={"action": "redrive", "remote": "nowhere"})
    assert missing.status_code == 404
    assert missing.json()["remote"] == "nowhere"


@pytest.mark.asyncio
async def test_replay_progress_and_control(filled: ApiSite) -> None:
    http = filled.http()
    body = http.get("/replay").json()
    (remote,) = body["remotes"]
    assert remote["name"] == "central"
    # The same backlog object as /buffer's, in the same words.
    (buffered,) = http.get("/buffer").json()["remotes"]
    assert set(remote["backlog"]) == set(buffered["backlog"])
    for key in ("msgs", "bytes", "waiting_for_interest"):
        assert remote["backlog"][key] == buffered["backlog"][key]
    assert remote["backlog"]["msgs"] == 8
    assert remote["state"] == "unknown"  # no uplink is running
    assert remote["sent"] is None
    assert remote["rate"] is None
    assert remote["replay"] is None
    resp = http.post("/replay", json={"action": "pause"})
    assert resp.status_code == 503
    assert resp.json()["service"] == "uplink"
    assert "uplink" in resp.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": "rewind"},
        {"action": "pause", "extra": 1},
        {"action": "redrive", "since": "soon"},
        {"action": "redrive", "subject": "bad subject"},
    ],
)
def test_bad_replay_bodies(site: ApiSite, body: dict[str, object]) -> None:
    resp = site.http().post("/replay", json=body)
    assert resp.status_code in (400, 422), resp.text
    assert resp.json()["error"]


def test_without_buffered_remotes_the_buffer_is_empty(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False)
    http = site.http()
    assert http.get("/buffer").json() == {
        "remotes": [],
        "total": {"msgs": 0, "bytes": 0},
        "database": {"up": None, "error": None},
    }
    assert http.get("/buffer/messages").json() == {"messages": [], "next": 0, "more": False}
    assert http.delete("/buffer").json() == {"purged": 0}
    assert http.get("/replay").json() == {"remotes": []}


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/buffer/messages?remote=nowhere", None),
        ("GET", "/buffer/messages?remote=nowhere&retained=true", None),
        ("DELETE", "/buffer?remote=nowhere", None),
        ("POST", "/replay", {"action": "pause", "remote": "nowhere"}),
        ("POST", "/replay", {"action": "resume", "remote": "nowhere"}),
        ("POST", "/replay", {"action": "redrive", "remote": "nowhere"}),
    ],
)
def test_an_unknown_remote_is_404_with_a_reason_everywhere(
    filled: ApiSite, method: str, url: str, body: dict[str, object] | None
) -> None:
    http = filled.http()
    resp = http.request(method, url, json=body)
    assert resp.status_code == 404, resp.text
    answer = resp.json()
    assert answer["remote"] == "nowhere"
    assert answer["error"] == "no buffered remote named 'nowhere' (buffered remotes: central)"
    assert _backlog(filled) == 8  # nothing was purged
    # The known name is served (pause/resume: 503, no uplink runs here).
    known = url.replace("nowhere", "central")
    named = {**body, "remote": "central"} if body is not None else None
    assert http.request(method, known, json=named).status_code in (200, 503)


def test_a_remote_without_buffer_is_404_with_a_reason(site_factory: SiteFactory) -> None:
    site = site_factory(
        extra='leafnodes { remotes: [ { name: plain, url: "nats-leaf://127.0.0.1:1" } ] }',
        remote=False,
    )
    http = site.http()
    for resp in (
        http.get("/buffer/messages", params={"remote": "plain"}),
        http.delete("/buffer", params={"remote": "plain"}),
        http.post("/replay", json={"action": "pause", "remote": "plain"}),
    ):
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"] == "remote 'plain' has no buffer"
