"""``allow_non_tls``: the client port serves TLS and plain clients side by side (issue 12.4).

nats-server then advertises ``tls_available`` instead of ``tls_required`` and
tells the two apart by the client's first byte (a TLS handshake record is 0x16).
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok
from tests.support import make_tls_files

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import RouterFactory


def _first_info(port: int) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            assert chunk, "closed before INFO"
            data += chunk
    assert data.startswith(b"INFO ")
    info: dict[str, object] = json.loads(data[5:])
    return info


@pytest.mark.asyncio
async def test_tls_and_plain_clients_side_by_side(
    router_factory: RouterFactory, tmp_path: Path
) -> None:
    certs = make_tls_files(tmp_path / "certs")
    router = router_factory(
        f"""allow_non_tls: true
        tls {{
          cert_file: "{certs.server_cert}"
          key_file: "{certs.server_key}"
        }}"""
    )
    info = _first_info(router.port)
    assert info.get("tls_available") is True
    assert "tls_required" not in info

    plain = await nats.connect(f"nats://127.0.0.1:{router.port}")
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    secure = await nats.connect(f"tls://127.0.0.1:{router.port}", tls=ctx)
    try:
        await plain.subscribe("both.plain", cb=respond_ok)
        await secure.subscribe("both.tls", cb=respond_ok)
        await plain.flush()
        await secure.flush()
        assert (await secure.request("both.plain", b"", timeout=5)).data == b"ok"
        assert (await plain.request("both.tls", b"", timeout=5)).data == b"ok"
    finally:
        await plain.close()
        await secure.close()
    # A raw client that really speaks TLS after the clear-text INFO.
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as sock:
        assert sock.recv(4096).startswith(b"INFO ")
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            assert tls.version() is not None
            tls.sendall(b"CONNECT {}\r\nPING\r\n")
            data = b""
            while b"PONG\r\n" not in data:
                chunk = tls.recv(4096)
                assert chunk, f"closed after {data!r}"
                data += chunk


def test_without_allow_non_tls_tls_is_required(
    router_factory: RouterFactory, tmp_path: Path
) -> None:
    certs = make_tls_files(tmp_path / "certs")
    router = router_factory(
        f'tls {{ cert_file: "{certs.server_cert}", key_file: "{certs.server_key}" }}'
    )
    info = _first_info(router.port)
    assert info.get("tls_required") is True
    assert "tls_available" not in info


@pytest.mark.asyncio
async def test_handshake_first_wins_over_allow_non_tls(
    router_factory: RouterFactory, tmp_path: Path
) -> None:
    # nats-server: with handshake_first, TLS is required whatever allow_non_tls says.
    certs = make_tls_files(tmp_path / "certs")
    router = router_factory(
        f"""allow_non_tls: true
        tls {{
          cert_file: "{certs.server_cert}"
          key_file: "{certs.server_key}"
          handshake_first: true
        }}"""
    )
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    nc = await nats.connect(f"tls://127.0.0.1:{router.port}", tls=ctx, tls_handshake_first=True)
    try:
        info = nc._server_info
        assert info.get("tls_required") is True
        assert "tls_available" not in info
    finally:
        await nc.close()
