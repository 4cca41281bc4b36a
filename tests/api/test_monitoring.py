"""nats-server compatible monitoring over HTTP, against a real site with a real hub."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import ApiSite
from tests.conftest import respond_ok, until_responding


def _json_error(resp: object) -> dict[str, object]:
    import httpx

    assert isinstance(resp, httpx.Response)
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    body = resp.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str)
    assert body["error"]
    assert "Traceback" not in resp.text
    return body


def test_healthz_reports_every_service_and_remote(full_site: ApiSite) -> None:
    resp = full_site.http(token=None).get("/healthz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    assert body["services"]["router"] == {"status": "ok"}
    assert body["services"]["store"] == {"status": "ok"}
    assert body["services"]["uplink"]["status"] == "ok"
    (remote,) = body["remotes"]
    assert remote["name"] == "central"
    assert remote["account"] == "$G"
    assert remote["backlog"]["msgs"] == 0
    assert remote["connected"] is True
    assert remote["reconnects"] == 0
    assert remote["url"] == full_site.hub.leaf_url if full_site.hub else False
    assert isinstance(remote["since"], str)


def test_varz_names_the_api_port(full_site: ApiSite) -> None:
    body = full_site.http(token=None).get("/varz").json()
    assert body["http_port"] == full_site.api.port
    assert body["port"] == full_site.router.port
    assert body["leafnodes"] == 1
    for key in ("server_id", "version", "connections", "in_msgs", "out_msgs", "mem", "uptime"):
        assert key in body


@pytest.mark.asyncio
async def test_connz_subsz_accountz_options(full_site: ApiSite) -> None:
    http = full_site.http(token=None)
    nc = await nats.connect(full_site.router.url, name="api-watcher")
    try:
        await nc.subscribe("mon.>", cb=respond_ok)
        await nc.subscribe("mon.q", queue="workers")
        await until_responding(nc, "mon.ping")

        body = http.get("/connz", params={"subs": "1"}).json()
        (conn,) = [c for c in body["connections"] if c["name"] == "api-watcher"]
        assert set(conn["subscriptions_list"]) >= {"mon.>", "mon.q"}
        cid = conn["cid"]

        detail = http.get("/connz", params={"subs": "detail", "cid": cid}).json()
        (only,) = detail["connections"]
        queues = {s.get("qgroup") for s in only["subscriptions_list_detail"]}
        assert "workers" in queues

        page = http.get("/connz", params={"limit": 1, "offset": 0, "sort": "cid"}).json()
        assert page["limit"] == 1
        assert len(page["connections"]) <= 1
        assert http.get("/connz", params={"auth": "1"}).json()["connections"][0]["account"]

        subs = http.get("/subsz", params={"subs": "1", "test": "mon.x"}).json()
        assert [s["subject"] for s in subs["subscriptions_list"]] == ["mon.>"]
        assert subs["num_subscriptions"] >= 2

        assert "$G" in http.get("/accountz").json()["accounts"]
        acc = http.get("/accountz", params={"acc": "$G"}).json()["account_detail"]
        assert acc["client_connections"] >= 1
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_connz_lists_closed_connections_with_their_reason(full_site: ApiSite) -> None:
    http = full_site.http(token=None)
    nc = await nats.connect(full_site.router.url, name="api-closed")
    await nc.subscribe("mon.closed")
    deadline = time.monotonic() + 20
    while True:
        body = http.get("/connz").json()
        mine = [c for c in body["connections"] if c["name"] == "api-closed"]
        if (mine and mine[0]["subscriptions"] == 1) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    cid = mine[0]["cid"]
    await nc.close()

    while True:
        closed = http.get("/connz", params={"state": "closed", "subs": "1"}).json()
        gone = [c for c in closed["connections"] if c["cid"] == cid]
        if gone or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    (conn,) = gone
    assert conn["reason"] == "Client Closed"
    assert conn["stop"]
    assert conn["subscriptions_list"] == ["mon.closed"]
    every = http.get("/connz", params={"state": "all"}).json()
    assert cid in [c["cid"] for c in every["connections"]]
    assert cid not in [c["cid"] for c in http.get("/connz").json()["connections"]]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/connz", {"sort": "bogus"}, 400),
        ("/connz", {"limit": "abc"}, 400),
        ("/connz", {"offset": "-1"}, 400),
        ("/connz", {"subs": "maybe"}, 400),
        ("/connz", {"state": "gone"}, 400),
        ("/connz", {"sort": "stop"}, 400),
        ("/subsz", {"subs": "2"}, 400),
        ("/leafz", {"subs": "maybe"}, 400),
        ("/accountz", {"acc": "NOPE"}, 400),
        ("/nothing/here", {}, 404),
    ],
)
def test_bad_queries_get_json_errors(
    full_site: ApiSite, path: str, params: dict[str, str], status: int
) -> None:
    resp = full_site.http(token=None).get(path, params=params)
    assert resp.status_code == status, resp.text
    _json_error(resp)


def test_wrong_method_is_json_405(full_site: ApiSite) -> None:
    resp = full_site.http(token=None).post("/varz")
    assert resp.status_code == 405
    _json_error(resp)


def test_leafz_from_the_uplink(full_site: ApiSite) -> None:
    resp = full_site.http(token=None).get("/leafz", params={"subs": "1"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["leafnodes"] == 1
    (leaf,) = body["leafs"]
    assert leaf["account"] == "$G"
    assert isinstance(leaf["subscriptions_list"], list)


def test_prometheus_client_is_imported_at_the_first_scrape_only() -> None:
    # The api holds what it imports for good: a site nobody scrapes never
    # needs prometheus-client (1.3 MB; test_metrics_are_prometheus_text
    # scrapes it).
    code = "import sys, services.api.__main__; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_metrics_are_prometheus_text(full_site: ApiSite) -> None:
    resp = full_site.http(token=None).get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    assert samples[("leafnode_service_up", (("service", "router"),))] == 1.0
    assert samples[("leafnode_service_up", (("service", "store"),))] == 1.0
    assert samples[("leafnode_buffer_backlog_messages", (("remote", "central"),))] == 0.0
    assert ("leafnode_client_messages_total", (("direction", "in"),)) in samples


def test_openapi_and_docs_are_served(full_site: ApiSite) -> None:
    http = full_site.http(token=None)
    schema = http.get("/openapi.json").json()
    for path in ("/healthz", "/varz", "/connz", "/buffer", "/buffer/messages", "/replay"):
        assert path in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert http.get("/docs").status_code == 200
