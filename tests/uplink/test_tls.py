"""TLS to the hub (leafnode-protocol.md §6) with a CA made by the fixture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok, until_responding
from tests.support import free_port, hub_binaries, make_tls_files, wait_for_log
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from tests.support import HubProcess, TlsFiles
    from tests.uplink.conftest import HubStarter, Site, SiteStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

LATEST = hub_binaries().get("latest")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("ca"))


def hub_tls(files: TlsFiles, extra: str = "") -> str:
    return f'tls {{ cert_file: "{files.server_cert}", key_file: "{files.server_key}"\n{extra}\n}}'


async def assert_both_ways(hub: HubProcess, site: Site) -> None:
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    await hub_nc.subscribe("tls.hub", cb=respond_ok)
    await site_nc.subscribe("tls.site", cb=respond_ok)
    await until_responding(site_nc, "tls.hub", timeout=15)
    await interest_ready(hub_nc, site_nc, "site")
    assert (await hub_nc.request("tls.site", b"", timeout=5)).data == b"ok"
    await hub_nc.close()
    await site_nc.close()


async def test_tls_with_the_fixture_ca(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str, tls_files: TlsFiles
) -> None:
    hub = hub_factory(binary=hub_binary, leaf_config=hub_tls(tls_files))
    url = f"tls://127.0.0.1:{hub.leaf_port}"
    site = site_factory(
        remote_config(f'{{ url: "{url}", tls {{ ca_file: "{tls_files.ca_cert}" }} }}')
    )
    await assert_both_ways(hub, site)


async def test_hub_requiring_tls_is_followed_without_a_tls_block(
    hub_factory: HubStarter, site_factory: SiteStarter, tls_files: TlsFiles
) -> None:
    # The INFO says tls_required: we upgrade, verifying against the system
    # roots, which do not know the fixture CA: a clear error, then retries.
    hub = hub_factory(leaf_config=hub_tls(tls_files))
    site = site_factory(remote_config(f'{{ name: plain, url: "{hub.leaf_url}" }}'), wait=False)
    wait_for_log(site.uplink, r'remote "plain".*TLS handshake failed.*certificate verify failed')


async def test_mutual_tls_with_a_client_certificate(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str, tls_files: TlsFiles
) -> None:
    verify = f'ca_file: "{tls_files.ca_cert}"\nverify: true'
    hub = hub_factory(binary=hub_binary, leaf_config=hub_tls(tls_files, verify))
    remote_tls = (
        f'tls {{ ca_file: "{tls_files.ca_cert}", cert_file: "{tls_files.client_cert}", '
        f'key_file: "{tls_files.client_key}" }}'
    )
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}", {remote_tls} }}'))
    await assert_both_ways(hub, site)


@pytest.mark.skipif(LATEST is None, reason="handshake_first needs nats-server 2.10+")
async def test_tls_handshake_first(
    hub_factory: HubStarter, site_factory: SiteStarter, tls_files: TlsFiles
) -> None:
    hub = hub_factory(binary=LATEST, leaf_config=hub_tls(tls_files, "handshake_first: true"))
    remote_tls = f'tls {{ ca_file: "{tls_files.ca_cert}", handshake_first: true }}'
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}", {remote_tls} }}'))
    await assert_both_ways(hub, site)


async def test_secure_websocket(
    hub_factory: HubStarter, site_factory: SiteStarter, tls_files: TlsFiles
) -> None:
    ws_port = free_port()
    websocket = f"websocket {{\n  listen: 127.0.0.1:{ws_port}\n  {hub_tls(tls_files)}\n}}\n"
    hub = hub_factory(websocket)
    url = f"wss://127.0.0.1:{ws_port}"
    site = site_factory(
        remote_config(f'{{ url: "{url}", tls {{ ca_file: "{tls_files.ca_cert}" }} }}')
    )
    await assert_both_ways(hub, site)
