"""The api token (DESIGN §7): 401 without, 403 wrong, only on /config, /buffer*, /replay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import TOKEN, ApiSite, SiteFactory, _start

GUARDED = [
    ("GET", "/config"),
    ("PUT", "/config"),
    ("POST", "/config/reload"),
    ("GET", "/buffer"),
    ("GET", "/buffer/messages"),
    ("DELETE", "/buffer"),
    ("GET", "/replay"),
    ("POST", "/replay"),
]
OPEN = ["/healthz", "/varz", "/connz", "/subsz", "/accountz", "/metrics", "/openapi.json"]


@pytest.fixture(scope="module")
def guarded_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiSite]:
    site = _start(tmp_path_factory.mktemp("auth"))
    yield site
    site.stop()


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_missing_token_is_401(guarded_site: ApiSite, method: str, path: str) -> None:
    resp = guarded_site.http(token=None).request(method, path)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert "token" in resp.json()["error"]


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_wrong_token_is_403(guarded_site: ApiSite, method: str, path: str) -> None:
    resp = guarded_site.http(token=TOKEN + "x").request(method, path)
    assert resp.status_code == 403, resp.text
    assert resp.json() == {"error": "wrong bearer token"}


def test_other_schemes_count_as_missing(guarded_site: ApiSite) -> None:
    http = guarded_site.http(token=None)
    resp = http.get("/buffer", headers={"Authorization": f"Basic {TOKEN}"})
    assert resp.status_code == 401


@pytest.mark.parametrize(("method", "path"), [("GET", "/config"), ("GET", "/buffer")])
def test_right_token_passes(guarded_site: ApiSite, method: str, path: str) -> None:
    resp = guarded_site.http().request(method, path)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("path", OPEN)
def test_monitoring_stays_open(guarded_site: ApiSite, path: str) -> None:
    # /healthz is 503 here (a remote without a running uplink), but never 401.
    assert guarded_site.http(token=None).get(path).status_code in (200, 503)


def test_no_token_configured_means_open(site_factory: SiteFactory) -> None:
    site = site_factory(token=None)
    http = site.http(token=None)
    assert http.get("/config").status_code == 200
    assert http.get("/buffer").status_code == 200
    # A token sent anyway is ignored.
    assert site.http(token="anything").get("/replay").status_code == 200
