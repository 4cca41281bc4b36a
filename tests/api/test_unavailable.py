"""A service that is down or hung: 503 naming it, JSON, never a traceback."""

from __future__ import annotations

import os
import signal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import ApiSite


def _unavailable(resp: httpx.Response, service: str) -> str:
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["service"] == service
    assert service in body["error"]
    assert "Traceback" not in resp.text
    error = body["error"]
    assert isinstance(error, str)
    return error


def _service_up(http: httpx.Client) -> dict[str, float]:
    resp = http.get("/metrics")
    assert resp.status_code == 200
    return {
        s.labels["service"]: s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
        if s.name == "leafnode_service_up"
    }


def test_store_down(site: ApiSite) -> None:
    assert site.store is not None
    site.store.kill()
    http = site.http()
    _unavailable(http.get("/buffer"), "store")
    _unavailable(http.get("/buffer/messages"), "store")
    _unavailable(http.delete("/buffer"), "store")
    _unavailable(http.get("/replay"), "store")
    _unavailable(http.post("/replay", json={"action": "redrive"}), "store")
    health = http.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unavailable"
    assert body["status_code"] == 503
    assert "store" in body["error"]
    assert body["services"]["store"]["status"] == "unavailable"
    assert body["services"]["router"] == {"status": "ok"}
    up = _service_up(http)
    assert up["store"] == 0.0
    assert up["router"] == 1.0
    # Monitoring from the router is unaffected.
    assert http.get("/varz").status_code == 200


def test_router_down(site: ApiSite) -> None:
    site.router.kill()
    http = site.http()
    for path in ("/varz", "/connz", "/subsz", "/accountz"):
        _unavailable(http.get(path), "router")
    health = http.get("/healthz")
    assert health.status_code == 503
    assert "router" in health.json()["error"]
    assert _service_up(http)["router"] == 0.0
    # The buffer does not need the router.
    assert http.get("/buffer").status_code == 200


def test_hung_store_times_out_as_503(site: ApiSite) -> None:
    assert site.store is not None
    os.kill(site.store.proc.pid, signal.SIGSTOP)
    try:
        error = _unavailable(site.http().get("/buffer"), "store")
        assert "no answer within" in error
    finally:
        os.kill(site.store.proc.pid, signal.SIGCONT)
