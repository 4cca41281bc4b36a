"""docker-compose.cluster.yml without a container engine (issue 14 point 6).

As tests/e2e/test_compose.py does for the single-node file: ``docker-compose
config`` validates it, the config it writes is valid for each node, and its
services run as local processes with their own command lines and
environments (named volumes as temp dirs). The ``postgres`` service is this
test's throwaway PostgreSQL (``pg_cluster``) and the hub a local nats-server
with JetStream, named by ``LEAFNODE_HUB_URL`` as a user would.

End to end: the three nodes come up on one database; with the hub down a
client publishes on node2 (flushed: committed), node2 is killed with SIGKILL
(every process), the hub comes back, and a surviving node drains node2's
backlog into the hub's stream after ``LEAFNODE_TAKEOVER_AFTER``: everything,
once, in order.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest
import yaml
from nats.js.api import StreamConfig

from leafnode.compose import render
from leafnode.config import loads
from tests.buffer.conftest import QUIET, Hub, apoll_async, pubs
from tests.e2e.test_compose import (
    REPO,
    LocalService,
    _env_dict,
    _start_order,
    _wait,
    bin_dir,  # noqa: F401 - a fixture used here
    interpolate,
    local_services,
)
from tests.rawclient import RawClient
from tests.support import free_port, site_processes

if TYPE_CHECKING:
    from tests.support import PgCluster

COMPOSE = REPO / "docker-compose.cluster.yml"
TOKEN = "cluster-token-3b1d"
NODES = ("node1", "node2", "node3")


def load_cluster_compose(env: dict[str, str]) -> dict[str, object]:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(raw, dict)
    result = interpolate(raw, env)
    assert isinstance(result, dict)
    return result


def _env(hub_url: str = "nats-leaf://hub.example.com:7422") -> dict[str, str]:
    return {"LEAFNODE_API_TOKEN": TOKEN, "LEAFNODE_HUB_URL": hub_url}


@pytest.mark.parametrize("missing", ["LEAFNODE_API_TOKEN", "LEAFNODE_HUB_URL"])
def test_the_token_and_the_hub_url_are_required(missing: str) -> None:
    env = _env()
    del env[missing]
    with pytest.raises(KeyError, match=missing):
        load_cluster_compose(env)


def test_docker_compose_config_validates() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        env={**os.environ, **_env()},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()


def test_each_node_gets_its_own_name_on_one_shared_store() -> None:
    compose = load_cluster_compose({**_env(), "LEAFNODE_TAKEOVER_AFTER": "10s"})
    services = compose["services"]
    assert isinstance(services, dict)
    assert set(services) == {"migrate", "postgres", *NODES}
    template = _env_dict(services["migrate"]["environment"])["LEAFNODE_CONF"]
    seen = []
    for name in NODES:
        env = _env_dict(services[name]["environment"])
        settings = loads(render(template, env), environ=env)
        assert settings.router.server_name == name
        assert settings.store.url.startswith("postgresql+psycopg://")
        assert settings.store.takeover_after_s == 10
        assert settings.cluster is not None
        assert len(settings.cluster.routes) == 3
        (remote,) = settings.leafnodes.remotes
        assert remote.urls == ("nats-leaf://hub.example.com:7422",)
        assert remote.buffer is not None
        seen.append((settings.store.url, settings.router.port, settings.api.port))
    assert len({url for url, _p, _h in seen}) == 1  # one database
    assert len({(p, h) for _u, p, h in seen}) == 3  # each node its own ports


@pytest.fixture
def cluster_env(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[tuple[dict[str, str], Hub]]:
    hub = Hub(tmp_path / "hub", binary=None, jetstream=True)
    env = {
        **_env(hub.leaf_url),
        "LEAFNODE_STORE_URL": pg_cluster.create_database(),
        "LEAFNODE_LISTEN_HOST": "127.0.0.1",
        "LEAFNODE_TAKEOVER_AFTER": "3s",
        "LEAFNODE_BUFFER_SUBJECTS": "tele.>",
    }
    for n in (1, 2, 3):
        for kind in ("CLIENT", "HTTP", "CLUSTER"):
            env[f"NODE{n}_{kind}_PORT"] = str(free_port())
        env[f"NODE{n}_ROUTE_HOST"] = "127.0.0.1"
    try:
        yield env, hub
    finally:
        hub.proc.kill()


@pytest.fixture
def running(
    tmp_path: Path,
    bin_dir: Path,  # noqa: F811 - the fixture imported above
    cluster_env: tuple[dict[str, str], Hub],
) -> Iterator[dict[str, LocalService]]:
    env, _hub = cluster_env
    services = local_services(load_cluster_compose(env), set(), tmp_path, bin_dir)
    # The test's own PostgreSQL stands in for the `postgres` container.
    del services["postgres"]
    for service in services.values():
        service.depends_on.pop("postgres", None)
    try:
        for name in _start_order(services):
            service = services[name]
            for dependency, condition in service.depends_on.items():
                _wait(services[dependency], condition, timeout=120)
            service.log = tmp_path / f"{name}.log"
            with open(service.log, "wb") as log:
                service.proc = subprocess.Popen(
                    service.argv, env=service.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
                )
        for name in NODES:
            _wait(services[name], "service_healthy", timeout=120)
        yield services
    finally:
        for service in services.values():
            if service.proc is not None and service.proc.poll() is None:
                service.proc.terminate()
        for service in services.values():
            if service.proc is not None:
                try:
                    service.proc.wait(10)
                except subprocess.TimeoutExpired:
                    service.proc.kill()
                    service.proc.wait(5)


def _kill9(service: LocalService) -> None:
    """SIGKILL of a node: its supervisor and every service under it, at once."""
    assert service.proc is not None
    pids = [service.proc.pid, *site_processes(service.proc.pid).values()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    service.proc.wait(10)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_surviving_node_drains_a_killed_nodes_backlog(
    running: dict[str, LocalService], cluster_env: tuple[dict[str, str], Hub]
) -> None:
    env, hub = cluster_env
    nc = await nats.connect(hub.url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="TELE", subjects=["tele.>"], duplicate_window=600.0))

        async def leafs() -> int:
            found = hub.proc.monitor("leafz").get("leafs")
            return len(found) if isinstance(found, list) else 0

        await apoll_async(leafs, lambda n: n == 3, timeout=60, what="three nodes at the hub")
    finally:
        await nc.close()
    hub.stop()
    count = 300
    client = RawClient(int(env["NODE2_CLIENT_PORT"]))
    try:
        data = QUIET + pubs([(f"tele.{i % 4}", b"%d" % i) for i in range(count)])
        out, closed = client.exchange(data, timeout=60)
        assert (out, closed) == (b"PONG\r\n", False)  # flushed: committed to the store
    finally:
        client.sock.close()
    _kill9(running["node2"])
    hub.start()
    nc = await nats.connect(hub.url)
    try:
        js = nc.jetstream()

        async def stored() -> int:
            return (await js.stream_info("TELE")).state.messages

        started = time.monotonic()
        await apoll_async(stored, lambda n: n >= count, timeout=90, what=f"{count} in the stream")
        info = await js.stream_info("TELE")
        payloads = [
            (await js.get_msg("TELE", seq)).data
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()
    assert payloads == [b"%d" % i for i in range(count)]  # all, once, in order
    assert time.monotonic() - started < 90
    took = [
        name
        for name in ("node1", "node3")
        if "Took over backlog 'node2' of node 'node2'" in running[name].log_text()
    ]
    assert len(took) == 1
