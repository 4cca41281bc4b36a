"""Every buffered message is delivered or counted once; one answer per PUB (issue 11 point 4).

A real hub, store, router, uplink and api. A verbose publisher writes its
PUBs and a PING and reads the answers up to the PONG: exactly one ``+OK`` or
``-ERR 'Leafnode Buffer Full'`` per PUB, in PUB order, so it knows which
message was refused, and the PONG comes after every answer. The drop
counters (store and router, as ``/buffer`` and ``/metrics`` add them up) count
each refused message once; the hub receives exactly the accepted ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.buffer.conftest import BufferSite, HubCollector, Sites, poll, pubs
from tests.ipcclient import request_once
from tests.rawclient import RawClient
from tests.support import ApiProcess

VERBOSE = b'CONNECT {"verbose":true,"pedantic":false}\r\n'
OK = b"+OK"
FULL = b"-ERR 'Leafnode Buffer Full'"


class Publisher:
    """A verbose raw client that keeps, per published payload, its one answer."""

    def __init__(self, port: int) -> None:
        self.client = RawClient(port)
        self.client.send(VERBOSE)
        assert self.client.read_until(b"+OK\r\n") == b"+OK\r\n"
        self.answers: dict[bytes, bytes] = {}
        self._n = 0

    def items(self, count: int, size: int = 50) -> list[tuple[str, bytes]]:
        out = []
        for _ in range(count):
            out.append((f"tele.{self._n % 3}", b"%06d" % self._n + b"." * (size - 6)))
            self._n += 1
        return out

    def send(self, items: list[tuple[str, bytes]]) -> None:
        self.client.send(pubs(items) + b"PING\r\n")

    def answered(self, items: list[tuple[str, bytes]], timeout: float = 30) -> list[bytes]:
        """The answers up to the PONG: one per PUB, nothing else."""
        got = self.client.read_until(b"PONG\r\n", timeout=timeout).split(b"\r\n")
        assert got[-2:] == [b"PONG", b""], got
        answers = got[:-2]
        assert len(answers) == len(items), answers
        assert set(answers) <= {OK, FULL}, answers
        for (_, payload), answer in zip(items, answers, strict=True):
            self.answers[payload] = answer
        return answers

    def publish(self, items: list[tuple[str, bytes]]) -> list[bytes]:
        self.send(items)
        return self.answered(items)

    def refused(self) -> set[bytes]:
        return {p for p, a in self.answers.items() if a == FULL}

    def accepted(self) -> set[bytes]:
        return {p for p, a in self.answers.items() if a == OK}


@pytest.fixture
def api_for() -> Iterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for api in started:
        api.kill()


def start_api(site: BufferSite, started: list[ApiProcess]) -> httpx.Client:
    api = ApiProcess(site.conf, site.run_dir, workdir=site.base / "api")
    started.append(api)
    api.wait_ready()
    return httpx.Client(base_url=api.base_url, timeout=15)


def bufferz_of(site: BufferSite) -> dict[str, object]:
    data = request_once(site.run_dir / "router.ctl", "bufferz").fields["data"]
    assert isinstance(data, dict)
    return data


def remote_refusing(http: httpx.Client) -> bool:
    return bool(http.get("/buffer").json()["remotes"][0]["refusing_new"])


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_discard_new_refusals_answered_and_counted_once(
    sites: Sites, api_for: list[ApiProcess]
) -> None:
    hub = sites.hub()
    # No hub subscriber: nothing drains, the backlog stays at max_msgs.
    site = sites.site(hub, buffer='subjects: ["tele.>"], max_msgs: 10, discard: new')
    site.wait_ready_link()
    publisher = Publisher(site.router.port)
    items = publisher.items(22)
    # One answer per PUB, in order: 10 stored, 12 refused, then the PONG.
    assert publisher.publish(items) == [OK] * 10 + [FULL] * 12
    assert site.backlog() == 10

    http = start_api(site, api_for)
    remote = http.get("/buffer").json()["remotes"][0]
    assert remote["dropped"] == {"max_msgs": 12}
    assert remote["refusing_new"] is True
    metrics = http.get("/metrics").text
    dropped = 'leafnode_dropped_messages_total{reason="max_msgs",remote="central"}'
    assert metric(metrics, dropped) == 12.0
    assert metric(metrics, 'leafnode_buffer_refusing{remote="central"}') == 1.0
    # The drop is logged, once for the burst (rate-limited), with its reason.
    log = site.router.log_text()
    assert log.count("buffered message(s) for central: max_msgs") == 1, log


def test_fill_free_drain_every_message_delivered_or_dropped_once(
    sites: Sites, api_for: list[ApiProcess]
) -> None:
    hub = sites.hub()
    site = sites.site(
        hub, buffer='subjects: ["tele.>"], max_msgs: 10, max_bytes: 1000, discard: new'
    )
    collector = HubCollector(hub.proc.port)
    site.wait_ready_link()
    publisher = Publisher(site.router.port)

    def bufferz() -> dict[str, object]:
        return bufferz_of(site)

    # The link is up: everything goes through the backlog to the hub.
    assert publisher.publish(publisher.items(5)) == [OK] * 5
    site.wait_backlog(0)

    # Fill: no uplink, the backlog stops at max_msgs and refuses the rest.
    site.uplink.kill()
    assert publisher.publish(publisher.items(25)) == [OK] * 10 + [FULL] * 15
    # Free: the uplink drains the backlog.
    site.restart_uplink()
    site.wait_backlog(0)

    # The store is down (the router notices at its first append): router
    # memory holds max_bytes (20 x 50 bytes) and refuses the rest; every
    # answer waits for the store's decisions.
    site.store.kill()
    first = publisher.items(1)
    publisher.send(first)
    poll(
        bufferz,
        lambda b: b["store_available"] is False and b["waiting"] == 1,
        timeout=15,
        what="the router noticing the store is gone",
    )
    held = publisher.items(25)
    publisher.send(held)
    poll(
        bufferz,
        lambda b: b["waiting"] == 20,
        timeout=15,
        what="20 messages held in router memory",
    )
    with pytest.raises(AssertionError, match="not seen"):
        publisher.client.read_until(b"\r\n", timeout=0.3)
    site.restart_store()
    assert publisher.answered(first) == [OK]
    answers = publisher.answered(held)
    # The last six never fit in memory; the store decided on the others.
    assert answers[19:] == [FULL] * 6
    site.wait_backlog(0)

    published = set(publisher.answers)
    assert len(published) == 56
    refused = publisher.refused()
    poll(
        lambda: set(collector.snapshot()),
        lambda got: got >= publisher.accepted(),
        timeout=30,
        what="every accepted message at the hub",
    )
    delivered = set(collector.snapshot())
    assert delivered == publisher.accepted()
    # published = delivered + dropped, each dropped message counted once.
    http = start_api(site, api_for)
    dropped = http.get("/buffer").json()["remotes"][0]["dropped"]
    assert sum(dropped.values()) == len(refused)
    assert len(published) == len(delivered) + sum(dropped.values())
    # Refused in router memory (max_bytes bounds what waits there): 5 of the
    # 25 x 50 bytes of the fill burst, and 6 while the store was down.
    assert dropped["store_unavailable"] == 11
    assert remote_refusing(http) is False
