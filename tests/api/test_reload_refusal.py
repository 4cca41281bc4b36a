"""A reload applies what can change at run time, or nothing (issue 11 points 2 and 3).

As nats-server: a config that changes a key needing a restart is refused as
a whole (409 naming each key with old and new value, a log line per key),
the running config stays and ``GET /config`` shows it. Keys that reload take
effect. ``[REDACTED]`` sent back keeps the running secret.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import nats
import pytest
from nats.errors import Error as NatsError

from tests.api.conftest import TOKEN, ApiSite, SiteFactory, site_config
from tests.conftest import until
from tests.ipcclient import request_once

USERS = 'authorization { users: [ { user: alice, password: "alice-secret-pw" } ] }'


def _site_text(site: ApiSite, **options: object) -> str:
    return site_config(site.workdir, hub_url="nats-leaf://127.0.0.1:1", **options)  # type: ignore[arg-type]


async def _connects(url: str, **auth: str) -> bool:
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, **auth)
    except NatsError:
        return False
    await nc.close()
    return True


@pytest.mark.asyncio
async def test_put_that_changes_a_restart_key_is_409_and_applies_nothing(
    site_factory: SiteFactory,
) -> None:
    site = site_factory()
    before = site.config_path.read_text()
    text = _site_text(site, token="new-token", extra=f"port: 14999\nserver_name: other\n{USERS}")
    text = text.replace("buffer.db", "elsewhere.db")
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 409, resp.text
    body = resp.json()
    refused = {c["key"]: (c["old"], c["new"]) for c in body["restart_needed"]}
    assert set(refused) == {"port", "server_name", "store.url"}
    assert refused["port"] == ("4222", "14999")
    assert refused["store.url"] == (
        f"sqlite:///{site.workdir}/buffer.db",
        f"sqlite:///{site.workdir}/elsewhere.db",
    )
    assert "restart" in body["error"]
    # Nothing applied: the file, the token, the users, the store all as before.
    assert site.config_path.read_text() == before
    config = site.http().get("/config")
    assert config.status_code == 200
    assert config.json()["config"]["store"]["url"] == f"sqlite:///{site.workdir}/buffer.db"
    assert site.http(token="new-token").get("/config").status_code == 403
    assert await _connects(site.router.url)
    assert "config reload not supported for port: old=4222, new=14999" in site.api.log_text()


def test_reload_of_a_file_with_a_restart_key_is_409_and_config_shows_what_runs(
    site_factory: SiteFactory,
) -> None:
    site = site_factory()
    text = _site_text(site, token="new-token").replace("buffer.db", "elsewhere.db")
    site.config_path.write_text(text)
    resp = site.http().post("/config/reload")
    assert resp.status_code == 409, resp.text
    assert [c["key"] for c in resp.json()["restart_needed"]] == ["store.url"]
    # The file says elsewhere.db; the store still runs on buffer.db, and so says /config.
    config = site.http().get("/config").json()
    assert config["config"]["store"]["url"] == f"sqlite:///{site.workdir}/buffer.db"
    assert site.http(token="new-token").get("/config").status_code == 403


@pytest.mark.asyncio
async def test_sighup_with_a_restart_key_leaves_each_service_as_it_was(
    site_factory: SiteFactory,
) -> None:
    """docker-compose: each service reloads itself, and refuses the same file."""
    site = site_factory()
    assert site.store is not None
    text = _site_text(site, token="new-token", extra=f"server_name: other\n{USERS}")
    site.config_path.write_text(text.replace("buffer.db", "elsewhere.db"))
    for proc in (site.router, site.store, site.api):
        os.kill(proc.proc.pid, signal.SIGHUP)
    line = "config reload not supported for server_name: old=none, new=other"
    for proc in (site.router, site.store, site.api):
        until(lambda p=proc: line in p.log_text(), f"{proc} to refuse", 20.0)  # type: ignore[misc]
    assert "config reload not supported for store.url" in site.store.log_text()
    # The users were not applied with the rest.
    assert await _connects(site.router.url)
    assert site.http().get("/config").status_code == 200
    # And the store's reload request answers with the refusal.
    answer = site.store_request("reload")
    assert answer["reloaded"] is False
    assert "store.url" in str(answer["error"])


@pytest.mark.asyncio
async def test_reloadable_router_settings_take_effect(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False)
    limits = {
        "max_payload": ("2MB", 2 * 1024 * 1024),
        "max_control_line": ("8192", 8192),
        "max_pending": ("32MB", 32 * 1024 * 1024),
        "max_connections": ("500", 500),
        "max_subscriptions": ("7", 7),
        "ping_interval": ('"30s"', 30 * 10**9),
        "ping_max": ("4", 4),
        "write_deadline": ('"3s"', 3 * 10**9),
        "lame_duck_duration": ('"40s"', 40 * 10**9),
        "lame_duck_grace_period": ('"4s"', 4 * 10**9),
    }
    extra = "\n".join(f"{key}: {text}" for key, (text, _) in limits.items())
    extra += '\nauthorization { timeout: 3 }\ndata_path_cpu: off\nleafnodes { reconnect: "7s" }'
    text = site_config(site.workdir, extra=extra)
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reloaded"] is True
    varz = site.http().get("/varz").json()
    assert {key: varz[key] for key in limits} == {key: want for key, (_, want) in limits.items()}
    assert varz["auth_timeout"] == 3
    config = site.http().get("/config").json()["config"]
    assert config["data_path_cpu"] == "off"
    assert config["leafnodes"]["reconnect_s"] == 7.0
    nc = await nats.connect(site.router.url)
    try:
        assert nc.max_payload == 2 * 1024 * 1024
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_put_that_sends_redacted_back_keeps_the_secrets(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False, extra=USERS)
    shown = site.http().get("/config").json()["config"]
    assert shown["router"]["users"][0]["password"] == "[REDACTED]"
    # The client edits the running config: secrets as GET /config shows them.
    text = site_config(
        site.workdir, token="[REDACTED]", extra=USERS.replace("alice-secret-pw", "[REDACTED]")
    )
    text += "max_payload: 2MB\n"
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    assert "alice-secret-pw" not in resp.text
    on_disk = site.config_path.read_text()
    assert "[REDACTED]" not in on_disk
    assert "alice-secret-pw" in on_disk
    assert f'token: "{TOKEN}"' in on_disk
    assert site.http().get("/config").status_code == 200
    assert await _connects(site.router.url, user="alice", password="alice-secret-pw")
    assert not await _connects(site.router.url, user="alice", password="[REDACTED]")
    assert site.http().get("/varz").json()["max_payload"] == 2 * 1024 * 1024


def test_put_with_redacted_where_no_secret_runs_is_422(site_factory: SiteFactory) -> None:
    site = site_factory(remote=False, extra=USERS)
    before = site.config_path.read_text()
    extra = 'authorization { users: [ { user: carol, password: "[REDACTED]" } ] }'
    text = site_config(site.workdir, extra=extra)
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["line"] == text.splitlines().index(extra) + 1
    assert "alice-secret-pw" not in resp.text
    assert site.config_path.read_text() == before


def test_varz_shows_remote_urls_as_host_port(site_factory: SiteFactory) -> None:
    url = "nats-leaf://leafuser:url-secret-pw@127.0.0.1:1"
    extra = f'leafnodes {{ remotes: [ {{ name: a, url: "{url}" }} ] }}'
    site = site_factory(remote=False, extra=extra)
    resp = site.http().get("/varz")
    assert resp.status_code == 200, resp.text
    assert "url-secret-pw" not in resp.text
    assert "leafuser" not in resp.text
    (remote,) = resp.json()["leaf"]["remotes"]
    assert remote["urls"] == ["127.0.0.1:1"]


@pytest.mark.asyncio
async def test_reloaded_accounts_permissions_and_no_auth_user_take_effect(
    site_factory: SiteFactory,
) -> None:
    site = site_factory(remote=False)
    extra = """
accounts {
  A: { users: [ { user: a, password: apw, permissions: { publish: { deny: ["forbidden.>"] } } } ] }
  B: { users: [ { user: b, password: bpw } ] }
}
no_auth_user: a
"""
    text = site_config(site.workdir, extra=extra)
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    # No credentials: the no_auth_user, in account A, with its permissions.
    anon = await nats.connect(site.router.url, error_cb=on_error)
    b = await nats.connect(site.router.url, user="b", password="bpw")
    same = await nats.connect(site.router.url, user="a", password="apw")
    try:
        got_a = await same.subscribe("hello")
        got_b = await b.subscribe("hello")
        await same.flush()
        await b.flush()
        await anon.publish("hello", b"from a")
        msg = await got_a.next_msg(timeout=10)
        assert msg.data == b"from a"
        # Account B got nothing of it: its first message is its own, sent after.
        await b.publish("hello", b"from b")
        assert (await got_b.next_msg(timeout=10)).data == b"from b"
        await anon.publish("forbidden.x", b"no")
        deadline = time.monotonic() + 20
        while not any("permissions violation" in str(e).lower() for e in errors):
            assert time.monotonic() < deadline, "timed out waiting for the violation"
            await asyncio.sleep(0.02)
    finally:
        for nc in (anon, b, same):
            await nc.close()


@pytest.mark.asyncio
async def test_a_file_one_service_refuses_is_applied_by_none(site_factory: SiteFactory) -> None:
    """Without a supervisor: nobody can use the creds file (the config check
    or the uplink says so), so the router does not take the new users either
    and the file on disk stays as it was."""
    site = site_factory(uplink=True)
    before = site.config_path.read_text()
    bad_creds = site.workdir / "bad.creds"
    bad_creds.write_text("not a creds file\n")
    assert site.hub is not None
    text = site_config(site.workdir, hub_url=site.hub.leaf_url, extra=USERS)
    text = text.replace(
        " ] }\n",
        f', {{ name: other, url: "nats-leaf://127.0.0.1:1", credentials: "{bad_creds}" }} ] }}\n',
        1,
    )
    resp = site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 422, resp.text
    assert "no user JWT" in resp.json()["error"]
    assert site.config_path.read_text() == before
    assert await _connects(site.router.url)  # the users were not applied
    names = [r["name"] for r in site.http().get("/config").json()["config"]["leafnodes"]["remotes"]]
    assert names == ["central"]


@pytest.mark.asyncio
async def test_reload_check_validates_without_applying(site_factory: SiteFactory) -> None:
    """``reload {check: true}``: what the supervisor and the api ask every service
    before they reload any; a file that would apply is not applied by the check."""
    site = site_factory()
    site.config_path.write_text(_site_text(site, extra=USERS))
    for socket_name in ("router.ctl", "store.sock"):
        answer = request_once(site.run_dir / socket_name, "reload", check=True)
        assert answer.type == "ok", answer
        assert "error" not in answer.fields
    assert await _connects(site.router.url)  # the users are not applied by a check
    site.config_path.write_text(_site_text(site, extra="server_name: other"))
    refused = request_once(site.run_dir / "router.ctl", "reload", check=True)
    assert "server_name" in str(refused.fields["error"])
    site.config_path.write_text(_site_text(site, extra=USERS))
    applied = request_once(site.run_dir / "router.ctl", "reload")
    assert applied.fields["reloaded"] is True
    assert not await _connects(site.router.url)
