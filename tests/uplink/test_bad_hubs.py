"""Hubs that misbehave: a clear log line naming the remote, back-off, no crash.

A tiny asyncio TCP server plays the broken hub; the site (router + uplink) is
real. In every case the uplink keeps retrying and local traffic is untouched.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok, until_responding
from tests.support import wait_for_log
from tests.uplink.conftest import remote_config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tests.uplink.conftest import HubStarter, Site, SiteStarter

    Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

HUB_INFO = {
    "server_id": "NFAKEHUB",
    "server_name": "fake",
    "version": "2.15.1",
    "proto": 3,
    "headers": True,
    "auth_required": True,
    "max_payload": 1048576,
    "client_id": 7,
    "nonce": "c3hDFlKnZeI38aI",
    "info_on_connect": True,
    "leafnode_urls": [],
}


def info_line(**extra: object) -> bytes:
    return b"INFO " + json.dumps({**HUB_INFO, **extra}).encode() + b" \r\n"


class FakeHub:
    """Accepts TCP connections and runs ``behaviour`` on each."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self.behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # The uplink gave up on us: exactly what is being tested.
        finally:
            writer.close()

    async def __aenter__(self) -> FakeHub:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await reader.read(1024)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1024)


async def closes_after_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(info_line())
    line = await reader.readline()
    assert line.startswith(b"CONNECT {")


async def loop_error(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(info_line())
    await reader.readline()
    writer.write(
        b'-ERR \'Loop detected for leafnode account="$G". '
        b"Delaying attempt to reconnect for 30s'\r\n"
    )
    await writer.drain()


async def never_pongs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(info_line())
    await reader.readline()
    writer.write(info_line(connect_info=True, remote_account="$G"))
    await writer.drain()
    while await reader.readline():
        pass  # Reads the PINGs and never answers.


async def first_site(site_factory: SiteStarter, port: int, name: str, extra: str = "") -> Site:
    url = f"nats-leaf://127.0.0.1:{port}"
    return site_factory(remote_config(f'{{ name: {name}, url: "{url}" }}', extra=extra), wait=False)


async def assert_local_traffic(site: Site) -> None:
    nc = await nats.connect(site.router.url)
    await nc.subscribe("local.svc", cb=respond_ok)
    await until_responding(nc, "local.svc")
    await nc.close()
    assert site.uplink.proc.poll() is None


async def test_garbage_instead_of_info(site_factory: SiteStarter) -> None:
    async with FakeHub(garbage) as hub:
        site = await first_site(site_factory, hub.port, "junk")
        await asyncio.to_thread(
            wait_for_log, site.uplink, r'remote "junk".*invalid data from the hub', count=2
        )
        await assert_local_traffic(site)


async def test_hub_that_never_sends_info(site_factory: SiteStarter) -> None:
    async with FakeHub(silent) as hub:
        site = await first_site(site_factory, hub.port, "mute")
        await asyncio.to_thread(
            wait_for_log, site.uplink, r'remote "mute".*no INFO from the hub within 1s', count=2
        )
        await assert_local_traffic(site)


async def test_hub_closing_mid_handshake(site_factory: SiteStarter) -> None:
    async with FakeHub(closes_after_connect) as hub:
        site = await first_site(site_factory, hub.port, "flaky")
        await asyncio.to_thread(
            wait_for_log,
            site.uplink,
            r'remote "flaky".*connection closed by the hub while waiting for connect_info',
            count=2,
        )
        await assert_local_traffic(site)


async def test_loop_error_backs_off_30s(site_factory: SiteStarter) -> None:
    async with FakeHub(loop_error) as hub:
        site = await first_site(site_factory, hub.port, "loopy")
        text = await asyncio.to_thread(
            wait_for_log, site.uplink, r'remote "loopy".*Loop detected.*retrying in 30\.0s'
        )
        assert hub.connections == 1, text
        await assert_local_traffic(site)


async def test_stale_hub_is_dropped(site_factory: SiteStarter) -> None:
    async with FakeHub(never_pongs) as hub:
        site = await first_site(site_factory, hub.port, "stale", extra='ping_interval: "200ms"')
        await asyncio.to_thread(
            wait_for_log, site.uplink, r'remote "stale".*Stale Leaf Node Connection', count=2
        )
        await assert_local_traffic(site)


async def test_client_port_is_not_a_leafnode_port(
    site_factory: SiteStarter, hub_factory: HubStarter
) -> None:
    hub = hub_factory()
    site = await first_site(site_factory, hub.port, "wrongport")
    await asyncio.to_thread(
        wait_for_log, site.uplink, r'remote "wrongport".*not a leafnode port', count=2
    )
    await assert_local_traffic(site)


async def test_nothing_listening(site_factory: SiteStarter, hub_factory: HubStarter) -> None:
    from tests.support import free_port

    site = await first_site(site_factory, free_port(), "down")
    await asyncio.to_thread(
        wait_for_log, site.uplink, r'remote "down".*cannot connect: .*refused', count=2
    )
    await assert_local_traffic(site)
