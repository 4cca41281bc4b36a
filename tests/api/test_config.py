"""``/config``: redacted view, validated replacement, reload of every service (DESIGN §7)."""

from __future__ import annotations

import os
import signal
import time

import nats
import nkeys
import pytest
from nats.errors import Error as NatsError

from tests.api.conftest import TOKEN, ApiSite, SiteFactory, site_config

SEED = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
SECRETS = ("alice-secret-pw", "url-secret-pw", SEED, TOKEN)
SECRET_CONFIG = f"""
authorization {{ users: [ {{ user: alice, password: "alice-secret-pw" }} ] }}
leafnodes {{ remotes: [
  {{ name: a, url: "nats-leaf://leafuser:url-secret-pw@127.0.0.1:1" }},
  {{ name: b, url: "nats-leaf://127.0.0.1:1", nkey: "{SEED}" }}
] }}
"""


def _wait_until(condition: object, what: str, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_get_config_redacts_every_secret(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False, extra=SECRET_CONFIG)
    resp = site.http().get("/config")
    assert resp.status_code == 200, resp.text
    for secret in SECRETS:
        assert secret not in resp.text
    body = resp.json()
    assert body["file"] == str(site.config_path)
    config = body["config"]
    (alice,) = config["router"]["users"]
    assert alice == {**alice, "user": "alice", "password": "[REDACTED]"}
    assert config["api"]["token"] == "[REDACTED]"
    urls = [r["urls"][0] for r in config["leafnodes"]["remotes"]]
    assert urls[0] == "nats-leaf://leafuser:[REDACTED]@127.0.0.1:1"
    assert config["leafnodes"]["remotes"][1]["nkey"] == "[REDACTED]"


def test_put_invalid_config_is_422_with_position(site: ApiSite) -> None:
    before = site.config_path.read_text()
    resp = site.http().put(
        "/config",
        content="server_name: ok\nport: [1\n",
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["line"] == 2
    assert body["column"] > 0
    assert isinstance(body["error"], str)
    assert body["error"]
    assert site.config_path.read_text() == before

    unknown = site.http().put("/config", content="no_such_option: 1\n")
    assert unknown.status_code == 422
    assert unknown.json()["line"] == 1


def test_put_rejects_non_utf8_and_oversized_bodies(site: ApiSite) -> None:
    http = site.http()
    assert http.put("/config", content=b"port: 4222 \xff\n").status_code == 422
    huge = b"# " + b"x" * (1024 * 1024) + b"\n"
    resp = http.put("/config", content=huge)
    assert resp.status_code == 413
    assert "larger" in resp.json()["error"]


@pytest.mark.asyncio
async def test_put_valid_config_is_written_and_applied(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False)
    nc = await nats.connect(site.router.url)
    await nc.close()

    text = site_config(site.workdir, extra=SECRET_CONFIG.split("leafnodes")[0])
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["reloaded"] is True, body
    assert body["services"]["router"] == {"reloaded": True}
    assert site.config_path.read_text() == text

    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(site.router.url, allow_reconnect=False, max_reconnect_attempts=0)
    nc = await nats.connect(site.router.url, user="alice", password="alice-secret-pw")
    await nc.close()


def test_reload_rereads_the_file_and_the_token(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False)
    site.config_path.write_text(site_config(site.workdir, token="second-token"))
    resp = site.http().post("/config/reload")
    assert resp.status_code == 200, resp.text
    assert resp.json()["services"]["router"]["reloaded"] is True
    assert site.http().get("/config").status_code == 403
    assert site.http(token="second-token").get("/config").status_code == 200


def test_reload_of_a_broken_file_is_422(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False)
    site.config_path.write_text("api { token: }\n")
    resp = site.http().post("/config/reload")
    assert resp.status_code == 422, resp.text
    assert resp.json()["line"] == 1
    # Nothing was applied: the old token still works.
    assert site.http().get("/config").status_code == 200


def test_sighup_makes_the_api_reread_its_settings(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False)
    site.config_path.write_text(site_config(site.workdir, token="hup-token"))
    os.kill(site.api.proc.pid, signal.SIGHUP)
    http = site.http(token="hup-token")
    _wait_until(lambda: http.get("/config").status_code == 200, "the new token")
    assert "Reloaded the api configuration" in site.api.log_text()
