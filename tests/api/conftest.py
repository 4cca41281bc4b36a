"""Fixtures for the control plane: a real site (router, store, uplink, hub) and the api.

The services run as separate processes sharing one run directory, as
docker-compose runs them; the api talks to them over their sockets and the
tests talk to the api over HTTP (httpx) and to the router with nats-py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from leafnode.ipc import STORE_SOCKET
from tests.ipcclient import request_once
from tests.support import (
    ApiProcess,
    HubProcess,
    RouterProcess,
    ServiceProcess,
    UplinkProcess,
)

TOKEN = "api-token-7f3c"
_ids = itertools.count()


@dataclass
class ApiSite:
    """The processes of one site and an HTTP client for its api."""

    workdir: Path
    config_path: Path
    run_dir: Path
    router: RouterProcess
    api: ApiProcess
    store: ServiceProcess | None = None
    uplink: UplinkProcess | None = None
    hub: HubProcess | None = None
    token: str | None = TOKEN
    clients: list[httpx.Client] = field(default_factory=list)

    def http(self, *, token: str | None = "default") -> httpx.Client:
        """An httpx client for the api; ``token`` None sends no Authorization."""
        value = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {value}"} if value else {}
        client = httpx.Client(base_url=self.api.base_url, headers=headers, timeout=15)
        self.clients.append(client)
        return client

    def store_request(self, type: str, **fields: object) -> dict[str, object]:
        """One request straight to the store (as the router or uplink would send)."""
        frame = request_once(self.run_dir / STORE_SOCKET, type, (), **fields)
        assert frame.type == "ok", frame
        return frame.fields

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for proc in (self.api, self.uplink, self.router, self.store, self.hub):
            if proc is not None:
                proc.kill()


def site_config(
    workdir: Path,
    *,
    token: str | None = TOKEN,
    hub_url: str | None = None,
    buffer: str | None = 'subjects: ["tele.>"], retain: "1h"',
    extra: str = "",
) -> str:
    """A site config: api token, a SQLite store, one remote ``central``."""
    lines = [f'store {{ url: "sqlite:///{workdir}/buffer.db" }}']
    if token is not None:
        lines.append(f'api {{ token: "{token}" }}')
    if hub_url is not None:
        block = f", buffer {{ {buffer} }}" if buffer is not None else ""
        lines.append(
            'leafnodes { reconnect: "100ms", remotes: [ '
            f'{{ name: central, url: "{hub_url}"{block} }} ] }}'
        )
    lines.append(extra)
    return "\n".join(lines) + "\n"


SiteFactory = Callable[..., ApiSite]


def _start(
    workdir: Path,
    *,
    token: str | None = TOKEN,
    remote: bool = True,
    uplink: bool = False,
    buffer: str | None = 'subjects: ["tele.>"], retain: "1h"',
    extra: str = "",
    api_args: tuple[str, ...] = (),
) -> ApiSite:
    workdir.mkdir(parents=True, exist_ok=True)
    hub: HubProcess | None = None
    hub_url: str | None = None
    if uplink:
        hub = HubProcess(workdir=workdir / "hub")
        hub.wait_ready()
        hub_url = hub.leaf_url
    elif remote:
        hub_url = "nats-leaf://127.0.0.1:1"  # nobody listens: the link stays down
    text = site_config(workdir, token=token, hub_url=hub_url, buffer=buffer, extra=extra)
    config_path = workdir / "leaf.conf"
    config_path.write_text(text)
    run_dir = workdir / "run"
    store = None
    if remote and buffer is not None:
        store = ServiceProcess("store", config_path, run_dir, workdir=workdir / "store")
        store.wait_socket(STORE_SOCKET)
    # The router's workdir is the site's: it writes (and re-reads on reload)
    # the same leaf.conf as every other service.
    router = RouterProcess(text, workdir=workdir, extra_args=("--run-dir", str(run_dir)))
    router.wait_ready()
    up = None
    if uplink:
        up = UplinkProcess(config_path, run_dir, workdir=workdir / "uplink")
        up.wait_ready()
    api = ApiProcess(config_path, run_dir, workdir=workdir / "api", extra_args=api_args)
    api.wait_ready()
    return ApiSite(
        workdir=workdir,
        config_path=config_path,
        run_dir=run_dir,
        router=router,
        api=api,
        store=store,
        uplink=up,
        hub=hub,
        token=token,
    )


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[SiteFactory]:
    """Start sites for one test; everything is killed afterwards."""
    started: list[ApiSite] = []

    def start(**options: object) -> ApiSite:
        site = _start(tmp_path / f"site{next(_ids)}", **options)  # type: ignore[arg-type]
        started.append(site)
        return site

    yield start
    for site in started:
        site.stop()


@pytest.fixture(scope="module")
def full_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiSite]:
    """Router, store, uplink, a real hub and the api, shared by a module's read-only tests."""
    site = _start(tmp_path_factory.mktemp("full"), uplink=True)
    yield site
    site.stop()


@pytest.fixture
def site(site_factory: SiteFactory) -> ApiSite:
    """Router, store and api with one buffered remote whose hub is unreachable."""
    return site_factory()
