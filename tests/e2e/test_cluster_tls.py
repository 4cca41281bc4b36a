"""TLS on routes: ``cluster { tls { ... } }`` (issue 14 point 1), against nats-server 2.15.

- leafnode nodes with ``cluster.tls`` mesh over TLS (three nodes: the seed's
  routes and the gossiped ones) and messages cross; the route port does the
  TLS handshake first, asks for the dialer's certificate and then sends
  INFO with ``tls_required`` and ``tls_verify``, as nats-server's does;
- a leafnode node and a nats-server 2.15 node, both with ``cluster.tls``,
  route to each other whichever of them dials;
- a node without TLS, or with a certificate of another CA, is refused by the
  TLS node (leafnode or nats-server) at every attempt, and neither node
  registers a route, as nats-server refuses it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.request
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import wait_until
from tests.support import ClusterNodes, make_tls_files

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from nats.aio.msg import Msg

    from tests.support import TlsFiles

pytestmark = [pytest.mark.e2e]

# Generous: the machine running the suite is shared and loaded.
TLS_TIMEOUT_S = 10
HANDSHAKE_ERROR = "TLS route handshake error"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("route-ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Certificates of another CA: valid, but not trusted by the cluster."""
    return make_tls_files(tmp_path_factory.mktemp("other-ca"))


def route_tls(files: TlsFiles) -> str:
    return (
        f'tls {{ cert_file: "{files.route_cert}", key_file: "{files.route_key}",'
        f' ca_file: "{files.ca_cert}", timeout: {TLS_TIMEOUT_S} }}'
    )


def _probe_info(port: int, files: TlsFiles) -> dict[str, object]:
    """TLS to a route port with a node's certificate, then read its INFO."""
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(files.route_cert), str(files.route_key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = tls.recv(65536)
            assert chunk, "the route port closed before its INFO"
            data += chunk
    assert data.startswith(b"INFO ")
    info: dict[str, object] = json.loads(data[5:])
    return info


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        data: dict[str, object] = json.load(answer)
    return data


def _collector(into: list[Msg]) -> object:
    async def got(msg: Msg) -> None:
        into.append(msg)

    return got


@pytest.fixture(
    params=[
        ("leafnode", "leafnode", "leafnode"),
        ("leafnode", "nats-server"),
        ("nats-server", "leafnode"),
    ],
    ids=["leafnode-x3", "leafnode-seed-nats-server", "nats-server-seed-leafnode"],
)
def tls_cluster(
    request: pytest.FixtureRequest, tmp_path: Path, tls_files: TlsFiles
) -> Iterator[ClusterNodes]:
    nodes = ClusterNodes.start(request.param, tmp_path, cluster_extra=route_tls(tls_files))
    try:
        yield nodes
    finally:
        nodes.kill()


@pytest.mark.asyncio
async def test_nodes_route_over_tls_and_messages_cross(
    tls_cluster: ClusterNodes, tls_files: TlsFiles
) -> None:
    await tls_cluster.wait_meshed()
    for node in tls_cluster.nodes:
        # Every route port answers TLS only (a plain route would never mesh with it).
        info = await asyncio.to_thread(_probe_info, node.route_port, tls_files)
        assert info["tls_required"] is True
    conns = [await nats.connect(node.url) for node in tls_cluster.nodes]
    try:
        got: list[list[Msg]] = [[] for _ in conns]
        for i, nc in enumerate(conns):
            await nc.subscribe("t.x", cb=_collector(got[i]))  # type: ignore[arg-type]
        await tls_cluster.wait_meshed()  # the t.x interest travelled before the probes
        for i, nc in enumerate(conns):
            await nc.publish("t.x", f"from {i}".encode(), headers={"Node": str(i)})

        def all_arrived() -> bool:
            return all(len(msgs) >= len(conns) for msgs in got)

        await wait_until(all_arrived, timeout=30, what="every message on every node")
        for msgs in got:
            assert sorted(m.data for m in msgs) == [f"from {i}".encode() for i in range(len(conns))]
            assert all(m.headers == {"Node": m.data.decode()[5:]} for m in msgs)

        # Request/reply across a TLS route: the responder on the last node.
        async def respond(msg: Msg) -> None:
            await msg.respond(b"pong:" + msg.data)

        await conns[-1].subscribe("svc", cb=respond)
        await tls_cluster.wait_meshed()
        reply = await conns[0].request("svc", b"1", timeout=10)
        assert reply.data == b"pong:1"
    finally:
        for nc in conns:
            await nc.close()
    for node in tls_cluster.nodes:
        if node.kind == "leafnode":
            assert HANDSHAKE_ERROR not in node.proc.log_text()


def test_the_route_port_does_tls_first_and_requires_a_certificate(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    nodes = ClusterNodes.start(("leafnode",), tmp_path, cluster_extra=route_tls(tls_files))
    try:
        info = _probe_info(nodes[0].route_port, tls_files)
        assert info["tls_required"] is True
        assert info["tls_verify"] is True
        # Without a certificate of our own: refused (mutual TLS, whatever `verify` says).
        context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
        got = b""
        with socket.create_connection(("127.0.0.1", nodes[0].route_port), timeout=20) as raw:
            try:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    # TLS 1.3: the server's refusal arrives with the first read.
                    got = tls.recv(65536)
            except (ssl.SSLError, ConnectionError):
                pass
        assert got == b"", got  # no INFO for a dialer without a certificate
        log = nodes[0].proc.log_text()
        assert HANDSHAKE_ERROR in log
        assert "not served" not in log
    finally:
        nodes.kill()


REFUSED = {
    # (kinds, seed's cluster extra, joiner's cluster extra) by case name.
    "leafnode-refuses-plain-leafnode": (("leafnode", "leafnode"), "tls", ""),
    "leafnode-refuses-untrusted-leafnode": (("leafnode", "leafnode"), "tls", "other"),
    "leafnode-refuses-untrusted-nats-server": (("leafnode", "nats-server"), "tls", "other"),
    "nats-server-refuses-plain-leafnode": (("nats-server", "leafnode"), "tls", ""),
    "nats-server-refuses-untrusted-leafnode": (("nats-server", "leafnode"), "tls", "other"),
    "plain-leafnode-refuses-nats-server": (("leafnode", "nats-server"), "", "tls"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_node_without_tls_or_with_an_untrusted_certificate_is_refused(
    case: str, tmp_path: Path, tls_files: TlsFiles, other_ca: TlsFiles
) -> None:
    kinds, seed_tls, joiner_tls = REFUSED[case]
    blocks = {"tls": route_tls(tls_files), "other": route_tls(other_ca), "": ""}
    nodes = ClusterNodes.start(
        kinds, tmp_path, cluster_per_node={0: blocks[seed_tls], 1: blocks[joiner_tls]}
    )
    try:
        # The TLS side (or, for a plain seed, the TLS joiner) logs the failed
        # handshake at each of the joiner's attempts: twice proves a retry
        # is refused too.
        tls_side = nodes[0] if seed_tls == "tls" else nodes[1]

        def refused_twice() -> bool:
            return tls_side.proc.log_text().count(HANDSHAKE_ERROR) >= 2

        await wait_until(refused_twice, timeout=30, what="two refused route handshakes")
        for node in nodes.nodes:
            if node.kind == "leafnode":
                assert "Route registered" not in node.proc.log_text()
            else:
                routez = _get_json(f"http://127.0.0.1:{node.http_port}/routez")
                assert routez["num_routes"] == 0, routez
    finally:
        nodes.kill()
