"""schemathesis against the served OpenAPI schema: no 5xx, every error JSON, no traceback.

The api runs as a process beside a real router, store, uplink and hub, so the
generated requests go all the way to the services. Examples per operation
are bounded so the whole run stays well under a minute.

One 5xx is legitimate while the uplink has no control socket: a 503 naming
the uplink from the operations that need it (``/leafz``, replay pause and
resume). Once ``uplink.ctl`` exists that allowance disappears.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from leafnode.config import Settings
from services.api.app import create_app
from tests.api.conftest import TOKEN, ApiSite, _start

MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def schema_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiSite]:
    site = _start(tmp_path_factory.mktemp("schemathesis"), uplink=True)
    yield site
    site.stop()


# The schema is the app's own document, built without any service running,
# so the operations are known when pytest collects this module; the calls go
# to the live api of ``schema_site``.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case, schema_site: ApiSite) -> None:
    response = case.call(
        base_url=schema_site.api.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    text = response.text
    assert "Traceback" not in text
    if response.status_code >= 400:
        content_type = response.headers.get("content-type") or [""]
        assert content_type[0].startswith("application/json"), text
        body = response.json()
        assert isinstance(body.get("error"), str), text
    if response.status_code >= 500:
        uplink_ctl = (schema_site.run_dir / "uplink.ctl").exists()
        allowed = response.status_code == 503 and not uplink_ctl and body.get("service") == "uplink"
        assert allowed, f"{case.method} {case.formatted_path}: {response.status_code} {text}"
