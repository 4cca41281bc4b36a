"""Fixtures for the uplink: a real hub, a real site (router + uplink), real clients.

A *site* is one ``leafnode router`` and one ``leafnode uplink`` sharing a config
file and a run directory, exactly as ``leafnode run`` would start them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from tests.conftest import until_responding
from tests.support import HubProcess, RouterProcess, UplinkProcess, restart_process

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

_ids = itertools.count()


@dataclass
class Site:
    """A router and an uplink started from the same config."""

    router: RouterProcess
    uplink: UplinkProcess
    config_path: Path

    def restart_uplink(self) -> None:
        self.uplink.stop()
        restart_process(self.uplink)

    def restart_router(self) -> None:
        self.router.stop()
        restart_process(self.router)
        self.router.wait_ready()


class HubStarter(Protocol):
    def __call__(
        self,
        config: str = "",
        *,
        leaf_config: str = "",
        binary: str | None = None,
        websocket: bool = False,
    ) -> HubProcess: ...


class SiteStarter(Protocol):
    def __call__(self, config: str, *, wait: bool = True) -> Site: ...


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[HubStarter]:
    """Start nats-server hubs with a leafnode listener; all are killed after the test."""
    started: list[HubProcess] = []

    def start(
        config: str = "",
        *,
        leaf_config: str = "",
        binary: str | None = None,
        websocket: bool = False,
    ) -> HubProcess:
        hub = HubProcess(
            config,
            leaf_config=leaf_config,
            binary=binary,
            workdir=tmp_path / f"hub{next(_ids)}",
            websocket=websocket,
        )
        started.append(hub)
        hub.wait_ready()
        return hub

    yield start
    for hub in started:
        hub.kill()


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[SiteStarter]:
    """Start sites (router + uplink); ``wait`` waits for the first hub connection."""
    started: list[Site] = []

    def start(config: str, *, wait: bool = True) -> Site:
        workdir = tmp_path / f"site{next(_ids)}"
        router = RouterProcess(config, workdir=workdir)
        router.wait_ready()
        uplink = UplinkProcess(workdir / "leaf.conf", router.run_dir, workdir=workdir / "uplink")
        site = Site(router, uplink, workdir / "leaf.conf")
        started.append(site)
        if wait:
            uplink.wait_ready()
        return site

    yield start
    for site in started:
        site.uplink.kill()
        site.router.kill()


def remote_config(*remotes: str, reconnect: str = '"100ms"', extra: str = "") -> str:
    """A site config whose ``leafnodes.remotes`` holds the given remote blocks."""
    blocks = ",\n".join(remotes)
    return f"{extra}\nleafnodes {{\n  reconnect: {reconnect}\n  remotes: [\n{blocks}\n  ]\n}}\n"


async def _answer(msg: Msg) -> None:
    await msg.respond(b"ready")


async def interest_ready(asker: NATS, answerer: NATS, name: str) -> None:
    """Wait until ``answerer``'s earlier subscriptions are known on ``asker``'s side.

    ``answerer`` subscribes a responder after its other subscriptions; interest
    crosses the link in order, so once ``asker`` gets an answer, everything
    ``answerer`` subscribed before has crossed too.
    """
    subject = f"ready.{name}.{next(_ids)}"
    await answerer.subscribe(subject, cb=_answer)
    await until_responding(asker, subject, timeout=15)
