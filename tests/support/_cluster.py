"""A NATS cluster of real processes: leafnode nodes, nats-server nodes, or both (issue 14).

``ClusterNodes.start(kinds, workdir)`` starts one node per kind, each with a
free route port: the first is the seed, every other node names only the
seed in its ``routes``, so the others meet by gossip (implicit routes), as
a node added to a running cluster does. Kinds:

- ``"leafnode"``: ``leafnode router`` alone (routing only, lightest);
- ``"site"``: ``leafnode run`` (every service, monitoring on a free port);
- ``"nats-server"``: the venv's nats-server 2.15, monitoring on a free port.

``wait_meshed`` waits, by effect, until a message published on any node
reaches a subscriber on every other node.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats

from ._procs import NatsServerProcess, RouterProcess, free_port
from ._site import SiteProcess
from ._uplink import wait_for_log

if TYPE_CHECKING:
    from pathlib import Path

    from nats.aio.msg import Msg

__all__ = ["ClusterNode", "ClusterNodes"]

CLUSTER_NAME = "C"


@dataclass
class ClusterNode:
    """One node: its process, kind, route port and (when served) monitoring port."""

    kind: str
    proc: NatsServerProcess | RouterProcess | SiteProcess
    route_port: int
    http_port: int = 0

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def port(self) -> int:
        return self.proc.port

    def kill(self) -> None:
        self.proc.kill()


def _cluster_block(route_port: int, seed: int | None, extra: str, userinfo: str = "") -> str:
    seed_url = f"nats-route://{userinfo}127.0.0.1:{seed}"
    routes = f'routes: ["{seed_url}"]' if seed is not None else ""
    return (
        f'cluster {{\n  name: {CLUSTER_NAME}\n  listen: "127.0.0.1:{route_port}"\n'
        f"  {routes}\n  {extra}\n}}\n"
    )


def _wait_route_port(proc: NatsServerProcess | RouterProcess | SiteProcess) -> None:
    """A router binds its route port just after its client port: until it says so.

    (Its log, not a probe: a probe would be a failed route handshake there.)
    """
    if isinstance(proc, RouterProcess):
        wait_for_log(proc, "Listening for route connections on", timeout=60)


class ClusterNodes:
    """The nodes of one test cluster, killed together."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    def __getitem__(self, i: int) -> ClusterNode:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    @classmethod
    def start(
        cls,
        kinds: list[str] | tuple[str, ...],
        workdir: Path,
        *,
        config: str = "",
        cluster_extra: str = "",
        per_node: dict[int, str] | None = None,
        route_auth: tuple[str, str] | None = None,
        cluster_per_node: dict[int, str] | None = None,
    ) -> ClusterNodes:
        """Start one node per kind (``config``: more of every node's config file).

        ``route_auth``: every node requires this route user and password
        (``cluster { authorization }``) and dials its seed with them.
        ``cluster_per_node``: more of node i's cluster block (its ``tls``).
        """
        userinfo = ""
        if route_auth is not None:
            user, password = route_auth
            userinfo = f"{user}:{password}@"
            cluster_extra += f" authorization {{ user: {user}, password: {password} }}"
        nodes: list[ClusterNode] = []
        seed: int | None = None
        try:
            for i, kind in enumerate(kinds):
                route_port = free_port()
                text = (
                    f"server_name: n{i}\n"
                    + config
                    + (per_node or {}).get(i, "")
                    + _cluster_block(
                        route_port,
                        seed,
                        cluster_extra + (cluster_per_node or {}).get(i, ""),
                        userinfo,
                    )
                )
                node_dir = workdir / f"n{i}"
                proc: NatsServerProcess | RouterProcess | SiteProcess
                http = 0
                if kind == "nats-server":
                    http = free_port()
                    proc = NatsServerProcess(text + f"http: 127.0.0.1:{http}\n", workdir=node_dir)
                elif kind == "site":
                    proc = SiteProcess(text, workdir=node_dir)
                else:
                    proc = RouterProcess(text, workdir=node_dir)
                nodes.append(ClusterNode(kind, proc, route_port, http))
                proc.wait_ready(timeout=60)
                _wait_route_port(proc)
                if isinstance(proc, SiteProcess):
                    nodes[-1].http_port = proc.http_port
                if seed is None:
                    seed = route_port
        except BaseException:
            for node in nodes:
                node.kill()
            raise
        return cls(nodes)

    def restart(self, i: int) -> None:
        """Start node ``i`` again (killed before) with the same config and route port."""
        old = self.nodes[i]
        old.kill()
        proc = old.proc
        node_dir = proc.workdir
        text = (
            node_dir / ("server.conf" if old.kind == "nats-server" else "leaf.conf")
        ).read_text()
        new: NatsServerProcess | RouterProcess | SiteProcess
        if old.kind == "nats-server":
            new = NatsServerProcess(text, workdir=node_dir)
        elif old.kind == "site":
            new = SiteProcess(text, workdir=node_dir)
        else:
            new = RouterProcess(text, workdir=node_dir)
        self.nodes[i] = ClusterNode(old.kind, new, old.route_port, old.http_port)
        new.wait_ready(timeout=60)
        _wait_route_port(new)
        if isinstance(new, SiteProcess):
            self.nodes[i].http_port = new.http_port

    def kill(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.kill()

    async def wait_meshed(self, timeout: float = 60.0, nodes: list[int] | None = None) -> None:
        """Until a message published on each node reaches a subscriber on each other node."""
        which = nodes if nodes is not None else list(range(len(self.nodes)))
        conns = [await nats.connect(self.nodes[i].url) for i in which]
        try:
            seen: set[tuple[int, int]] = set()

            def counter(receiver: int) -> object:
                async def got(msg: Msg) -> None:
                    seen.add((int(msg.data), receiver))

                return got

            for j, nc in enumerate(conns):
                await nc.subscribe("_mesh.probe", cb=counter(j))  # type: ignore[arg-type]
            want = {(a, b) for a in range(len(conns)) for b in range(len(conns)) if a != b}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not want <= seen:
                if loop.time() > deadline:
                    missing = sorted(want - seen)
                    raise AssertionError(f"cluster not meshed after {timeout}s: {missing}")
                for j, nc in enumerate(conns):
                    await nc.publish("_mesh.probe", str(j).encode())
                await asyncio.sleep(0.1)
        finally:
            for nc in conns:
                await nc.close()
