"""Hub configurations a site must connect to, found while building the fault proxy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from leafnode.testing import HubProcess, SiteProcess, wait_for_log

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    # ``no_advertise``: the hub's INFO has no ``leafnode_urls`` (checked: nats-server
    # 2.15.1 sends client_id, nonce, ... and no leafnode_urls key at all), as
    # for any hub behind a load balancer or a NAT that must not be bypassed.
    proc = HubProcess(leaf_config="no_advertise: true", workdir=tmp_path / "hub")
    proc.wait_ready()
    yield proc
    proc.kill()


@pytest.mark.xfail(
    strict=True,
    reason=(
        "services/uplink/handshake.py refuses a hub INFO without leafnode_urls as "
        "'this is not a leafnode port'; nats-server's leafnodes { no_advertise: true } "
        "sends none, and nats-server's own leaf connects to such a hub"
    ),
)
def test_a_hub_with_no_advertise(hub: HubProcess, tmp_path: Path) -> None:
    site = SiteProcess(
        f'leafnodes {{ remotes: [ {{ name: central, url: "{hub.leaf_url}" }} ] }}\n',
        workdir=tmp_path / "site",
        extra_args=("-p", "-1"),
    )
    try:
        site.wait_ready()
        text = wait_for_log(site, r'remote "central": (connected to|error connecting)')
        assert 'remote "central": connected to' in text, text
    finally:
        site.stop()
