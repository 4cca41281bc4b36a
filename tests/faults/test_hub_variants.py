"""Hub configurations a site must connect to, found while building the fault proxy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support import HubProcess, SiteProcess, hub_binaries, wait_for_log

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e]


@pytest.fixture(params=sorted(hub_binaries()))
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubProcess]:
    # ``no_advertise``: a 2.15.1 hub's INFO has no ``leafnode_urls`` key at all
    # (2.9.10 still sends one), as for any hub behind a load balancer or a NAT
    # that must not be bypassed. nats-server 2.15's own leaf connects to it.
    proc = HubProcess(
        leaf_config="no_advertise: true",
        binary=hub_binaries()[request.param],
        workdir=tmp_path / "hub",
    )
    proc.wait_ready()
    yield proc
    proc.kill()


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
