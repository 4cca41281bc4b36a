"""Leafnode over WebSocket (``ws://``; leafnode-protocol.md §6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok, until_responding
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from tests.uplink.conftest import HubStarter, SiteStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]


@pytest.mark.parametrize("compression", [False, True])
async def test_websocket_link_both_ways(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str, compression: bool
) -> None:
    hub = hub_factory(binary=hub_binary, websocket=True)
    url = f"ws://127.0.0.1:{hub.ws_port}"
    flag = "true" if compression else "false"
    site = site_factory(remote_config(f'{{ url: "{url}", ws_compression: {flag} }}'))
    assert f"connected to ws://127.0.0.1:{hub.ws_port}" in site.uplink.log_text()
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    await hub_nc.subscribe("ws.hub", cb=respond_ok)
    await site_nc.subscribe("ws.site", cb=respond_ok)
    await until_responding(site_nc, "ws.hub", timeout=15)
    await interest_ready(hub_nc, site_nc, "site")
    big = bytes(range(256)) * 1024
    for _ in range(3):
        assert (await hub_nc.request("ws.site", big, timeout=5)).data == b"ok"
        assert (await site_nc.request("ws.hub", big, timeout=5)).data == b"ok"
    await hub_nc.close()
    await site_nc.close()
