"""``/`` lists the endpoints (as nats-server's home page) and ``/docs`` works offline.

A real api process (uvicorn) beside a router; no remote, so nothing else runs.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest

from tests.api.conftest import ApiSite, SiteFactory

# src="..." / href="..." attributes, and Swagger UI's `url: '...'` (the schema).
_REFS = re.compile(r"""(?:src|href)=["']?([^"' >]+)|\burl:\s*['"]([^'"]+)['"]""")


def _refs(text: str) -> list[str]:
    return [a or b for a, b in _REFS.findall(text)]


@pytest.fixture
def bare(site_factory: SiteFactory) -> ApiSite:
    return site_factory(remote=False)


def test_docs_reference_only_local_assets_and_each_answers(bare: ApiSite) -> None:
    http = bare.http()
    page = http.get("/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    refs = _refs(page.text)
    assert len(refs) >= 4, refs  # css, favicon, js, openapi.json
    for ref in refs:
        parts = urlsplit(ref)
        assert not parts.scheme, f"/docs loads {ref} from elsewhere"
        assert not parts.netloc, f"/docs loads {ref} from elsewhere"
        asset = http.get(urljoin(f"{bare.api.base_url}/docs", ref))
        assert asset.status_code == 200, ref
        assert asset.content, ref
    js = http.get("/docs/static/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in js.text
    assert "javascript" in js.headers["content-type"]
    assert http.get("/docs/static/nothing-here.js").status_code == 404


def test_home_page_links_every_endpoint(bare: ApiSite) -> None:
    http = bare.http()
    page = http.get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    links = set(_refs(page.text))
    # Relative links, as nats-server's page has them: they work behind a prefix.
    for path in ("varz", "connz", "subsz", "accountz", "leafz", "healthz", "metrics", "docs"):
        assert f"./{path}" in links, path
    for path in ("buffer", "buffer/messages", "replay", "config", "config/reload"):
        assert f"./{path}" in links, path
    schema_paths = set(http.get("/openapi.json").json()["paths"])
    assert {link.removeprefix(".") for link in links} >= schema_paths
    for link in links:
        assert not urlsplit(link).netloc, link
        answer = http.get(urljoin(f"{bare.api.base_url}/", link))
        # Every link leads somewhere (405: a POST-only endpoint such as /config/reload).
        assert answer.status_code != 404, (link, answer.text)


def test_home_answers_json_when_asked(bare: ApiSite) -> None:
    http = bare.http(token=None)
    answer = http.get("/", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    body = answer.json()
    entries = {e["path"]: e for e in body["endpoints"]}
    assert entries["/varz"]["methods"] == ["GET"]
    assert entries["/varz"]["token"] is False
    assert entries["/replay"]["methods"] == ["GET", "POST"]
    assert entries["/replay"]["token"] is True
    assert sorted(entries["/buffer"]["methods"]) == ["DELETE", "GET"]
    assert entries["/healthz"]["summary"]
